//! Topic names and topic filters: validation and matching (MQTT 3.1.1 section 4.7, MQTT 5
//! sections 4.7 and 4.8).
//!
//! Owns the rules for what a PUBLISH topic name and a SUBSCRIBE topic filter may look like,
//! the `$share/GROUP/FILTER` syntax of MQTT 5 shared subscriptions, and matching one filter
//! against one name. It does not store subscriptions or route messages (that is
//! [`super::subscriptions`]) and does not check UTF-8 or U+0000 (the codec did, [MQTT-1.5.4-1],
//! [MQTT-1.5.4-2]).
//!
//! Levels are the pieces between `/` separators; empty levels are real levels, so `a//b` has
//! three levels and `/a` two (the first empty). Nothing here allocates.

use std::fmt;

/// The multi-level wildcard, `#`.
const MULTI: char = '#';
/// The single-level wildcard, `+`.
const SINGLE: char = '+';
/// The level separator.
const SEPARATOR: char = '/';
/// The prefix of a shared subscription filter (MQTT 5 section 4.8.2).
const SHARE_PREFIX: &str = "$share/";

/// Why a topic name or filter is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name or filter is empty ([MQTT-4.7.3-1]).
    #[error("topic name or filter is empty")]
    Empty,
    /// A topic name contains `+` or `#` ([MQTT-3.3.2-2], [MQTT-4.7.1-1]).
    #[error("topic name contains a wildcard character")]
    WildcardInName,
    /// `#` is not alone in the last level of a filter ([MQTT-4.7.1-2]).
    #[error("'#' must be the whole last level of a topic filter")]
    BadMultiLevel,
    /// `+` is not alone in its level of a filter ([MQTT-4.7.1-3]).
    #[error("'+' must occupy a whole level of a topic filter")]
    BadSingleLevel,
    /// More levels than the configured limit.
    #[error("topic has {levels} levels, more than the limit of {max}")]
    TooManyLevels {
        /// Levels in the rejected name or filter.
        levels: usize,
        /// The configured limit.
        max: usize,
    },
    /// A `$share/` filter with an empty group, a group holding `+` or `#`, or no filter after
    /// the group ([MQTT-4.8.2-1], [MQTT-4.8.2-2]).
    #[error("shared subscription needs $share/GROUP/FILTER with a non-empty group free of '+', '#' and '/', and a non-empty filter")]
    BadShare,
}

/// Checks a topic name a PUBLISH (or a will) may use: non-empty [MQTT-4.7.3-1], free of `+`
/// and `#` [MQTT-3.3.2-2] / [MQTT-4.7.1-1], with at most `max_levels` levels.
pub fn validate_name(name: &str, max_levels: usize) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if has_wildcard(name) {
        return Err(TopicError::WildcardInName);
    }
    check_levels(name, max_levels)
}

/// A parsed subscription filter, borrowing the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter<'a> {
    /// The share group of a `$share/GROUP/FILTER` subscription; `None` for a plain one.
    pub share_group: Option<&'a str>,
    /// The filter without the `$share/GROUP/` prefix.
    pub filter: &'a str,
}

impl<'a> Filter<'a> {
    /// A plain (non-shared) filter, unchecked: use [`parse_filter`] for text from a peer.
    pub fn plain(filter: &'a str) -> Self {
        Filter {
            share_group: None,
            filter,
        }
    }
}

/// Writes the full filter text as a client sent it, `$share/GROUP/` prefix included.
impl fmt::Display for Filter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.share_group {
            Some(group) => write!(f, "{SHARE_PREFIX}{group}/{}", self.filter),
            None => f.write_str(self.filter),
        }
    }
}

/// Checks a subscription filter and splits off a `$share/GROUP/` prefix.
///
/// A filter is non-empty [MQTT-4.7.3-1]; `#` appears only as the whole last level
/// [MQTT-4.7.1-2]; `+` only as a whole level [MQTT-4.7.1-3]. A shared filter
/// `$share/GROUP/FILTER` (MQTT 5 section 4.8.2) has a non-empty GROUP without `+`, `#` or `/`
/// [MQTT-4.8.2-1], [MQTT-4.8.2-2] and a non-empty, valid FILTER. `max_levels` applies to
/// FILTER, not to the prefix. The `$share` form is recognised at every protocol level, as
/// brokers commonly do for 3.1.1 clients.
pub fn parse_filter(filter: &str, max_levels: usize) -> Result<Filter<'_>, TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let Some(rest) = filter.strip_prefix(SHARE_PREFIX) else {
        check_filter(filter, max_levels)?;
        return Ok(Filter::plain(filter));
    };
    // The group ends at the first '/', so it cannot contain one.
    let (group, inner) = rest.split_once(SEPARATOR).ok_or(TopicError::BadShare)?;
    if group.is_empty() || has_wildcard(group) || inner.is_empty() {
        return Err(TopicError::BadShare);
    }
    check_filter(inner, max_levels)?;
    Ok(Filter {
        share_group: Some(group),
        filter: inner,
    })
}

/// Checks the wildcard placement and level count of a non-empty filter without prefix.
fn check_filter(filter: &str, max_levels: usize) -> Result<(), TopicError> {
    let mut levels = filter.split(SEPARATOR).peekable();
    while let Some(level) = levels.next() {
        if level.contains(MULTI) && (level.len() != 1 || levels.peek().is_some()) {
            return Err(TopicError::BadMultiLevel);
        }
        if level.contains(SINGLE) && level.len() != 1 {
            return Err(TopicError::BadSingleLevel);
        }
    }
    check_levels(filter, max_levels)
}

/// Rejects text with more than `max` levels.
fn check_levels(text: &str, max: usize) -> Result<(), TopicError> {
    let levels = text.bytes().filter(|&b| b == SEPARATOR as u8).count() + 1;
    if levels > max {
        return Err(TopicError::TooManyLevels { levels, max });
    }
    Ok(())
}

/// True when topic name `name` matches `filter`, a valid filter without `$share/` prefix.
///
/// Levels are compared one by one; empty levels are real levels (`a//b`). `+` matches exactly
/// one level, an empty one included; `#` matches any number of remaining levels, zero
/// included, so `a/#` matches `a` (MQTT 5 section 4.7.1.2). A filter starting with a wildcard
/// does not match a name starting with `$` [MQTT-4.7.2-1].
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && filter.starts_with([SINGLE, MULTI]) {
        return false;
    }
    // A byte walk rather than two `split` iterators: several times faster (bench
    // `mqtt_matches`), which counts when retained messages are matched by scanning. '/', '+'
    // and '#' are ASCII, so byte positions never fall inside a UTF-8 sequence.
    let (f, n) = (filter.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    loop {
        // Here `i` and `j` start a level of the filter and of the name. A wildcard counts only
        // as a whole level, so an invalid filter degrades to literal text, never a panic.
        let whole = matches!(f.get(i + 1), None | Some(b'/'));
        if whole && f.get(i) == Some(&(MULTI as u8)) {
            return true;
        }
        if whole && f.get(i) == Some(&(SINGLE as u8)) {
            i += 1;
            j = level_end(n, j);
        } else {
            while i < f.len() && j < n.len() && f[i] == n[j] && f[i] != SEPARATOR as u8 {
                i += 1;
                j += 1;
            }
            if i != level_end(f, i) || j != level_end(n, j) {
                return false;
            }
        }
        match (i == f.len(), j == n.len()) {
            (true, true) => return true,
            (true, false) => return false,
            // More filter levels: only a final "/#" matches nothing more ("a/#" matches "a").
            (false, true) => return f[i..] == *b"/#",
            (false, false) => {
                i += 1;
                j += 1;
            }
        }
    }
}

/// The index of the separator ending the level that contains `at`, or the length.
fn level_end(text: &[u8], at: usize) -> usize {
    text[at..]
        .iter()
        .position(|&b| b == SEPARATOR as u8)
        .map_or(text.len(), |p| at + p)
}

/// True when `filter` contains `+` or `#`; for a valid filter, when it has a wildcard level.
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains([SINGLE, MULTI])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generous level limit for tests that are not about it.
    const MAX: usize = 32;

    /// The matching rules stated level by level, as the spec does: the oracle for
    /// [`matches`].
    fn matches_by_levels(filter: &str, name: &str) -> bool {
        if name.starts_with('$') && filter.starts_with(['+', '#']) {
            return false;
        }
        let mut filter_levels = filter.split('/');
        let mut name_levels = name.split('/');
        loop {
            match (filter_levels.next(), name_levels.next()) {
                (Some("#"), _) | (None, None) => return true,
                (Some("+"), Some(_)) => {}
                (Some(f), Some(n)) if f == n => {}
                _ => return false,
            }
        }
    }

    #[test]
    fn matches_agrees_with_level_rules() {
        // Every filter and name of up to three levels over a tiny alphabet.
        fn texts(alphabet: &[&str]) -> Vec<String> {
            let mut all: Vec<String> = alphabet.iter().map(|l| l.to_string()).collect();
            for _ in 0..2 {
                let longer: Vec<String> = all
                    .iter()
                    .flat_map(|t| alphabet.iter().map(move |l| format!("{t}/{l}")))
                    .collect();
                all.extend(longer);
            }
            all
        }
        let names: Vec<String> = texts(&["a", "ab", "", "$s"])
            .into_iter()
            .filter(|n| validate_name(n, MAX).is_ok())
            .collect();
        let filters: Vec<String> = texts(&["a", "ab", "", "+", "#", "$s"])
            .into_iter()
            .filter(|f| parse_filter(f, MAX).is_ok())
            .collect();
        for filter in &filters {
            for name in &names {
                assert_eq!(
                    matches(filter, name),
                    matches_by_levels(filter, name),
                    "{filter} / {name}"
                );
            }
        }
    }

    #[test]
    fn invalid_filters_match_as_literals() {
        // Not a contract, but no panic and no wildcard meaning for a misplaced '+' or '#'.
        assert!(!matches("+a/b", "x/b"));
        assert!(!matches("a#", "a"));
        assert!(!matches("a/#b", "a/x"));
        assert!(matches("", ""));
    }

    #[test]
    fn spec_multi_level_examples() {
        // MQTT 5 section 4.7.1.2 / 3.1.1 section 4.7.1.2 non-normative examples.
        for name in [
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
        ] {
            assert!(matches("sport/tennis/player1/#", name), "{name}");
        }
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "sport/tennis"));
        assert!(!matches("sport/tennis/player1/#", "sport/tennis/player2"));
    }

    #[test]
    fn spec_single_level_examples() {
        // Section 4.7.1.3 non-normative examples.
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(matches("sport/tennis/+", "sport/tennis/player2"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("+/tennis/#", "sport/tennis/player1"));
    }

    #[test]
    fn empty_levels_are_levels() {
        assert!(matches("a//b", "a//b"));
        assert!(!matches("a/b", "a//b"));
        assert!(matches("a/+/b", "a//b"));
        assert!(matches("a/#", "a/"));
        assert!(!matches("a", "a/"));
        assert!(matches("/", "/"));
    }

    #[test]
    fn dollar_topics_mqtt_4_7_2_1() {
        // [MQTT-4.7.2-1]: wildcards in the first level do not match '$' topics.
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
        // Only the first level is special.
        assert!(matches("a/+", "a/$b"));
    }

    #[test]
    fn names_mqtt_4_7_3_1_and_3_3_2_2() {
        assert_eq!(validate_name("", MAX), Err(TopicError::Empty));
        assert_eq!(validate_name("a/+", MAX), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("a/#", MAX), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("a#", MAX), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("/", MAX), Ok(()));
        assert_eq!(validate_name("$SYS/x", MAX), Ok(()));
        assert_eq!(
            validate_name("a/b/c", 2),
            Err(TopicError::TooManyLevels { levels: 3, max: 2 })
        );
        assert_eq!(validate_name("a/b", 2), Ok(()));
    }

    #[test]
    fn invalid_filters_mqtt_4_7_1_2_and_4_7_1_3() {
        assert_eq!(parse_filter("", MAX), Err(TopicError::Empty));
        // [MQTT-4.7.1-2]
        assert_eq!(
            parse_filter("sport/tennis#", MAX),
            Err(TopicError::BadMultiLevel)
        );
        assert_eq!(
            parse_filter("sport/tennis/#/ranking", MAX),
            Err(TopicError::BadMultiLevel)
        );
        assert_eq!(parse_filter("##", MAX), Err(TopicError::BadMultiLevel));
        // [MQTT-4.7.1-3]
        assert_eq!(parse_filter("sport+", MAX), Err(TopicError::BadSingleLevel));
        assert_eq!(parse_filter("a/++", MAX), Err(TopicError::BadSingleLevel));
        assert_eq!(
            parse_filter("a/b/c", 2),
            Err(TopicError::TooManyLevels { levels: 3, max: 2 })
        );
    }

    #[test]
    fn valid_filters() {
        for f in [
            "#",
            "+",
            "/",
            "+/+",
            "/+",
            "a//b",
            "sport/+/player1",
            "+/#",
            "$SYS/#",
        ] {
            assert_eq!(parse_filter(f, MAX), Ok(Filter::plain(f)), "{f}");
        }
        assert!(!has_wildcard("a/b"));
        assert!(has_wildcard("a/+"));
        assert!(has_wildcard("#"));
    }

    #[test]
    fn shared_filters_mqtt_4_8_2_1_and_4_8_2_2() {
        let f = parse_filter("$share/g1/sport/#", MAX).unwrap();
        assert_eq!(f.share_group, Some("g1"));
        assert_eq!(f.filter, "sport/#");
        assert_eq!(f.to_string(), "$share/g1/sport/#");
        // The level limit applies to the inner filter.
        assert!(parse_filter("$share/g/a/b", 2).is_ok());
        // [MQTT-4.8.2-1]: a non-empty group.
        assert_eq!(parse_filter("$share//a", MAX), Err(TopicError::BadShare));
        // A filter must follow the group.
        assert_eq!(parse_filter("$share/g", MAX), Err(TopicError::BadShare));
        assert_eq!(parse_filter("$share/g/", MAX), Err(TopicError::BadShare));
        assert_eq!(parse_filter("$share/", MAX), Err(TopicError::BadShare));
        // [MQTT-4.8.2-2]: no wildcards in the group.
        assert_eq!(parse_filter("$share/g+/a", MAX), Err(TopicError::BadShare));
        assert_eq!(parse_filter("$share/#/a", MAX), Err(TopicError::BadShare));
        // The inner filter follows the usual rules.
        assert_eq!(
            parse_filter("$share/g/a#", MAX),
            Err(TopicError::BadMultiLevel)
        );
        // "$share" without the slash is an ordinary filter.
        assert_eq!(parse_filter("$share", MAX), Ok(Filter::plain("$share")));
        assert_eq!(Filter::plain("a/+").to_string(), "a/+");
    }
}
