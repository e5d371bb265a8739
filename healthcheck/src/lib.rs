//! `healthcheck`: a static probe for Docker `HEALTHCHECK`, Compose `service_healthy` gating and
//! Kubernetes exec probes that tells the truth about Redis, NATS, HTTP(S), TCP and agents' ready
//! signals.
//!
//! Every target is checked concurrently under one deadline; the verdict is healthy if and only if
//! every target is. The binary maps that to exit 0 or 1 and prints one line saying why.
//!
//! Layout:
//! - [`target`]: the URL grammar (`redis://`, `nats://`, `http://`, `tcp://`, `ready://` ...).
//! - `checks/`: one module per protocol behind one dispatching function.
//! - [`report`]: the one-line (or JSON) verdict, capped below Docker's 4096-byte limit.
//! - [`config`]: command line, environment and TOML file merged into one validated [`Config`].
//! - [`wait`]: retry until healthy, ending early on agents' NATS ready events.
//! - [`install`]: copy the binaries into a shared volume for images we did not build.
//!
//! ```no_run
//! # async fn demo() -> Result<(), healthcheck::TargetError> {
//! use std::time::Duration;
//! let targets = vec![healthcheck::Target::parse("redis://localhost:6379")?];
//! let report = healthcheck::probe(&targets, Duration::from_secs(1)).await;
//! println!("{report}");
//! assert!(report.healthy());
//! # Ok(()) }
//! ```

mod checks;
pub mod config;
pub mod install;
mod net;
pub mod report;
pub mod secret;
pub mod target;
pub mod wait;

use std::time::{Duration, Instant};

use futures_util::future::join_all;

pub use config::Config;
pub use report::{Outcome, Report};
pub use target::{Target, TargetError};

/// Checks every target concurrently; each must finish before `timeout` from now.
///
/// Never takes longer than `timeout` (plus scheduling): a check still running at the deadline
/// is abandoned and reported as timed out, with what it was waiting for.
pub async fn probe(targets: &[Target], timeout: Duration) -> Report {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let outcomes = join_all(targets.iter().map(|t| check_until(t, deadline, timeout))).await;
    Report {
        outcomes,
        elapsed: started.elapsed(),
    }
}

/// Checks one target, giving up at `deadline` (`timeout` is only for the message).
pub(crate) async fn check_until(
    target: &Target,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Outcome {
    let progress = checks::Progress::new();
    let began = Instant::now();
    let (result, timed_out) =
        match tokio::time::timeout_at(deadline, checks::run(&target.kind, &progress)).await {
            Ok(result) => (result, false),
            Err(_) => (
                Err(format!(
                    "timed out after {} {}",
                    format_duration(timeout),
                    progress.get()
                )),
                true,
            ),
        };
    Outcome {
        target: target.to_string(),
        check: target.check(),
        elapsed: began.elapsed(),
        result,
        timed_out,
    }
}

/// `1s`, `250ms`, `1.5s`: short durations for messages.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
