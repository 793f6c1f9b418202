//! Arguments of `outpost bench produce|consume|mqtt|mqtt-idle` (the load generators).

use clap::{Args, Subcommand};

/// Default broker address of `bench mqtt` and `bench mqtt-idle`.
pub const DEFAULT_MQTT_ADDR: &str = "127.0.0.1:1883";

/// `bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce at full speed and report throughput and ack latency.
    Produce(ProduceBench),
    /// Read a topic from the beginning and report throughput.
    Consume(ConsumeBench),
    /// Publish (and subscribe) over MQTT and report rates and latencies.
    Mqtt(MqttBench),
    /// Hold many idle MQTT connections open, for a broker's memory per connection.
    MqttIdle(MqttIdleBench),
}

/// Arguments of `bench produce`.
#[derive(Debug, Args, Clone)]
pub struct ProduceBench {
    /// Topic (created with --partitions if missing).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Concurrent producer connections.
    #[arg(long, default_value_t = 8)]
    pub producers: u32,
    /// Produce requests each producer keeps in flight.
    #[arg(long, default_value_t = 16)]
    pub window: u32,
    /// Records per produce request (1 = single-record produce).
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// Produce as a device does: register a topic alias once per connection, then send
    /// `ProduceAlias` frames instead of `Produce`.
    #[arg(long)]
    pub alias: bool,
    /// Value size in bytes.
    #[arg(long, default_value_t = 64)]
    pub record_size: usize,
    /// Total records to produce.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Print one JSON line with the results instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `bench consume`.
#[derive(Debug, Args)]
pub struct ConsumeBench {
    /// Topic.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Bytes per fetch.
    #[arg(long, default_value_t = 1 << 20)]
    pub fetch_bytes: u32,
    /// Print one JSON line with the results.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `bench mqtt`.
#[derive(Debug, Args, Clone)]
pub struct MqttBench {
    /// Broker MQTT address, HOST:PORT (an `mqtt://` or `tcp://` prefix is accepted).
    #[arg(long, visible_alias = "url", default_value = DEFAULT_MQTT_ADDR)]
    pub addr: String,
    /// Publishing connections; publisher i publishes to PREFIX/i.
    #[arg(long, default_value_t = 8)]
    pub publishers: u32,
    /// Subscribing connections, each subscribed to PREFIX/# (each expects every message).
    #[arg(long, default_value_t = 0)]
    pub subscribers: u32,
    /// QoS of the publishes and subscriptions: 0, 1 or 2.
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// Payload size in bytes (at least 20 with subscribers: a timestamp and a sequence number).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Unacknowledged QoS 1/2 publishes per publisher (also capped by a v5 broker's Receive
    /// Maximum); at QoS 0, publishes written per socket write.
    #[arg(long, default_value_t = 64)]
    pub inflight: u32,
    /// Messages per publisher [default: 100000 unless --duration].
    #[arg(long, conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Publish for this many seconds instead of a message count.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Topic prefix.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// MQTT protocol level: 4 (3.1.1) or 5.
    #[arg(long, default_value_t = 4)]
    pub protocol: u8,
    /// Hard limit on the whole run, seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Print one JSON line with the results instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// TLS (MQTT over TLS, e.g. port 8883).
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS options of the MQTT benches: `--cafile` turns TLS on.
#[derive(Debug, Args, Clone, Default)]
pub struct TlsArgs {
    /// Connect with TLS, verifying the broker's certificate against this PEM CA file.
    #[arg(long)]
    pub cafile: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --key.
    #[arg(long, requires = "cafile")]
    pub cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<std::path::PathBuf>,
    /// Name the broker's certificate must carry [default: the host of --addr].
    #[arg(long, requires = "cafile")]
    pub server_name: Option<String>,
}

/// Arguments of `bench mqtt-idle`.
#[derive(Debug, Args, Clone)]
pub struct MqttIdleBench {
    /// Broker MQTT address, HOST:PORT (an `mqtt://` or `tcp://` prefix is accepted).
    #[arg(long, visible_alias = "url", default_value = DEFAULT_MQTT_ADDR)]
    pub addr: String,
    /// Connections to open (raise `ulimit -n` above this).
    #[arg(long, default_value_t = 10_000)]
    pub connections: u32,
    /// Seconds to hold them open once all are connected.
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// Connection attempts in progress at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: u32,
    /// MQTT protocol level: 4 (3.1.1) or 5.
    #[arg(long, default_value_t = 4)]
    pub protocol: u8,
    /// Hard limit on the whole run, seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// TLS (MQTT over TLS, e.g. port 8883).
    #[command(flatten)]
    pub tls: TlsArgs,
}
