//! The `call-event` Lambda function: see `shared::calls::CallEventEndpoint`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::run::<shared::calls::CallEventEndpoint>().await
}
