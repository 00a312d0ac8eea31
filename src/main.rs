use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = leadcache::cli::Cli::parse();
    match leadcache::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leadcache: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
