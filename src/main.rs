use clap::Parser;

/// mimalloc instead of glibc's malloc: a legacy import of 100,000 leads spent a fifth of its time in
/// `malloc`/`free` (many short-lived strings and rows), and every request allocates too.
/// See BENCHMARKS.md, "Session 4: allocator".
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = leadcache::cli::Cli::parse();
    match leadcache::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain, each cause once (`leadcache::error::report`), not `{e:#}`.
            eprintln!("leadcache: {}", leadcache::error::report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
