//! One connection's topic aliases: which log topic (and partition) each `u16` alias stands for.
//!
//! A table starts with the aliases of the device's stored config (a device session) or empty,
//! and `RegisterAlias` adds or replaces entries, up to [`MAX_ALIASES_PER_CONNECTION`] — a peer
//! cannot grow it without bound. It dies with its connection. This module only keeps the
//! table: whether the topic exists and whether the client may publish to it are checked by the
//! connection (see [`super::connection`]).

use std::collections::HashMap;
use std::sync::Arc;

use outpost_firmware::DeviceConfig;

/// Most aliases one connection may define (a config holds at most 16; this leaves room for
/// registered ones).
pub const MAX_ALIASES_PER_CONNECTION: usize = 256;

/// What an alias stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasTarget {
    /// The log topic (shared: a produce on the alias clones it without allocating).
    pub topic: Arc<str>,
    /// The partition; `None`: by key, else round-robin, per produce.
    pub partition: Option<u32>,
}

/// The table is full: a new alias would pass [`MAX_ALIASES_PER_CONNECTION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this connection already defines {MAX_ALIASES_PER_CONNECTION} aliases; replace one")]
pub struct TooManyAliases;

/// A connection's aliases.
#[derive(Debug, Clone, Default)]
pub struct AliasTable {
    map: HashMap<u16, AliasTarget>,
}

impl AliasTable {
    /// The aliases a device's stored config predefines.
    pub fn from_config(config: &DeviceConfig) -> Self {
        let map = config
            .aliases
            .iter()
            .map(|a| {
                let target = AliasTarget {
                    topic: a.topic.as_str().into(),
                    partition: a.partition,
                };
                (a.alias, target)
            })
            .collect();
        Self { map }
    }

    /// Defines or replaces `alias`. Replacing never fails; a new alias fails when the table
    /// is full (and the table is unchanged).
    pub fn register(
        &mut self,
        alias: u16,
        topic: &str,
        partition: Option<u32>,
    ) -> Result<(), TooManyAliases> {
        if !self.map.contains_key(&alias) && self.map.len() >= MAX_ALIASES_PER_CONNECTION {
            return Err(TooManyAliases);
        }
        let target = AliasTarget {
            topic: topic.into(),
            partition,
        };
        self.map.insert(alias, target);
        Ok(())
    }

    /// What `alias` stands for, if it is defined.
    pub fn get(&self, alias: u16) -> Option<&AliasTarget> {
        self.map.get(&alias)
    }

    /// How many aliases are defined.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_firmware::{heapless, AckMode, AliasEntry};

    #[test]
    fn starts_from_the_config_and_is_bounded() {
        let mut aliases = heapless::Vec::new();
        for (alias, topic, partition) in [(1, "temp", None), (7, "hum", Some(2))] {
            let entry = AliasEntry {
                alias,
                topic: heapless::String::try_from(topic).unwrap(),
                partition,
            };
            aliases.push(entry).unwrap();
        }
        let config = DeviceConfig {
            version: 1,
            device_id: heapless::String::try_from("d1").unwrap(),
            gateway: heapless::String::new(),
            sample_interval_ms: 1000,
            batch_size: 1,
            ack: AckMode::None,
            aliases,
        };
        let mut t = AliasTable::from_config(&config);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(7).unwrap().partition, Some(2));
        assert_eq!(&*t.get(1).unwrap().topic, "temp");
        assert!(t.get(2).is_none());
        // Replacing keeps the count.
        t.register(1, "other", Some(0)).unwrap();
        assert_eq!((&*t.get(1).unwrap().topic, t.len()), ("other", 2));
        for a in 100..100 + MAX_ALIASES_PER_CONNECTION as u16 - 2 {
            t.register(a, "t", None).unwrap();
        }
        assert_eq!(t.len(), MAX_ALIASES_PER_CONNECTION);
        assert_eq!(t.register(9, "t", None), Err(TooManyAliases));
        assert!(t.get(9).is_none());
        t.register(7, "t", None).unwrap();
        assert!(!t.is_empty());
    }
}
