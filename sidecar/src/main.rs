//! `healthcheck-sidecar`: parse flags, build the configuration, run until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use sidecar::config::{self, Config, DockerEndpoint};
use sidecar::heal;

mod heal_flags;
mod outlet_flags;

/// Watches every agent and container of a stack; serves a status page, a JSON API, server-sent
/// events and Prometheus metrics. Reads the agents' store from the same READY_SIGNAL_*
/// variables as the agents.
#[derive(Debug, Parser)]
#[command(name = "healthcheck-sidecar", version)]
struct Cli {
    /// Address the HTTP server listens on.
    #[arg(long, default_value = "127.0.0.1:9470", value_name = "ADDR")]
    listen: SocketAddr,
    /// Namespace of agents to watch (repeatable); default: READY_SIGNAL_NAMESPACE or `default`.
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,
    /// Docker Engine API: `unix:///path`, `tcp://host:port` or `none`; default: DOCKER_HOST,
    /// else /var/run/docker.sock when it exists.
    #[arg(long, value_name = "URL|none")]
    docker: Option<String>,
    /// Compose project to watch (repeatable); default: the sidecar's own, else every project.
    #[arg(long = "project", value_name = "NAME")]
    projects: Vec<String>,
    /// Time between two bulk reads of the store (without NATS, or with
    /// HEALTHCHECK_SIDECAR_INDEX=0), or, reading by the due index, between two reads of the
    /// records it does not cover.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    read_interval: Duration,
    /// Timeout of each call to the store or Docker.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Time between full listings of the containers (events keep them current in between; a
    /// listing also refreshes each container's last health log line).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    resync: Duration,
    #[command(flatten)]
    heal: heal_flags::HealFlags,
    #[command(flatten)]
    outlets: outlet_flags::OutletFlags,
}

fn configure(cli: &Cli) -> anyhow::Result<(Config, Option<heal::Config>)> {
    let env = |name: &str| std::env::var(name).ok();
    let stores = if config::store_configured(env) {
        let base = ready_signal::StoreConfig::from_env().context("reading READY_SIGNAL_*")?;
        config::stores_for(&base, &cli.namespaces).map_err(anyhow::Error::msg)?
    } else {
        Vec::new()
    };
    let docker = match &cli.docker {
        Some(d) => DockerEndpoint::parse(d).map_err(|e| anyhow::anyhow!("--docker {e}"))?,
        None => DockerEndpoint::default_from(
            std::env::var("DOCKER_HOST").ok().as_deref(),
            config::default_socket_exists(),
        )
        .map_err(anyhow::Error::msg)?,
    };
    let heal = cli.heal.config()?;
    if heal.is_some() && docker == DockerEndpoint::None {
        anyhow::bail!("--heal needs Docker, and --docker is none (no socket found)");
    }
    for (flag, d) in [
        ("--read-interval", cli.read_interval),
        ("--timeout", cli.timeout),
        ("--resync", cli.resync),
    ] {
        if d.is_zero() {
            anyhow::bail!("{flag}: must be more than zero");
        }
    }
    Ok((
        Config {
            listen: cli.listen,
            stores,
            docker,
            projects: cli.projects.clone(),
            read_interval: cli.read_interval,
            timeout: cli.timeout,
            resync: cli.resync,
            outlets: cli.outlets.outlets(cli.heal.heal_state.as_deref(), env)?,
        },
        heal,
    ))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let result = configure(&cli).and_then(|(config, heal)| {
        tracing::info!(
            stores = ?config.stores,
            docker = %config.docker.describe(),
            heal = heal.is_some(),
            "starting"
        );
        // A long-running service with HTTP clients and a writer: two worker threads keep a
        // slow page render from delaying detection, at a few hundred kilobytes of memory.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the runtime")?;
        runtime.block_on(sidecar::run::run(config, heal, shutdown_signal()))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("healthcheck-sidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}
