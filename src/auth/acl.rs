//! Access control rules: the ACL file, its checks, and the rules compiled for one client.
//!
//! # The file (TOML, `auth.acl_file`)
//!
//! ```toml
//! [[rule]]
//! user = "sensor-7"              # subject: user = "...", client_id = "...", device = "...",
//!                                # or none of them: every client (also anonymous ones)
//! access = "allow"               # or "deny"
//! actions = ["publish"]          # publish, subscribe, consume, admin, or "all"
//! topics = ["sensors/%u/#"]      # MQTT topic filters; %u = user name, %c = client id
//! ```
//!
//! # Evaluation
//!
//! Rules are read in file order; the **first rule that applies decides**. A rule applies to a
//! request when its subject is the client, its actions include the request's action, and:
//! - for a topic name (a PUBLISH, a produce, a log topic consumed or administered), one of its
//!   filters matches the name;
//! - for a subscription filter, an `allow` rule applies when one of its filters covers every
//!   topic the requested filter can match, and a `deny` rule as soon as one of its filters
//!   can match a topic the requested one can. So `allow a/#` does not grant a subscription to
//!   `#` (it is refused, never narrowed), and `deny a/secret/#` placed before `allow a/#`
//!   refuses `a/#` but grants `a/public/#`. Deliveries need no check of their own.
//!
//! When no rule applies the request is denied. Without an ACL file everything is allowed.
//! As in MQTT, a filter starting with `+` or `#` matches no topic starting with `$`: grant
//! `$SYS/#` (or `$bridge`) explicitly.
//!
//! A `device = "ID"` rule applies to a binary-protocol device whose token was verified at
//! its `DeviceHello` or in its UDP datagram (the token set with `outpost devices token
//! ID`); a device's client id
//! is its device id, so `%c` stands for it. A device without a token is no device to the
//! ACL: it is an anonymous client (or the user its TLS client certificate names).
//!
//! `%u` and `%c` are replaced by the client's user name and client id. When the replacement is
//! impossible — an anonymous client for `%u`, or a value that is empty or holds `+`, `#` or
//! `/` (which would widen the filter: a client id `#` must not match everything) — an allow
//! rule's filter does not apply to that client, and in a deny rule's filter the level becomes
//! `+`: a deny rule then denies more, never less.
//!
//! What each request needs: MQTT PUBLISH (and a will, at CONNECT) `publish` on its topic;
//! SUBSCRIBE `subscribe` on its filter (without a `$share/GROUP/` prefix); binary-protocol
//! produce `publish` on the log topic (so do `RegisterAlias`, and `ProduceAlias` and
//! `Reading` on the alias's topic, checked at each use); fetch, offset commit and offset
//! fetch `consume` on the log topic; create and delete topic `admin` on the topic; describe
//! topic `consume` or `admin` on it; list topics answers with the topics the client may
//! consume or administer; bridge status needs `admin` on the name `$bridge`.
//!
//! This module parses, compiles and matches; it does not count or log denials (see
//! [`super::denials`]) and does not know connections.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Largest ACL file read, bytes.
pub const MAX_ACL_BYTES: u64 = 4 << 20;
/// Most topic levels in an ACL filter.
pub const MAX_ACL_LEVELS: usize = 64;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// MQTT PUBLISH, will messages, binary-protocol produce.
    Publish,
    /// MQTT SUBSCRIBE.
    Subscribe,
    /// Binary-protocol fetch, offset commit and offset fetch of a log topic.
    Consume,
    /// Topic create and delete, bridge status.
    Admin,
    /// In a rule: all of the above.
    All,
}

impl Action {
    /// Every action a request can have, in counter order.
    pub const REQUESTS: [Action; 4] = [
        Action::Publish,
        Action::Subscribe,
        Action::Consume,
        Action::Admin,
    ];

    fn bit(self) -> u8 {
        match self {
            Action::Publish => 1,
            Action::Subscribe => 2,
            Action::Consume => 4,
            Action::Admin => 8,
            Action::All => 15,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
            Action::Consume => "consume",
            Action::Admin => "admin",
            Action::All => "all",
        }
    }
}

/// Whether a rule allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Grants.
    Allow,
    /// Refuses.
    Deny,
}

/// Whom a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Every client, anonymous ones too.
    Everyone,
    /// The client authenticated as this user.
    User(String),
    /// The client with this client id (MQTT client identifier, binary-protocol hello name).
    ClientId(String),
    /// The device with this id, once its token was verified (a binary-protocol
    /// `DeviceHello` or UDP datagram with the token set by `outpost devices token`). A
    /// device without a
    /// token proves nothing, so such a rule never applies to it.
    Device(String),
}

/// Who is asking: what rules are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who<'a> {
    /// Authenticated user name (`None`: anonymous).
    pub user: Option<&'a str>,
    /// Client id.
    pub client_id: &'a str,
    /// Device id, for a device authenticated by its token (`None` for every other client).
    pub device: Option<&'a str>,
}

/// Why an ACL file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The file could not be read.
    #[error("ACL file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_ACL_BYTES`].
    #[error("ACL file {path} is larger than {MAX_ACL_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not TOML of this schema (toml's message names the line and key).
    #[error("ACL file {path}: {source}(see examples/acl.toml for the format)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml says.
        #[source]
        source: toml::de::Error,
    },
    /// A rule parses but cannot be used.
    #[error("ACL file {path}, rule {rule} (line {line}): {problem}; fix: {fix}")]
    Rule {
        /// The file.
        path: PathBuf,
        /// 1-based rule number.
        rule: usize,
        /// 1-based line of the rule's `[[rule]]` header.
        line: usize,
        /// What is wrong.
        problem: String,
        /// What to write instead.
        fix: &'static str,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    user: Option<String>,
    client_id: Option<String>,
    device: Option<String>,
    access: Access,
    actions: Vec<Action>,
    topics: Vec<String>,
}

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1-based position in the file.
    pub index: u32,
    /// Whom it is about.
    pub subject: Subject,
    /// Allow or deny.
    pub access: Access,
    actions: u8,
    /// Topic filters, `%u`/`%c` not yet replaced.
    pub topics: Vec<String>,
}

/// The rules of an ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclRules {
    rules: Vec<Rule>,
}

impl AclRules {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, AclError> {
        let io = |source| AclError::Io {
            path: path.to_owned(),
            source,
        };
        if std::fs::metadata(path).map_err(io)?.len() > MAX_ACL_BYTES {
            return Err(AclError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::parse(path, &text)
    }

    /// Parses ACL text (`path` is used in errors only).
    pub fn parse(path: &Path, text: &str) -> Result<Self, AclError> {
        let raw: RawFile = toml::from_str(text).map_err(|source| AclError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let mut rules = Vec::with_capacity(raw.rule.len());
        for (i, spanned) in raw.rule.into_iter().enumerate() {
            let start = spanned.span().start.min(text.len());
            let line = text.as_bytes()[..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            let err = |problem: String, fix| AclError::Rule {
                path: path.to_owned(),
                rule: i + 1,
                line,
                problem,
                fix,
            };
            rules.push(Rule::from_raw(i + 1, spanned.into_inner()).map_err(|(p, f)| err(p, f))?);
        }
        Ok(Self { rules })
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules that concern `who`, with `%u`/`%c` replaced, ready for matching.
    pub fn compile(&self, who: Who<'_>) -> SessionRules {
        let rules = self
            .rules
            .iter()
            .filter(|r| r.applies_to(&who))
            .filter_map(|r| r.compile(&who))
            .collect();
        SessionRules { rules }
    }
}

impl Rule {
    fn from_raw(index: usize, raw: RawRule) -> Result<Self, (String, &'static str)> {
        let named = [&raw.user, &raw.client_id, &raw.device]
            .iter()
            .filter(|s| s.is_some())
            .count();
        let subject = match (raw.user, raw.client_id, raw.device) {
            _ if named > 1 => {
                return Err((
                    "more than one of user, client_id, device".into(),
                    "write one rule per subject",
                ))
            }
            (Some(u), _, _) => Subject::User(u),
            (_, Some(c), _) => Subject::ClientId(c),
            (_, _, Some(d)) => Subject::Device(d),
            _ => Subject::Everyone,
        };
        if raw.actions.is_empty() {
            return Err((
                "actions is empty".into(),
                "list publish, subscribe, consume, admin or all",
            ));
        }
        if raw.topics.is_empty() {
            return Err(("topics is empty".into(), "list topic filters, e.g. [\"#\"]"));
        }
        for t in &raw.topics {
            // Checked with stand-in values: real ones are checked again when compiled.
            if compile_filter(t, Some("x"), "x", false).is_none() {
                return Err((
                    format!("topic filter {t:?} is not a valid MQTT topic filter"),
                    "use levels separated by '/', '+' for one level, '#' only as the last level",
                ));
            }
        }
        Ok(Self {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            subject,
            access: raw.access,
            actions: raw.actions.iter().fold(0, |m, a| m | a.bit()),
            topics: raw.topics,
        })
    }

    /// Whether the rule covers `action`.
    pub fn has_action(&self, action: Action) -> bool {
        self.actions & action.bit() != 0
    }

    fn applies_to(&self, who: &Who<'_>) -> bool {
        match &self.subject {
            Subject::Everyone => true,
            Subject::User(u) => who.user == Some(u.as_str()),
            Subject::ClientId(c) => who.client_id == c,
            Subject::Device(d) => who.device == Some(d.as_str()),
        }
    }

    fn compile(&self, who: &Who<'_>) -> Option<CompiledRule> {
        let widen = self.access == Access::Deny;
        let filters: Vec<_> = self
            .topics
            .iter()
            .filter_map(|t| compile_filter(t, who.user, who.client_id, widen))
            .collect();
        if filters.is_empty() {
            return None;
        }
        Some(CompiledRule {
            index: self.index,
            access: self.access,
            actions: self.actions,
            filters: filters.into_boxed_slice(),
        })
    }
}

/// Whether a `%u`/`%c` value can stand in a filter level: not empty, no `+`, `#`, `/`.
fn safe_value(v: &str) -> bool {
    !v.is_empty() && !v.contains(['+', '#', '/', '\0'])
}

/// Replaces `%u` and `%c` in one level; `None` when a value is missing or unsafe.
fn substitute(level: &str, user: Option<&str>, client_id: &str) -> Option<String> {
    if !level.contains('%') {
        return Some(level.to_owned());
    }
    let mut out = String::with_capacity(level.len() + 16);
    let mut rest = level;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let value = match rest.as_bytes().get(at + 1) {
            Some(b'u') => Some(user.filter(|u| safe_value(u))?),
            Some(b'c') => Some(Some(client_id).filter(|c| safe_value(c))?),
            _ => None,
        };
        match value {
            Some(v) => {
                out.push_str(v);
                rest = &rest[at + 2..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Compiles a filter template for a client. A level whose `%u`/`%c` cannot be replaced
/// (see [`safe_value`]) makes the filter `None`, or with `widen` becomes `+` (for deny rules:
/// they then deny more, never less). `None` also for an invalid filter.
fn compile_filter(
    template: &str,
    user: Option<&str>,
    client_id: &str,
    widen: bool,
) -> Option<Box<[Level]>> {
    let mut text = String::with_capacity(template.len() + 16);
    for (i, level) in template.split('/').enumerate() {
        if i > 0 {
            text.push('/');
        }
        match substitute(level, user, client_id) {
            Some(l) => text.push_str(&l),
            None if widen => text.push('+'),
            None => return None,
        }
    }
    parse_levels(&text)
}

/// One level of a compiled filter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Exact(Box<str>),
    Plus,
    Hash,
}

/// Splits a topic filter into levels; `None` when it is not a valid filter.
fn parse_levels(filter: &str) -> Option<Box<[Level]>> {
    if filter.is_empty() || filter.contains('\0') {
        return None;
    }
    let parts: Vec<&str> = filter.split('/').collect();
    if parts.len() > MAX_ACL_LEVELS {
        return None;
    }
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| match *p {
            "#" if i == last => Some(Level::Hash),
            "+" => Some(Level::Plus),
            p if p.contains(['+', '#']) => None,
            p => Some(Level::Exact(p.into())),
        })
        .collect()
}

fn starts_with_dollar(levels: &[Level]) -> bool {
    matches!(levels.first(), Some(Level::Exact(s)) if s.starts_with('$'))
}

fn starts_wild(levels: &[Level]) -> bool {
    matches!(levels.first(), Some(Level::Plus | Level::Hash))
}

/// Whether `filter` matches the topic name `topic` (no allocation).
fn matches(filter: &[Level], topic: &str) -> bool {
    if topic.starts_with('$') && starts_wild(filter) {
        return false;
    }
    let mut levels = topic.split('/');
    for f in filter {
        match f {
            Level::Hash => return true,
            Level::Plus => {
                if levels.next().is_none() {
                    return false;
                }
            }
            Level::Exact(s) => {
                if levels.next() != Some(&**s) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

/// Whether every topic `req` matches is matched by `rule` (conservative: `false` when unsure).
fn covers(rule: &[Level], req: &[Level]) -> bool {
    if starts_with_dollar(req) && starts_wild(rule) {
        return false;
    }
    let mut i = 0;
    loop {
        match (rule.get(i), req.get(i)) {
            (Some(Level::Hash), _) | (None, None) => return true,
            (None, Some(_)) | (Some(_), None) | (Some(_), Some(Level::Hash)) => return false,
            (Some(Level::Plus), Some(_)) => {}
            (Some(Level::Exact(a)), Some(Level::Exact(b))) if a == b => {}
            _ => return false,
        }
        i += 1;
    }
}

/// Whether some topic is matched by both filters.
fn intersects(a: &[Level], b: &[Level]) -> bool {
    if (starts_with_dollar(a) && starts_wild(b)) || (starts_with_dollar(b) && starts_wild(a)) {
        return false;
    }
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (Some(Level::Hash), _) | (_, Some(Level::Hash)) | (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(Level::Exact(x)), Some(Level::Exact(y))) if x != y => return false,
            _ => {}
        }
        i += 1;
    }
}

/// A rule with its subject settled and `%u`/`%c` replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CompiledRule {
    index: u32,
    access: Access,
    actions: u8,
    filters: Box<[Box<[Level]>]>,
}

/// An ACL decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Granted.
    pub allowed: bool,
    /// The deciding rule's 1-based number; 0 when no rule applied (denied by default).
    pub rule: u32,
}

impl Verdict {
    /// Granted without rules (no ACL file).
    pub const ALLOW_ALL: Verdict = Verdict {
        allowed: true,
        rule: 0,
    };
    /// Denied without a rule: no rule applied, or the client's login was revoked.
    pub const DEFAULT_DENY: Verdict = Verdict {
        allowed: false,
        rule: 0,
    };

    fn of(rule: &CompiledRule) -> Self {
        Verdict {
            allowed: rule.access == Access::Allow,
            rule: rule.index,
        }
    }
}

/// The rules that concern one client, compiled: what a connection checks its requests
/// against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRules {
    rules: Vec<CompiledRule>,
}

impl SessionRules {
    /// Decides `action` on the topic name (or log topic) `topic`. Allocates nothing.
    pub fn check_name(&self, action: Action, topic: &str) -> Verdict {
        self.rules
            .iter()
            .filter(|r| r.actions & action.bit() != 0)
            .find(|r| r.filters.iter().any(|f| matches(f, topic)))
            .map_or(Verdict::DEFAULT_DENY, Verdict::of)
    }

    /// Decides a subscription to `filter` (without `$share/GROUP/`). An invalid filter is
    /// denied.
    pub fn check_filter(&self, filter: &str) -> Verdict {
        let Some(req) = parse_levels(filter) else {
            return Verdict::DEFAULT_DENY;
        };
        let bit = Action::Subscribe.bit();
        self.rules
            .iter()
            .filter(|r| r.actions & bit != 0)
            .find(|r| match r.access {
                Access::Allow => r.filters.iter().any(|f| covers(f, &req)),
                Access::Deny => r.filters.iter().any(|f| intersects(f, &req)),
            })
            .map_or(Verdict::DEFAULT_DENY, Verdict::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> AclRules {
        AclRules::parse(Path::new("acl.toml"), text).unwrap()
    }

    fn who<'a>(user: Option<&'a str>, client_id: &'a str) -> Who<'a> {
        Who {
            user,
            client_id,
            device: None,
        }
    }

    const SAMPLE: &str = r##"
[[rule]]
user = "admin"
access = "allow"
actions = ["all"]
topics = ["#", "$SYS/#", "$bridge"]

[[rule]]
access = "deny"
actions = ["subscribe", "publish"]
topics = ["sensors/secret/#"]

[[rule]]
access = "allow"
actions = ["publish", "consume"]
topics = ["sensors/%u/#", "sensors"]

[[rule]]
access = "allow"
actions = ["subscribe"]
topics = ["sensors/#", "clients/%c/#"]
"##;

    #[test]
    fn first_match_decides_names() {
        let acl = rules(SAMPLE);
        let s = acl.compile(who(Some("k7"), "dev-7"));
        let ok = |a, t: &str| s.check_name(a, t).allowed;
        assert!(ok(Action::Publish, "sensors/k7/temp"));
        assert!(ok(Action::Publish, "sensors/k7"));
        assert!(!ok(Action::Publish, "sensors/k8/temp"));
        assert!(!ok(Action::Publish, "sensors/secret/k7"));
        assert!(ok(Action::Consume, "sensors"));
        assert!(!ok(Action::Admin, "sensors"));
        assert_eq!(
            s.check_name(Action::Publish, "sensors/secret/x"),
            Verdict {
                allowed: false,
                rule: 2
            }
        );
        assert_eq!(s.check_name(Action::Publish, "other").rule, 0);
        let admin = acl.compile(who(Some("admin"), "ops"));
        assert!(admin.check_name(Action::Admin, "anything").allowed);
        assert!(admin.check_name(Action::Admin, "$bridge").allowed);
        assert!(admin.check_filter("$SYS/#").allowed);
    }

    #[test]
    fn subscriptions_are_granted_only_when_covered() {
        let acl = rules(SAMPLE);
        let s = acl.compile(who(Some("k7"), "dev-7"));
        let ok = |f: &str| s.check_filter(f).allowed;
        assert!(ok("sensors/public/#"));
        assert!(ok("sensors/k7/temp"));
        assert!(ok("clients/dev-7/#"));
        assert!(!ok("clients/dev-8/#"));
        // Wider than granted: refused, never narrowed.
        assert!(!ok("#"));
        assert!(!ok("+/k7/temp"));
        // Overlaps the deny rule before the allow rule.
        assert!(!ok("sensors/#"));
        assert!(!ok("sensors/+/temp"));
        assert!(!ok("sensors/+/x"));
        assert!(!ok("sensors/secret/a"));
        // `$` topics are not covered by wildcards.
        assert!(!ok("$SYS/#"));
    }

    #[test]
    fn substitution_never_widens() {
        let acl = rules(SAMPLE);
        for user in ["#", "+", "a/b", ""] {
            let s = acl.compile(who(Some(user), "c"));
            assert!(
                !s.check_name(Action::Publish, "sensors/x/y").allowed,
                "{user:?}"
            );
            assert!(!s.check_name(Action::Publish, "sensors/a/b/c").allowed);
        }
        let s = acl.compile(who(None, "#"));
        assert!(!s.check_filter("clients/#").allowed);
        assert!(!s.check_filter("clients/x/#").allowed);
        // The rules without %u still apply to an anonymous client.
        assert!(s.check_filter("sensors/public/x").allowed);
    }

    #[test]
    fn matching_rules() {
        let l = |f: &str| parse_levels(f).unwrap();
        assert!(matches(&l("a/#"), "a"));
        assert!(matches(&l("a/#"), "a/b/c"));
        assert!(matches(&l("a/+"), "a/b"));
        assert!(!matches(&l("a/+"), "a"));
        assert!(!matches(&l("a/+"), "a/b/c"));
        assert!(!matches(&l("#"), "$SYS/x"));
        assert!(matches(&l("$SYS/#"), "$SYS/x"));
        assert!(covers(&l("a/#"), &l("a")));
        assert!(covers(&l("a/+/c"), &l("a/b/c")));
        assert!(!covers(&l("a/+/c"), &l("a/#")));
        assert!(!covers(&l("a/b"), &l("a/+")));
        assert!(intersects(&l("a/+"), &l("+/b")));
        assert!(intersects(&l("a/#"), &l("a")));
        assert!(!intersects(&l("a/b"), &l("a/c")));
        assert!(!intersects(&l("a/b/c"), &l("a/b")));
        assert!(!intersects(&l("#"), &l("$SYS/x")));
        assert!(parse_levels("a/#/b").is_none());
        assert!(parse_levels("a+/b").is_none());
    }

    #[test]
    fn subjects() {
        let acl = rules(
            r##"
[[rule]]
client_id = "gw"
access = "allow"
actions = ["publish"]
topics = ["x"]

[[rule]]
device = "d1"
access = "allow"
actions = ["publish"]
topics = ["y"]
"##,
        );
        assert!(
            acl.compile(who(None, "gw"))
                .check_name(Action::Publish, "x")
                .allowed
        );
        assert!(
            !acl.compile(who(Some("gw"), "other"))
                .check_name(Action::Publish, "x")
                .allowed
        );
        let dev = Who {
            user: None,
            client_id: "c",
            device: Some("d1"),
        };
        assert!(acl.compile(dev).check_name(Action::Publish, "y").allowed);
        assert!(
            !acl.compile(who(Some("d1"), "d1"))
                .check_name(Action::Publish, "y")
                .allowed
        );
    }

    #[test]
    fn bad_rules_name_file_rule_and_line() {
        let cases = [
            (
                "[[rule]]\naccess = \"allow\"\nactions = [\"publish\"]\ntopics = [\"a/#/b\"]\n",
                "rule 1 (line 1)",
            ),
            (
                "\n[[rule]]\nuser = \"a\"\nclient_id = \"b\"\naccess = \"allow\"\nactions = [\"all\"]\ntopics = [\"#\"]\n",
                "more than one",
            ),
            (
                "[[rule]]\naccess = \"allow\"\nactions = []\ntopics = [\"#\"]\n",
                "actions is empty",
            ),
            (
                "[[rule]]\naccess = \"maybe\"\nactions = [\"all\"]\ntopics = [\"#\"]\n",
                "maybe",
            ),
            (
                "[[rule]]\naccess = \"allow\"\nactions = [\"read\"]\ntopics = [\"#\"]\n",
                "read",
            ),
            ("[[rules]]\n", "rules"),
        ];
        for (text, what) in cases {
            let err = AclRules::parse(Path::new("/etc/outpost/acl.toml"), text).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("/etc/outpost/acl.toml") && msg.contains(what),
                "{msg}"
            );
        }
        let err = AclRules::parse(Path::new("f"), "\n\n[[rule]]\nuser = \"a\"\nclient_id = \"b\"\naccess = \"allow\"\nactions = [\"all\"]\ntopics = [\"#\"]\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn the_example_file_parses_and_means_what_it_says() {
        let acl = rules(include_str!("../../examples/acl.toml"));
        let s = acl.compile(who(Some("k7"), "k7-dev"));
        assert!(s.check_name(Action::Publish, "sensors/k7/temp").allowed);
        assert!(!s.check_name(Action::Publish, "sensors/k8/temp").allowed);
        assert!(s.check_filter("commands/k7-dev/#").allowed);
        assert!(!s.check_filter("config/#").allowed);
        let d = acl.compile(who(Some("dashboard"), "dash"));
        assert!(d.check_filter("sensors/#").allowed);
        assert!(d.check_name(Action::Consume, "sensors").allowed);
        assert!(!d.check_name(Action::Admin, "sensors").allowed);
        let admin = acl.compile(who(Some("admin"), "ops"));
        assert!(admin.check_name(Action::Publish, "config/x").allowed);
    }

    #[test]
    fn substitute_placeholders() {
        let l = |f: &str| parse_levels(f);
        let c = |t: &str, u: Option<&str>, id: &str, w: bool| compile_filter(t, u, id, w);
        assert_eq!(c("a/%u/%c", Some("u"), "c", false), l("a/u/c"));
        assert_eq!(c("a/d-%u", Some("u"), "c", false), l("a/d-u"));
        assert_eq!(c("a/%x/100%", Some("u"), "c", false), l("a/%x/100%"));
        assert_eq!(c("a/%u", None, "c", false), None);
        assert_eq!(c("a/%c/#", None, "c+", false), None);
        assert_eq!(c("a/%c/#", None, "a/b", true), l("a/+/#"));
        assert_eq!(c("a/x%u/b", None, "c", true), l("a/+/b"));
    }

    #[test]
    fn deny_rules_with_impossible_values_deny_more() {
        let acl = rules(
            r##"
[[rule]]
access = "deny"
actions = ["publish"]
topics = ["private/%u/#"]

[[rule]]
access = "allow"
actions = ["publish"]
topics = ["private/#"]
"##,
        );
        let anon = acl.compile(who(None, "c"));
        assert!(!anon.check_name(Action::Publish, "private/x/y").allowed);
        let bob = acl.compile(who(Some("bob"), "c"));
        assert!(!bob.check_name(Action::Publish, "private/bob/y").allowed);
        assert!(bob.check_name(Action::Publish, "private/eve/y").allowed);
    }
}
