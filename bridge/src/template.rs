//! Upstream topic templates: `{gateway}/{mqtt_topic}` and friends, parsed once per route.

/// A placeholder of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Gateway,
    Topic,
    Partition,
    Key,
    MqttTopic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed upstream topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// The gateway id.
    pub gateway: &'a str,
    /// The log topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: u32,
    /// The record key, if any.
    pub key: Option<&'a [u8]>,
    /// The original MQTT topic (the `mqtt.topic` header), if any.
    pub mqtt_topic: Option<&'a [u8]>,
}

impl Template {
    /// Parses `text`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("`{{` without `}}` in {text:?}"))?;
            let var = match &after[..close] {
                "gateway" => Var::Gateway,
                "topic" => Var::Topic,
                "partition" => Var::Partition,
                "key" => Var::Key,
                "mqtt_topic" => Var::MqttTopic,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}}; use {{gateway}}, {{topic}}, {{partition}}, {{key}} or {{mqtt_topic}}"
                    ))
                }
            };
            parts.push(Part::Var(var));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("`}}` without `{{` in {text:?}"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        if parts.is_empty() {
            return Err("the upstream topic is empty".to_owned());
        }
        for p in &parts {
            if let Part::Text(t) = p {
                if t.contains(['+', '#', '\0']) {
                    return Err(format!(
                        "{text:?} contains a wildcard or NUL: an MQTT topic name cannot"
                    ));
                }
            }
        }
        Ok(Self { parts })
    }

    /// Whether the rendered name depends on the record (`{key}`, `{mqtt_topic}`), not only on
    /// the gateway, the log topic and the partition.
    pub fn uses_record_fields(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(Var::Key | Var::MqttTopic)))
    }

    /// Renders the topic into `out` (cleared first). Values that come from records are made
    /// valid topic-name text: not UTF-8 is replaced lossily, and `+`, `#` and NUL become `_`.
    /// A missing key renders as `_`.
    pub fn render(&self, f: &Fields<'_>, out: &mut String) {
        use std::fmt::Write;
        out.clear();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(Var::Gateway) => push_clean(out, f.gateway.as_bytes()),
                Part::Var(Var::Topic) => push_clean(out, f.topic.as_bytes()),
                Part::Var(Var::Partition) => {
                    let _ = write!(out, "{}", f.partition);
                }
                Part::Var(Var::Key) => push_clean(out, f.key.unwrap_or(b"_")),
                Part::Var(Var::MqttTopic) => {
                    push_clean(out, f.mqtt_topic.unwrap_or(f.topic.as_bytes()))
                }
            }
        }
    }
}

fn push_clean(out: &mut String, bytes: &[u8]) {
    for c in String::from_utf8_lossy(bytes).chars() {
        out.push(if matches!(c, '+' | '#' | '\0') {
            '_'
        } else {
            c
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder() {
        let t = Template::parse("site/{gateway}/{topic}/{partition}/{key}/{mqtt_topic}").unwrap();
        let mut out = String::new();
        t.render(
            &Fields {
                gateway: "gw1",
                topic: "sensors",
                partition: 3,
                key: Some(b"k+1"),
                mqtt_topic: Some(b"a/b"),
            },
            &mut out,
        );
        assert_eq!(out, "site/gw1/sensors/3/k_1/a/b");
        t.render(
            &Fields {
                gateway: "gw1",
                topic: "sensors",
                partition: 0,
                key: None,
                mqtt_topic: None,
            },
            &mut out,
        );
        assert_eq!(out, "site/gw1/sensors/0/_/sensors");
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in ["", "a/{x}", "a/{topic", "a}/b", "a/+/{topic}", "#"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert!(Template::parse("plain/topic").is_ok());
    }
}
