//! `ready-signal`: agents not written in Rust publish their ready signal from the shell, or have
//! an unmodified command wrapped with a heartbeat.
//!
//! - `ready-signal ready AGENT`, `not-ready AGENT --reason TEXT`, `starting AGENT`,
//!   `stopping AGENT`: one write each; the record lives `--ttl` unless written again.
//! - `ready-signal run AGENT [--ready-when TARGET]... [--progress-file PATH] -- CMD ARGS...`:
//!   starts CMD, publishes ready once every target passes, keeps the heartbeat while CMD lives
//!   (and keeps its progress file fresh), forwards SIGTERM and SIGINT, and exits with CMD's status.
//!
//! The store comes from `READY_SIGNAL_*` variables or the flags of the same names. Exit status 0
//! on success, 1 on any error (usage errors included); `run` exits with the command's status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use healthcheck::Target;
use ready_signal::{Name, State, StoreConfig};

mod run;

#[derive(Debug, Parser)]
#[command(
    name = "ready-signal",
    version,
    about = "Publish an agent's ready signal, or wrap a command with one"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where to publish; each flag falls back to its `READY_SIGNAL_*` variable.
#[derive(Debug, Args)]
struct StoreArgs {
    /// Redis URL: redis://HOST, redis+sentinel://S1,S2/MASTER or redis://N1,N2?cluster=true
    /// (prefer the variable: a password on the command line is visible to `ps`).
    #[arg(
        long,
        global = true,
        env = "READY_SIGNAL_REDIS_URL",
        hide_env_values = true
    )]
    redis_url: Option<String>,
    /// NATS URL for events.
    #[arg(
        long,
        global = true,
        env = "READY_SIGNAL_NATS_URL",
        hide_env_values = true
    )]
    nats_url: Option<String>,
    /// Directory of the local-file backend.
    #[arg(long, global = true, env = "READY_SIGNAL_DIR")]
    dir: Option<PathBuf>,
    /// Namespace separating stacks [default: default].
    #[arg(long, global = true, env = "READY_SIGNAL_NAMESPACE")]
    namespace: Option<String>,
    /// Replica name [default: the host name].
    #[arg(long, global = true, env = "READY_SIGNAL_REPLICA")]
    replica: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish `ready`.
    Ready(OneShot),
    /// Publish `not-ready` with a reason.
    NotReady {
        #[command(flatten)]
        shot: OneShot,
        /// Why the agent is not ready (one line).
        #[arg(long)]
        reason: String,
    },
    /// Publish `starting`.
    Starting(OneShot),
    /// Publish `stopping` and remove the record.
    Stopping {
        /// The agent.
        agent: String,
    },
    /// Run a command with a heartbeat, marking it ready when its targets pass.
    Run(run::RunArgs),
}

/// One write of a state.
#[derive(Debug, Args)]
struct OneShot {
    /// The agent.
    agent: String,
    /// How long the record lives unless written again (write again every third of it).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    ttl: Duration,
}

fn main() -> ExitCode {
    // Usage errors exit 1 like every other error; help and version exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("READY_SIGNAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_stderr(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(message) => fail(&message),
    }
}

/// Whether log lines get ANSI colour: only on a terminal, and not when `NO_COLOR` is set to
/// anything but the empty string (no-color.org). A file or a pipe (Docker's log, CI) gets text.
fn colour_stderr(is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("ready-signal: {message}");
    ExitCode::from(1)
}

async fn dispatch(cli: Cli) -> Result<ExitCode, String> {
    let store = cli.store.config().map_err(|e| e.to_string())?;
    let replica = cli.store.replica()?;
    let (agent, state, reason, ttl) = match cli.command {
        Command::Run(args) => return run::run(args, store, replica).await,
        Command::Stopping { agent } => {
            let agent = name("agent", &agent)?;
            let instance = caller_instance(&store, &agent, &replica).await;
            ready_signal::remove_once(&store, &agent, &replica, &instance)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Ready(s) => (s.agent, State::Ready, String::new(), s.ttl),
        Command::Starting(s) => (s.agent, State::Starting, String::new(), s.ttl),
        Command::NotReady { shot, reason } => (shot.agent, State::NotReady, reason, shot.ttl),
    };
    let agent = name("agent", &agent)?;
    if ttl < Duration::from_millis(30) {
        return Err(format!(
            "--ttl {} is too short; give at least 30ms",
            humantime::format_duration(ttl)
        ));
    }
    let instance = caller_instance(&store, &agent, &replica).await;
    ready_signal::publish_once(&store, &agent, &replica, &instance, state, &reason, ttl)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

impl StoreArgs {
    /// The store: flags first, then the environment (the flags' `env` already merged both).
    fn config(&self) -> Result<StoreConfig, ready_signal::Error> {
        let flag = |var: &str| -> Option<String> {
            match var {
                "READY_SIGNAL_REDIS_URL" => self.redis_url.clone(),
                "READY_SIGNAL_NATS_URL" => self.nats_url.clone(),
                "READY_SIGNAL_DIR" => self.dir.as_ref().map(|d| d.display().to_string()),
                "READY_SIGNAL_NAMESPACE" => self.namespace.clone(),
                other => std::env::var(other).ok(),
            }
        };
        StoreConfig::from_lookup(flag)
    }

    fn replica(&self) -> Result<Name, String> {
        match &self.replica {
            Some(r) if !r.is_empty() => name("replica", r),
            _ => ready_signal::default_replica().map_err(|e| e.to_string()),
        }
    }
}

fn name(what: &str, raw: &str) -> Result<Name, String> {
    Name::new(raw).map_err(|e| format!("{what}: {e}"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    healthcheck::config::parse_timeout(s, "duration").map_err(|e| e.to_string())
}

/// The instance id one-shot writes use (PROTOCOL.md, "One instance per process tree"):
/// 1. `READY_SIGNAL_INSTANCE` (`ready-signal run` sets it for its command);
/// 2. else the instance of a live publisher of this replica above this process in its process
///    tree (same host, its pid an ancestor): a library agent's script joins the agent's instance
///    instead of fencing it;
/// 3. else one derived from the start time and id of the caller's process group (the agent
///    script and its subshells), so successive calls from one run of a script share an instance.
async fn caller_instance(store: &StoreConfig, agent: &Name, replica: &Name) -> String {
    if let Some(i) = std::env::var("READY_SIGNAL_INSTANCE")
        .ok()
        .filter(|i| !i.is_empty())
    {
        return i;
    }
    if let Some(i) = ready_signal::running_instance(store, agent, replica).await {
        return i;
    }
    process_group_start().map_or_else(ready_signal::new_instance_id, |(ms, pgid)| {
        ready_signal::instance_id(ms, pgid)
    })
}

/// Start time (Unix ms) and id of this process's group leader, from /proc.
fn process_group_start() -> Option<(u64, u32)> {
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    let pgid: u32 = stat_field(&own, 5)?.parse().ok()?;
    let leader = std::fs::read_to_string(format!("/proc/{pgid}/stat")).ok()?;
    let start_ticks: u64 = stat_field(&leader, 22)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // USER_HZ is 100 on every Linux architecture Docker runs on.
    let ms = btime * 1000 + start_ticks * 10;
    // A group leader cannot have started in the future; guard against a garbled /proc.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    (ms <= now).then_some((ms, pgid))
}

/// Field `n` (1-based, as in proc(5)) of a `/proc/PID/stat` line; the command name may hold
/// spaces and parentheses, so fields are counted after its closing parenthesis.
fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n.checked_sub(3)?)
}

/// Parses `--ready-when` targets with the probe's grammar.
fn parse_targets(raw: &[String]) -> Result<Vec<Target>, String> {
    raw.iter()
        .map(|t| Target::parse(t).map_err(|e| format!("--ready-when: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let line = "42 (we ird) (x) S 1 40 40 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 0 0";
        assert_eq!(stat_field(line, 3), Some("S"));
        assert_eq!(stat_field(line, 5), Some("40"));
        assert_eq!(stat_field(line, 22), Some("12345"));
    }

    #[test]
    fn own_process_group_has_a_start_time() {
        let (ms, pgid) = process_group_start().unwrap();
        assert!(pgid > 0 && ms > 1_600_000_000_000);
    }
}
