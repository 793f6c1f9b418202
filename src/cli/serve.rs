//! `outpost serve`.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::config::Config;

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); without it the embedded defaults apply.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `data_dir` of the file).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Binary-protocol listen address (overrides `[wire] listen`).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

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
