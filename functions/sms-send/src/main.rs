//! The `sms-send` Lambda function: see `shared::sms::SmsSendEndpoint`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::run::<shared::sms::SmsSendEndpoint>().await
}
