//! Arguments of `outpost config default` and `outpost config check FILE`.

use std::path::PathBuf;

use clap::Subcommand;

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the full default configuration, every key commented.
    Default,
    /// Validate a configuration file (and the password and ACL files it names).
    Check {
        /// The file.
        file: PathBuf,
    },
}
