//! Kafka topic names. A prefix (empty in production) lets tests and benchmarks
//! run side by side on one broker without seeing each other's events.

/// The topics of one parpulse deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub dossier: String,
    pub budget: String,
    pub staffing: String,
    pub deadletter: String,
}

impl Topics {
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            dossier: format!("{prefix}par.dossier.v1"),
            budget: format!("{prefix}par.budget.v1"),
            staffing: format!("{prefix}par.staffing.v1"),
            deadletter: format!("{prefix}par.deadletter.v1"),
        }
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self::with_prefix("")
    }
}

impl Topics {
    /// The topic events of `kind` go to.
    pub fn for_kind(&self, kind: crate::avro::EventKind) -> &str {
        match kind {
            crate::avro::EventKind::Dossier => &self.dossier,
            crate::avro::EventKind::Budget => &self.budget,
            crate::avro::EventKind::Staffing => &self.staffing,
        }
    }

    /// The kind of events `topic` carries (None: not an event topic of this deployment).
    pub fn kind_of(&self, topic: &str) -> Option<crate::avro::EventKind> {
        use crate::avro::EventKind;
        [EventKind::Dossier, EventKind::Budget, EventKind::Staffing]
            .into_iter()
            .find(|&kind| self.for_kind(kind) == topic)
    }

    /// The event topics (not the dead-letter one).
    pub fn event_topics(&self) -> [&str; 3] {
        [&self.dossier, &self.budget, &self.staffing]
    }
}
