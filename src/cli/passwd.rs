//! `outpost passwd add|delete|list FILE [USER]`: manages a password file (see
//! [`crate::auth::password`] for its format). Works on the file alone, no broker needed; a
//! running broker picks the change up on SIGHUP.
//!
//! `add` asks for the password on the terminal without echo (twice), or reads one line from
//! stdin with `--stdin` or when stdin is not a terminal. The file is rewritten atomically
//! with mode 0600 and created if missing.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use super::CliError;
use crate::auth::password::{self, PasswordFile};
pub use outpost_cli_args::passwd::PasswdCommand;

/// Longest password accepted, bytes.
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Why `outpost passwd` failed (besides the file itself).
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    /// The user name cannot be stored.
    #[error("user name {user:?} {problem}; fix: choose another name")]
    User {
        /// The name.
        user: String,
        /// Why.
        problem: password::UserNameError,
    },
    /// `delete` of a user the file does not have.
    #[error("user {user:?} is not in {file}")]
    NoSuchUser {
        /// The name.
        user: String,
        /// The file.
        file: PathBuf,
    },
    /// The password is empty or too long.
    #[error("the password is empty or longer than {MAX_PASSWORD_BYTES} bytes")]
    BadPassword,
    /// The two passwords typed differ.
    #[error("the passwords do not match; nothing was changed")]
    Mismatch,
    /// The password could not be read.
    #[error("cannot read the password: {0}")]
    Read(#[source] std::io::Error),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] password::HashError),
}

/// Runs a `passwd` subcommand.
pub fn run(cmd: PasswdCommand) -> Result<(), CliError> {
    match cmd {
        PasswdCommand::Add { file, user, stdin } => add(&file, &user, stdin),
        PasswdCommand::Delete { file, user } => delete(&file, &user),
        PasswdCommand::List { file } => {
            for user in PasswordFile::read(&file, false)?.users() {
                println!("{user}");
            }
            Ok(())
        }
    }
}

fn add(file: &Path, user: &str, from_stdin: bool) -> Result<(), CliError> {
    password::validate_user(user).map_err(|problem| PasswdError::User {
        user: user.to_owned(),
        problem,
    })?;
    // Read the file first: a broken file is reported before a password is asked for.
    let mut pw_file = PasswordFile::read(file, true)?;
    let secret = if from_stdin || !std::io::stdin().is_terminal() {
        read_stdin_line()?
    } else {
        read_terminal()?
    };
    if secret.is_empty() || secret.len() > MAX_PASSWORD_BYTES {
        return Err(PasswdError::BadPassword.into());
    }
    let phc = password::hash_password(secret.as_bytes()).map_err(PasswdError::from)?;
    let existed = pw_file.set(user, phc);
    pw_file.write_atomic(file)?;
    let what = if existed { "changed" } else { "added" };
    eprintln!("{what} user {user:?} in {}", file.display());
    Ok(())
}

fn delete(file: &Path, user: &str) -> Result<(), CliError> {
    let mut pw_file = PasswordFile::read(file, false)?;
    if !pw_file.remove(user) {
        return Err(PasswdError::NoSuchUser {
            user: user.to_owned(),
            file: file.to_owned(),
        }
        .into());
    }
    pw_file.write_atomic(file)?;
    eprintln!("deleted user {user:?} from {}", file.display());
    Ok(())
}

/// One line of stdin without its line ending (bounded).
fn read_stdin_line() -> Result<String, PasswdError> {
    let mut line = String::new();
    let limit = (MAX_PASSWORD_BYTES + 2) as u64;
    std::io::Read::take(std::io::stdin().lock(), limit)
        .read_line(&mut line)
        .map_err(PasswdError::Read)?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(trimmed.to_owned())
}

/// Asks twice on the terminal, without echo.
fn read_terminal() -> Result<String, PasswdError> {
    let first = rpassword::prompt_password("Password: ").map_err(PasswdError::Read)?;
    let again = rpassword::prompt_password("Password again: ").map_err(PasswdError::Read)?;
    if first != again {
        return Err(PasswdError::Mismatch);
    }
    Ok(first)
}
