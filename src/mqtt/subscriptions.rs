//! The subscription tree: every session's subscriptions, and routing a topic name to the
//! sessions that should receive a message on it.
//!
//! Owns the subscriptions of all sessions (plain and `$share`d). It does not validate filters
//! (that is [`super::topic::parse_filter`], whose result it takes), deliver messages, cap QoS
//! or keep retained messages: [`SubscriptionTree::route`] only says who gets a message and with
//! which subscription options.
//!
//! # Structure
//!
//! A trie with one node per filter level:
//!
//! - `Node::children`: literal levels, `HashMap<Box<str>, Node>` (std `RandomState`, so peers
//!   choosing topic levels cannot force hash collisions); an empty level (`a//b`) is the key
//!   `""`.
//! - `Node::plus`: the `+` child, boxed because most nodes have none.
//! - `Node::subs`: boxed, present only when a filter ends here. It holds two lists: `exact`
//!   for filters ending at this level (`a/b` at node `a`→`b`) and `multi` for filters ending
//!   in `/#` after it (`a/b/#` at the same node); `#` alone lives in the root's `multi`.
//!   Each list holds the plain subscribers, `(SessionId, Subscription)` sorted by session,
//!   and the shared groups, each with its members (sorted the same way) and a round-robin
//!   cursor (`AtomicUsize`, so that routing works through `&self`).
//!
//! Beside the trie, `index` is a `BTreeSet<(SessionId, Box<str>)>` of full filter texts
//! (`$share/GROUP/` included): it counts the subscriptions, lists one session's in order and
//! makes [`SubscriptionTree::remove_session`] cost `O(k · levels)` for `k` subscriptions
//! rather than a walk of the whole tree. The trie is the only place holding the
//! [`Subscription`] values.
//!
//! Memory: a node is 64 bytes on 64-bit targets plus its slot in the parent's table; a
//! subscription costs one 24-byte entry in a list plus its index entry (24 bytes and the
//! filter text). Removal prunes every node left without children or subscribers and shrinks
//! tables and lists left less than a quarter full, so a broker whose subscriptions churn for
//! months holds memory for the subscriptions it has now, not for the most it ever had.
//!
//! # Routing
//!
//! [`SubscriptionTree::route`] walks the trie along the topic's levels, following at each node
//! both the literal child and the `+` child, and collecting the `multi` list of every node on
//! the way (`#` matches the remaining levels, none included) and the `exact` list of the nodes
//! where the topic ends. Its cost grows with the number of matching subscriptions and the
//! branching of `+`, not with the size of the tree. Recursion depth is bounded by the depth of
//! the trie, that is by the longest stored filter, not by the topic.
//!
//! Every match is pushed to the caller's `out`; then `out` is sorted in place by
//! `(shared, session)` and adjacent plain routes of one session are merged. Nothing is
//! allocated apart from `out` growing past its capacity and one `Vec` per route that carries
//! subscription identifiers (a route's identifiers live in its own `Vec`, which `out.clear()`
//! frees).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::packet::{QoS, SubscriptionOptions};
use super::topic::Filter;

/// The level separator.
const SEPARATOR: char = '/';
/// The single-level wildcard level.
const SINGLE: &str = "+";
/// The multi-level wildcard level.
const MULTI: &str = "#";
/// The suffix of a filter ending in a multi-level wildcard.
const MULTI_SUFFIX: &str = "/#";
/// The prefix of shared filters in the index (mirrors `Filter`'s `Display`).
const SHARE_PREFIX: &str = "$share/";
/// Tables and lists are shrunk when their capacity exceeds this many times their length.
const SHRINK_RATIO: usize = 4;

/// A session, as the broker numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// One subscription of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// The options from the SUBSCRIBE entry.
    pub options: SubscriptionOptions,
    /// The v5 Subscription Identifier of the SUBSCRIBE, if any.
    pub id: Option<u32>,
}

/// Where a message goes: one entry per receiving session for its plain subscriptions, and one
/// per matching shared subscription (the member picked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The receiving session.
    pub session: SessionId,
    /// The highest QoS among the session's matching subscriptions (the caller caps the
    /// publish QoS to it).
    pub qos: QoS,
    /// Some matching subscription has Retain As Published.
    pub retain_as_published: bool,
    /// Subscription identifiers of all matching subscriptions, ascending, without duplicates:
    /// one message carries them all ([MQTT-3.3.4-3], [MQTT-3.3.4-4]).
    pub subscription_ids: Vec<u32>,
    /// This route comes from a shared (`$share`) subscription; it is delivered separately
    /// from the session's plain route, if any.
    pub shared: bool,
}

impl Route {
    fn new(session: SessionId, sub: Subscription, shared: bool) -> Self {
        Route {
            session,
            qos: sub.options.qos,
            retain_as_published: sub.options.retain_as_published,
            // Allocates only when there is an identifier.
            subscription_ids: sub.id.into_iter().collect(),
            shared,
        }
    }

    /// Folds `other`, a route of the same session, into `self`.
    fn merge(&mut self, other: &mut Route) {
        self.qos = self.qos.max(other.qos);
        self.retain_as_published |= other.retain_as_published;
        self.subscription_ids.append(&mut other.subscription_ids);
    }
}

/// All subscriptions of all sessions, indexed for routing. See the module doc for the
/// structure.
#[derive(Debug, Default)]
pub struct SubscriptionTree {
    /// The trie; the root stands for "no level yet" and is never pruned.
    root: Node,
    /// Every subscription as (session, full filter text).
    index: BTreeSet<(SessionId, Box<str>)>,
}

impl SubscriptionTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscription, or replaces the one with the same session and the same full
    /// filter text (`$share/GROUP/` included). Returns true when it replaced one: the caller
    /// needs that for Retain Handling 1 and [MQTT-3.8.4-3].
    ///
    /// `filter` must come from [`super::topic::parse_filter`].
    pub fn subscribe(
        &mut self,
        session: SessionId,
        filter: &Filter<'_>,
        sub: Subscription,
    ) -> bool {
        let (path, end) = target(filter.filter);
        let leaf = self
            .root
            .node_mut(path)
            .subs
            .get_or_insert_with(Box::default);
        let replaced = leaf.list_mut(end).upsert(filter.share_group, session, sub);
        if !replaced {
            self.index.insert((session, index_text(filter)));
        }
        replaced
    }

    /// Removes one subscription; true when it existed. Prunes the nodes it leaves empty.
    pub fn unsubscribe(&mut self, session: SessionId, filter: &Filter<'_>) -> bool {
        let (path, end) = target(filter.filter);
        let removed = self.root.remove(path, end, filter.share_group, session);
        if removed {
            self.index.remove(&(session, index_text(filter)));
        }
        removed
    }

    /// Removes every subscription of `session` (its session ended); returns how many.
    pub fn remove_session(&mut self, session: SessionId) -> usize {
        let keys: Vec<(SessionId, Box<str>)> = self.session_range(session).cloned().collect();
        for key in &keys {
            self.index.remove(key);
            let filter = stored_filter(&key.1);
            let (path, end) = target(filter.filter);
            self.root.remove(path, end, filter.share_group, session);
        }
        keys.len()
    }

    /// The subscription of `session` on `filter` (full filter, `$share` included), if any.
    pub fn get(&self, session: SessionId, filter: &Filter<'_>) -> Option<Subscription> {
        let (path, end) = target(filter.filter);
        let leaf = self.root.find(path)?.subs.as_deref()?;
        leaf.list(end).get(filter.share_group, session)
    }

    /// The subscriptions of `session` as (full filter text, subscription), ordered by filter
    /// text: what a persisted session stores.
    pub fn session_subscriptions(&self, session: SessionId) -> Vec<(String, Subscription)> {
        self.session_range(session)
            .filter_map(|(_, text)| {
                let sub = self.get(session, &stored_filter(text))?;
                Some((text.to_string(), sub))
            })
            .collect()
    }

    /// Routes a PUBLISH on `topic` (a valid topic name) from `publisher` (`None` for messages
    /// the server originates, such as `$SYS` or the will of an ended session): clears `out`
    /// and fills it with one [`Route`] per receiving session, plain routes first, each part
    /// ordered by session.
    ///
    /// - No Local: a plain subscription with `no_local` is skipped when its session is
    ///   `publisher` ([MQTT-3.8.3-3]).
    /// - Overlapping plain subscriptions of one session give one route: the highest QoS, Retain
    ///   As Published if any has it, and the union of their identifiers.
    /// - Each matching shared subscription (group and filter) gives one route to one member,
    ///   taken round-robin across calls among the members for which `online` is true; when
    ///   none is, the next member in turn (its offline queue holds the message). `no_local`
    ///   is ignored there: on a shared subscription it is a protocol error caught at
    ///   SUBSCRIBE ([MQTT-3.8.3-4]).
    ///
    /// Allocates only when `out` outgrows its capacity and for routes carrying subscription
    /// identifiers.
    pub fn route(
        &self,
        topic: &str,
        publisher: Option<SessionId>,
        online: impl Fn(SessionId) -> bool,
        out: &mut Vec<Route>,
    ) {
        out.clear();
        let ctx = RouteCtx {
            publisher,
            online: &online,
        };
        if topic.starts_with('$') {
            // [MQTT-4.7.2-1]: a filter starting with '+' or '#' does not match a topic
            // starting with '$', so only the root's literal child is followed.
            let (level, rest) = split_level(topic);
            if let Some(child) = self.root.children.get(level) {
                child.route(rest, &ctx, out);
            }
        } else {
            self.root.route(Some(topic), &ctx, out);
        }
        merge_routes(out);
    }

    /// Number of subscriptions stored, all sessions together.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no session has a subscription.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The index entries of one session.
    fn session_range(&self, session: SessionId) -> impl Iterator<Item = &(SessionId, Box<str>)> {
        // An empty `Box<str>` sorts first and does not allocate.
        self.index
            .range((session, Box::<str>::default())..)
            .take_while(move |(s, _)| *s == session)
    }

    /// Trie nodes below the root.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.root.count_below()
    }
}

/// The full filter text stored in the index.
fn index_text(filter: &Filter<'_>) -> Box<str> {
    debug_assert!(
        filter.share_group.is_none_or(|g| !g.contains(SEPARATOR)),
        "filter not from parse_filter"
    );
    filter.to_string().into_boxed_str()
}

/// The inverse of [`index_text`]: splits `$share/GROUP/` off again. The group of a filter from
/// `parse_filter` has no '/', so the first '/' after the prefix ends it.
fn stored_filter(text: &str) -> Filter<'_> {
    let shared = text
        .strip_prefix(SHARE_PREFIX)
        .and_then(|rest| rest.split_once(SEPARATOR));
    match shared {
        Some((group, filter)) => Filter {
            share_group: Some(group),
            filter,
        },
        None => Filter::plain(text),
    }
}

/// Which list of a node holds a filter.
#[derive(Debug, Clone, Copy)]
enum End {
    /// The filter ends at the node.
    Exact,
    /// The filter is the node's path followed by `/#`.
    Multi,
}

/// The path of the node holding `filter` (`None`: the root) and the list there.
fn target(filter: &str) -> (Option<&str>, End) {
    if filter == MULTI {
        (None, End::Multi)
    } else if let Some(path) = filter.strip_suffix(MULTI_SUFFIX) {
        (Some(path), End::Multi)
    } else {
        (Some(filter), End::Exact)
    }
}

/// The first level of `text` and the rest after its separator (`None`: it was the last).
fn split_level(text: &str) -> (&str, Option<&str>) {
    match text.split_once(SEPARATOR) {
        Some((level, rest)) => (level, Some(rest)),
        None => (text, None),
    }
}

/// Sorts routes by `(shared, session)` and merges the plain routes of one session; then
/// puts each route's identifiers in order without duplicates. Sorts in place: no allocation.
fn merge_routes(out: &mut Vec<Route>) {
    if out.len() > 1 {
        out.sort_unstable_by_key(|r| (r.shared, r.session));
        // `dedup_by` passes the later element first; returning true drops it.
        out.dedup_by(|later, kept| {
            let same = !later.shared && !kept.shared && later.session == kept.session;
            if same {
                kept.merge(later);
            }
            same
        });
    }
    for route in out.iter_mut().filter(|r| r.subscription_ids.len() > 1) {
        route.subscription_ids.sort_unstable();
        route.subscription_ids.dedup();
    }
}

/// What routing needs besides the topic and the output.
struct RouteCtx<'a, F> {
    publisher: Option<SessionId>,
    online: &'a F,
}

/// One trie node: the subscriptions whose filter reaches this level, and deeper levels.
#[derive(Debug, Default)]
struct Node {
    /// Literal next levels.
    children: HashMap<Box<str>, Node>,
    /// The `+` next level.
    plus: Option<Box<Node>>,
    /// Subscribers of filters ending here (or here followed by `/#`).
    subs: Option<Box<Leaf>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plus.is_none() && self.subs.is_none()
    }

    /// The node at `path` below this one, created as needed.
    fn node_mut(&mut self, path: Option<&str>) -> &mut Node {
        let mut node = self;
        for level in path.into_iter().flat_map(|p| p.split(SEPARATOR)) {
            node = node.child_mut(level);
        }
        node
    }

    /// The child for `level`, created when missing.
    fn child_mut(&mut self, level: &str) -> &mut Node {
        if level == SINGLE {
            return self.plus.get_or_insert_with(Box::default);
        }
        // Two lookups, so that a present key costs no allocation (`entry` takes an owned key).
        if !self.children.contains_key(level) {
            self.children.insert(level.into(), Node::default());
        }
        // Present: inserted just above if it was missing.
        self.children.get_mut(level).expect("child present")
    }

    /// The node at `path` below this one, if it exists.
    fn find(&self, path: Option<&str>) -> Option<&Node> {
        let mut node = self;
        for level in path.into_iter().flat_map(|p| p.split(SEPARATOR)) {
            node = match level {
                SINGLE => node.plus.as_deref()?,
                _ => node.children.get(level)?,
            };
        }
        Some(node)
    }

    /// Removes a subscription from the node at `path` and prunes the nodes left empty below
    /// this one; true when it existed.
    fn remove(
        &mut self,
        path: Option<&str>,
        end: End,
        group: Option<&str>,
        session: SessionId,
    ) -> bool {
        let Some(path) = path else {
            return self.remove_here(end, group, session);
        };
        let (level, rest) = split_level(path);
        if level == SINGLE {
            let Some(child) = self.plus.as_deref_mut() else {
                return false;
            };
            let removed = child.remove(rest, end, group, session);
            if child.is_empty() {
                self.plus = None;
            }
            return removed;
        }
        let Some(child) = self.children.get_mut(level) else {
            return false;
        };
        let removed = child.remove(rest, end, group, session);
        if child.is_empty() {
            self.children.remove(level);
            shrink_map(&mut self.children);
        }
        removed
    }

    /// Removes a subscription from this node's lists; true when it existed.
    fn remove_here(&mut self, end: End, group: Option<&str>, session: SessionId) -> bool {
        let Some(leaf) = self.subs.as_deref_mut() else {
            return false;
        };
        let removed = leaf.list_mut(end).remove(group, session);
        if leaf.is_empty() {
            self.subs = None;
        }
        removed
    }

    /// Collects the routes for the levels `rest` below this node (`None`: the topic ends
    /// here).
    fn route<F: Fn(SessionId) -> bool>(
        &self,
        rest: Option<&str>,
        ctx: &RouteCtx<'_, F>,
        out: &mut Vec<Route>,
    ) {
        if let Some(leaf) = &self.subs {
            // '#' matches the remaining levels, none included ("a/#" matches "a").
            leaf.multi.collect(ctx, out);
            if rest.is_none() {
                leaf.exact.collect(ctx, out);
            }
        }
        let Some(rest) = rest else { return };
        let (level, rest) = split_level(rest);
        if let Some(child) = self.children.get(level) {
            child.route(rest, ctx, out);
        }
        if let Some(plus) = &self.plus {
            plus.route(rest, ctx, out);
        }
    }

    #[cfg(test)]
    fn count_below(&self) -> usize {
        let children: usize = self.children.values().map(|c| 1 + c.count_below()).sum();
        children + self.plus.as_ref().map_or(0, |p| 1 + p.count_below())
    }
}

/// The subscribers of the filters ending at one node.
#[derive(Debug, Default)]
struct Leaf {
    /// Filters ending at the node.
    exact: Subscribers,
    /// Filters ending at the node followed by `/#`.
    multi: Subscribers,
}

impl Leaf {
    fn list(&self, end: End) -> &Subscribers {
        match end {
            End::Exact => &self.exact,
            End::Multi => &self.multi,
        }
    }

    fn list_mut(&mut self, end: End) -> &mut Subscribers {
        match end {
            End::Exact => &mut self.exact,
            End::Multi => &mut self.multi,
        }
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.multi.is_empty()
    }
}

/// A session's subscription in a list.
type Member = (SessionId, Subscription);

/// The plain subscribers and shared groups of one filter.
#[derive(Debug, Default)]
struct Subscribers {
    /// Plain subscriptions, sorted by session.
    plain: Vec<Member>,
    /// Shared groups, none empty.
    shared: Vec<SharedGroup>,
}

impl Subscribers {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.shared.is_empty()
    }

    fn group(&self, name: &str) -> Option<usize> {
        self.shared.iter().position(|g| &*g.name == name)
    }

    /// Adds or replaces; true when replaced.
    fn upsert(&mut self, group: Option<&str>, session: SessionId, sub: Subscription) -> bool {
        let Some(name) = group else {
            return upsert_member(&mut self.plain, session, sub);
        };
        let i = self.group(name).unwrap_or_else(|| {
            self.shared.push(SharedGroup::new(name));
            self.shared.len() - 1
        });
        upsert_member(&mut self.shared[i].members, session, sub)
    }

    /// Removes; true when it existed. Drops a shared group left without members.
    fn remove(&mut self, group: Option<&str>, session: SessionId) -> bool {
        let Some(name) = group else {
            return remove_member(&mut self.plain, session);
        };
        let Some(i) = self.group(name) else {
            return false;
        };
        let removed = remove_member(&mut self.shared[i].members, session);
        if self.shared[i].members.is_empty() {
            self.shared.swap_remove(i);
            shrink_vec(&mut self.shared);
        }
        removed
    }

    fn get(&self, group: Option<&str>, session: SessionId) -> Option<Subscription> {
        let members = match group {
            None => &self.plain,
            Some(name) => &self.shared[self.group(name)?].members,
        };
        let i = members.binary_search_by_key(&session, |m| m.0).ok()?;
        Some(members[i].1)
    }

    /// Pushes a route per plain subscriber (minus No Local ones) and per shared group.
    fn collect<F: Fn(SessionId) -> bool>(&self, ctx: &RouteCtx<'_, F>, out: &mut Vec<Route>) {
        for &(session, sub) in &self.plain {
            // [MQTT-3.8.3-3]: not back to the publisher when it asked for No Local.
            if sub.options.no_local && ctx.publisher == Some(session) {
                continue;
            }
            out.push(Route::new(session, sub, false));
        }
        for group in &self.shared {
            let (session, sub) = group.pick(ctx.online);
            out.push(Route::new(session, sub, true));
        }
    }
}

/// The members of one share group on one filter.
#[derive(Debug)]
struct SharedGroup {
    name: Box<str>,
    /// Sorted by session; never empty while the group is stored.
    members: Vec<Member>,
    /// The member index to try next (modulo the member count).
    cursor: AtomicUsize,
}

impl SharedGroup {
    fn new(name: &str) -> Self {
        SharedGroup {
            name: name.into(),
            members: Vec::new(),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The next member in turn that is online, or the next in turn when none is.
    fn pick<F: Fn(SessionId) -> bool>(&self, online: &F) -> Member {
        let n = self.members.len();
        if n == 1 {
            return self.members[0];
        }
        let mut picked = 0;
        // `fetch_update` reruns the closure when another router moved the cursor meanwhile,
        // so concurrent routes take distinct turns. The cursor moves past the member picked,
        // so an offline member's turns go round the others instead of all to its successor.
        let _ = self
            .cursor
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cursor| {
                let start = cursor % n;
                picked = (0..n)
                    .map(|k| (start + k) % n)
                    .find(|&i| online(self.members[i].0))
                    .unwrap_or(start);
                Some(picked + 1)
            });
        self.members[picked]
    }
}

/// Inserts or replaces `session`'s entry in a sorted list; true when replaced.
fn upsert_member(list: &mut Vec<Member>, session: SessionId, sub: Subscription) -> bool {
    match list.binary_search_by_key(&session, |m| m.0) {
        Ok(i) => {
            list[i].1 = sub;
            true
        }
        Err(i) => {
            list.insert(i, (session, sub));
            false
        }
    }
}

/// Removes `session`'s entry from a sorted list; true when it was there.
fn remove_member(list: &mut Vec<Member>, session: SessionId) -> bool {
    let Ok(i) = list.binary_search_by_key(&session, |m| m.0) else {
        return false;
    };
    list.remove(i);
    shrink_vec(list);
    true
}

/// Gives back memory of a list left mostly empty, keeping room to grow.
fn shrink_vec<T>(list: &mut Vec<T>) {
    if list.capacity() > SHRINK_RATIO * list.len() {
        list.shrink_to(2 * list.len());
    }
}

/// Gives back memory of a table left mostly empty, keeping room to grow.
fn shrink_map<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > SHRINK_RATIO * map.len() {
        map.shrink_to(2 * map.len());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::mqtt::topic::{matches, parse_filter};

    const MAX_LEVELS: usize = 16;

    fn f(text: &str) -> Filter<'_> {
        parse_filter(text, MAX_LEVELS).expect("valid filter")
    }

    fn sub(qos: QoS, id: Option<u32>) -> Subscription {
        Subscription {
            options: SubscriptionOptions {
                qos,
                ..Default::default()
            },
            id,
        }
    }

    fn s(n: u64) -> SessionId {
        SessionId(n)
    }

    fn route(tree: &SubscriptionTree, topic: &str, publisher: Option<SessionId>) -> Vec<Route> {
        let mut out = Vec::new();
        tree.route(topic, publisher, |_| true, &mut out);
        out
    }

    fn sessions(routes: &[Route]) -> Vec<u64> {
        routes.iter().map(|r| r.session.0).collect()
    }

    #[test]
    fn routes_exact_and_wildcards() {
        let mut tree = SubscriptionTree::new();
        tree.subscribe(
            s(1),
            &f("sport/tennis/player1/#"),
            sub(QoS::AtMostOnce, None),
        );
        tree.subscribe(s(2), &f("sport/+"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(3), &f("sport/tennis/player1"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(4), &f("#"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(5), &f("+/+"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(6), &f("/+"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(7), &f("+"), sub(QoS::AtMostOnce, None));
        assert_eq!(
            sessions(&route(&tree, "sport/tennis/player1", None)),
            [1, 3, 4]
        );
        assert_eq!(
            sessions(&route(&tree, "sport/tennis/player1/score/wimbledon", None)),
            [1, 4]
        );
        assert_eq!(sessions(&route(&tree, "sport", None)), [4, 7]);
        assert_eq!(sessions(&route(&tree, "sport/", None)), [2, 4, 5]);
        assert_eq!(sessions(&route(&tree, "/finance", None)), [4, 5, 6]);
        assert_eq!(tree.len(), 7);
    }

    #[test]
    fn dollar_topics_mqtt_4_7_2_1() {
        let mut tree = SubscriptionTree::new();
        tree.subscribe(s(1), &f("#"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(2), &f("+/monitor/Clients"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(3), &f("$SYS/#"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(4), &f("$SYS/monitor/+"), sub(QoS::AtMostOnce, None));
        assert_eq!(
            sessions(&route(&tree, "$SYS/monitor/Clients", None)),
            [3, 4]
        );
        assert_eq!(sessions(&route(&tree, "x/monitor/Clients", None)), [1, 2]);
    }

    #[test]
    fn overlapping_subscriptions_merge_mqtt_3_3_4_3() {
        // [MQTT-3.3.4-2]/[MQTT-3.3.4-3] (v5): one message at the highest QoS, carrying every
        // matching subscription identifier.
        let mut tree = SubscriptionTree::new();
        tree.subscribe(s(1), &f("a/+"), sub(QoS::AtLeastOnce, Some(5)));
        tree.subscribe(s(1), &f("a/#"), sub(QoS::ExactlyOnce, Some(3)));
        let mut rap = sub(QoS::AtMostOnce, Some(5));
        rap.options.retain_as_published = true;
        tree.subscribe(s(1), &f("#"), rap);
        tree.subscribe(s(2), &f("a/b"), sub(QoS::AtMostOnce, None));
        let routes = route(&tree, "a/b", None);
        assert_eq!(
            routes,
            [
                Route {
                    session: s(1),
                    qos: QoS::ExactlyOnce,
                    retain_as_published: true,
                    subscription_ids: vec![3, 5],
                    shared: false,
                },
                Route {
                    session: s(2),
                    qos: QoS::AtMostOnce,
                    retain_as_published: false,
                    subscription_ids: vec![],
                    shared: false,
                },
            ]
        );
    }

    #[test]
    fn route_clears_out() {
        let mut tree = SubscriptionTree::new();
        tree.subscribe(s(1), &f("a"), sub(QoS::AtMostOnce, None));
        let mut out = route(&tree, "a", None);
        tree.route("b", None, |_| true, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn no_local_mqtt_3_8_3_3() {
        // [MQTT-3.8.3-3]: not forwarded to the publishing connection.
        let mut tree = SubscriptionTree::new();
        let mut nl = sub(QoS::AtLeastOnce, None);
        nl.options.no_local = true;
        tree.subscribe(s(1), &f("a"), nl);
        tree.subscribe(s(2), &f("a"), nl);
        assert_eq!(sessions(&route(&tree, "a", Some(s(1)))), [2]);
        assert_eq!(sessions(&route(&tree, "a", None)), [1, 2]);
        // Another, overlapping subscription without No Local still delivers.
        tree.subscribe(s(1), &f("#"), sub(QoS::AtMostOnce, None));
        let routes = route(&tree, "a", Some(s(1)));
        assert_eq!(sessions(&routes), [1, 2]);
        assert_eq!(routes[0].qos, QoS::AtMostOnce);
    }

    #[test]
    fn shared_round_robin_mqtt_4_8_2() {
        let mut tree = SubscriptionTree::new();
        for n in 1..=3 {
            tree.subscribe(s(n), &f("$share/g/sensors/#"), sub(QoS::AtLeastOnce, None));
        }
        // A plain subscription of a member is a separate route.
        tree.subscribe(s(1), &f("sensors/+"), sub(QoS::AtMostOnce, None));
        let mut counts = BTreeMap::new();
        let mut out = Vec::new();
        for _ in 0..300 {
            tree.route("sensors/t", None, |_| true, &mut out);
            assert_eq!(out.len(), 2);
            assert_eq!((out[0].session, out[0].shared), (s(1), false));
            assert!(out[1].shared);
            assert_eq!(out[1].qos, QoS::AtLeastOnce);
            *counts.entry(out[1].session.0).or_insert(0) += 1;
        }
        assert_eq!(counts, BTreeMap::from([(1, 100), (2, 100), (3, 100)]));
    }

    #[test]
    fn shared_prefers_online_members() {
        let mut tree = SubscriptionTree::new();
        for n in 1..=3 {
            tree.subscribe(s(n), &f("$share/g/a"), sub(QoS::AtMostOnce, None));
        }
        let mut out = Vec::new();
        for _ in 0..10 {
            tree.route("a", None, |sess| sess == s(2), &mut out);
            assert_eq!(sessions(&out), [2]);
        }
        // Two online: they alternate, the offline one gets nothing.
        let mut got = Vec::new();
        for _ in 0..4 {
            tree.route("a", None, |sess| sess != s(2), &mut out);
            got.push(out[0].session.0);
        }
        got.sort_unstable();
        assert_eq!(got, [1, 1, 3, 3]);
        // None online: still delivered, in turn.
        let mut got = Vec::new();
        for _ in 0..3 {
            tree.route("a", None, |_| false, &mut out);
            assert_eq!(out.len(), 1);
            got.push(out[0].session.0);
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
    }

    #[test]
    fn one_route_per_shared_subscription() {
        let mut tree = SubscriptionTree::new();
        tree.subscribe(s(1), &f("$share/g1/a/+"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(1), &f("$share/g2/a/+"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(2), &f("$share/g1/a/#"), sub(QoS::AtMostOnce, Some(9)));
        let routes = route(&tree, "a/b", None);
        assert_eq!(sessions(&routes), [1, 1, 2]);
        assert!(routes.iter().all(|r| r.shared));
        assert_eq!(routes[2].subscription_ids, [9]);
    }

    #[test]
    fn replace_returns_true_mqtt_3_8_4_3() {
        // [MQTT-3.8.4-3]: a SUBSCRIBE with the same filter replaces the subscription.
        let mut tree = SubscriptionTree::new();
        assert!(!tree.subscribe(s(1), &f("a/#"), sub(QoS::AtMostOnce, None)));
        assert!(tree.subscribe(s(1), &f("a/#"), sub(QoS::ExactlyOnce, Some(7))));
        assert!(!tree.subscribe(s(1), &f("$share/g/a/#"), sub(QoS::AtMostOnce, None)));
        assert!(tree.subscribe(s(1), &f("$share/g/a/#"), sub(QoS::AtLeastOnce, None)));
        assert!(!tree.subscribe(s(2), &f("a/#"), sub(QoS::AtMostOnce, None)));
        assert_eq!(tree.len(), 3);
        assert_eq!(
            tree.get(s(1), &f("a/#")),
            Some(sub(QoS::ExactlyOnce, Some(7)))
        );
        assert_eq!(
            tree.session_subscriptions(s(1)),
            [
                ("$share/g/a/#".to_string(), sub(QoS::AtLeastOnce, None)),
                ("a/#".to_string(), sub(QoS::ExactlyOnce, Some(7))),
            ]
        );
    }

    #[test]
    fn unsubscribe_prunes_nodes() {
        let mut tree = SubscriptionTree::new();
        let filters = [
            "a/b/c",
            "a/b/#",
            "a/+/c",
            "#",
            "+",
            "a//b",
            "$share/g/a/b/c",
            "/#",
        ];
        for text in filters {
            tree.subscribe(s(1), &f(text), sub(QoS::AtMostOnce, None));
        }
        tree.subscribe(s(2), &f("$share/g/a/b/c"), sub(QoS::AtMostOnce, None));
        assert!(tree.node_count() > 0);
        assert!(!tree.unsubscribe(s(1), &f("a/b")));
        assert!(!tree.unsubscribe(s(3), &f("a/b/c")));
        assert!(!tree.unsubscribe(s(1), &f("$share/h/a/b/c")));
        for text in filters {
            assert!(tree.unsubscribe(s(1), &f(text)), "{text}");
            assert!(!tree.unsubscribe(s(1), &f(text)), "{text}");
        }
        assert_eq!(tree.len(), 1);
        assert_eq!(sessions(&route(&tree, "a/b/c", None)), [2]);
        assert!(tree.unsubscribe(s(2), &f("$share/g/a/b/c")));
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 0);
        assert!(tree.root.subs.is_none());
    }

    #[test]
    fn remove_session_removes_all_of_it() {
        let mut tree = SubscriptionTree::new();
        for text in ["a/b", "a/#", "$share/g/a/b", "+/b"] {
            tree.subscribe(s(1), &f(text), sub(QoS::AtMostOnce, None));
        }
        tree.subscribe(s(2), &f("a/b"), sub(QoS::AtMostOnce, None));
        tree.subscribe(s(0), &f("x"), sub(QoS::AtMostOnce, None));
        assert_eq!(tree.remove_session(s(1)), 4);
        assert_eq!(tree.remove_session(s(1)), 0);
        assert_eq!(tree.len(), 2);
        assert!(tree.session_subscriptions(s(1)).is_empty());
        assert_eq!(sessions(&route(&tree, "a/b", None)), [2]);
        // Nodes a, a/b and x remain.
        assert_eq!(tree.node_count(), 3);
        tree.remove_session(s(2));
        tree.remove_session(s(0));
        assert_eq!(tree.node_count(), 0);
    }

    #[test]
    fn node_is_small() {
        assert!(std::mem::size_of::<Node>() <= 64);
    }

    /// A random valid filter over a tiny alphabet, possibly shared.
    fn random_filter(rng: &mut StdRng) -> String {
        const LEVELS: [&str; 4] = ["a", "b", "", "+"];
        let n = rng.random_range(0..=3);
        let mut levels: Vec<&str> = (0..n).map(|_| LEVELS[rng.random_range(0..4)]).collect();
        // A lone empty level would be the empty filter, which is invalid.
        if levels.concat().is_empty() && n < 2 || rng.random_bool(0.3) {
            levels.push("#");
        }
        let filter = levels.join("/");
        match rng.random_range(0..6) {
            0 => format!("$share/g/{filter}"),
            1 => format!("$share/h/{filter}"),
            _ => filter,
        }
    }

    fn random_topic(rng: &mut StdRng) -> String {
        const LEVELS: [&str; 4] = ["a", "b", "", "$s"];
        let n = rng.random_range(1..=4);
        let levels: Vec<&str> = (0..n).map(|_| LEVELS[rng.random_range(0..4)]).collect();
        levels.join("/")
    }

    fn random_sub(rng: &mut StdRng) -> Subscription {
        let mut sub = sub(
            QoS::from_u8(rng.random_range(0..3)).expect("qos"),
            rng.random_bool(0.5).then(|| rng.random_range(1..4)),
        );
        sub.options.no_local = rng.random_bool(0.3);
        sub.options.retain_as_published = rng.random_bool(0.3);
        sub
    }

    /// What `route` should give for plain subscriptions, by brute force over `model`.
    fn expected_plain(
        model: &HashMap<(u64, String), Subscription>,
        topic: &str,
        publisher: Option<SessionId>,
    ) -> Vec<Route> {
        let mut merged: BTreeMap<u64, Route> = BTreeMap::new();
        for ((session, text), sub) in model {
            let filter = f(text);
            let skip = sub.options.no_local && publisher == Some(s(*session));
            if filter.share_group.is_some() || skip || !matches(filter.filter, topic) {
                continue;
            }
            let mut route = Route::new(s(*session), *sub, false);
            match merged.get_mut(session) {
                Some(kept) => kept.merge(&mut route),
                None => {
                    merged.insert(*session, route);
                }
            }
        }
        let mut routes: Vec<Route> = merged.into_values().collect();
        for r in &mut routes {
            r.subscription_ids.sort_unstable();
            r.subscription_ids.dedup();
        }
        routes
    }

    /// Checks the shared routes: one per matching (group, filter), each to a member of one.
    fn check_shared(model: &HashMap<(u64, String), Subscription>, topic: &str, got: &[Route]) {
        let mut groups: BTreeMap<(String, String), Vec<(u64, Subscription)>> = BTreeMap::new();
        for ((session, text), sub) in model {
            let filter = f(text);
            if let Some(group) = filter.share_group {
                if matches(filter.filter, topic) {
                    let key = (group.to_string(), filter.filter.to_string());
                    groups.entry(key).or_default().push((*session, *sub));
                }
            }
        }
        assert_eq!(got.len(), groups.len(), "shared routes for {topic}");
        for route in got {
            let member = groups
                .values()
                .flatten()
                .any(|(session, sub)| *route == Route::new(s(*session), *sub, true));
            assert!(member, "{route:?} for {topic}");
        }
    }

    #[test]
    fn route_agrees_with_brute_force_matching() {
        let mut rng = StdRng::seed_from_u64(0x7574_706f_7374);
        let mut tree = SubscriptionTree::new();
        let mut model: HashMap<(u64, String), Subscription> = HashMap::new();
        let mut out = Vec::new();
        // Routes seen, plain and shared: the test is only worth something if both are many.
        let mut seen = [0usize; 2];
        for round in 0..2_000 {
            let session = rng.random_range(0..6);
            let text = random_filter(&mut rng);
            if rng.random_bool(0.7) {
                let sub = random_sub(&mut rng);
                let replaced = model.insert((session, text.clone()), sub).is_some();
                assert_eq!(tree.subscribe(s(session), &f(&text), sub), replaced);
            } else {
                let existed = model.remove(&(session, text.clone())).is_some();
                assert_eq!(tree.unsubscribe(s(session), &f(&text)), existed);
            }
            assert_eq!(tree.len(), model.len());
            if round % 10 != 0 {
                continue;
            }
            for _ in 0..10 {
                let topic = random_topic(&mut rng);
                let publisher = rng.random_bool(0.5).then(|| s(rng.random_range(0..6)));
                tree.route(&topic, publisher, |sess| sess.0 % 2 == 0, &mut out);
                let split = out.iter().position(|r| r.shared).unwrap_or(out.len());
                assert_eq!(out[..split], expected_plain(&model, &topic, publisher));
                check_shared(&model, &topic, &out[split..]);
                seen[0] += split;
                seen[1] += out.len() - split;
            }
        }
        assert!(seen.iter().all(|&n| n > 500), "{seen:?}");
        for session in 0..6 {
            let count = model.keys().filter(|(s, _)| *s == session).count();
            let mut listed: Vec<String> = tree
                .session_subscriptions(s(session))
                .into_iter()
                .map(|(text, sub)| {
                    assert_eq!(model[&(session, text.clone())], sub);
                    text
                })
                .collect();
            assert_eq!(listed.len(), count);
            listed.dedup();
            assert_eq!(listed.len(), count);
            assert_eq!(tree.remove_session(s(session)), count);
        }
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 0);
    }
}
