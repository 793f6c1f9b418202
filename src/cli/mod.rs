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
pub mod devices;
pub mod passwd;
pub mod produce;
pub mod serve;
pub mod topics;

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError, ClientTls, Credentials};

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

/// Where client subcommands connect, and as whom.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port` of the binary-protocol listener.
    pub addr: String,
    /// Login, when `--user` is given.
    pub credentials: Option<Credentials>,
    /// TLS, when `--tls-ca` is given.
    pub tls: Option<ClientTls>,
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
    /// A password file could not be used.
    #[error(transparent)]
    Passwd(#[from] crate::auth::password::PasswordFileError),
    /// The password file or ACL named in the configuration cannot be used.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A device file or device argument is unusable.
    #[error("{0}")]
    Device(String),
    /// `outpost passwd` failed otherwise.
    #[error(transparent)]
    PasswdUsage(#[from] passwd::PasswdError),
}

/// Connects to the broker named by `--broker`, logging in with `--user`/`--password`.
pub async fn connect(broker: &Endpoint, who: &str) -> Result<Client, CliError> {
    let id = format!("outpost-cli-{who}-{}", std::process::id());
    let Some(tls) = &broker.tls else {
        return Ok(Client::connect_with(&broker.addr, &id, broker.credentials.as_ref()).await?);
    };
    let client = Client::connect_tls(&broker.addr, &id, tls).await?;
    if let Some(c) = &broker.credentials {
        client.authenticate(&c.user, c.password.as_bytes()).await?;
    }
    Ok(client)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let credentials = match (cli.user, cli.password) {
        (Some(user), password) => Some(Credentials {
            user,
            password: password.unwrap_or_default(),
        }),
        (None, Some(_)) => return Err(CliError::Usage("--password needs --user")),
        (None, None) => None,
    };
    let tls = match (cli.tls_ca, cli.tls_cert.is_some() || cli.tls_key.is_some()) {
        (Some(ca_file), _) => Some(ClientTls {
            ca_file,
            cert_file: cli.tls_cert,
            key_file: cli.tls_key,
            server_name: cli.tls_server_name,
        }),
        (None, true) => return Err(CliError::Usage("--tls-cert/--tls-key need --tls-ca")),
        (None, false) => None,
    };
    let broker = &Endpoint {
        addr: cli.broker,
        credentials,
        tls,
    };
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Config(cmd) => config::run(cmd),
        Command::Topics(cmd) => topics::run(broker, cmd).await,
        Command::Produce(args) => produce::run(broker, args).await,
        Command::Consume(args) => consume::run(broker, args).await,
        Command::Bench(cmd) => bench::run(broker, cmd).await,
        Command::Bridge(cmd) => bridge::run(broker, cmd).await,
        Command::Passwd(cmd) => passwd::run(cmd),
        Command::Devices(cmd) => devices::run(broker, cmd).await,
    }
}
