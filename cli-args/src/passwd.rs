//! Arguments of `outpost passwd add|delete|list FILE [USER]`.

use std::path::PathBuf;

use clap::Subcommand;

/// `outpost passwd` subcommands.
#[derive(Debug, Subcommand)]
pub enum PasswdCommand {
    /// Add a user, or change an existing user's password.
    Add {
        /// The password file (created with mode 0600 if missing).
        file: PathBuf,
        /// The user name.
        user: String,
        /// Read the password from one line of stdin instead of the terminal.
        #[arg(long)]
        stdin: bool,
    },
    /// Delete a user.
    Delete {
        /// The password file.
        file: PathBuf,
        /// The user name.
        user: String,
    },
    /// List the user names.
    List {
        /// The password file.
        file: PathBuf,
    },
}
