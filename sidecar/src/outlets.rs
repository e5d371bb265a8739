//! What the sidecar gives out beyond its snapshot views (issue 21): webhook notifications, the
//! history of every replica and container, and its own ready signal. Each is a task of its own,
//! fed from the snapshots (and, for notifications, from the governor's hooks), started here so
//! that the wiring in [`crate::run`] is one call.

use std::sync::{Arc, Mutex};
use tokio::sync::watch;

use crate::config::{Config, DockerEndpoint};
use crate::http::Extras;
use crate::notify::Notifier;
use crate::selfwatch::{self, Limits, Mark};
use crate::state::State;
use crate::timeline;

pub use crate::config::Outlets;

/// One task to spawn (and watch): its name for the log, and the future, which runs until the
/// stop signal.
pub type Task = (
    &'static str,
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
);

/// Builds the outlets' tasks (the caller spawns and watches them), hooks the governor (when
/// there is one) and returns what the HTTP views read. An error names what could not start.
pub async fn start(
    config: &Config,
    heal: Option<&mut crate::heal::Config>,
    snapshots: &watch::Receiver<Arc<State>>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<(Extras, Vec<Task>)> {
    let mut tasks: Vec<Task> = Vec::new();
    let o = &config.outlets;
    let stopped = |stop: &watch::Receiver<bool>| {
        let mut stop = stop.clone();
        async move { crate::watch::stopped(&mut stop).await }
    };
    let mut extras = Extras::default();

    if let Some(settings) = &o.history {
        let history = Arc::new(Mutex::new(timeline::load(settings)));
        tasks.push((
            "the history",
            Box::pin(timeline::run(
                Arc::clone(&history),
                snapshots.clone(),
                settings.file.clone(),
                stopped(stop),
            )),
        ));
        extras.history = Some(history);
    }

    if config.docker != DockerEndpoint::None && o.history.is_some() {
        // The advice reads each container's healthcheck settings once; without Docker there is
        // nothing to advise on, and without the history nothing measured.
        match crate::watch::docker::connect(&config.docker, config.timeout).await {
            Ok(docker) => {
                let checks = crate::advice::Checks::default();
                tasks.push((
                    "the advice's inspector",
                    Box::pin(crate::advice::run(
                        docker,
                        Arc::clone(&checks),
                        snapshots.clone(),
                        config.timeout,
                        stopped(stop),
                    )),
                ));
                extras.advice = Some((checks, o.check_cost));
            }
            Err(e) => tracing::warn!(error = %e, "no advice: docker cannot be reached"),
        }
    }

    let governed = heal.is_some();
    let mut governor_mark = None;
    if let Some(heal) = heal {
        if !o.notify.is_empty() {
            let (notifier, deliveries) = Notifier::new(o.notify.clone(), snapshots.clone());
            for d in deliveries {
                tasks.push(("a notification delivery", Box::pin(d.run(stopped(stop)))));
            }
            extras.notify = Some(notifier.stats());
            heal.hooks.notify = Some(notifier);
        }
        if o.self_signal {
            let mark = Mark::new();
            heal.hooks.progress = Some(mark.clone());
            governor_mark = Some(mark);
        }
    } else if !o.notify.is_empty() {
        anyhow::bail!("--notify posts heal decisions: it needs --heal (or --heal=dry-run)");
    }

    if o.self_signal {
        let Some(store) = config.stores.first() else {
            anyhow::bail!(
                "--self-signal publishes to the agents' store, and none is configured (READY_SIGNAL_*)"
            );
        };
        let handle = ready_signal::ReadySignal::builder(selfwatch::SELF_AGENT)
            .store(store.clone())
            .interval(o.self_interval)
            .stall_after(o.self_interval * 2)
            .start()
            .map_err(|e| anyhow::anyhow!("--self-signal: {e}"))?;
        let limits = Limits::for_periods(
            true,
            config.docker != DockerEndpoint::None,
            governed,
            config.read_interval,
            config.resync,
            config.timeout,
        );
        let status = Arc::new(selfwatch::Status::default());
        extras.selfwatch = Some(Arc::clone(&status));
        tasks.push((
            "the self-watch",
            Box::pin(selfwatch::run(
                handle,
                snapshots.clone(),
                governor_mark,
                limits,
                o.self_interval,
                status,
                stopped(stop),
            )),
        ));
    }
    Ok((extras, tasks))
}
