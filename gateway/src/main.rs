//! The `crm` binary.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match crm_gateway::cli::main().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
