//! The `sms-verify` Lambda function: see `shared::sms::SmsVerifyEndpoint`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::run::<shared::sms::SmsVerifyEndpoint>().await
}
