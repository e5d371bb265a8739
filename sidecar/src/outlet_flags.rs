//! The outlets' command-line flags (`--notify*`, `--history-*`, `--self-signal`), a module of the
//! binary only, so the library stays free of clap. See sidecar/HEAL.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sidecar::notify::Target;
use sidecar::outlets::Outlets;
use sidecar::timeline::Settings;

/// The variable naming a file of notification URLs (the `*_FILE` form: URLs with tokens stay
/// out of argv and `docker inspect`).
pub(crate) const NOTIFY_FILE_VAR: &str = "HEALTHCHECK_SIDECAR_NOTIFY_FILE";

/// Notifications, history and the sidecar's own ready signal.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct OutletFlags {
    /// POST one JSON document per heal decision to URL (repeatable). A URL holding a token
    /// belongs in --notify-file: argv is visible in `ps` and `docker inspect`
    #[arg(long = "notify", value_name = "URL")]
    pub(crate) notify: Vec<String>,
    /// Read notification URLs from PATH, one per line, never printed (repeatable; also
    /// HEALTHCHECK_SIDECAR_NOTIFY_FILE)
    #[arg(long = "notify-file", value_name = "PATH")]
    pub(crate) notify_file: Vec<PathBuf>,
    /// How far back the history of every replica and container reaches
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub(crate) history_window: Duration,
    /// File the history is saved to every 30 s and read at start; default: history.json beside
    /// --heal-state, else none (the history starts empty at each start)
    #[arg(long, value_name = "PATH")]
    pub(crate) history_file: Option<PathBuf>,
    /// Keep no history (no uptime bars, /api/history or advice)
    #[arg(long, conflicts_with = "history_file")]
    pub(crate) no_history: bool,
    /// Publish the sidecar's own ready signal (agent healthcheck-sidecar) to the agents' store,
    /// refreshed only while its writer, sources and governor progress: a stuck sidecar turns
    /// stale (its HEALTHCHECK: ready://healthcheck-sidecar?replica=self&store=file&state=any)
    #[arg(long)]
    pub(crate) self_signal: bool,
    /// Machine CPU of one Docker health check, for the advice's cost line (measured: 79 ms,
    /// BENCHMARKS.md)
    #[arg(long, value_name = "DURATION", default_value = "79ms", value_parser = humantime::parse_duration)]
    pub(crate) check_cost: Duration,
}

impl OutletFlags {
    /// The validated settings; `heal_state` is `--heal-state` (the history's default home).
    pub(crate) fn outlets(
        &self,
        heal_state: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Outlets> {
        let mut notify = Vec::new();
        for (i, url) in self.notify.iter().enumerate() {
            notify.push(Target::parse(url, &format!("--notify #{}", i + 1))?);
        }
        let mut files = self.notify_file.clone();
        if let Some(f) = env(NOTIFY_FILE_VAR).filter(|f| !f.is_empty()) {
            files.push(PathBuf::from(f));
        }
        for f in &files {
            notify.extend(Target::read_file(f).context("--notify-file")?);
        }
        if self.history_window.is_zero() {
            anyhow::bail!("--history-window: must be more than zero");
        }
        let file = self
            .history_file
            .clone()
            .or_else(|| heal_state.map(|p| p.with_file_name("history.json")));
        Ok(Outlets {
            notify,
            history: (!self.no_history).then_some(Settings {
                window: self.history_window,
                file,
            }),
            self_signal: self.self_signal,
            check_cost: self.check_cost,
            ..Outlets::default()
        })
    }
}
