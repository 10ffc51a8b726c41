//! The `twilio-webhook` Lambda function: see `shared::webhook::TwilioWebhookEndpoint`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::run::<shared::webhook::TwilioWebhookEndpoint>().await
}
