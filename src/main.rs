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

/// C's `pow`, for the one caller this binary has: tokio's multi-thread scheduler, which
/// weighs its average task poll time with `f64::powf` (a call to `pow`). Defined here with the
/// `libm` crate (Rust's port of musl's `pow`, within 1 ulp like glibc's), the symbol no longer
/// makes the dynamic loader open glibc's libm.so.6 (the linker links it only when needed) and
/// run its IFUNC resolvers at every start: ~570 KiB of libm mapped in an idle broker, measured
/// with `scripts/measure-footprint.sh`.
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}
