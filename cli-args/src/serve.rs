//! Arguments of `outpost serve`.

use std::path::PathBuf;

use clap::Args;

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
