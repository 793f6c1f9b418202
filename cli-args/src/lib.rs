//! The command line of `outpost`: the clap argument types of every subcommand, and nothing
//! else. What each command does lives in the broker crate (`outpost::cli`), which runs the
//! [`Cli`] that [`parse`] returns.
//!
//! Why a crate of its own: clap's derived parsers are large and run once per process, so the
//! release profile builds this crate for size (`[profile.release.package.outpost-cli-args]`)
//! while the broker's message path keeps opt-level 3.

pub mod bench;
pub mod bridge;
pub mod config;
pub mod consume;
pub mod devices;
pub mod passwd;
pub mod produce;
pub mod serve;
pub mod topics;

use clap::{Parser, Subcommand};

/// Default broker address for the client subcommands.
pub const DEFAULT_BROKER: &str = "127.0.0.1:7883";

/// Outpost: an edge broker with a durable, partitioned, Kafka-style log.
#[derive(Debug, Parser)]
#[command(name = "outpost", version, about, long_about = None)]
pub struct Cli {
    /// Broker address (binary protocol) for client subcommands.
    #[arg(long, global = true, env = "OUTPOST_BROKER", default_value = DEFAULT_BROKER)]
    pub broker: String,
    /// User name for client subcommands, when the broker requires a login.
    #[arg(long, global = true, env = "OUTPOST_USER")]
    pub user: Option<String>,
    /// Password of --user. Prefer the environment variable: other users can read arguments.
    #[arg(long, global = true, env = "OUTPOST_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Connect to the broker's TLS listener (`[wire.tls]`), verifying its certificate against
    /// this PEM CA file.
    #[arg(long, global = true, env = "OUTPOST_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for a listener that asks for one; needs --tls-key.
    #[arg(long, global = true, env = "OUTPOST_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, global = true, env = "OUTPOST_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Name the broker's certificate must carry [default: the host of --broker].
    #[arg(long, global = true)]
    pub tls_server_name: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker (embedded defaults when no --config is given).
    Serve(serve::ServeArgs),
    /// Print the default configuration or check a configuration file.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Produce records: one per stdin line, or --value.
    Produce(produce::ProduceArgs),
    /// Consume records from a topic.
    Consume(consume::ConsumeArgs),
    /// Load generator: produce or consume at full speed and report rates and latencies.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Upstream bridges of the running broker: their connection, checkpoints and lag.
    #[command(subcommand)]
    Bridge(bridge::BridgeCommand),
    /// Manage a password file: add (or change), delete and list users.
    #[command(subcommand)]
    Passwd(passwd::PasswdCommand),
    /// Devices of the running broker: configs, tokens, last seen.
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
}

/// Parses the process's arguments; on `--help`, `--version` or a usage error, prints clap's
/// message and exits (code 0 or 2).
pub fn parse() -> Cli {
    Cli::parse()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        // clap's own checks (duplicate flags, bad `requires`/`conflicts_with` targets, ...).
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_reach_subcommands() {
        let cli =
            Cli::try_parse_from(["outpost", "topics", "list", "--broker", "h:1"]).expect("parses");
        assert_eq!(cli.broker, "h:1");
        assert!(matches!(
            cli.command,
            Command::Topics(topics::TopicsCommand::List)
        ));
    }
}
