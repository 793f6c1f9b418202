//! Authentication and authorization for both listeners.
//!
//! - [`password`]: the password file (format, argon2id hashes, atomic rewrite).
//! - [`acl`]: the ACL file, its evaluation order, and the rules compiled for one client.
//! - [`verifier`]: password verification off the async threads, bounded.
//! - [`denials`]: refusal counters and the once-per-(client, rule) log.
//!
//! [`Security`] is the cheap-clone handle the listeners share: the current credential
//! sources and ACL behind an `RwLock<Arc<..>>` that [`Security::reload`] swaps (SIGHUP), a
//! generation number connections compare to know when to recompile their rules, the verifier
//! and the counters. A connection authenticates once ([`Security::authenticate`]) and keeps a
//! [`Permissions`] — its compiled rules — that it checks every request against without
//! locking or allocating; after a reload it recompiles them at its next check.
//!
//! What this module does not do: speak MQTT or the binary protocol (the connections map
//! refusals to CONNACK codes, reason codes and error frames), or read TLS certificates (the
//! TLS layer hands over the certificate's identity).

pub mod acl;
pub mod denials;
pub mod password;
pub mod verifier;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use argon2::password_hash::phc::PasswordHash;

pub use acl::{Action, Verdict};
pub use denials::DenialCounts;

use crate::config::AuthConfig;
use acl::{AclRules, SessionRules, Who};
use password::PasswordDb;
use verifier::Verifier;

/// A password as received, kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps password bytes.
    pub fn new(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why the security files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The password file.
    #[error(transparent)]
    PasswordFile(#[from] password::PasswordFileError),
    /// The ACL file.
    #[error(transparent)]
    Acl(#[from] acl::AclError),
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Unknown user, wrong password, a password without a user name, or a user name without
    /// a password (MQTT 5: 0x86; 3.1.1: 4).
    #[error("bad user name or password")]
    BadCredentials,
    /// No credentials where they are required, or a will the ACL refuses (MQTT 5: 0x87;
    /// 3.1.1: 5).
    #[error("not authorized")]
    NotAuthorized,
    /// Too many logins being verified; retry later (MQTT 5: 0x89; 3.1.1: 3).
    #[error("server busy")]
    Busy,
}

/// Where user names and their secrets are looked up, in order: the password file's users.
/// (Device tokens are checked by the device registry at a `DeviceHello`, not here: see
/// [`crate::devices::Devices::check_token`].)
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// The users of `auth.password_file`.
    PasswordFile(PasswordDb),
}

impl CredentialSource {
    fn lookup(&self, user: &str) -> Option<&PasswordHash> {
        match self {
            CredentialSource::PasswordFile(db) => db.get(user),
        }
    }
}

/// What a login presents.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// Client id (MQTT client identifier, binary-protocol hello name), for logs and `%c`.
    pub client_id: &'a str,
    /// User name, if any.
    pub username: Option<&'a str>,
    /// Password, if any.
    pub password: Option<&'a [u8]>,
    /// A user name the TLS layer already authenticated (client certificate CN/SAN with
    /// `identity_as_username`): no password is checked, and it replaces `username`.
    pub cert_identity: Option<&'a str>,
}

/// Who a client is once logged in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// User name (`None`: anonymous). Without a password file, the name the client gave,
    /// unverified.
    pub user: Option<Box<str>>,
    /// The device id of a binary-protocol device whose token was verified at its
    /// `DeviceHello` (the ACL's `device = "..."` rules); `None` for every other client.
    pub device: Option<Box<str>>,
    /// The password-file entry (PHC string) the login was verified against. A reload that
    /// removes the user or changes the entry revokes the login ([`Permissions::revoked`]).
    /// `None` for logins not verified by the password file.
    pub password_hash: Option<Box<str>>,
}

impl Identity {
    /// The anonymous client.
    pub const ANONYMOUS: Identity = Identity {
        user: None,
        device: None,
        password_hash: None,
    };

    /// A client known by its user name only.
    pub fn user(user: &str) -> Self {
        Self {
            user: Some(user.into()),
            device: None,
            password_hash: None,
        }
    }
}

/// The files in force.
#[derive(Debug, Default)]
struct State {
    /// Empty when no password file is configured.
    sources: Vec<CredentialSource>,
    /// `None` when no ACL file is configured: everything is allowed.
    acl: Option<Arc<AclRules>>,
}

#[derive(Debug)]
struct Inner {
    password_file: Option<PathBuf>,
    acl_file: Option<PathBuf>,
    allow_anonymous: bool,
    state: RwLock<Arc<State>>,
    generation: AtomicU64,
    verifier: Verifier,
    denials: denials::Denials,
}

/// The shared authentication and ACL state (a cheap-clone handle).
#[derive(Debug, Clone)]
pub struct Security {
    inner: Arc<Inner>,
}

impl Security {
    /// Loads the files named in `[auth]`; errors name the file and line.
    pub fn open(config: &AuthConfig) -> Result<Self, AuthError> {
        let password_file = config.password_file.clone();
        let acl_file = config.acl_file.clone();
        let state = load(password_file.as_deref(), acl_file.as_deref())?;
        let allow_anonymous = config.allow_anonymous();
        if allow_anonymous && password_file.is_some() {
            tracing::warn!("auth.allow_anonymous = true with a password file: clients without credentials are accepted");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                password_file,
                acl_file,
                allow_anonymous,
                state: RwLock::new(Arc::new(state)),
                generation: AtomicU64::new(0),
                verifier: Verifier::new(
                    config.max_concurrent_verifications,
                    config.max_waiting_verifications,
                ),
                denials: denials::Denials::default(),
            }),
        })
    }

    /// No password file, no ACL, anonymous clients allowed (the default configuration).
    pub fn open_access() -> Self {
        Self::open(&AuthConfig::default()).expect("no files to load")
    }

    /// Whether clients must log in (anonymous access is off).
    pub fn requires_login(&self) -> bool {
        !self.inner.allow_anonymous
    }

    fn state(&self) -> Arc<State> {
        // Only a swap happens under the write lock: a poisoned lock still holds a valid state.
        self.inner
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the password file and the ACL. On success new logins and every connection's
    /// next check use them; on failure the previous ones stay and the error (naming the file
    /// and line) is logged and returned.
    pub fn reload(&self) -> Result<(), AuthError> {
        let i = &self.inner;
        match load(i.password_file.as_deref(), i.acl_file.as_deref()) {
            Ok(state) => {
                *i.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(state);
                i.generation.fetch_add(1, Ordering::AcqRel);
                i.denials.reloaded(true);
                tracing::info!("password file and ACL reloaded");
                Ok(())
            }
            Err(e) => {
                i.denials.reloaded(false);
                tracing::error!(error = %e, "reload failed; the previous password file and ACL stay in force");
                Err(e)
            }
        }
    }

    /// Checks a login. Unknown users cost a verification like known ones (no timing
    /// difference tells them apart). Every refusal but `Busy` is counted and logged once per
    /// client.
    pub async fn authenticate(&self, login: Login<'_>) -> Result<Identity, Refusal> {
        if let Some(user) = login.cert_identity {
            return Ok(Identity::user(user));
        }
        match self.check_credentials(&login).await {
            Ok(identity) => Ok(identity),
            // Not a failed login: the client retries.
            Err((Refusal::Busy, _)) => Err(Refusal::Busy),
            Err((refusal, why)) => {
                self.inner
                    .denials
                    .auth(login.client_id, login.username, why);
                Err(refusal)
            }
        }
    }

    async fn check_credentials(
        &self,
        login: &Login<'_>,
    ) -> Result<Identity, (Refusal, &'static str)> {
        let state = self.state();
        let bad = Refusal::BadCredentials;
        match (login.username, login.password) {
            // Without a password file a user name is taken as given (as Mosquitto does).
            (Some(user), _) if state.sources.is_empty() => Ok(Identity::user(user)),
            (Some(_), None) => Err((bad, "user name without a password")),
            (Some(user), Some(password)) => {
                let known = state.sources.iter().find_map(|s| s.lookup(user));
                let hash = known.unwrap_or(password::dummy_hash()).clone();
                let ok = self
                    .inner
                    .verifier
                    .verify(hash, password.to_vec())
                    .await
                    .map_err(|_| (Refusal::Busy, "busy"))?;
                match (known, ok) {
                    (Some(entry), true) => Ok(Identity {
                        password_hash: Some(entry.to_string().into()),
                        ..Identity::user(user)
                    }),
                    (Some(_), false) => Err((bad, "wrong password")),
                    (None, _) => Err((bad, "unknown user")),
                }
            }
            (None, Some(_)) if !state.sources.is_empty() => {
                Err((bad, "password without a user name"))
            }
            (None, _) if self.inner.allow_anonymous => Ok(Identity::ANONYMOUS),
            (None, _) => Err((Refusal::NotAuthorized, "anonymous access is off")),
        }
    }

    /// Counts a refusal decided outside [`Security::authenticate`] (a will the ACL denies).
    pub fn count_auth_refusal(&self, client_id: &str, user: Option<&str>, why: &'static str) {
        self.inner.denials.auth(client_id, user, why);
    }

    /// The compiled rules of a client, to check its requests against.
    pub fn permissions(&self, identity: &Identity, client_id: &str) -> Permissions {
        let mut p = Permissions {
            security: self.clone(),
            generation: u64::MAX,
            rules: None,
            user: identity.user.clone(),
            device: identity.device.clone(),
            password_hash: identity.password_hash.clone(),
            revoked: false,
            client_id: client_id.into(),
        };
        p.refresh();
        p
    }

    /// Refusals so far (for `$SYS` and metrics).
    pub fn denials(&self) -> DenialCounts {
        self.inner.denials.snapshot()
    }
}

/// The refusal counters as `$SYS/` topics and values.
pub fn sys_topics(d: &DenialCounts) -> Vec<(&'static str, String)> {
    vec![
        ("$SYS/broker/auth/failures", d.auth.to_string()),
        ("$SYS/broker/auth/reloads", d.reloads.to_string()),
        (
            "$SYS/broker/auth/reload_failures",
            d.reload_failures.to_string(),
        ),
        ("$SYS/broker/acl/denied/publish", d.publish.to_string()),
        ("$SYS/broker/acl/denied/subscribe", d.subscribe.to_string()),
        ("$SYS/broker/acl/denied/consume", d.consume.to_string()),
        ("$SYS/broker/acl/denied/admin", d.admin.to_string()),
    ]
}

/// Reads the configured files.
fn load(password_file: Option<&Path>, acl_file: Option<&Path>) -> Result<State, AuthError> {
    let sources = match password_file {
        Some(p) => vec![CredentialSource::PasswordFile(PasswordDb::load(p)?)],
        None => Vec::new(),
    };
    let acl = match acl_file {
        Some(p) => Some(Arc::new(AclRules::load(p)?)),
        None => None,
    };
    Ok(State { sources, acl })
}

/// One client's rules, compiled; recompiled at the first check after a reload.
#[derive(Debug, Clone)]
pub struct Permissions {
    security: Security,
    generation: u64,
    /// `None`: no ACL file, everything allowed.
    rules: Option<Arc<SessionRules>>,
    user: Option<Box<str>>,
    device: Option<Box<str>>,
    /// See [`Identity::password_hash`].
    password_hash: Option<Box<str>>,
    /// The password file no longer has this login's entry (see [`Self::revoked`]).
    revoked: bool,
    client_id: Box<str>,
}

impl Permissions {
    /// Whether the rules were reloaded since this client's were compiled.
    pub fn is_stale(&self) -> bool {
        self.security.inner.generation.load(Ordering::Acquire) != self.generation
    }

    /// Recompiles the rules if they were reloaded since.
    pub fn refresh(&mut self) {
        let now = self.security.inner.generation.load(Ordering::Acquire);
        if now == self.generation {
            return;
        }
        let state = self.security.state();
        if let (Some(user), Some(entry)) = (self.user.as_deref(), self.password_hash.as_deref()) {
            let now = state.sources.iter().find_map(|s| s.lookup(user));
            // Once revoked, always: the client must log in again.
            self.revoked |= now.is_none_or(|h| h.to_string() != entry);
        }
        self.rules = state.acl.as_ref().map(|acl| {
            Arc::new(acl.compile(Who {
                user: self.user.as_deref(),
                client_id: &self.client_id,
                device: self.device.as_deref(),
            }))
        });
        self.generation = now;
    }

    /// Whether a reload removed this client's user from the password file or changed its
    /// password since it logged in (checked at [`refresh`](Self::refresh)). A revoked client
    /// is denied everything; the connection closes it (MQTT 5: DISCONNECT 0x87).
    pub fn revoked(&self) -> bool {
        self.revoked
    }

    /// Logs that this client's login was revoked and its connection closes (once per
    /// connection: the caller closes it).
    pub fn log_revoked(&self) {
        tracing::warn!(
            client_id = &*self.client_id,
            user = self.user.as_deref(),
            "login revoked by a reload of the password file; closing"
        );
    }

    /// The authenticated user name.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Decides `action` on a topic name or log topic; a denial is counted and logged once.
    /// No allocation and no lock unless the rules were just reloaded.
    pub fn check(&mut self, action: Action, topic: &str) -> Verdict {
        let v = self.peek(action, topic);
        self.note(action, v, topic);
        v
    }

    /// Decides a subscription to `filter` (without `$share/GROUP/`), counting a denial.
    pub fn check_subscribe(&mut self, filter: &str) -> Verdict {
        self.refresh();
        let v = match &self.rules {
            _ if self.revoked => Verdict::DEFAULT_DENY,
            None => Verdict::ALLOW_ALL,
            Some(r) => r.check_filter(filter),
        };
        self.note(Action::Subscribe, v, filter);
        v
    }

    /// Decides without counting or logging (to filter a listing).
    pub fn peek(&mut self, action: Action, topic: &str) -> Verdict {
        self.refresh();
        if self.revoked {
            return Verdict::DEFAULT_DENY;
        }
        self.rules
            .as_ref()
            .map_or(Verdict::ALLOW_ALL, |r| r.check_name(action, topic))
    }

    fn note(&self, action: Action, v: Verdict, topic: &str) {
        if !v.allowed {
            self.security.inner.denials.acl(
                action,
                &self.client_id,
                self.user.as_deref(),
                v.rule,
                topic,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login<'a>(user: Option<&'a str>, password: Option<&'a [u8]>) -> Login<'a> {
        Login {
            client_id: "c",
            username: user,
            password,
            cert_identity: None,
        }
    }

    fn secured(dir: &Path, allow_anonymous: Option<bool>) -> Security {
        let path = dir.join("passwd");
        let mut f = password::PasswordFile::default();
        f.set("alice", password::hash_password(b"right").unwrap());
        f.write_atomic(&path).unwrap();
        Security::open(&AuthConfig {
            password_file: Some(path),
            allow_anonymous,
            ..AuthConfig::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn logins_against_a_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = secured(dir.path(), None);
        assert!(s.requires_login());
        let ok = s.authenticate(login(Some("alice"), Some(b"right"))).await;
        assert_eq!(ok.unwrap().user.as_deref(), Some("alice"));
        let bad = Err(Refusal::BadCredentials);
        assert_eq!(
            s.authenticate(login(Some("alice"), Some(b"wrong"))).await,
            bad
        );
        assert_eq!(
            s.authenticate(login(Some("bob"), Some(b"right"))).await,
            bad
        );
        assert_eq!(s.authenticate(login(Some("alice"), None)).await, bad);
        assert_eq!(s.authenticate(login(None, Some(b"right"))).await, bad);
        assert_eq!(
            s.authenticate(login(None, None)).await,
            Err(Refusal::NotAuthorized)
        );
        let cert = Login {
            cert_identity: Some("gw-1"),
            ..login(Some("alice"), Some(b"wrong"))
        };
        assert_eq!(
            s.authenticate(cert).await.unwrap().user.as_deref(),
            Some("gw-1")
        );
        assert_eq!(s.denials().auth, 5);
    }

    #[tokio::test]
    async fn anonymous_allowed_explicitly_and_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let s = secured(dir.path(), Some(true));
        assert!(!s.requires_login());
        assert_eq!(s.authenticate(login(None, None)).await.unwrap().user, None);
        let open = Security::open_access();
        assert!(!open.requires_login());
        let named = open.authenticate(login(Some("x"), None)).await.unwrap();
        assert_eq!(named.user.as_deref(), Some("x"));
    }

    #[test]
    fn reload_swaps_rules_and_keeps_them_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let acl = dir.path().join("acl.toml");
        let allow = |t: &str| {
            format!("[[rule]]\naccess = \"allow\"\nactions = [\"publish\"]\ntopics = [\"{t}\"]\n")
        };
        std::fs::write(&acl, allow("a")).unwrap();
        let s = Security::open(&AuthConfig {
            acl_file: Some(acl.clone()),
            ..AuthConfig::default()
        })
        .unwrap();
        let mut p = s.permissions(&Identity::ANONYMOUS, "c");
        assert!(p.check(Action::Publish, "a").allowed);
        assert!(!p.check(Action::Publish, "b").allowed);
        std::fs::write(&acl, allow("b")).unwrap();
        s.reload().unwrap();
        assert!(p.check(Action::Publish, "b").allowed);
        std::fs::write(&acl, "[[rule]]\naccess = \"allow\"\n").unwrap();
        assert!(s.reload().is_err());
        assert!(p.check(Action::Publish, "b").allowed);
        let d = s.denials();
        assert_eq!((d.publish, d.reloads, d.reload_failures), (1, 1, 1));
    }

    #[tokio::test]
    async fn a_reload_revokes_removed_users_and_changed_passwords_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = secured(dir.path(), None);
        let path = dir.path().join("passwd");
        let mut f = password::PasswordFile::read(&path, false).unwrap();
        f.set("bob", password::hash_password(b"bob-pw").unwrap());
        f.write_atomic(&path).unwrap();
        s.reload().unwrap();
        let alice = s.authenticate(login(Some("alice"), Some(b"right"))).await;
        let bob = s.authenticate(login(Some("bob"), Some(b"bob-pw"))).await;
        let mut alice = s.permissions(&alice.unwrap(), "a");
        let mut bob = s.permissions(&bob.unwrap(), "b");
        // A login not verified by the file (a certificate's name) is never revoked by it.
        let mut cert = s.permissions(&Identity::user("carol"), "c");
        // Reloading the same file revokes nothing.
        s.reload().unwrap();
        for p in [&mut alice, &mut bob, &mut cert] {
            p.refresh();
            assert!(!p.revoked());
        }
        // Bob's password changes, alice's entry is untouched.
        f.set("bob", password::hash_password(b"bob-new").unwrap());
        f.write_atomic(&path).unwrap();
        s.reload().unwrap();
        assert!(alice.check(Action::Publish, "t").allowed);
        assert!(!alice.revoked());
        assert!(!bob.check(Action::Publish, "t").allowed);
        assert!(bob.revoked());
        assert!(!bob.check_subscribe("t").allowed);
        // Alice removed: revoked; re-adding her later does not bring the old login back.
        f.remove("alice");
        f.write_atomic(&path).unwrap();
        s.reload().unwrap();
        alice.refresh();
        assert!(alice.revoked());
        f.set("alice", password::hash_password(b"right").unwrap());
        f.write_atomic(&path).unwrap();
        s.reload().unwrap();
        alice.refresh();
        assert!(alice.revoked());
        cert.refresh();
        assert!(!cert.revoked());
    }

    #[test]
    fn device_rules_apply_to_verified_devices_only() {
        let dir = tempfile::tempdir().unwrap();
        let acl = dir.path().join("acl.toml");
        let rule = "[[rule]]\ndevice = \"d1\"\naccess = \"allow\"\nactions = [\"publish\"]\ntopics = [\"d1-readings\"]\n";
        std::fs::write(&acl, rule).unwrap();
        let s = Security::open(&AuthConfig {
            acl_file: Some(acl),
            ..AuthConfig::default()
        })
        .unwrap();
        let verified = Identity {
            user: None,
            device: Some("d1".into()),
            password_hash: None,
        };
        let mut p = s.permissions(&verified, "d1");
        assert!(p.check(Action::Publish, "d1-readings").allowed);
        assert!(!p.check(Action::Publish, "other").allowed);
        // The same id without a verified token is just a client id.
        let mut anonymous = s.permissions(&Identity::ANONYMOUS, "d1");
        assert!(!anonymous.check(Action::Publish, "d1-readings").allowed);
    }
}
