//! The `crm` binary.

/// mimalloc returns freed memory to the system soon after a heavy request;
/// glibc's malloc kept it (see BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Before the heavy allocations and before anything opens a database
    // (see memory.rs).
    if !crm_gateway::memory::no_transparent_huge_pages() {
        eprintln!("warning: could not turn transparent huge pages off; RSS may grow at rest");
    }
    #[cfg(feature = "mimalloc")]
    if !crm_gateway::memory::sqlite_on_mimalloc() {
        eprintln!("warning: SQLite keeps the C library's malloc (it was already initialised)");
    }
    // Blocking threads (SQLite work) give memory back like parked workers.
    crm_core::db::after_blocking_work(crm_gateway::memory::on_park);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(crm_gateway::memory::BLOCKING_KEEP_ALIVE)
        .on_thread_park(crm_gateway::memory::on_park)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crm_gateway::cli::main()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
