//! The `status` Lambda function: see `shared::flash_call::StatusEndpoint`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::run::<shared::flash_call::StatusEndpoint>().await
}
