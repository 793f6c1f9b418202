//! The `outpost` command line: one module per subcommand, each a thin layer over the
//! [`crate::client::Client`] (tools talk to a running broker; they never open the log file
//! behind its back) or, for `serve`, over [`crate::server`].
//!
//! Errors print as one line naming the problem and the fix; the exit code is 1.

pub mod bench;
pub mod bench_mqtt;
pub mod bridge;
pub mod config;
pub mod consume;
pub mod produce;
pub mod serve;
pub mod topics;

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError};

/// Default broker address for the client subcommands.
pub const DEFAULT_BROKER: &str = "127.0.0.1:7883";

/// Outpost: an edge broker with a durable, partitioned, Kafka-style log.
#[derive(Debug, Parser)]
#[command(name = "outpost", version, about, long_about = None)]
pub struct Cli {
    /// Broker address (binary protocol) for client subcommands.
    #[arg(long, global = true, env = "OUTPOST_BROKER", default_value = DEFAULT_BROKER)]
    pub broker: String,
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
}

/// A failed subcommand, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A broker call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    /// An MQTT bench failed.
    #[error(transparent)]
    MqttBench(#[from] bench_mqtt::MqttBenchError),
    /// stdin/stdout failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// An argument is unusable.
    #[error("{0}")]
    Usage(&'static str),
}

/// Connects to the broker named by `--broker`.
pub async fn connect(broker: &str, who: &str) -> Result<Client, CliError> {
    let id = format!("outpost-cli-{who}-{}", std::process::id());
    Ok(Client::connect(broker, &id).await?)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Config(cmd) => config::run(cmd),
        Command::Topics(cmd) => topics::run(&cli.broker, cmd).await,
        Command::Produce(args) => produce::run(&cli.broker, args).await,
        Command::Consume(args) => consume::run(&cli.broker, args).await,
        Command::Bench(cmd) => bench::run(&cli.broker, cmd).await,
        Command::Bridge(cmd) => bridge::run(&cli.broker, cmd).await,
    }
}
