//! The password file: its format, the hashes in it, and atomic rewrites for `outpost passwd`.
//!
//! # Format
//!
//! UTF-8 text, one entry per line:
//!
//! ```text
//! # comment
//! sensor-7:$argon2id$v=19$m=7168,t=5,p=1$<salt, base64>$<hash, base64>
//! ```
//!
//! A user name is everything before the first `:`; it is not empty, has no control characters
//! and no surrounding spaces. The rest of the line is a PHC string: the algorithm, its
//! parameters and the salt are stored in each hash, so the parameters can change later without
//! invalidating existing entries. Blank lines and lines starting with `#` are ignored. A bad
//! line is an error naming the file and the line; nothing of such a file is used.
//!
//! # Hashing
//!
//! Argon2id ([`HASH_M_COST_KIB`], [`HASH_T_COST`], [`HASH_P_COST`]: the lowest-memory setting of
//! OWASP's recommended argon2id set, because a gateway verifies several connections at once
//! and each verification holds `m` KiB) with a random [`SALT_LEN`]-byte salt. Verification
//! compares in constant time (the crate's `Output` comparison). Hashes whose parameters would
//! cost more than [`MAX_M_COST_KIB`] / [`MAX_T_COST`] / [`MAX_P_COST`] are refused when the file
//! is loaded, so an entry cannot make each login allocate without bound.
//!
//! This module does no I/O scheduling: verification is CPU-bound and blocking; the caller
//! ([`super::verifier`]) runs it off the async threads.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use argon2::password_hash::phc::Output;
/// A parsed PHC hash string (argon2's type), as [`verify`] takes it.
pub use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Argon2 memory cost of new hashes, KiB (7 MiB).
pub const HASH_M_COST_KIB: u32 = 7 * 1024;
/// Argon2 passes of new hashes.
pub const HASH_T_COST: u32 = 5;
/// Argon2 lanes of new hashes.
pub const HASH_P_COST: u32 = 1;
/// Salt bytes of new hashes (the PHC recommendation).
pub const SALT_LEN: usize = 16;
/// Largest memory cost accepted in a stored hash, KiB (256 MiB).
pub const MAX_M_COST_KIB: u32 = 256 * 1024;
/// Largest number of passes accepted in a stored hash.
pub const MAX_T_COST: u32 = 64;
/// Largest number of lanes accepted in a stored hash.
pub const MAX_P_COST: u32 = 16;
/// Longest hash output verified, bytes (the PHC string format's limit).
pub const MAX_OUTPUT_LEN: usize = 64;
/// Longest user name, bytes (an MQTT string's limit).
pub const MAX_USER_LEN: usize = 65_535;
/// Largest password file read, bytes.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Why a password file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    /// The file could not be read or written.
    #[error("password file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("password file {path} is larger than {MAX_FILE_BYTES} bytes; fix: point auth.password_file at the password file")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A line is not `user:PHC-hash`.
    #[error("password file {path}, line {line}: {problem}; fix: rewrite the entry with `outpost passwd add {path} USER`")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: LineProblem,
    },
}

/// What is wrong with a password file line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    /// No `:` separating user name and hash.
    #[error("no ':' between user name and hash")]
    NoSeparator,
    /// The user name is not acceptable.
    #[error("user name {0}")]
    User(UserNameError),
    /// The same user appears twice.
    #[error("user {0:?} appears a second time")]
    Duplicate(String),
    /// The hash is not a PHC string argon2 can verify.
    #[error("the hash is not an argon2 PHC string ({0})")]
    Hash(String),
    /// The hash's parameters are beyond the limits.
    #[error("the hash's parameters (m={m}, t={t}, p={p}) exceed the limits (m<={MAX_M_COST_KIB}, t<={MAX_T_COST}, p<={MAX_P_COST})")]
    Cost {
        /// Memory, KiB.
        m: u32,
        /// Passes.
        t: u32,
        /// Lanes.
        p: u32,
    },
}

/// Why a user name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    /// Empty.
    #[error("is empty")]
    Empty,
    /// Longer than [`MAX_USER_LEN`].
    #[error("is longer than 65535 bytes")]
    TooLong,
    /// Contains `:` or a control character.
    #[error("contains ':' or a control character")]
    BadCharacter,
    /// Starts or ends with white space.
    #[error("starts or ends with white space")]
    Spaces,
}

/// Hashing failed (only with parameters the crate refuses; ours are valid).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// Checks a user name for the password file.
pub fn validate_user(user: &str) -> Result<(), UserNameError> {
    if user.is_empty() {
        return Err(UserNameError::Empty);
    }
    if user.len() > MAX_USER_LEN {
        return Err(UserNameError::TooLong);
    }
    if user.chars().any(|c| c == ':' || c.is_control()) {
        return Err(UserNameError::BadCharacter);
    }
    if user.trim() != user {
        return Err(UserNameError::Spaces);
    }
    Ok(())
}

fn hasher() -> Argon2<'static> {
    // The constants are within argon2's limits; checked by a test.
    let params = Params::new(HASH_M_COST_KIB, HASH_T_COST, HASH_P_COST, None)
        .expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh random salt; returns the PHC string.
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    let salt: [u8; SALT_LEN] = rand::random();
    hasher()
        .hash_password_with_salt(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches `hash` (constant-time comparison of the outputs). Blocking:
/// costs one argon2 run with the hash's own parameters.
pub fn verify(hash: &PasswordHash, password: &[u8]) -> bool {
    // The hash's own algorithm, version and parameters are used, not the hasher's.
    hasher().verify_password(password, hash).is_ok()
}

/// [`verify`] in `memory`, which is grown to the hash's memory cost and kept for the next
/// call: a thread verifying many logins allocates its argon2 memory once, instead of once
/// per login (which leaves a freed 7 MiB chunk in every allocator arena it passes through).
pub fn verify_in(hash: &PasswordHash, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = [0u8; MAX_OUTPUT_LEN];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    if argon2
        .hash_password_into_with_memory(password, salt, &mut *out, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(out).is_ok_and(|computed| computed == *expected)
}

/// A hash of a random password, with the current parameters: unknown users are verified
/// against it so that their answer takes as long as a known user's.
pub fn dummy_hash() -> &'static PasswordHash {
    static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: [u8; SALT_LEN] = rand::random();
        let phc = hash_password(&random).expect("the default parameters hash");
        PasswordHash::new(&phc).expect("our own PHC string parses")
    })
}

/// Parses and bounds-checks one PHC string.
fn parse_hash(text: &str) -> Result<PasswordHash, LineProblem> {
    let hash = PasswordHash::new(text).map_err(|e| LineProblem::Hash(e.to_string()))?;
    Algorithm::try_from(hash.algorithm.as_str()).map_err(|e| LineProblem::Hash(e.to_string()))?;
    let params = Params::try_from(&hash).map_err(|e| LineProblem::Hash(e.to_string()))?;
    let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
    if m > MAX_M_COST_KIB || t > MAX_T_COST || p > MAX_P_COST {
        return Err(LineProblem::Cost { m, t, p });
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(LineProblem::Hash("no salt or no hash output".to_owned()));
    }
    Ok(hash)
}

/// One line of a password file, as kept for rewriting.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A comment or blank line, kept verbatim.
    Other(String),
    /// `user:hash`.
    Entry { user: String, hash: String },
}

/// A password file's content: its entries in order, comments kept (for `outpost passwd`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    lines: Vec<Line>,
}

impl PasswordFile {
    /// Parses the text of `path` (used in errors only). Every hash is checked.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PasswordFileError> {
        let mut lines = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line_err = |problem| PasswordFileError::Line {
                path: path.to_owned(),
                line: i + 1,
                problem,
            };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            let (user, hash) = raw
                .split_once(':')
                .ok_or(line_err(LineProblem::NoSeparator))?;
            validate_user(user).map_err(|e| line_err(LineProblem::User(e)))?;
            let hash = hash.trim();
            parse_hash(hash).map_err(line_err)?;
            if !seen.insert(user.to_owned()) {
                return Err(line_err(LineProblem::Duplicate(user.to_owned())));
            }
            lines.push(Line::Entry {
                user: user.to_owned(),
                hash: hash.to_owned(),
            });
        }
        Ok(Self { lines })
    }

    /// Reads and parses `path`; a missing file is an empty one when `missing_ok`.
    pub fn read(path: &Path, missing_ok: bool) -> Result<Self, PasswordFileError> {
        let io = |source| PasswordFileError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                return Err(PasswordFileError::TooLarge {
                    path: path.to_owned(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing_ok => {
                return Ok(Self::default())
            }
            Err(e) => return Err(io(e)),
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::parse(path, &text)
    }

    /// User names, in file order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { user, .. } => Some(user.as_str()),
            Line::Other(_) => None,
        })
    }

    /// Sets `user`'s hash (replacing an existing entry in place, else appending). Returns
    /// true when the user existed.
    pub fn set(&mut self, user: &str, phc: String) -> bool {
        for l in &mut self.lines {
            if let Line::Entry { user: u, hash } = l {
                if u == user {
                    *hash = phc;
                    return true;
                }
            }
        }
        self.lines.push(Line::Entry {
            user: user.to_owned(),
            hash: phc,
        });
        false
    }

    /// Removes `user`; false when absent.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::Entry { user: u, .. } if u == user));
        self.lines.len() != before
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Other(text) => out.push_str(text),
                Line::Entry { user, hash } => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(hash);
                }
            }
            out.push('\n');
        }
        out
    }

    /// Writes the file atomically: a temporary file in the same directory (mode 0600),
    /// fsync, rename over `path`, fsync of the directory. A crash leaves the old file or the
    /// new one, never a mix.
    pub fn write_atomic(&self, path: &Path) -> Result<(), PasswordFileError> {
        let io = |source| PasswordFileError::Io {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map_or_else(|| "passwd".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let result = (|| {
            let mut f = open_private(&tmp)?;
            f.write_all(self.render().as_bytes())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, path)?;
            std::fs::File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }
}

/// Creates `path` for writing, readable and writable by its owner only.
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// The users of a password file with their parsed hashes, for verification.
#[derive(Debug, Clone, Default)]
pub struct PasswordDb {
    users: HashMap<Box<str>, PasswordHash>,
}

impl PasswordDb {
    /// Loads `path` (it must exist).
    pub fn load(path: &Path) -> Result<Self, PasswordFileError> {
        Ok(Self::from_file(&PasswordFile::read(path, false)?))
    }

    /// The entries of a parsed file.
    pub fn from_file(file: &PasswordFile) -> Self {
        let users = file
            .lines
            .iter()
            .filter_map(|l| match l {
                // Parsed and checked by `PasswordFile::parse`.
                Line::Entry { user, hash } => {
                    parse_hash(hash).ok().map(|h| (user.as_str().into(), h))
                }
                Line::Other(_) => None,
            })
            .collect();
        Self { users }
    }

    /// The hash of `user`, if known.
    pub fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.users.get(user)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no user is known.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify_round_trip() {
        let phc = hash_password(b"s3cret").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{phc}");
        let hash = PasswordHash::new(&phc).unwrap();
        assert!(verify(&hash, b"s3cret"));
        assert!(!verify(&hash, b"s3cret "));
        let mut memory = Vec::new();
        assert!(verify_in(&hash, b"s3cret", &mut memory));
        assert_eq!(memory.len(), HASH_M_COST_KIB as usize);
        assert!(!verify_in(&hash, b"s3cret ", &mut memory));
        assert!(!verify_in(dummy_hash(), b"s3cret", &mut memory));
        assert!(!verify(dummy_hash(), b"s3cret"));
        // A fresh salt each time.
        assert_ne!(phc, hash_password(b"s3cret").unwrap());
    }

    #[test]
    fn hashes_with_other_parameters_still_verify() {
        let params = Params::new(1024, 1, 1, None).unwrap();
        let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let phc = a
            .hash_password_with_salt(b"pw", &[7u8; 16])
            .unwrap()
            .to_string();
        let file = PasswordFile::parse(Path::new("f"), &format!("u:{phc}\n")).unwrap();
        let db = PasswordDb::from_file(&file);
        assert!(verify(db.get("u").unwrap(), b"pw"));
        assert!(!verify(db.get("u").unwrap(), b"pW"));
        let mut memory = vec![Block::default(); 2 * 1024];
        assert!(verify_in(db.get("u").unwrap(), b"pw", &mut memory));
        assert!(!verify_in(db.get("u").unwrap(), b"pW", &mut memory));
        // Argon2i and a shorter output verify too.
        let a = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(64, 2, 2, Some(16)).unwrap(),
        );
        let phc = a
            .hash_password_with_salt(b"x", &[1u8; 16])
            .unwrap()
            .to_string();
        let hash = PasswordHash::new(&phc).unwrap();
        assert!(verify_in(&hash, b"x", &mut memory) && !verify_in(&hash, b"y", &mut memory));
    }

    #[test]
    fn file_round_trip_keeps_comments_and_order() {
        let h1 = hash_password(b"a").unwrap();
        let text = format!("# users\n\nalice:{h1}\n");
        let mut f = PasswordFile::parse(Path::new("p"), &text).unwrap();
        assert_eq!(f.render(), text);
        assert!(!f.set("bob", h1.clone()));
        assert!(f.set("alice", h1.clone()));
        assert_eq!(f.users().collect::<Vec<_>>(), ["alice", "bob"]);
        assert!(f.remove("alice"));
        assert!(!f.remove("alice"));
        assert_eq!(f.render(), format!("# users\n\nbob:{h1}\n"));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let h = hash_password(b"a").unwrap();
        let cases = [
            (format!("# c\nalice {h}\n"), 2, "no ':'"),
            (format!("alice:{h}\nalice:{h}\n"), 2, "second time"),
            ("bob:$md5$xyz\n".to_owned(), 1, "not an argon2 PHC string"),
            (format!(":{h}\n"), 1, "is empty"),
            (format!(" bob:{h}\n"), 1, "white space"),
            (
                "bob:$argon2id$v=19$m=999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n"
                    .to_owned(),
                1,
                "exceed the limits",
            ),
        ];
        for (text, line, what) in cases {
            let err = PasswordFile::parse(Path::new("/etc/outpost/passwd"), &text).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("/etc/outpost/passwd")
                    && msg.contains(&format!("line {line}:"))
                    && msg.contains(what),
                "{msg}"
            );
        }
    }

    #[test]
    fn user_names() {
        assert_eq!(validate_user("sensor-7"), Ok(()));
        assert_eq!(validate_user("a b"), Ok(()));
        assert_eq!(validate_user(""), Err(UserNameError::Empty));
        assert_eq!(validate_user("a:b"), Err(UserNameError::BadCharacter));
        assert_eq!(validate_user("a\n"), Err(UserNameError::BadCharacter));
        assert_eq!(validate_user("a "), Err(UserNameError::Spaces));
    }

    #[test]
    fn atomic_write_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let mut f = PasswordFile::default();
        f.set("u", hash_password(b"x").unwrap());
        f.write_atomic(&path).unwrap();
        let back = PasswordFile::read(&path, false).unwrap();
        assert_eq!(back, f);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
