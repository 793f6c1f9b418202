//! Diagnostics: the `tracing` subscriber of each command, and [`RepeatGate`], which keeps an
//! event that a peer can cause per message or per connection to one line per interval.
//!
//! `outpost serve` logs as its `[logging]` section says ([`init_serve`], called once the
//! configuration is read): the level or filter from the file unless `RUST_LOG` is set, as plain
//! lines or JSON lines. The other subcommands log plain lines at `RUST_LOG` or `info`
//! ([`init_cli`]). Everything goes to stderr; under systemd that is the journal. This module
//! does not decide what is logged, nor at which level.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use outpost_bridge::pace::{LogGate, REPEAT_LOG_INTERVAL};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Level of the client subcommands when `RUST_LOG` is not set.
pub const CLI_LEVEL: &str = "info";

/// Plain lines on stderr at `RUST_LOG` (default [`CLI_LEVEL`]): every subcommand but `serve`.
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(CLI_LEVEL));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_terminal())
        .try_init();
}

/// The subscriber of `serve`: `RUST_LOG` when it is set and valid, else `[logging] level`
/// (already validated with the configuration); `[logging] format` decides plain or JSON lines.
/// A `RUST_LOG` that does not parse is reported (in the chosen format) and ignored. Does
/// nothing when a subscriber is already installed.
pub fn init_serve(config: &LoggingConfig) {
    let from_config = || {
        quiet_dependencies(
            EnvFilter::builder().parse_lossy(&config.level),
            &config.level,
        )
    };
    let (filter, bad_env) = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(env) if !env.trim().is_empty() => match EnvFilter::builder().parse(&env) {
            Ok(filter) => (filter, None),
            Err(e) => (from_config(), Some(e)),
        },
        _ => (from_config(), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Plain => builder.with_ansi(stderr_is_terminal()).try_init(),
        // One object per line, the event's fields beside `message`, for log shippers.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    if let (Ok(()), Some(e)) = (installed, bad_env) {
        tracing::warn!(error = %e, level = config.level, "RUST_LOG is not a valid filter; using [logging] level");
    }
}

/// rskafka logs each internal retry and each broker connection at `warn`/`info`; the Kafka
/// bridge reports the same failures once, with their reason, so rskafka is held to `error`
/// unless the configured level names it (`"info,rskafka=info"`).
fn quiet_dependencies(filter: EnvFilter, level: &str) -> EnvFilter {
    if level.contains("rskafka") {
        return filter;
    }
    match "rskafka=error".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
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

    #[test]
    fn shared_gate_passes_the_first_event_then_holds_back() {
        let gate = RepeatGate::new();
        assert_eq!(gate.pass(), Some(0));
        assert_eq!(gate.pass(), None);
        assert_eq!(gate.pass(), None);
    }
}
