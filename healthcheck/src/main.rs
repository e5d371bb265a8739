//! The `healthcheck` binary: parse, run, print one line, exit 0 or 1.
//!
//! Docker reserves exit code 2 and clap uses it for usage errors, and a panic would abort with
//! 134: every path out of this program is mapped to 0 (healthy, `--help`, `--version`) or 1.
//! The deadline starts when the process does, and the verdict is written with a bounded wait: a
//! full pipe nobody reads or a closed stdout never hangs the probe nor changes its exit status.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use healthcheck::config::{Config, Format, ProbeArgs};
use healthcheck::report::{OUTPUT_LIMIT, config_error_json};

const TARGET_HELP: &str = "\
Targets (URLs; options in the query string, documented in the README):
  redis://[user[:password]@]host[:port][/db]   ?role=master|replica password_file=PATH db=N
  rediss://...                                  ?ca_file=PATH server_name=NAME insecure=true
  redis://host:port?cluster=true                a Redis Cluster node: ?all_masters=true
  redis+sentinel://[cred@]s1:26379,s2/MASTER    ?quorum=true password_file= sentinel_password_file=
  nats://[user[:password]@|token@]host[:port]  ?jetstream=true password_file= token_file= nkey_file= creds_file=
  nats://h1:4222,h2:4222,h3:4222               a seed list: ?cluster=N monitor=http://h:8222
  tls://...                                     NATS over TLS: ?ca_file=PATH insecure=true
  http(s)://host[:port]/path                    ?status=200-299,301 body=TEXT ca_file=PATH insecure=true
  tcp://host:port
  ready://AGENT[,AGENT...]                      ?min=N replica=NAME|self namespace=NS store=file state=any
${NAME} and ${NAME:-default} are expanded from the environment.
Environment: HEALTHCHECK_TARGETS, HEALTHCHECK_CONFIG, HEALTHCHECK_TIMEOUT; REDIS_PASSWORD[_FILE],
NATS_TOKEN[_FILE], NATS_USER, NATS_PASSWORD[_FILE]; READY_SIGNAL_* for ready:// targets.
Exit status: 0 if every target is healthy, 1 otherwise (never 2).";

/// Command-line flags, as typed.
#[derive(Debug, Parser)]
#[command(name = "healthcheck", version, about = "Probe Redis, NATS, HTTP(S), TCP and agents' ready signals; exit 0 if all are healthy, 1 if not",
    args_conflicts_with_subcommands = true, after_help = TARGET_HELP)]
struct Cli {
    /// `wait` or `install`; without one, probe once.
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    probe: ProbeFlags,
}

/// Flags of a one-shot probe.
#[derive(Debug, Args)]
struct ProbeFlags {
    /// Overall deadline covering DNS, connect, TLS and protocol for all targets [default: 900ms]
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Output format
    #[arg(long, value_enum)]
    format: Option<FormatFlag>,
    /// TOML file with `targets = [...]`, `timeout` and `format` [env: HEALTHCHECK_CONFIG]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Targets to check (or HEALTHCHECK_TARGETS, whitespace-separated)
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Wait until every target is healthy, then exec CMD (or exit 0)
    Wait(WaitFlags),
    /// Find the health mistakes in Compose files or Kubernetes manifests, with what the checks cost (LINT.md)
    #[cfg(feature = "lint")]
    Lint(LintFlags),
    /// Copy healthcheck, ready-signal and healthcheck-sidecar (those beside it) into DIR
    Install {
        /// Directory to copy the binaries into (created if missing)
        dir: PathBuf,
    },
}

/// Flags of `wait`.
#[derive(Debug, Args)]
struct WaitFlags {
    /// Give up after this long [default: 60s]
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// TOML file with targets [env: HEALTHCHECK_CONFIG]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Targets to wait for
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
    /// Command to exec once every target is healthy
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Flags of `lint` (validated by `healthcheck::lint::Options::from_args`).
#[cfg(feature = "lint")]
#[derive(Debug, Args)]
struct LintFlags {
    /// Compose files (merged in order, as -f), Kubernetes manifests, or directories of either;
    /// none: compose.yaml, docker-compose.yml and their override, found as Compose finds them
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format: text, json or sarif (SARIF 2.1.0) [default: text]
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Exit 1 when a finding at or above this is found: error, warning, note or never [default: error]
    #[arg(long, value_name = "SEVERITY")]
    fail_on: Option<String>,
    /// Silence rules everywhere (repeatable or comma-separated: HC001,HC010)
    #[arg(long, value_name = "ID")]
    ignore: Vec<String>,
    /// Enable a Compose profile (repeatable; COMPOSE_PROFILES also counts)
    #[arg(long, value_name = "NAME")]
    profile: Vec<String>,
    /// Machine CPU of one health-check exec, for the cost line [default: 79ms, BENCHMARKS.md]
    #[arg(long, value_name = "DURATION")]
    exec_cost: Option<String>,
    /// Print why a rule matters and how to fix it (every rule without ID), then exit
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "all")]
    explain: Option<String>,
}

/// Output format of a probe.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatFlag {
    /// One line: the verdict, then each target with its latency or reason.
    Text,
    /// One compact JSON object.
    Json,
}

/// How long writing the verdict may take beyond the deadline; a pipe nobody reads gets no more.
const WRITE_GRACE: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    // The deadline starts now, before flags, files and the runtime.
    let started = Instant::now();
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        let line = healthcheck::text::one_line(&msg[..floor(&msg, 1000)]);
        // Never panic again, whatever stderr is.
        let _ = writeln!(std::io::stderr(), "unhealthy: internal error: {line}");
        std::process::exit(1);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let deadline = started + healthcheck::config::DEFAULT_TIMEOUT;
            if code == 0 {
                emit(Stream::Out, e.to_string(), deadline);
            } else if asks_for_json() {
                // A usage error is a configuration error: JSON when JSON was asked for.
                emit(
                    Stream::Out,
                    config_error_json(&usage_error(&e)) + "\n",
                    deadline,
                );
            } else {
                let line = format!("error: {} (see healthcheck --help)", usage_error(&e));
                emit(
                    Stream::Err,
                    cap(&healthcheck::text::one_line(&line)) + "\n",
                    deadline,
                );
            }
            std::process::exit(code);
        }
    };
    // Linting reads files and needs no runtime.
    #[cfg(feature = "lint")]
    let cli = match cli.command {
        Some(Command::Lint(flags)) => std::process::exit(lint(flags)),
        _ => cli,
    };
    // A probe is short-lived and mostly waits on a few sockets: one thread starts fastest and
    // costs least memory, in every container, every few seconds.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Blocking threads run only DNS lookups; a thousand names must not cost a thousand threads
        // (lookups beyond these wait their turn, under the same deadline).
        .max_blocking_threads(64)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            emit(
                Stream::Out,
                format!("unhealthy: cannot start runtime: {e}\n"),
                started + healthcheck::config::DEFAULT_TIMEOUT,
            );
            std::process::exit(1);
        }
    };
    let code = match cli.command {
        None => runtime.block_on(probe(cli.probe, started)),
        Some(Command::Wait(flags)) => runtime.block_on(wait(flags, started)),
        Some(Command::Install { dir }) => install(&dir, started),
        #[cfg(feature = "lint")]
        Some(Command::Lint(_)) => 1,
    };
    // Exit at once: a DNS lookup still running on a blocking thread must not hold the process.
    std::process::exit(code)
}

async fn probe(flags: ProbeFlags, started: Instant) -> i32 {
    let args = ProbeArgs {
        timeout: flags.timeout,
        format: flags.format.map(|f| match f {
            FormatFlag::Text => Format::Text,
            FormatFlag::Json => Format::Json,
        }),
        config: flags.config,
        targets: flags.targets,
    };
    let config = match Config::from_probe_args(&args) {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("{e}");
            let line = if args.format.or(e.format()) == Some(Format::Json) {
                config_error_json(&reason)
            } else {
                cap(&healthcheck::text::one_line(&format!(
                    "unhealthy: {reason}"
                )))
            };
            emit(
                Stream::Out,
                line + "\n",
                started + healthcheck::config::DEFAULT_TIMEOUT,
            );
            return 1;
        }
    };
    let deadline = started + config.timeout;
    watchdog(&config, deadline, false);
    let report = healthcheck::probe_until(&config.targets, deadline, config.timeout).await;
    let line = match config.format {
        Format::Text => report.to_string(),
        Format::Json => report.to_json(),
    };
    claim();
    emit(Stream::Out, line + "\n", deadline);
    if report.healthy() { 0 } else { 1 }
}

/// A usage error in the probe's words, naming the flag or the argument's position. Clap's own
/// text quotes what was typed (`invalid value 'redis://:pw@h' for '--format'`, `unexpected
/// argument 'TOKEN'`), and what was typed in the wrong place may be a secret.
fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    // Only contexts clap fills from the command's definition, never from argv.
    let defined = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join(", ")),
        _ => None,
    };
    let typed = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    match e.kind() {
        ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand => {
            let bad =
                typed(ContextKind::InvalidArg).or_else(|| typed(ContextKind::InvalidSubcommand));
            match bad.and_then(|b| argument_position(&b)) {
                Some(n) => format!("argument {n} is not a flag, subcommand or target here"),
                None => "an argument is not a flag, subcommand or target here".into(),
            }
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let arg = defined(ContextKind::InvalidArg).unwrap_or_else(|| "a flag".into());
            match defined(ContextKind::ValidValue).filter(|v| !v.is_empty()) {
                Some(valid) => format!("invalid value for {arg} (possible values: {valid})"),
                None => format!("invalid value for {arg}"),
            }
        }
        ErrorKind::ArgumentConflict
            if defined(ContextKind::InvalidArg).is_some()
                && defined(ContextKind::InvalidArg) == defined(ContextKind::PriorArg) =>
        {
            format!(
                "{} given more than once",
                defined(ContextKind::InvalidArg).unwrap_or_default()
            )
        }
        ErrorKind::InvalidUtf8 => "an argument is not valid UTF-8".into(),
        kind => {
            let what = kind.as_str().unwrap_or("invalid arguments").to_lowercase();
            match defined(ContextKind::InvalidArg) {
                // For these kinds the argument is the flag as defined (`--timeout <DURATION>`).
                Some(arg) => format!("{arg}: {what}"),
                None => what,
            }
        }
    }
}

/// The 1-based position in argv of the argument clap rejected (clap reports `--flag` of
/// `--flag=value`, so a prefix match).
fn argument_position(bad: &str) -> Option<usize> {
    std::env::args_os()
        .skip(1)
        .position(|a| a.as_encoded_bytes().starts_with(bad.as_bytes()))
        .map(|i| i + 1)
}

/// Set by whoever prints the verdict first: the probe, or its watchdog.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Claims the right to print the verdict; when the watchdog has it already, waits for the
/// watchdog to end the process.
fn claim() {
    if REPORTED.swap(true, Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(5));
        std::process::exit(1);
    }
}

/// How long after the deadline the watchdog waits for the probe's own report.
const WATCHDOG_GRACE: Duration = Duration::from_millis(50);

/// A thread that ends the process shortly after the deadline if the runtime has not reported by
/// then (for `wait`, on stderr, as `wait` reports). The checks run under the deadline on the runtime, but a peer can keep that one thread
/// busy (an endless stream of HTTP 1xx responses is parsed without a pause) and a loaded machine
/// can starve it; the promise "done within the deadline" must not depend on either.
fn watchdog(config: &Config, deadline: Instant, waiting: bool) {
    let names: Vec<String> = config.targets.iter().map(ToString::to_string).collect();
    let json = config.format == Format::Json && !waiting;
    let timeout = config.timeout;
    let _ = std::thread::Builder::new()
        .name("watchdog".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            std::thread::sleep((deadline + WATCHDOG_GRACE).saturating_duration_since(Instant::now()));
            if REPORTED.swap(true, Ordering::SeqCst) {
                return;
            }
            let reason = format!(
                "timed out after {}: the checks could not report in time (a peer keeping the probe busy, or an overloaded machine); targets: {}",
                healthcheck::format_duration(timeout),
                names.join(", ")
            );
            let (stream, line) = if waiting {
                let text = format!("healthcheck wait: {reason}");
                (Stream::Err, cap(&healthcheck::text::one_line(&text)))
            } else if json {
                (Stream::Out, healthcheck::report::failure_json("timeout", &reason))
            } else {
                let text = format!("unhealthy: {reason}");
                (Stream::Out, cap(&healthcheck::text::one_line(&text)))
            };
            emit(stream, line + "\n", Instant::now() + WRITE_GRACE);
            std::process::exit(1);
        });
}

async fn wait(flags: WaitFlags, started: Instant) -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let args = ProbeArgs {
        timeout: flags.timeout,
        format: None,
        config: flags.config,
        targets: flags.targets,
    };
    let say = |text: String, deadline: Instant| emit(Stream::Err, cap(&text) + "\n", deadline);
    let config = match Config::from_wait_args(&args) {
        Ok(c) => c,
        Err(e) => {
            say(
                healthcheck::text::one_line(&format!(
                    "healthcheck wait: {e} (a configuration error will not fix itself: not waiting)"
                )),
                started + healthcheck::config::DEFAULT_TIMEOUT,
            );
            return 1;
        }
    };
    let deadline = started + config.timeout;
    watchdog(&config, deadline, true);
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        say(
            "healthcheck wait: cannot install signal handlers".into(),
            deadline,
        );
        return 1;
    };
    let result = tokio::select! {
        r = healthcheck::wait::wait_until(&config.targets, deadline, config.timeout) => r,
        _ = term.recv() => return interrupted("SIGTERM", &config, deadline),
        _ = int.recv() => return interrupted("SIGINT", &config, deadline),
    };
    claim();
    match result {
        Ok(report) => {
            say(
                format!(
                    "healthcheck wait: ready after {}: {report}",
                    healthcheck::format_duration(report.elapsed)
                ),
                Instant::now() + Duration::from_secs(1),
            );
            match flags.command.split_first() {
                None => 0,
                Some((program, rest)) => exec(program, rest),
            }
        }
        Err(report) => {
            let waiting: Vec<String> = report.failures().map(|o| o.text()).collect();
            let line = if healthcheck::wait::gave_up(&report) {
                format!(
                    "healthcheck wait: giving up after {}: a configuration or authentication failure will not fix itself: {}",
                    healthcheck::format_duration(report.elapsed),
                    waiting.join("; ")
                )
            } else {
                format!(
                    "healthcheck wait: timed out after {}; still not healthy: {}",
                    healthcheck::format_duration(config.timeout),
                    waiting.join("; ")
                )
            };
            say(line, Instant::now() + WRITE_GRACE);
            1
        }
    }
}

fn interrupted(signal: &str, config: &Config, deadline: Instant) -> i32 {
    claim();
    let names: Vec<String> = config.targets.iter().map(ToString::to_string).collect();
    emit(
        Stream::Err,
        cap(&format!(
            "healthcheck wait: interrupted by {signal} while waiting for {}",
            names.join(", ")
        )) + "\n",
        deadline.min(Instant::now() + WRITE_GRACE),
    );
    1
}

/// Replaces this process with the command: it gets our PID, our signals and its own exit status.
fn exec(program: &str, args: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(program).args(args).exec();
    emit(
        Stream::Err,
        format!("healthcheck wait: cannot exec {program}: {err}\n"),
        Instant::now() + Duration::from_secs(1),
    );
    1
}

#[cfg(feature = "lint")]
/// `healthcheck lint`: the report on stdout, errors on stderr, 1 when something at or above
/// `--fail-on` was found or the inputs could not be read (never 2, like the probe).
fn lint(flags: LintFlags) -> i32 {
    use healthcheck::lint;
    let print = |text: String| {
        // A closed pipe (`| head`) is not an error of the lint.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    };
    let fail = |e: lint::LintError| {
        let _ = writeln!(std::io::stderr(), "healthcheck lint: {e}");
        1
    };
    if let Some(id) = flags.explain {
        return match lint::explain(&id) {
            Ok(text) => {
                print(text);
                0
            }
            Err(e) => fail(e),
        };
    }
    let args = lint::Args {
        paths: flags.files,
        format: flags.format,
        fail_on: flags.fail_on,
        ignore: flags.ignore,
        profiles: flags.profile,
        exec_cost: flags.exec_cost,
        dir: PathBuf::from("."),
        env: std::env::vars().collect(),
    };
    let options = match lint::Options::from_args(args) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    match lint::run(&options) {
        Ok(outcome) => {
            print(outcome.render(options.format));
            i32::from(outcome.fails(options.fail_on))
        }
        Err(e) => fail(e),
    }
}

fn install(dir: &std::path::Path, started: Instant) -> i32 {
    let deadline = Instant::now().max(started) + Duration::from_secs(1);
    match healthcheck::install::install(dir) {
        Ok(paths) => {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            emit(
                Stream::Out,
                format!("installed {}\n", names.join(", ")),
                deadline,
            );
            0
        }
        Err(e) => {
            emit(
                Stream::Out,
                format!("install into {}: {e}\n", dir.display()),
                deadline,
            );
            1
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Out,
    Err,
}

/// Writes `text` to stdout or stderr, waiting at most until `deadline` (plus a short grace).
///
/// The write is tried non-blocking first (a verdict is far below a pipe's capacity, so this is
/// the whole job almost always, with no thread). If the pipe is full and nobody reads it, the rest
/// is written on a helper thread and waited for until the deadline: that thread may stay blocked,
/// and `process::exit` ends it. Errors, EPIPE from a closed stdout included, are ignored: the exit
/// status is the verdict, whatever happens to the output.
fn emit(stream: Stream, text: String, deadline: Instant) {
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    let fd = match stream {
        Stream::Out => std::io::stdout().as_fd().try_clone_to_owned(),
        Stream::Err => std::io::stderr().as_fd().try_clone_to_owned(),
    };
    let Ok(fd) = fd else { return };
    // `UnixStream` only to reach ioctl(FIONBIO), which works on any descriptor (pipe, file, tty)
    // without unsafe code; the writes go through `File`, a plain write(2).
    let set_nonblocking = |fd: OwnedFd, on: bool| -> (OwnedFd, bool) {
        let s = UnixStream::from(fd);
        let ok = s.set_nonblocking(on).is_ok();
        (OwnedFd::from(s), ok)
    };
    let (fd, nonblocking) = set_nonblocking(fd, true);
    let bytes = text.into_bytes();
    let mut file = std::fs::File::from(fd);
    let mut written = 0;
    let mut failed = false;
    while nonblocking && written < bytes.len() {
        match file.write(&bytes[written..]) {
            Ok(0) => failed = true,
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => failed = true,
        }
        if failed {
            break;
        }
    }
    // The descriptor's flags are shared with whoever else holds it: restore them.
    let (fd, _) = set_nonblocking(OwnedFd::from(file), false);
    if failed || written == bytes.len() {
        return;
    }
    let mut file = std::fs::File::from(fd);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("output".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = file.write_all(&bytes[written..]);
            let _ = done_tx.send(());
        });
    if spawned.is_ok() {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(WRITE_GRACE);
        let _ = done_rx.recv_timeout(wait);
    }
}

/// True when the raw arguments ask for `--format json` (read when clap itself failed).
fn asks_for_json() -> bool {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.iter().any(|a| a == "--format=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--format" && w[1] == "json")
}

/// Docker keeps the first 4096 bytes of output; clap's and ours must fit.
fn cap(s: &str) -> String {
    if s.len() < OUTPUT_LIMIT {
        return s.to_string();
    }
    format!("{} …(cut)", &s[..floor(s, OUTPUT_LIMIT - 20)])
}

/// The largest character boundary of `s` at or below `max`.
fn floor(s: &str, max: usize) -> usize {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}
