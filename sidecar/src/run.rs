//! Wiring: the sources, the writer, the HTTP server and (opt-in) the governor, under one
//! shutdown signal (mini-redis's `server::run(listener, shutdown)`).

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::config::{Config, DockerEndpoint};
use crate::watch::docker::DockerWatch;
use crate::watch::store::StoreWatch;
use crate::writer::{self, Book};

/// Runs until `shutdown` resolves. `heal`, when given, is the governor's configuration.
pub async fn run(
    config: Config,
    heal: Option<crate::heal::Config>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
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

    let mut tasks = tokio::task::JoinSet::new();
    for store in &config.stores {
        let w = StoreWatch {
            store: store.clone(),
            interval: config.read_interval,
            timeout: config.timeout,
            max_backoff: config.read_interval.max(std::time::Duration::from_secs(5)),
        };
        tasks.spawn(
            w.clone()
                .run(changes.clone(), Arc::clone(&poke), stop_rx.clone()),
        );
        tasks.spawn(w.run_events(changes.clone(), Arc::clone(&poke), stop_rx.clone()));
    }
    let mut heal = heal;
    let (extras, outlets) =
        crate::outlets::start(&config, heal.as_mut(), &snap_rx, &stop_rx).await?;
    for (_name, task) in outlets {
        tasks.spawn(task);
    }
    let self_id = crate::heal::selfid::find();
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
            max_backoff: std::time::Duration::from_secs(10),
        };
        tasks.spawn(w.run(changes.clone(), self_id.clone(), stop_rx.clone()));
    }
    if let Some(heal) = heal {
        match crate::watch::docker::connect(&config.docker, config.timeout).await {
            Ok(docker) => {
                // Heal events go out on the agents' NATS, when there is one; the client connects
                // in the background (NATS may not resolve yet when the stack starts).
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
                let mut stop = stop_rx.clone();
                tasks.spawn(crate::heal::act::run(
                    heal,
                    docker,
                    snap_rx.clone(),
                    changes.clone(),
                    nats,
                    async move {
                        crate::watch::stopped(&mut stop).await;
                    },
                ));
            }
            Err(e) => anyhow::bail!("--heal needs Docker: {e}"),
        }
    }
    drop(changes);
    let mut stop = stop_rx.clone();
    let writer_task = tokio::spawn(writer::run(
        book,
        incoming,
        snap_tx,
        Some(Arc::clone(&poke)),
        async move {
            crate::watch::stopped(&mut stop).await;
        },
    ));
    let mut stop = stop_rx.clone();
    let server = crate::http::serve_with(listener, snap_rx, extras, async move {
        crate::watch::stopped(&mut stop).await;
    });
    let server = tokio::spawn(server);
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = writer_task.await;
    tasks.shutdown().await;
    Ok(())
}
