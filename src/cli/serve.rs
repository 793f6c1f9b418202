//! `outpost serve`.

use super::CliError;
use crate::config::Config;
pub use outpost_cli_args::serve::ServeArgs;

/// Runs the broker until SIGINT/SIGTERM.
pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.wire.listen = listen;
    }
    crate::logging::init_serve(&config.logging);
    crate::server::run(config).await?;
    Ok(())
}
