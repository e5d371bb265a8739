//! Wiring: the sources, the writer, the HTTP server and (opt-in) the governor, under one
//! shutdown signal (mini-redis's `server::run(listener, shutdown)`).
//!
//! Every task is watched: they are joined in one `select!` with the shutdown signal, and one
//! that ends before it is asked to (a source that gave up, the writer, the server, the
//! governor) is logged by name with why, the others are stopped, and [`run`] returns an error
//! (the binary exits non-zero and Docker's restart policy brings it back) rather than running
//! half-blind.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{Config, DockerEndpoint};
use crate::watch::docker::DockerWatch;
use crate::watch::store::StoreWatch;
use crate::writer::{self, Book};

/// How long the tasks have to finish after shutdown (the server drains its connections).
const DRAIN: Duration = Duration::from_secs(10);

/// What a task says when it ends: its name, and an error when it failed.
type Ended = (&'static str, Result<(), String>);

/// A task of the sidecar that ended before shutdown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{task} ended early ({why}): stopping rather than running half-blind")]
pub struct TaskEnded {
    /// The task's name.
    pub task: &'static str,
    /// Why, as far as it is known.
    pub why: String,
}

/// Spawns `fut` on `tasks` under `name`.
fn spawn<F>(tasks: &mut JoinSet<Ended>, name: &'static str, fut: F)
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    tasks.spawn(async move { (name, fut.await) });
}

/// Spawns a task that returns nothing: its ending at all is what is watched.
fn spawn_unit<F>(tasks: &mut JoinSet<Ended>, name: &'static str, fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    spawn(tasks, name, async move {
        fut.await;
        Ok(())
    });
}

/// Waits for `shutdown` while watching `tasks`: `Ok` on shutdown, the first task that ends
/// before it as an error (logged).
pub async fn supervise(
    tasks: &mut JoinSet<Ended>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TaskEnded> {
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => Ok(()),
        Some(joined) = tasks.join_next() => {
            let ended = match joined {
                Ok((task, Ok(()))) => TaskEnded { task, why: "it returned".into() },
                Ok((task, Err(e))) => TaskEnded { task, why: e },
                Err(e) if e.is_panic() => TaskEnded { task: "a task", why: format!("it panicked: {e}") },
                Err(e) => TaskEnded { task: "a task", why: e.to_string() },
            };
            tracing::error!(task = ended.task, why = %ended.why, "a task of the sidecar ended early: exiting non-zero");
            Err(ended)
        }
    }
}

/// Runs until `shutdown` resolves. `heal`, when given, is the governor's configuration. Returns
/// an error when a task ends before shutdown (see [`supervise`]).
pub async fn run(
    config: Config,
    heal: Option<crate::heal::Config>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "serving");
    let namespaces: Vec<String> = config
        .stores
        .iter()
        .map(|s| s.namespace_name().to_string())
        .collect();
    let book = Book::new(
        Instant::now(),
        namespaces,
        !config.stores.is_empty(),
        config.docker != DockerEndpoint::None,
    );
    let (snap_tx, snap_rx) = watch::channel(book.snapshot());
    let (changes, incoming) = mpsc::channel(writer::CHANGES_CAPACITY);
    let (stop_tx, stop_rx) = watch::channel(false);
    let poke = Arc::new(Notify::new());
    let stopped = |rx: &watch::Receiver<bool>| {
        let mut stop = rx.clone();
        async move { crate::watch::stopped(&mut stop).await }
    };

    let mut tasks: JoinSet<Ended> = JoinSet::new();
    for store in &config.stores {
        let w = StoreWatch {
            store: store.clone(),
            interval: config.read_interval,
            timeout: config.timeout,
            max_backoff: config.read_interval.max(Duration::from_secs(5)),
        };
        let hints = Arc::new(crate::watch::store::Hints::default());
        spawn_unit(
            &mut tasks,
            "the store reader",
            w.clone().run(
                changes.clone(),
                Arc::clone(&poke),
                Arc::clone(&hints),
                stop_rx.clone(),
            ),
        );
        // Without NATS there are no events to follow (and that task would end at once).
        if store.has_nats() {
            spawn_unit(
                &mut tasks,
                "the store's event follower",
                w.run_events(changes.clone(), Arc::clone(&poke), hints, stop_rx.clone()),
            );
        }
    }
    let mut heal = heal;
    let (extras, outlets) =
        crate::outlets::start(&config, heal.as_mut(), &snap_rx, &stop_rx).await?;
    for (name, task) in outlets {
        spawn_unit(&mut tasks, name, task);
    }
    // The governor's own id when healing (it may come from --heal-self), else looked up.
    let self_id = match &heal {
        Some(h) => h.self_id.clone(),
        None => crate::heal::selfid::find(),
    };
    if let Some(id) = &self_id {
        let _ = changes
            .send(writer::Change::SelfContainer(id.clone()))
            .await;
    }
    if config.docker != DockerEndpoint::None {
        let w = DockerWatch {
            endpoint: config.docker.clone(),
            projects: config.projects.clone(),
            timeout: config.timeout,
            resync: config.resync,
            max_backoff: Duration::from_secs(10),
        };
        spawn_unit(
            &mut tasks,
            "the docker watcher",
            w.run(changes.clone(), self_id.clone(), stop_rx.clone()),
        );
    }
    if let Some(heal) = heal {
        let docker = crate::watch::docker::connect(&config.docker, config.timeout)
            .await
            .map_err(|e| anyhow::anyhow!("--heal needs Docker: {e}"))?;
        // Heal events go out on the agents' NATS, when there is one; the client connects in the
        // background (NATS may not resolve yet when the stack starts).
        let nats = match config.stores.first() {
            Some(s) => match s.nats_client(config.timeout).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "heal events will not be published");
                    None
                }
            },
            None => None,
        };
        spawn_unit(
            &mut tasks,
            "the heal governor",
            crate::heal::act::run(
                heal,
                docker,
                snap_rx.clone(),
                changes.clone(),
                nats,
                stopped(&stop_rx),
            ),
        );
    }
    drop(changes);
    spawn_unit(
        &mut tasks,
        "the state writer",
        writer::run(
            book,
            incoming,
            snap_tx,
            Some(Arc::clone(&poke)),
            stopped(&stop_rx),
        ),
    );
    let server = crate::http::serve_with(listener, snap_rx, extras, stopped(&stop_rx));
    spawn(&mut tasks, "the http server", async move {
        server.await.map_err(|e| e.to_string())
    });

    let outcome = supervise(&mut tasks, shutdown).await;
    match &outcome {
        Ok(()) => tracing::info!("shutting down"),
        Err(_) => tracing::info!("stopping the other tasks"),
    }
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "tasks still running {}s after shutdown: stopped",
            DRAIN.as_secs()
        );
        tasks.shutdown().await;
    }
    outcome.map_err(anyhow::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that ends before shutdown is named with its cause and makes the sidecar stop with
    /// an error (the binary exits non-zero), saying so in the log; shutdown first is `Ok`.
    #[test]
    fn a_task_that_ends_early_stops_the_sidecar() {
        let log = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&log);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogSink(Arc::clone(&sink)))
            .finish();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            rt.block_on(async {
                let mut tasks = JoinSet::new();
                spawn_unit(&mut tasks, "the forever task", std::future::pending());
                spawn(&mut tasks, "the docker watcher", async {
                    Err("docker event stream ended".to_owned())
                });
                let ended = supervise(&mut tasks, std::future::pending())
                    .await
                    .unwrap_err();
                assert_eq!(ended.task, "the docker watcher");
                assert_eq!(ended.why, "docker event stream ended");
                assert!(ended.to_string().contains("ended early"), "{ended}");

                let mut tasks = JoinSet::new();
                spawn_unit(&mut tasks, "the state writer", async {});
                let ended = supervise(&mut tasks, std::future::pending())
                    .await
                    .unwrap_err();
                assert_eq!(
                    (ended.task, ended.why.as_str()),
                    ("the state writer", "it returned")
                );

                let mut tasks = JoinSet::new();
                spawn_unit(&mut tasks, "the forever task", std::future::pending());
                assert_eq!(supervise(&mut tasks, async {}).await, Ok(()));
            })
        });
        let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("a task of the sidecar ended early")
                && text.contains("task=\"the docker watcher\"")
                && text.contains("why=docker event stream ended"),
            "{text}"
        );
    }

    struct LogSink(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for LogSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
