//! The `outpost` command line: one module per subcommand, each a thin layer over the
//! [`crate::client::Client`] (tools talk to a running broker; they never open the log file
//! behind its back) or, for `serve`, over [`crate::server`].
//!
//! The argument types ([`Cli`] and each subcommand's) are in the `outpost-cli-args` crate
//! (`cli-args/`), which the release profile builds for size; they are re-exported here and in
//! each subcommand's module.
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

use crate::client::{Client, ClientError, ClientTls, Credentials};
pub use outpost_cli_args::{parse, Cli, Command, DEFAULT_BROKER};

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
