//! What the governor tells besides its page line, its log and its NATS event: the notifier
//! (webhooks, [`crate::notify`]) and the self-watch's progress mark ([`crate::selfwatch`]).
//! Kept in one small value so the governor's code gains one call per place, and tests leave it
//! empty.

use tokio::time::Instant;

use crate::notify::Notifier;
use crate::selfwatch::Mark;

/// The governor's outlets; each is off when `None`.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Posts one document per decision to every `--notify` target.
    pub notify: Option<Notifier>,
    /// Where the governor marks each snapshot it finished with.
    pub progress: Option<Mark>,
}

impl Hooks {
    /// A decision was said (restart, quarantine, ...) or a restart finished: `event` is the
    /// governor's published event (taken as its JSON, so this module depends on no part of the
    /// governor).
    pub fn decided(&self, event: &impl serde::Serialize) {
        if let Some(n) = &self.notify
            && let Ok(v) = serde_json::to_value(event)
        {
            n.heal_event(&v);
        }
    }

    /// The shared-outage brake began (`Some(why)`) or ended (`None`).
    pub fn outage(&self, why: Option<&str>) {
        if let Some(n) = &self.notify {
            n.outage(why);
        }
    }

    /// The governor finished its round on the snapshot built at `built_at`.
    pub fn round_done(&self, built_at: Instant) {
        if let Some(m) = &self.progress {
            m.saw(built_at);
        }
    }
}
