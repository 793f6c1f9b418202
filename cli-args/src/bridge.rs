//! Arguments of `outpost bridge status`.

use clap::Subcommand;

/// `bridge` subcommands.
#[derive(Debug, Subcommand)]
pub enum BridgeCommand {
    /// Show each bridge's upstream connection and, per route and partition, checkpoint,
    /// lag, in-flight records and losses.
    Status {
        /// Print the status as JSON (an array, one object per bridge) instead of a table.
        #[arg(long)]
        json: bool,
    },
}
