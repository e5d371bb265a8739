//! The `healthcheck` binary: parse, run, print one line, exit 0 or 1.
//!
//! Docker reserves exit code 2 and clap uses it for usage errors, and a panic would abort with
//! 134: every path out of this program is mapped to 0 (healthy, `--help`, `--version`) or 1.

use std::process::ExitCode;

use clap::Parser;
use healthcheck::config::{Cli, Command, Config, Format, WaitArgs};
use healthcheck::report::OUTPUT_LIMIT;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        eprintln!("unhealthy: internal error: {}", &msg[..msg.len().min(1000)]);
        std::process::exit(1);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let text = e.to_string();
            let text = if code == 0 { text } else { cap(&text) };
            if code == 0 {
                print!("{text}")
            } else {
                eprint!("{text}")
            }
            return ExitCode::from(code);
        }
    };
    // A probe is short-lived and mostly waits on a few sockets: one thread starts fastest and
    // costs least memory, in every container, every few seconds.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("unhealthy: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = match cli.command {
        None => runtime.block_on(probe(&cli.probe)),
        Some(Command::Wait(args)) => runtime.block_on(wait(args)),
        Some(Command::Install { dir }) => install(&dir),
    };
    // Exit at once: a DNS lookup still running on a blocking thread must not hold the process.
    std::process::exit(code)
}

async fn probe(args: &healthcheck::config::ProbeArgs) -> i32 {
    let config = match Config::from_probe_args(args) {
        Ok(c) => c,
        Err(e) => {
            println!("{}", cap(&format!("unhealthy: {e}")));
            return 1;
        }
    };
    let report = healthcheck::probe(&config.targets, config.timeout).await;
    match config.format {
        Format::Text => println!("{report}"),
        Format::Json => println!("{}", report.to_json()),
    }
    if report.healthy() { 0 } else { 1 }
}

async fn wait(args: WaitArgs) -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let config = match Config::from_wait_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", cap(&format!("healthcheck wait: {e}")));
            return 1;
        }
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("healthcheck wait: cannot install signal handlers");
        return 1;
    };
    let result = tokio::select! {
        r = healthcheck::wait::wait_until_healthy(&config.targets, config.timeout) => r,
        _ = term.recv() => return interrupted("SIGTERM", &config),
        _ = int.recv() => return interrupted("SIGINT", &config),
    };
    match result {
        Ok(report) => {
            eprintln!(
                "{}",
                cap(&format!(
                    "healthcheck wait: ready after {}: {report}",
                    healthcheck::format_duration(report.elapsed)
                ))
            );
            match args.command.split_first() {
                None => 0,
                Some((program, rest)) => exec(program, rest),
            }
        }
        Err(report) => {
            let waiting: Vec<String> = report
                .failures()
                .map(|o| {
                    let reason = o.result.as_ref().err().map(String::as_str).unwrap_or("");
                    format!("{} {reason}", o.target)
                })
                .collect();
            eprintln!(
                "{}",
                cap(&format!(
                    "healthcheck wait: timed out after {}; still not healthy: {}",
                    healthcheck::format_duration(config.timeout),
                    waiting.join("; ")
                ))
            );
            1
        }
    }
}

fn interrupted(signal: &str, config: &Config) -> i32 {
    let names: Vec<String> = config.targets.iter().map(ToString::to_string).collect();
    eprintln!(
        "{}",
        cap(&format!(
            "healthcheck wait: interrupted by {signal} while waiting for {}",
            names.join(", ")
        ))
    );
    1
}

/// Replaces this process with the command: it gets our PID, our signals and its own exit status.
fn exec(program: &str, args: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(program).args(args).exec();
    eprintln!("healthcheck wait: cannot exec {program}: {err}");
    1
}

fn install(dir: &std::path::Path) -> i32 {
    match healthcheck::install::install(dir) {
        Ok(paths) => {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            println!("installed {}", names.join(", "));
            0
        }
        Err(e) => {
            println!("install into {}: {e}", dir.display());
            1
        }
    }
}

/// Docker keeps the first 4096 bytes of output; clap's and ours must fit.
fn cap(s: &str) -> String {
    if s.len() < OUTPUT_LIMIT {
        return s.to_string();
    }
    let mut end = OUTPUT_LIMIT - 20;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} …(cut)", &s[..end])
}
