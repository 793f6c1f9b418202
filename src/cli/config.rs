//! `outpost config default` and `outpost config check FILE`.

use std::path::PathBuf;

use clap::Subcommand;

use super::CliError;
use crate::config::{Config, DEFAULT_CONFIG_TOML};

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

/// Runs a `config` subcommand.
pub fn run(cmd: ConfigCommand) -> Result<(), CliError> {
    match cmd {
        ConfigCommand::Default => print!("{DEFAULT_CONFIG_TOML}"),
        ConfigCommand::Check { file } => {
            let config = Config::from_file(&file)?;
            crate::auth::Security::open(&config.auth)?;
            println!("{}: ok", file.display());
        }
    }
    Ok(())
}
