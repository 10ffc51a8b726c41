//! The `request` Lambda function: see `shared::flash_call::RequestEndpoint`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::run::<shared::flash_call::RequestEndpoint>().await
}
