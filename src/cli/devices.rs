//! `outpost devices set|get|list|token|delete`: the devices of a running broker.
//!
//! `set` reads a device file (TOML, below), encodes it as the [`DeviceConfig`] bytes devices
//! receive, and stores it; devices holding an older version get it in their next hello reply.
//!
//! ```toml
//! gateway = "192.168.1.10:7883"  # where the device connects (required)
//! sample_interval_ms = 10000     # default 10000
//! batch_size = 10                # readings per produce, default 1
//! ack = "commit"                 # "commit" (default) or "none"
//! # version = 4                  # default: the stored version + 1
//!
//! [[aliases]]                    # up to 16; usable from the hello on, and over UDP
//! alias = 1
//! topic = "temperature"
//! # partition = 0                # default: the broker chooses per produce
//! ```

use std::io::BufRead;
use std::path::Path;

use outpost_firmware::config::{MAX_ALIASES, MAX_GATEWAY_LEN, MAX_TOPIC_LEN};
use outpost_firmware::{heapless, AckMode, AliasEntry, DeviceConfig, MAX_ENCODED_LEN};
use serde::Deserialize;
use serde_json::Value;

use super::{connect, CliError};
pub use outpost_cli_args::devices::DevicesCommand;

/// The device file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceFile {
    gateway: String,
    #[serde(default = "default_interval")]
    sample_interval_ms: u32,
    #[serde(default = "default_batch")]
    batch_size: u16,
    #[serde(default)]
    ack: AckArg,
    #[serde(default)]
    version: u32,
    #[serde(default)]
    aliases: Vec<AliasFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasFile {
    alias: u16,
    topic: String,
    #[serde(default)]
    partition: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum AckArg {
    #[default]
    Commit,
    None,
}

fn default_interval() -> u32 {
    10_000
}

fn default_batch() -> u16 {
    1
}

/// Reads a device file and encodes it for device `id`. Errors name the file and the problem.
pub fn read_device_file(path: &Path, id: &str) -> Result<Vec<u8>, CliError> {
    let bad = |msg: String| CliError::Device(format!("{}: {msg}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let file: DeviceFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let too_long = |what: &str, max: usize| bad(format!("{what} is longer than {max} bytes"));
    let device_id = heapless::String::try_from(id)
        .map_err(|_| CliError::Device(format!("device id `{id}` is longer than 32 bytes")))?;
    let gateway = heapless::String::try_from(file.gateway.as_str())
        .map_err(|_| too_long("gateway", MAX_GATEWAY_LEN))?;
    if file.aliases.len() > MAX_ALIASES {
        return Err(bad(format!("more than {MAX_ALIASES} aliases")));
    }
    let mut aliases = heapless::Vec::new();
    for a in &file.aliases {
        let topic = heapless::String::try_from(a.topic.as_str())
            .map_err(|_| too_long(&format!("alias {}: topic", a.alias), MAX_TOPIC_LEN))?;
        let entry = AliasEntry {
            alias: a.alias,
            topic,
            partition: a.partition,
        };
        aliases
            .push(entry)
            .map_err(|_| bad(format!("more than {MAX_ALIASES} aliases")))?;
    }
    let config = DeviceConfig {
        version: file.version,
        device_id,
        gateway,
        sample_interval_ms: file.sample_interval_ms,
        batch_size: file.batch_size,
        ack: match file.ack {
            AckArg::Commit => AckMode::Commit,
            AckArg::None => AckMode::None,
        },
        aliases,
    };
    let mut buf = [0u8; MAX_ENCODED_LEN];
    let bytes = config
        .encode(&mut buf)
        .map_err(|e| bad(format!("does not encode: {e}")))?;
    Ok(bytes.to_vec())
}

/// A random token: 16 bytes as 32 hex digits.
fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs a `devices` subcommand.
pub async fn run(broker: &super::Endpoint, cmd: DevicesCommand) -> Result<(), CliError> {
    // Read local input before connecting: a bad file should not cost a broker round trip.
    if let DevicesCommand::Set { id, file } = &cmd {
        let config = read_device_file(file, id)?;
        let client = connect(broker, "devices").await?;
        let device = client.set_device(id, &config).await?;
        let version = device["config"]["version"].as_u64().unwrap_or(0);
        println!("device {id}: config version {version} stored");
        return Ok(());
    }
    let client = connect(broker, "devices").await?;
    match cmd {
        DevicesCommand::Set { .. } => unreachable!("handled above"),
        DevicesCommand::Get { id, json } => {
            let devices = client.get_devices(Some(&id)).await?;
            if json {
                println!("{}", Value::Array(devices));
            } else {
                for d in &devices {
                    print_device(d);
                }
            }
        }
        DevicesCommand::List { json } => {
            let devices = client.get_devices(None).await?;
            if json {
                println!("{}", Value::Array(devices));
            } else {
                print_table(&devices);
            }
        }
        DevicesCommand::Token { id, stdin, clear } => {
            if clear {
                client.set_device_token(&id, None).await?;
                println!("device {id}: token removed");
            } else if stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                let token = line.trim_end_matches(['\r', '\n']);
                if token.is_empty() {
                    return Err(CliError::Usage("--stdin: the first line of stdin is empty"));
                }
                client.set_device_token(&id, Some(token.as_bytes())).await?;
                println!("device {id}: token set");
            } else {
                let token = new_token();
                client.set_device_token(&id, Some(token.as_bytes())).await?;
                eprintln!("device {id}: new token (shown once; the broker keeps only its hash):");
                println!("{token}");
            }
        }
        DevicesCommand::Delete { id } => {
            client.delete_device(&id).await?;
            println!("device {id}: deleted");
        }
    }
    Ok(())
}

/// `1700000000000` → RFC 3339 time and how long ago.
fn when(ms: &Value) -> String {
    let Some(ms) = ms.as_u64() else {
        return "never".into();
    };
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let ago = std::time::SystemTime::now()
        .duration_since(t)
        .map(|d| format!(" ({} s ago)", d.as_secs()))
        .unwrap_or_default();
    format!("{}{ago}", humantime::format_rfc3339_seconds(t))
}

fn opt(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn state(d: &Value) -> String {
    if d["connected"].as_bool() == Some(true) {
        return "connected".into();
    }
    match d["sleep_until_ms"].as_u64() {
        Some(_) => format!("sleeping until {}", when(&d["sleep_until_ms"])),
        None => "-".into(),
    }
}

fn print_device(d: &Value) {
    println!("device {}", opt(&d["id"]));
    let token = if d["token"].as_bool() == Some(true) {
        "set"
    } else {
        "none"
    };
    println!("  token: {token}");
    let c = &d["config"];
    if c.is_null() {
        println!("  config: none");
    } else {
        println!(
            "  config: version {}, gateway {}, sample every {} ms, batch {}, ack {}",
            c["version"],
            opt(&c["gateway"]),
            c["sample_interval_ms"],
            c["batch_size"],
            opt(&c["ack"])
        );
        for a in c["aliases"].as_array().into_iter().flatten() {
            let partition = match a["partition"].as_u64() {
                Some(p) => format!(" (partition {p})"),
                None => String::new(),
            };
            println!("  alias {} -> {}{partition}", a["alias"], opt(&a["topic"]));
        }
    }
    println!("  last seen: {}", when(&d["last_seen_ms"]));
    println!(
        "  transport: {}, address: {}, reported config version: {}",
        opt(&d["transport"]),
        opt(&d["address"]),
        opt(&d["reported_config_version"])
    );
    println!("  state: {}", state(d));
}

fn print_table(devices: &[Value]) {
    println!(
        "{:<20} {:>6} {:>8} {:>5} {:<34} {:<5} {:<22} STATE",
        "ID", "CONFIG", "REPORTED", "TOKEN", "LAST SEEN", "VIA", "ADDRESS"
    );
    for d in devices {
        let token = if d["token"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        };
        println!(
            "{:<20} {:>6} {:>8} {:>5} {:<34} {:<5} {:<22} {}",
            opt(&d["id"]),
            opt(&d["config"]["version"]),
            opt(&d["reported_config_version"]),
            token,
            when(&d["last_seen_ms"]),
            opt(&d["transport"]),
            opt(&d["address"]),
            state(d)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn a_device_file_encodes_to_the_config_devices_receive() {
        let f = file(
            "gateway = \"10.0.0.1:7883\"\nbatch_size = 5\nack = \"none\"\n\
             [[aliases]]\nalias = 1\ntopic = \"temperature\"\npartition = 2\n",
        );
        let bytes = read_device_file(f.path(), "d1").unwrap();
        let c = DeviceConfig::decode(&bytes).unwrap();
        assert_eq!((c.version, c.device_id.as_str()), (0, "d1"));
        assert_eq!(
            (c.batch_size, c.ack, c.sample_interval_ms),
            (5, AckMode::None, 10_000)
        );
        assert_eq!(c.alias(1).unwrap().topic.as_str(), "temperature");
        assert_eq!(c.alias(1).unwrap().partition, Some(2));
    }

    #[test]
    fn bad_device_files_name_the_file_and_the_problem() {
        let cases = [
            ("gateway = \"g\"\ncolour = 1\n", "unknown field `colour`"),
            ("sample_interval_ms = 5\n", "missing field `gateway`"),
            (
                "gateway = \"g\"\nack = \"maybe\"\n",
                "unknown variant `maybe`",
            ),
            (
                &format!("gateway = \"{}\"\n", "g".repeat(65)),
                "gateway is longer than 64",
            ),
            (
                &format!(
                    "gateway = \"g\"\n[[aliases]]\nalias = 1\ntopic = \"{}\"\n",
                    "t".repeat(65)
                ),
                "alias 1: topic is longer than 64",
            ),
        ];
        for (text, expected) in cases {
            let f = file(text);
            let msg = read_device_file(f.path(), "d1").unwrap_err().to_string();
            assert!(msg.contains(expected), "{msg}");
            assert!(msg.contains(&f.path().display().to_string()), "{msg}");
        }
        let many: String = (0..17)
            .map(|i| format!("[[aliases]]\nalias = {i}\ntopic = \"t\"\n"))
            .collect();
        let f = file(&format!("gateway = \"g\"\n{many}"));
        let msg = read_device_file(f.path(), "d1").unwrap_err().to_string();
        assert!(msg.contains("more than 16 aliases"), "{msg}");
        let long_id = "x".repeat(33);
        let f = file("gateway = \"g\"\n");
        assert!(read_device_file(f.path(), &long_id).is_err());
    }

    #[test]
    fn tokens_are_32_hex_digits_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
