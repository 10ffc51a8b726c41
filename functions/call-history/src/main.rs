//! The `call-history` Lambda function: see `shared::calls::CallHistoryEndpoint`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::run::<shared::calls::CallHistoryEndpoint>().await
}
