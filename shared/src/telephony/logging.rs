//! A gateway that dials nothing and logs the call, caller ID included, for local use.

use super::{BoxFuture, FlashCall, PlacedCall, TelephonyError, TelephonyGateway};

#[derive(Debug, Default)]
pub struct LoggingGateway;

impl TelephonyGateway for LoggingGateway {
    fn place_flash_call<'a>(
        &'a self,
        call: &'a FlashCall,
    ) -> BoxFuture<'a, Result<PlacedCall, TelephonyError>> {
        Box::pin(async move {
            let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
            // The caller ID is the secret of the flash call. Logging it is the whole point of
            // this gateway, which is why it refuses to run in Lambda unless told otherwise.
            tracing::info!(
                caller_id = %call.from,
                to = %call.to.masked(),
                call_sid = %sid,
                "flash call NOT dialed (logging gateway): the caller ID to enter is {}",
                call.from
            );
            Ok(PlacedCall { sid })
        })
    }
}
