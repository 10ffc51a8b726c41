//! The API: every endpoint, named once. The local API serves this list, the fixture test
//! dispatches by it, and tests check `template.yaml` and `openapi.yaml` against it. A new
//! endpoint is its module, one line here, its function crate, its `template.yaml` resource
//! and its fixtures.

use anyhow::Context;

use crate::Init;
use crate::calls::{CallEventEndpoint, CallHistoryEndpoint};
use crate::flash_call::{RequestEndpoint, StatusEndpoint, VerifyEndpoint};
use crate::http::{Endpoint, Route, Served};
use crate::sms::{SmsSendEndpoint, SmsVerifyEndpoint};
use crate::webhook::TwilioWebhookEndpoint;

/// An endpoint's name (its function) and routes, known without building it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub routes: &'static [Route],
    pub secrets: &'static [crate::secrets::SecretPart],
}

macro_rules! endpoints {
    ($($endpoint:ty),* $(,)?) => {
        /// Every endpoint's name and routes.
        pub const ALL: &[Entry] = &[$(Entry {
            name: <$endpoint as Endpoint>::NAME,
            routes: <$endpoint as Endpoint>::ROUTES,
            secrets: <$endpoint as Endpoint>::SECRETS,
        }),*];

        /// Builds every endpoint from one `Init`, as separate Lambdas would each build theirs.
        pub async fn build_all(init: &Init) -> anyhow::Result<Vec<Box<dyn Served>>> {
            Ok(vec![$(
                Box::new(
                    <$endpoint as Endpoint>::init(init)
                        .await
                        .with_context(|| format!("building {}", <$endpoint as Endpoint>::NAME))?,
                ) as Box<dyn Served>
            ),*])
        }
    };
}

endpoints!(
    RequestEndpoint,
    VerifyEndpoint,
    StatusEndpoint,
    CallEventEndpoint,
    CallHistoryEndpoint,
    SmsSendEndpoint,
    SmsVerifyEndpoint,
    TwilioWebhookEndpoint,
);

/// Every route with the function that serves it.
pub fn routes() -> impl Iterator<Item = (&'static Route, &'static str)> {
    ALL.iter()
        .flat_map(|e| e.routes.iter().map(move |r| (r, e.name)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn no_two_endpoints_share_a_name_or_a_route() {
        let names: BTreeSet<_> = ALL.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), ALL.len());
        let unique: BTreeSet<_> = routes().map(|(r, _)| r).collect();
        assert_eq!(unique.len(), routes().count());
    }
}
