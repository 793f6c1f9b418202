//! The `outpost` binary: parses the command line and runs it (see `outpost::cli`).

fn main() -> std::process::ExitCode {
    let cli = outpost::cli::parse();
    // `serve` sets up its logging from its configuration file, once it has read it.
    if !matches!(cli.command, outpost::cli::Command::Serve(_)) {
        outpost::logging::init_cli();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(outpost::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
