//! Counting and logging refusals: every refusal is counted; each (client, rule) pair is logged
//! once, so a client hammering a denied topic costs one log line, not one per message.
//!
//! The set remembering what was logged is bounded ([`LOGGED_CAPACITY`]); when full it is
//! cleared (and says so), so memory stays bounded and at worst a pair is logged again. A
//! reload of the rules clears it too: the same client may hit a different rule now.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::acl::Action;

/// Most (client, rule) pairs remembered as logged.
pub const LOGGED_CAPACITY: usize = 4096;

/// Refusals so far, by kind (a snapshot; see [`Denials::snapshot`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DenialCounts {
    /// Failed authentications: wrong or unknown credentials, anonymous clients refused, wills
    /// refused at CONNECT, failed binary-protocol `Authenticate`.
    pub auth: u64,
    /// Refused MQTT publishes and binary-protocol produces.
    pub publish: u64,
    /// Refused MQTT subscriptions (one per filter).
    pub subscribe: u64,
    /// Refused fetches, offset commits and offset fetches.
    pub consume: u64,
    /// Refused admin requests.
    pub admin: u64,
    /// Successful reloads of the password file and ACL.
    pub reloads: u64,
    /// Reloads that failed (the previous files stay in force).
    pub reload_failures: u64,
}

/// The counters and the logged set.
#[derive(Debug, Default)]
pub struct Denials {
    auth: AtomicU64,
    by_action: [AtomicU64; 4],
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    logged: Mutex<HashSet<(Box<str>, u32, u8)>>,
}

/// Index of an action in `by_action`.
fn slot(action: Action) -> usize {
    match action {
        Action::Publish => 0,
        Action::Subscribe => 1,
        Action::Consume => 2,
        Action::Admin | Action::All => 3,
    }
}

impl Denials {
    /// Counts a refused request of `client_id` on `topic` decided by `rule` (0: no rule
    /// applied), and logs it the first time this (client, rule, action) is seen.
    pub fn acl(&self, action: Action, client_id: &str, user: Option<&str>, rule: u32, topic: &str) {
        self.by_action[slot(action)].fetch_add(1, Ordering::Relaxed);
        if self.first(client_id, rule, action) {
            let rule_text = if rule == 0 {
                "no rule matched (denied by default)".to_owned()
            } else {
                format!("rule {rule}")
            };
            tracing::warn!(
                client_id,
                user = user.unwrap_or("(anonymous)"),
                action = action.name(),
                topic,
                rule = %rule_text,
                "ACL denied; further denials of this client by this rule are counted, not logged"
            );
        }
    }

    /// Counts a failed authentication and logs it once per client id.
    pub fn auth(&self, client_id: &str, user: Option<&str>, why: &'static str) {
        self.auth.fetch_add(1, Ordering::Relaxed);
        if self.first(client_id, 0, Action::All) {
            tracing::warn!(
                client_id,
                user = user.unwrap_or("(none)"),
                why,
                "authentication failed; further failures of this client are counted, not logged"
            );
        }
    }

    /// Counts a reload.
    pub fn reloaded(&self, ok: bool) {
        let c = if ok {
            &self.reloads
        } else {
            &self.reload_failures
        };
        c.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.forget();
        }
    }

    /// Forgets what was logged.
    pub fn forget(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(Box<str>, u32, u8)>> {
        // Only inserts and clears happen under it: a poisoned set is still a valid set.
        self.logged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True the first time (client, rule, action) is seen since the set was last cleared.
    fn first(&self, client_id: &str, rule: u32, action: Action) -> bool {
        let key = (client_id.into(), rule, action as u8);
        let mut logged = self.lock();
        if logged.contains(&key) {
            return false;
        }
        if logged.len() >= LOGGED_CAPACITY {
            logged.clear();
            tracing::warn!(
                capacity = LOGGED_CAPACITY,
                "too many clients denied to remember which were logged; starting over"
            );
        }
        logged.insert(key);
        true
    }

    /// The counters now.
    pub fn snapshot(&self) -> DenialCounts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DenialCounts {
            auth: load(&self.auth),
            publish: load(&self.by_action[0]),
            subscribe: load(&self.by_action[1]),
            consume: load(&self.by_action[2]),
            admin: load(&self.by_action[3]),
            reloads: load(&self.reloads),
            reload_failures: load(&self.reload_failures),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_denial_and_remembers_each_pair_once() {
        let d = Denials::default();
        assert!(d.first("c1", 3, Action::Publish));
        assert!(!d.first("c1", 3, Action::Publish));
        assert!(d.first("c1", 4, Action::Publish));
        assert!(d.first("c2", 3, Action::Publish));
        for _ in 0..100 {
            d.acl(Action::Publish, "c3", None, 1, "t");
        }
        d.acl(Action::Subscribe, "c3", None, 1, "t");
        d.auth("c4", Some("u"), "bad password");
        let s = d.snapshot();
        assert_eq!((s.publish, s.subscribe, s.auth), (100, 1, 1));
        assert_eq!(d.lock().len(), 6);
        d.reloaded(true);
        assert!(d.lock().is_empty());
        assert_eq!(d.snapshot().reloads, 1);
    }

    #[test]
    fn the_logged_set_stays_bounded() {
        let d = Denials::default();
        for i in 0..(LOGGED_CAPACITY + 10) {
            d.first(&i.to_string(), 1, Action::Publish);
        }
        assert!(d.lock().len() <= LOGGED_CAPACITY);
    }
}
