//! How parpulse's topics are created, and how an existing topic that differs is
//! reported (never altered: changing a live topic is the operator's decision).
//! Pure: the admin calls are in `ensure_topics`.

use std::collections::HashMap;

/// Settings of the topics `migrate` creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    /// Partitions of each event topic (the most aggregators a group can use).
    pub partitions: i32,
    /// Copies of each partition: 1 on one local broker, 3 on a production cluster.
    pub replication: i32,
    /// Replicas that must have a write before it is acknowledged (`acks=all`); unset:
    /// the broker's default. With 3 replicas, 2.
    pub min_insync_replicas: Option<i32>,
    /// How long Kafka keeps events.
    pub retention: Retention,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self { partitions: 4, replication: 1, min_insync_replicas: None, retention: Retention::Forever }
    }
}

/// How long a topic keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Never deleted (`retention.ms=-1`): the default while the topics are the only
    /// complete record of every event (docs/OPERATIONS.md, "Retention").
    Forever,
    Millis(i64),
}

impl Retention {
    pub fn millis(self) -> i64 {
        match self {
            Retention::Forever => -1,
            Retention::Millis(ms) => ms,
        }
    }
}

impl std::str::FromStr for Retention {
    type Err = String;

    /// `forever`, or a whole number of days (`400d`), hours (`36h`) or milliseconds (`86400000`).
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("forever") || text == "-1" {
            return Ok(Retention::Forever);
        }
        let (number, unit_ms) = match text.as_bytes().last() {
            Some(b'd') => (&text[..text.len() - 1], 86_400_000),
            Some(b'h') => (&text[..text.len() - 1], 3_600_000),
            _ => (text, 1),
        };
        let count: i64 =
            number.parse().map_err(|_| format!("retention {text:?}: use forever, 400d, 36h or milliseconds"))?;
        match count.checked_mul(unit_ms) {
            Some(ms) if ms > 0 => Ok(Retention::Millis(ms)),
            _ => Err(format!("retention {text:?} must be positive (or forever)")),
        }
    }
}

/// The topic configuration parpulse sets at creation, as (name, value).
pub fn wanted_configs(settings: &TopicSettings, event_topic: bool) -> Vec<(&'static str, String)> {
    let mut configs = vec![("retention.ms", settings.retention.millis().to_string())];
    if let Some(min) = settings.min_insync_replicas {
        configs.push(("min.insync.replicas", min.to_string()));
    }
    if event_topic {
        // The aggregator judges "in the future" against the broker's append time.
        configs.push(("message.timestamp.type", "LogAppendTime".to_owned()));
    }
    configs
}

/// What an existing topic has, as the broker describes it.
#[derive(Debug, Clone, Default)]
pub struct ExistingTopic {
    pub partitions: usize,
    pub replication: usize,
    pub configs: HashMap<String, String>,
}

/// Each way `existing` differs from what parpulse would create, in words.
pub fn differences(
    topic: &str,
    settings: &TopicSettings,
    event_topic: bool,
    partitions: i32,
    existing: &ExistingTopic,
) -> Vec<String> {
    let mut found = Vec::new();
    if existing.partitions != usize::try_from(partitions).unwrap_or(0) {
        found.push(format!("{topic}: {} partitions, parpulse would create {partitions}", existing.partitions));
    }
    if existing.replication != usize::try_from(settings.replication).unwrap_or(0) {
        found.push(format!(
            "{topic}: replication factor {}, configured {} (PARPULSE_TOPIC_REPLICATION)",
            existing.replication, settings.replication
        ));
    }
    for (name, value) in wanted_configs(settings, event_topic) {
        let actual = existing.configs.get(name).map(String::as_str).unwrap_or("unknown");
        if actual != value {
            found.push(format!("{topic}: {name}={actual}, parpulse would set {value}"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_forever_days_hours_and_milliseconds() {
        assert_eq!("forever".parse(), Ok(Retention::Forever));
        assert_eq!("400d".parse(), Ok(Retention::Millis(400 * 86_400_000)));
        assert_eq!("36h".parse(), Ok(Retention::Millis(36 * 3_600_000)));
        assert_eq!("86400000".parse(), Ok(Retention::Millis(86_400_000)));
        assert!("0d".parse::<Retention>().is_err());
        assert!("a year".parse::<Retention>().is_err());
        assert!("9223372036854775807d".parse::<Retention>().is_err(), "overflow is refused, not wrapped");
        assert_eq!(Retention::Forever.millis(), -1);
    }

    #[test]
    fn event_topics_get_the_broker_time_and_every_topic_its_retention() {
        let settings = TopicSettings { min_insync_replicas: Some(2), ..TopicSettings::default() };
        let event = wanted_configs(&settings, true);
        assert!(event.contains(&("message.timestamp.type", "LogAppendTime".to_owned())));
        assert!(event.contains(&("retention.ms", "-1".to_owned())));
        assert!(event.contains(&("min.insync.replicas", "2".to_owned())));
        let dead_letters = wanted_configs(&TopicSettings::default(), false);
        assert_eq!(dead_letters, vec![("retention.ms", "-1".to_owned())]);
    }

    #[test]
    fn an_existing_topic_is_compared_setting_by_setting() {
        let settings = TopicSettings { replication: 3, ..TopicSettings::default() };
        let configs = [("retention.ms", "604800000"), ("message.timestamp.type", "CreateTime")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let existing = ExistingTopic { partitions: 4, replication: 1, configs };
        let found = differences("par.dossier.v1", &settings, true, 4, &existing);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("replication factor 1, configured 3"));
        assert!(found.iter().any(|d| d.contains("retention.ms=604800000, parpulse would set -1")));
        assert!(found.iter().any(|d| d.contains("message.timestamp.type=CreateTime")));
        let same = ExistingTopic {
            partitions: 4,
            replication: 3,
            configs: wanted_configs(&settings, true).into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        };
        assert!(differences("par.dossier.v1", &settings, true, 4, &same).is_empty());
    }
}
