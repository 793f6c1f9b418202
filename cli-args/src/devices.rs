//! Arguments of `outpost devices set|get|list|token|delete`.

use std::path::PathBuf;

use clap::Subcommand;

/// `devices` subcommands.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Store a device's config from a TOML file (see the README's "Devices" section).
    Set {
        /// Device id ([a-zA-Z0-9._-], up to 32 characters).
        id: String,
        /// The device file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Show one device: its config, token, and what the broker last saw of it.
    Get {
        /// Device id.
        id: String,
        /// Print the broker's JSON.
        #[arg(long)]
        json: bool,
    },
    /// List devices: config versions (stored and reported), token, last seen, address.
    List {
        /// Print the broker's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give a device a new random token (printed once; the broker keeps only its hash).
    Token {
        /// Device id.
        id: String,
        /// Read the token from the first line of stdin instead of generating one.
        #[arg(long, conflicts_with = "clear")]
        stdin: bool,
        /// Remove the device's token.
        #[arg(long)]
        clear: bool,
    },
    /// Forget a device: its config, token and status.
    Delete {
        /// Device id.
        id: String,
    },
}
