//! The governor's command-line flags (`--heal[=dry-run]`, `--heal-*`), a module of the binary
//! only, so the library stays free of clap. Validation lives in the library
//! ([`sidecar::heal::Config::validate`]), unit-tested there.

use std::time::Duration;

use sidecar::heal::policy::{Mode, Rules};
use sidecar::heal::{Config, ConfigError};

/// Healing: restart frozen containers labelled `healthcheck.heal=true` (see sidecar/HEAL.md).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HealFlags {
    /// Restart frozen containers labelled healthcheck.heal=true; `--heal=dry-run` only says what
    /// it would do. Off by default
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true,
          default_missing_value = "on", value_parser = ["on", "dry-run", "off"])]
    pub(crate) heal: Option<String>,
    /// How long a container must be stale, dead or unhealthy before a restart (label healthcheck.heal.after)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) heal_after: Duration,
    /// First wait between restarts, doubling after each (label healthcheck.heal.backoff)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) heal_backoff: Duration,
    /// Longest wait between restarts (label healthcheck.heal.backoff-max)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub(crate) heal_backoff_max: Duration,
    /// Restarts allowed within --heal-window before quarantine (label healthcheck.heal.budget)
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(crate) heal_budget: u32,
    /// The restart budget's window (label healthcheck.heal.window)
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub(crate) heal_window: Duration,
    /// Healthy this long, a quarantined container is released (label healthcheck.heal.release-after)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) heal_release_after: Duration,
    /// Healthy this long, a container's backoff starts over (label healthcheck.heal.earn-back-after)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) heal_earn_back_after: Duration,
    /// How long a (re)started container's agent may take to write its first record before it is
    /// judged like any other; default: the record's TTL plus --heal-after (label
    /// healthcheck.heal.start-grace)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) heal_start_grace: Option<Duration>,
    /// More than this share of labelled containers bad at once is a shared outage: no restarts
    #[arg(long, value_name = "SHARE", default_value_t = 0.5)]
    pub(crate) heal_outage_share: f64,
    /// Restarts under way at once across the stack, at most
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) heal_max_in_flight: usize,
    /// File the governor saves its history to at every change and reads at start, so that its
    /// backoff and budget survive its own restart (put it on a volume)
    #[arg(long, value_name = "PATH")]
    pub(crate) heal_state: Option<std::path::PathBuf>,
}

impl HealFlags {
    /// The governor's configuration, or `None` when healing is off.
    pub(crate) fn config(&self) -> Result<Option<Config>, ConfigError> {
        let mode = match self.heal.as_deref() {
            None | Some("off") => return Ok(None),
            Some("dry-run") => Mode::DryRun,
            Some(_) => Mode::On,
        };
        let mut cfg = Config::new(mode);
        cfg.defaults = Rules {
            heal_after: self.heal_after,
            backoff: self.heal_backoff,
            backoff_max: self.heal_backoff_max,
            budget: self.heal_budget,
            window: self.heal_window,
            release_after: self.heal_release_after,
            earn_back_after: self.heal_earn_back_after,
            start_grace: self.heal_start_grace,
        };
        cfg.policy.outage_share = self.heal_outage_share;
        cfg.policy.max_in_flight = self.heal_max_in_flight;
        cfg.state_file = self.heal_state.clone();
        cfg.validate()?;
        Ok(Some(cfg))
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use sidecar::heal::labels::SETTINGS;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        heal: HealFlags,
    }

    /// Every flag of `sidecar::heal::labels::SETTINGS` exists with that default, and its help
    /// names the label that overrides it (the one definition the docs are tested against).
    #[test]
    fn flags_follow_the_settings_definition() {
        let cmd = Cli::command();
        for s in SETTINGS {
            let name = s.flags[0]
                .trim_start_matches("--")
                .split([' ', '='])
                .next()
                .unwrap();
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(name))
                .unwrap_or_else(|| panic!("no flag --{name}"));
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            if let (Some(label), None) = (s.label, s.label_value) {
                assert!(
                    help.contains(label),
                    "--{name}'s help does not name {label}: {help}"
                );
            }
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            match name {
                "heal" | "heal-state" => assert!(defaults.is_empty(), "--{name}: {defaults:?}"),
                _ => assert_eq!(defaults, [s.default], "--{name}"),
            }
        }
        let settings: Vec<&str> = SETTINGS.iter().map(|s| s.flags[0]).collect();
        for a in cmd.get_arguments().filter_map(|a| a.get_long()) {
            if a.starts_with("heal") {
                assert!(
                    settings
                        .iter()
                        .any(|s| s.trim_start_matches("--").starts_with(a)),
                    "--{a} is not in heal::labels::SETTINGS"
                );
            }
        }
    }
}
