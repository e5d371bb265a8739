//! `ready-signal run`: wrap an unmodified command with a ready signal and a heartbeat.
//!
//! The command is a child, not an exec: something has to keep publishing while it runs. The
//! wrapper forwards SIGTERM and SIGINT to it, publishes `stopping` when either arrives or the
//! command ends, and exits with the command's status (128 + N when a signal N ended it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;
use healthcheck::Target;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use ready_signal::{Handle, Name, ReadySignal, StoreConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::{name, parse_duration, parse_targets};

/// How long one round of `--ready-when` checks may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The agent.
    agent: String,
    /// A target (the probe's grammar) that must pass before the agent is ready; repeatable.
    /// Re-checked every interval: a failing target turns the agent not-ready with its reason.
    #[arg(long = "ready-when", value_name = "TARGET")]
    ready_when: Vec<String>,
    /// A file the command touches as it makes progress: the heartbeat stops when its
    /// modification time is older than --stall-after.
    #[arg(long, value_name = "PATH")]
    progress_file: Option<PathBuf>,
    /// Heartbeat interval.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    interval: Duration,
    /// How long the command may go without progress before the heartbeat stops.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    stall_after: Duration,
    /// Record time to live [default: 3 intervals].
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub(crate) async fn run(
    args: RunArgs,
    store: StoreConfig,
    replica: Name,
) -> Result<ExitCode, String> {
    let agent = name("agent", &args.agent)?;
    let targets = parse_targets(&args.ready_when)?;
    let mut builder = ReadySignal::builder(agent.as_str())
        .store(store)
        .replica(replica.as_str())
        .interval(args.interval)
        .stall_after(args.stall_after);
    if let Some(ttl) = args.ttl {
        builder = builder.ttl(ttl);
    }
    let handle = builder.start().map_err(|e| e.to_string())?;
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot listen for SIGINT: {e}"))?;

    let (program, rest) = args
        .command
        .split_first()
        .ok_or("no command given after `--`")?;
    // The command and anything it runs (a script calling `ready-signal ready`) write as this
    // wrapper's instance and replica, so they never fence the wrapper.
    let mut child = match tokio::process::Command::new(program)
        .args(rest)
        .env("READY_SIGNAL_INSTANCE", handle.instance())
        .env("READY_SIGNAL_REPLICA", handle.replica().as_str())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            handle.close().await;
            return Err(format!("cannot start `{program}`: {e}"));
        }
    };
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);

    let status = {
        // The watcher runs beside the signal and child branches, so a slow --ready-when check
        // never delays forwarding a signal or noticing the command's exit.
        let mut watch = Watch {
            handle: &handle,
            targets,
            progress_file: args.progress_file,
            stall_after: args.stall_after,
            started: std::time::Instant::now(),
            ready: None,
        };
        let mut ticker = tokio::time::interval(args.interval.min(Duration::from_secs(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watcher = async move {
            loop {
                ticker.tick().await;
                watch.round().await;
            }
        };
        tokio::pin!(watcher);
        // Once a signal is forwarded the command is stopping: the watcher stops too, so a port
        // closing on the way down does not turn `stopping` into `not-ready`.
        let mut stopping = false;
        loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = term.recv() => { stopping = true; forward(&handle, pid, Signal::SIGTERM) }
                _ = int.recv() => { stopping = true; forward(&handle, pid, Signal::SIGINT) }
                () = &mut watcher, if !stopping => {}
            }
        }
    };
    handle.close().await;
    let status = status.map_err(|e| format!("waiting for `{program}`: {e}"))?;
    Ok(exit_code(status))
}

/// Publishes `stopping` and passes the signal on; the child decides how to end.
fn forward(handle: &Handle, pid: Option<Pid>, sig: Signal) {
    handle.stopping();
    if let Some(pid) = pid
        && let Err(e) = kill(pid, sig)
    {
        tracing::warn!(signal = %sig, error = %e, "could not forward the signal");
    }
}

/// The child's status as ours: its code, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// What the wrapper watches each round: readiness targets and progress.
struct Watch<'a> {
    handle: &'a Handle,
    targets: Vec<Target>,
    progress_file: Option<PathBuf>,
    stall_after: Duration,
    started: std::time::Instant,
    /// The last published verdict: `Some(Ok)` ready, `Some(Err(reason))` not ready.
    ready: Option<Result<(), String>>,
}

impl Watch<'_> {
    async fn round(&mut self) {
        let progressing = self.progressing();
        // Progress is dated when it happened: the file's modification time, not this round.
        match self.progress_file.as_deref().and_then(age) {
            Some(ago) => self.handle.progressed_ago(ago),
            None if self.progress_file.is_none() => self.handle.tick(),
            None => {}
        }
        let verdict = if self.targets.is_empty() {
            Ok(())
        } else {
            let report = healthcheck::probe(&self.targets, CHECK_TIMEOUT).await;
            if report.healthy() {
                Ok(())
            } else {
                Err(report.to_string())
            }
        };
        // Publishing a state counts as progress: a command whose progress file is stale must not
        // be kept alive (or made ready) by its targets passing.
        if self.ready.as_ref() == Some(&verdict) || (verdict.is_ok() && !progressing) {
            return;
        }
        match &verdict {
            Ok(()) => self.handle.ready(),
            // Before the first success the agent is still starting; afterwards a failing target
            // makes it not ready, with the probe's line as the reason.
            Err(reason) if self.ready.is_some() => self.handle.not_ready(reason.clone()),
            Err(_) => {}
        }
        if verdict.is_ok() || self.ready.is_some() {
            self.ready = Some(verdict);
        }
    }

    /// Without a progress file, a live child is progress; with one, its mtime must be fresh.
    /// Until the command first writes the file it gets `stall_after` from its start, as the
    /// library counts a stall from the start.
    fn progressing(&self) -> bool {
        match &self.progress_file {
            None => true,
            Some(path) => {
                fresh(path, self.stall_after)
                    || (!path.exists() && self.started.elapsed() <= self.stall_after)
            }
        }
    }
}

fn fresh(path: &Path, within: Duration) -> bool {
    age(path).is_some_and(|age| age <= within)
}

/// How long ago `path` was last modified (zero if its time is ahead of the clock); `None` when
/// it cannot be read.
fn age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    Some(
        SystemTime::now()
            .duration_since(modified)
            .unwrap_or(Duration::ZERO),
    )
}
