//! The `verify` Lambda function: see `shared::flash_call::VerifyEndpoint`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::run::<shared::flash_call::VerifyEndpoint>().await
}
