//! Ingest rules: where an accepted MQTT message goes in the log, and how it is encoded there.
//!
//! Rules (`[[mqtt.ingest]]`) are tried in order; the first whose filter matches the MQTT topic
//! decides. With no match, the default applies (DESIGN.md): log topic = the first MQTT topic
//! level, key = the whole MQTT topic. A log topic template may use `{N}` for MQTT topic level N
//! (1-based); characters a log topic cannot have (Kafka's rules: `[a-zA-Z0-9._-]`) become
//! `_`, an empty result becomes `_`, and `.`/`..` become `_`/`__`.
//!
//! The record: key as the rule says, value = the payload, timestamp = when the broker accepted
//! the message, headers = `mqtt.topic`, `mqtt.qos` (`0`/`1`/`2`), `mqtt.retain` (`1`, only when
//! set), and for v5 messages `mqtt.content_type`, `mqtt.response_topic`,
//! `mqtt.correlation_data`, `mqtt.payload_format` when present, then every user property as a
//! header of its own name and value, in order.

use std::borrow::Cow;

use crate::config::{IngestRule, MqttConfig};
use crate::log::batch::{BatchBuilder, BatchError, Push};
use crate::log::PendingRecords;
use crate::mqtt::message::Message;
use crate::mqtt::topic;

/// Header holding the MQTT topic.
pub const HEADER_TOPIC: &str = "mqtt.topic";
/// Header holding the QoS the message was published with.
pub const HEADER_QOS: &str = "mqtt.qos";
/// Header present (value `1`) when the message was published retained.
pub const HEADER_RETAIN: &str = "mqtt.retain";
/// Header holding the v5 Content Type.
pub const HEADER_CONTENT_TYPE: &str = "mqtt.content_type";
/// Header holding the v5 Response Topic.
pub const HEADER_RESPONSE_TOPIC: &str = "mqtt.response_topic";
/// Header holding the v5 Correlation Data.
pub const HEADER_CORRELATION_DATA: &str = "mqtt.correlation_data";
/// Header holding the v5 Payload Format Indicator (`0` or `1`).
pub const HEADER_PAYLOAD_FORMAT: &str = "mqtt.payload_format";

/// Why the ingest rules cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A rule's filter is not a valid MQTT topic filter.
    #[error("mqtt.ingest rule {index}: filter `{filter}` is not a valid MQTT topic filter ({reason}); fix: use levels separated by `/`, `+` for one level, `#` last")]
    Filter {
        /// Rule number (1-based).
        index: usize,
        /// The filter.
        filter: String,
        /// What is wrong.
        reason: String,
    },
    /// A rule's log topic template is not usable.
    #[error("mqtt.ingest rule {index}: log_topic `{template}` is not valid; fix: use a name of [a-zA-Z0-9._-] and `{{N}}` level placeholders (N ≥ 1)")]
    Template {
        /// Rule number (1-based).
        index: usize,
        /// The template.
        template: String,
    },
    /// A rule's key is not one of the known forms.
    #[error("mqtt.ingest rule {index}: key `{key}` is not valid; fix: use \"topic\", \"none\" or \"level:N\" (N ≥ 1)")]
    Key {
        /// Rule number (1-based).
        index: usize,
        /// The key setting.
        key: String,
    },
}

/// Where the record key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySource {
    Topic,
    None,
    Level(usize),
}

/// One piece of a log topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Level(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    filter: String,
    store: bool,
    template: Vec<Part>,
    key: KeySource,
}

/// Where one message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination<'t> {
    /// Not stored (a `store = false` rule).
    Skip,
    /// Stored in `topic`, with `key`.
    Log {
        /// Log topic.
        topic: Cow<'t, str>,
        /// Record key.
        key: Option<&'t [u8]>,
    },
}

/// The compiled ingest rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingest {
    rules: Vec<Rule>,
    default: Rule,
}

impl Ingest {
    /// Compiles the rules of `[mqtt]`.
    pub fn from_config(config: &MqttConfig) -> Result<Self, RuleError> {
        let rules = config
            .ingest
            .iter()
            .enumerate()
            .map(|(i, r)| compile(i + 1, r, config.max_topic_levels as usize))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            default: Rule {
                filter: "#".to_owned(),
                store: true,
                template: vec![Part::Level(1)],
                key: KeySource::Topic,
            },
        })
    }

    /// Where a message on `mqtt_topic` goes.
    pub fn destination<'t>(&self, mqtt_topic: &'t str) -> Destination<'t> {
        let rule = self
            .rules
            .iter()
            .find(|r| topic::matches(&r.filter, mqtt_topic))
            .unwrap_or(&self.default);
        if !rule.store {
            return Destination::Skip;
        }
        let key = match rule.key {
            KeySource::Topic => Some(mqtt_topic.as_bytes()),
            KeySource::None => None,
            KeySource::Level(n) => level(mqtt_topic, n).map(str::as_bytes),
        };
        Destination::Log {
            topic: render(&rule.template, mqtt_topic),
            key,
        }
    }
}

fn compile(index: usize, rule: &IngestRule, max_levels: usize) -> Result<Rule, RuleError> {
    topic::parse_filter(&rule.filter, max_levels)
        .ok()
        .filter(|f| f.share_group.is_none())
        .ok_or_else(|| RuleError::Filter {
            index,
            filter: rule.filter.clone(),
            reason: topic::parse_filter(&rule.filter, max_levels)
                .err()
                .map_or_else(
                    || "a shared subscription is not a filter here".to_owned(),
                    |e| e.to_string(),
                ),
        })?;
    let template = parse_template(&rule.log_topic).ok_or_else(|| RuleError::Template {
        index,
        template: rule.log_topic.clone(),
    })?;
    let key = match rule.key.as_str() {
        "topic" => KeySource::Topic,
        "none" => KeySource::None,
        other => other
            .strip_prefix("level:")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n >= 1)
            .map(KeySource::Level)
            .ok_or_else(|| RuleError::Key {
                index,
                key: rule.key.clone(),
            })?,
    };
    Ok(Rule {
        filter: rule.filter.clone(),
        store: rule.store,
        template,
        key,
    })
}

/// Parses `name{N}name...`; literals must already be legal log-topic characters.
fn parse_template(t: &str) -> Option<Vec<Part>> {
    let mut parts = Vec::new();
    let mut rest = t;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let end = after.find('}')?;
            let n: usize = after[..end].parse().ok().filter(|&n| n >= 1)?;
            parts.push(Part::Level(n));
            rest = &after[end + 1..];
        } else {
            let end = rest.find('{').unwrap_or(rest.len());
            let lit = &rest[..end];
            if !lit.chars().all(legal) {
                return None;
            }
            parts.push(Part::Literal(lit.to_owned()));
            rest = &rest[end..];
        }
    }
    // A template of only literals must be a valid name by itself.
    let literal_only = parts.iter().all(|p| matches!(p, Part::Literal(_)));
    if parts.is_empty() || (literal_only && crate::log::validate_topic_name(t).is_err()) {
        return None;
    }
    Some(parts)
}

fn legal(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Level `n` (1-based) of a topic.
fn level(topic: &str, n: usize) -> Option<&str> {
    topic.split('/').nth(n - 1)
}

fn render<'t>(template: &[Part], mqtt_topic: &'t str) -> Cow<'t, str> {
    // The common case, one level used as is, borrows.
    if let [Part::Level(n)] = template {
        let lvl = level(mqtt_topic, *n).unwrap_or("");
        if !lvl.is_empty()
            && lvl.len() <= crate::log::MAX_TOPIC_NAME_LEN
            && lvl != "."
            && lvl != ".."
            && lvl.chars().all(legal)
        {
            return Cow::Borrowed(lvl);
        }
    }
    let mut out = String::new();
    for part in template {
        match part {
            Part::Literal(s) => out.push_str(s),
            Part::Level(n) => {
                for c in level(mqtt_topic, *n).unwrap_or("").chars() {
                    out.push(if legal(c) { c } else { '_' });
                }
            }
        }
    }
    if out.is_empty() || out == "." || out == ".." {
        out = "_".repeat(out.len().max(1));
    }
    if out.len() > crate::log::MAX_TOPIC_NAME_LEN {
        let mut cut = crate::log::MAX_TOPIC_NAME_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    Cow::Owned(out)
}

/// Adds `msg` as one record to `builder`; when the builder's batch is full it is finished
/// into `records` first.
pub fn push_record(
    msg: &Message,
    key: Option<&[u8]>,
    builder: &mut BatchBuilder,
    records: &mut PendingRecords,
) -> Result<(), BatchError> {
    const QOS: [&[u8]; 3] = [b"0", b"1", b"2"];
    let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::with_capacity(4);
    headers.push((HEADER_TOPIC, Some(msg.topic.as_bytes())));
    headers.push((HEADER_QOS, Some(QOS[msg.qos as usize])));
    if msg.retain {
        headers.push((HEADER_RETAIN, Some(b"1")));
    }
    let format;
    if let Some(p) = &msg.props {
        if let Some(ct) = &p.content_type {
            headers.push((HEADER_CONTENT_TYPE, Some(ct.as_bytes())));
        }
        if let Some(rt) = &p.response_topic {
            headers.push((HEADER_RESPONSE_TOPIC, Some(rt.as_bytes())));
        }
        if let Some(cd) = &p.correlation_data {
            headers.push((HEADER_CORRELATION_DATA, Some(cd)));
        }
        if let Some(f) = p.payload_format {
            format = [b'0' + f.min(9)];
            headers.push((HEADER_PAYLOAD_FORMAT, Some(&format)));
        }
        for (k, v) in p.user_properties().iter() {
            headers.push((k, Some(v.as_bytes())));
        }
    }
    let ts = i64::try_from(msg.received_ms).unwrap_or(i64::MAX);
    if builder.push(ts, key, Some(&msg.payload), &headers)? == Push::Full {
        builder.finish_into(&mut records.batches);
        // An empty builder takes any record up to MAX_BATCH_BYTES (64 MiB, far above any
        // accepted packet), even past max_batch_bytes.
        if builder.push(ts, key, Some(&msg.payload), &headers)? == Push::Full {
            return Err(BatchError::RecordCountMismatch);
        }
    }
    records.records += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml: &str) -> Ingest {
        // Config::from_toml already compiles the rules; this compiles them again to inspect.
        let config = crate::config::Config::from_toml(toml).unwrap();
        Ingest::from_config(&config.mqtt).unwrap()
    }

    fn dest(i: &Ingest, t: &str) -> Option<(String, Option<String>)> {
        match i.destination(t) {
            Destination::Skip => None,
            Destination::Log { topic, key } => Some((
                topic.into_owned(),
                key.map(|k| String::from_utf8(k.to_vec()).unwrap()),
            )),
        }
    }

    #[test]
    fn default_is_first_level_keyed_by_topic() {
        let i = rules("");
        assert_eq!(
            dest(&i, "sensors/a/temp"),
            Some(("sensors".into(), Some("sensors/a/temp".into())))
        );
        assert!(matches!(
            i.destination("sensors/a"),
            Destination::Log {
                topic: Cow::Borrowed(_),
                ..
            }
        ));
        // Illegal characters become `_`; an empty first level becomes `_`.
        assert_eq!(dest(&i, "my home/x").unwrap().0, "my_home");
        assert_eq!(dest(&i, "/x").unwrap().0, "_");
        assert_eq!(dest(&i, "../x").unwrap().0, "__");
        assert_eq!(dest(&i, "$dev/x").unwrap().0, "_dev");
        assert_eq!(dest(&i, "température").unwrap().0, "temp_rature");
    }

    #[test]
    fn first_matching_rule_wins() {
        let i = rules(
            r#"
[[mqtt.ingest]]
filter = "debug/#"
store = false
[[mqtt.ingest]]
filter = "sensors/+/temperature"
log_topic = "temp-{2}"
key = "level:2"
[[mqtt.ingest]]
filter = "sensors/#"
log_topic = "all"
key = "none"
"#,
        );
        assert_eq!(dest(&i, "debug/x"), None);
        assert_eq!(
            dest(&i, "sensors/k1/temperature"),
            Some(("temp-k1".into(), Some("k1".into())))
        );
        assert_eq!(dest(&i, "sensors/k1/humidity"), Some(("all".into(), None)));
        assert_eq!(dest(&i, "other/y").unwrap().0, "other");
    }

    #[test]
    fn bad_rules_are_named() {
        // Parsed without validation: validation would refuse these rules already.
        let config = |rule: &str| -> crate::config::Config {
            toml::from_str(&format!("[[mqtt.ingest]]\n{rule}\n")).unwrap()
        };
        for (rule, needle) in [
            ("filter = \"a/#/b\"", "filter"),
            ("filter = \"a\"\nlog_topic = \"a b\"", "log_topic"),
            ("filter = \"a\"\nlog_topic = \"{0}\"", "log_topic"),
            ("filter = \"a\"\nlog_topic = \"{1\"", "log_topic"),
            ("filter = \"a\"\nkey = \"level:0\"", "key"),
            ("filter = \"a\"\nkey = \"whatever\"", "key"),
        ] {
            let err = Ingest::from_config(&config(rule).mqtt).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(needle) && text.contains("fix"),
                "{rule}: {text}"
            );
        }
    }
}
