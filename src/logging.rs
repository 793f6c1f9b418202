//! Diagnostics: the `tracing` subscriber of each command, and [`RepeatGate`], which keeps an
//! event that a peer can cause per message or per connection to one line per interval.
//!
//! `outpost serve` logs as its `[logging]` section says ([`init_serve`], called once the
//! configuration is read): the level or filter from the file unless `RUST_LOG` is set, as plain
//! lines or JSON lines. The other subcommands log plain lines at `RUST_LOG` or `info`
//! ([`init_cli`]). Everything goes to stderr; under systemd that is the journal. This module
//! does not decide what is logged, nor at which level.
//!
//! A filter ([`parse_filter`]) is `RUST_LOG`'s level and `target=level` directives, without
//! its span and field-value filters: those need `tracing-subscriber`'s `EnvFilter` and the
//! regex engine it links, ~200 KB of a binary that must fit a gateway.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use outpost_bridge::pace::{LogGate, REPEAT_LOG_INTERVAL};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LoggingConfig};

/// Level of the client subcommands when `RUST_LOG` is not set.
pub const CLI_LEVEL: LevelFilter = LevelFilter::INFO;
/// The environment variable whose filter overrides the configured one.
pub const FILTER_ENV: &str = "RUST_LOG";

/// A filter that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a level or a target=level directive (span and field filters are not supported)"
)]
pub struct FilterError(String);

/// Parses a filter: comma-separated directives, each a level (`off`, `error`, `warn`, `info`,
/// `debug`, `trace`, any case) that applies to every target, a `target=level` for the targets
/// that start with `target` (the longest match wins), or a bare target (all its levels).
/// Blank directives are ignored.
pub fn parse_filter(spec: &str) -> Result<Targets, FilterError> {
    let mut filter = Targets::new();
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bad = || FilterError(directive.to_owned());
        filter = match directive.split_once('=') {
            Some((target, level)) => {
                let target = target.trim();
                if target.is_empty() || target.contains(['[', ']', '{', '}', '=', '/']) {
                    return Err(bad());
                }
                let level: LevelFilter = level.trim().parse().map_err(|_| bad())?;
                filter.with_target(target, level)
            }
            None => match directive.parse::<LevelFilter>() {
                Ok(level) => filter.with_default(level),
                Err(_) if directive.contains(['[', ']', '{', '}', '/']) => return Err(bad()),
                Err(_) => filter.with_target(directive, LevelFilter::TRACE),
            },
        };
    }
    Ok(filter)
}

/// `RUST_LOG`'s filter: `None` when it is unset or blank.
fn env_filter() -> Option<Result<Targets, FilterError>> {
    let spec = std::env::var(FILTER_ENV).ok()?;
    (!spec.trim().is_empty()).then(|| parse_filter(&spec))
}

/// Plain lines on stderr at `RUST_LOG` (default [`CLI_LEVEL`]): every subcommand but `serve`.
pub fn init_cli() {
    let filter = match env_filter() {
        Some(Ok(filter)) => filter,
        _ => Targets::new().with_default(CLI_LEVEL),
    };
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_terminal());
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(filter)
        .try_init();
}

/// The subscriber of `serve`: `RUST_LOG` when it is set and valid, else `[logging] level`
/// (already validated with the configuration); `[logging] format` decides plain or JSON lines.
/// A `RUST_LOG` that does not parse is reported (in the chosen format) and ignored. Does
/// nothing when a subscriber is already installed.
pub fn init_serve(config: &LoggingConfig) {
    // A level that did not parse was refused with the configuration; `info` is only a guard.
    let from_config = || {
        let filter =
            parse_filter(&config.level).unwrap_or_else(|_| Targets::new().with_default(CLI_LEVEL));
        quiet_dependencies(filter, &config.level)
    };
    let (filter, bad_env) = match env_filter() {
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (from_config(), Some(e)),
        None => (from_config(), None),
    };
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry();
    let installed = match config.format {
        LogFormat::Plain => registry
            .with(lines.with_ansi(stderr_is_terminal()))
            .with(filter)
            .try_init(),
        // One object per line, the event's fields beside `message`, for log shippers.
        LogFormat::Json => registry
            .with(
                lines
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .with(filter)
            .try_init(),
    };
    if let (Ok(()), Some(e)) = (installed, bad_env) {
        tracing::warn!(error = %e, level = config.level, "RUST_LOG is not a valid filter; using [logging] level");
    }
}

/// rskafka logs each internal retry and each broker connection at `warn`/`info`; the Kafka
/// bridge reports the same failures once, with their reason, so rskafka is held to `error`
/// unless the configured level names it (`"info,rskafka=info"`).
fn quiet_dependencies(filter: Targets, level: &str) -> Targets {
    if level.contains("rskafka") {
        return filter;
    }
    let default = filter.default_level().unwrap_or(LevelFilter::OFF);
    filter.with_target("rskafka", default.min(LevelFilter::ERROR))
}

/// Colours only on a terminal: journald, files and pipes get plain text.
fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// A [`LogGate`] shared by every task, meant for a `static` at one call site:
/// `if let Some(similar_not_logged) = GATE.pass() { tracing::warn!(similar_not_logged, ...) }`.
/// Passes the first event and then at most one per [`REPEAT_LOG_INTERVAL`].
#[derive(Debug)]
pub struct RepeatGate(Mutex<LogGate>);

impl Default for RepeatGate {
    fn default() -> Self {
        Self::new()
    }
}

impl RepeatGate {
    /// A gate that has passed nothing yet.
    pub const fn new() -> Self {
        Self(Mutex::new(LogGate::new(REPEAT_LOG_INTERVAL)))
    }

    /// `Some(n)`: log this event, `n` similar ones were held back since the last line.
    /// `None`: it is counted, not logged.
    pub fn pass(&self) -> Option<u64> {
        // The gate is a counter and a time: a panic elsewhere cannot leave it inconsistent.
        let mut gate = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        gate.pass(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(filter: &Targets, target: &str, level: tracing::Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn rskafka_is_held_to_errors_unless_named() {
        use tracing::Level;
        let quiet = |spec: &str| quiet_dependencies(parse_filter(spec).expect("parses"), spec);
        let f = quiet("info");
        assert!(!enabled(&f, "rskafka::connection", Level::WARN));
        assert!(enabled(&f, "rskafka::connection", Level::ERROR));
        assert!(enabled(&f, "outpost_bridge::kafka", Level::INFO));
        assert!(!enabled(&quiet("off"), "rskafka", Level::ERROR));
        assert!(enabled(
            &quiet("info,rskafka=debug"),
            "rskafka::client",
            Level::DEBUG
        ));
    }

    #[test]
    fn filters_take_levels_and_target_directives() {
        use tracing::Level;
        let f = parse_filter(" warn , outpost::bridge=DEBUG,,outpost::bridge::mqtt=error ")
            .expect("parses");
        assert!(enabled(&f, "outpost::server", Level::WARN));
        assert!(!enabled(&f, "outpost::server", Level::INFO));
        assert!(enabled(&f, "outpost::bridge::forwarder", Level::DEBUG));
        assert!(!enabled(&f, "outpost::bridge::mqtt", Level::WARN));
        let bare = parse_filter("outpost").expect("parses");
        assert!(enabled(&bare, "outpost::log", Level::TRACE));
        assert!(!enabled(&bare, "redb", Level::ERROR));
        let off = parse_filter("off").expect("parses");
        assert!(!enabled(&off, "outpost", Level::ERROR));
    }

    #[test]
    fn span_and_field_filters_are_refused() {
        for bad in [
            "outpost[conn]=debug",
            "outpost[{peer}]=debug",
            "[span{id=1}]=trace",
            "outpost=loud",
            "=info",
            "a=b=c",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn shared_gate_passes_the_first_event_then_holds_back() {
        let gate = RepeatGate::new();
        assert_eq!(gate.pass(), Some(0));
        assert_eq!(gate.pass(), None);
        assert_eq!(gate.pass(), None);
    }
}
