//! The SMS delivery log against DynamoDB Local: a message's status only moves forward, in any
//! order and any number of times, and terminal statuses stay (the store the `sms-send` and
//! `twilio-webhook` endpoints of issue 10 build on).

use futures::future::join_all;
use shared::clock::Clock;
use shared::sms::{MessageId, MessageStatus};
use shared::store::messages::MessageRecord;
use tests::random_phone;

fn permutations(items: &[MessageStatus]) -> Vec<Vec<MessageStatus>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, *first);
            all.push(tail);
        }
    }
    all
}

async fn new_message(store: &shared::store::Messages, now: time::OffsetDateTime) -> MessageId {
    let id = MessageId::random();
    let record = MessageRecord {
        id,
        to: random_phone(),
        from: "+14155550100".into(),
        status: MessageStatus::Accepted,
        provider_sid: None,
        error_code: None,
        segments: 1,
        created_at: now,
        updated_at: now,
        history: vec![(MessageStatus::Accepted, now)],
        sent_by: None,
    };
    store.put(&record).await.unwrap();
    id
}

#[tokio::test]
async fn every_order_of_status_callbacks_gives_the_same_final_record() {
    let (init, clock, _) = tests::init(&[]).await;
    let messages = init.store().messages();
    use MessageStatus::*;
    for (statuses, last, error) in [
        (vec![Queued, Sent, Delivered], Delivered, None),
        (vec![Sent, Undelivered], Undelivered, Some(30003)),
    ] {
        for order in permutations(&statuses) {
            let id = new_message(&messages, clock.now()).await;
            let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
            for status in &order {
                let code = if status.is_terminal() { error } else { None };
                messages
                    .advance_status(&id, &sid, *status, code, clock.now())
                    .await
                    .unwrap();
                // A repeat changes nothing.
                let again = messages
                    .advance_status(&id, &sid, *status, code, clock.now())
                    .await
                    .unwrap();
                assert!(!again, "{order:?}: {status:?} applied twice");
            }
            let record = messages.get(&id).await.unwrap().unwrap();
            assert_eq!(record.status, last, "{order:?}");
            assert_eq!(record.error_code, error, "{order:?}");
            assert_eq!(record.provider_sid.as_deref(), Some(sid.as_str()));
            let ranks: Vec<u8> = record.history.iter().map(|(s, _)| s.rank()).collect();
            assert!(
                ranks.windows(2).all(|w| w[0] < w[1]),
                "{order:?}: {ranks:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_late_sent_after_delivered_and_another_sid_change_nothing() {
    let (init, clock, _) = tests::init(&[]).await;
    let messages = init.store().messages();
    let id = new_message(&messages, clock.now()).await;
    let sid = "SM0123456789abcdef0123456789abcdef";
    assert!(
        messages
            .advance_status(&id, sid, MessageStatus::Delivered, None, clock.now())
            .await
            .unwrap()
    );
    assert!(
        !messages
            .advance_status(&id, sid, MessageStatus::Sent, None, clock.now())
            .await
            .unwrap()
    );
    let other = "SMffffffffffffffffffffffffffffffff";
    assert!(
        !messages
            .advance_status(&id, other, MessageStatus::Read, None, clock.now())
            .await
            .unwrap()
    );
    let unknown = MessageId::random();
    assert!(
        !messages
            .advance_status(&unknown, sid, MessageStatus::Read, None, clock.now())
            .await
            .unwrap()
    );
    assert!(messages.get(&unknown).await.unwrap().is_none());
    assert_eq!(
        messages.get(&id).await.unwrap().unwrap().status,
        MessageStatus::Delivered
    );
}

#[tokio::test]
async fn fifty_concurrent_identical_callbacks_write_once() {
    let (init, clock, _) = tests::init(&[]).await;
    let messages = init.store().messages();
    let id = new_message(&messages, clock.now()).await;
    let sid = "SM0123456789abcdef0123456789abcdef";
    let now = clock.now();
    let applied = join_all((0..50).map(|_| {
        let messages = messages.clone();
        async move {
            messages
                .advance_status(&id, sid, MessageStatus::Delivered, None, now)
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(applied.iter().filter(|a| **a).count(), 1);
    let record = messages.get(&id).await.unwrap().unwrap();
    assert_eq!(record.history.len(), 2, "accepted, then delivered once");
}
