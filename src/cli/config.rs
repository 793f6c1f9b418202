//! `outpost config default` and `outpost config check FILE`.

use super::CliError;
use crate::config::{Config, DEFAULT_CONFIG_TOML};
pub use outpost_cli_args::config::ConfigCommand;

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
