//! The example consumer of verification events (off by default: `EnableVerificationEvents`):
//! an EventBridge Pipes enrichment between the table's DynamoDB stream and an event bus. It
//! turns a batch of stream records into the six signals of `shared::events`; the pipe puts
//! each on the bus. Nothing of it runs on the request path.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_http::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let events = shared::events::from_stream_batch(&event.payload);
        Ok::<_, lambda_runtime::Error>(Value::Array(events))
    }))
    .await
}
