//! `healthcheck`: a static probe for Docker `HEALTHCHECK`, Compose `service_healthy` gating and
//! Kubernetes exec probes that tells the truth about Redis, NATS, HTTP(S), TCP and agents' ready
//! signals.
//!
//! Every target is checked concurrently under one deadline; the verdict is healthy if and only if
//! every target is. The binary maps that to exit 0 or 1 and prints one line saying why.
//!
//! Layout:
//! - [`target`]: the URL grammar (`redis://`, `nats://`, `http://`, `tcp://`, `ready://` ...),
//!   and the dispatch to one check per target.
//! - [`failure`]: why a target is unhealthy, typed (kind, phase, address); `progress` and
//!   `options` are the other leaves every check shares.
//! - bounded, non-blocking reads of secret, CA and config files come from [`ready_signal::files`].
//! - [`text`]: one-line escaping, truncation and secret scrubbing of what is printed.
//! - `checks/`: one module per protocol behind one dispatching function.
//! - [`report`]: the one-line (or JSON) verdict, capped below Docker's 4096-byte limit.
//! - [`config`]: flags (as plain values; clap lives in the binary), environment and TOML file
//!   merged into one validated [`Config`].
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

#![deny(missing_docs)]

mod checks;
pub mod config;
pub mod failure;
pub mod install;
mod net;
mod options;
mod progress;
pub mod report;
pub mod secret;
pub mod target;
pub mod text;
pub mod wait;

use std::time::{Duration, Instant};

use futures_util::future::join_all;

pub use config::Config;
pub use failure::{Failure, FailureKind, Phase};
pub use report::{Outcome, Report};
pub use target::{Target, TargetError};

/// Checks every target concurrently; each must finish before `timeout` from now.
///
/// Never takes longer than `timeout` (plus scheduling): a check still running at the deadline
/// is abandoned and reported as timed out, with the phase it was in and the address it was
/// talking to.
pub async fn probe(targets: &[Target], timeout: Duration) -> Report {
    probe_until(targets, Instant::now() + timeout, timeout).await
}

/// Like [`probe`], with a deadline fixed earlier (the binary's starts when the process does);
/// `timeout` is only for messages.
pub async fn probe_until(targets: &[Target], deadline: Instant, timeout: Duration) -> Report {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(deadline);
    let outcomes = join_all(targets.iter().map(|t| check_until(t, deadline, timeout))).await;
    Report {
        outcomes,
        elapsed: started.elapsed(),
    }
}

/// At most this many checks run at once (the rest wait their turn under the same deadline), so
/// that peak memory stays under 16 MB with 1,000 targets that all hang.
pub const MAX_RUNNING_CHECKS: usize = 64;

/// The slots of [`MAX_RUNNING_CHECKS`], shared by every check in the process.
static CHECK_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_RUNNING_CHECKS);

/// Checks one target, giving up at `deadline` (`timeout` is only for the message).
pub(crate) async fn check_until(
    target: &Target,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Outcome {
    let progress = progress::Progress::new();
    let began = Instant::now();
    let started = std::cell::Cell::new(false);
    let run = async {
        // A check holds a slot while it runs: what one check costs in memory (an HTTP client,
        // TLS buffers, a store connection: 10 to 45 KB) times 1,000 hanging targets would be
        // far over 16 MB. The closed case cannot happen (the semaphore is never closed).
        let _slot = CHECK_SLOTS.acquire().await.ok();
        started.set(true);
        target.run(&progress).await
    };
    let result = match tokio::time::timeout_at(deadline, run).await {
        Ok(result) => result,
        Err(_) if !started.get() => Err(Failure::new(
            FailureKind::Timeout,
            format!(
                "timed out after {} before its check could start ({MAX_RUNNING_CHECKS} checks run at once, and those ahead of it were all still running)",
                format_duration(timeout)
            ),
        )),
        Err(_) => Err(progress.fail(
            FailureKind::Timeout,
            format!("timed out after {}", format_duration(timeout)),
        )),
    };
    // Whatever a peer said back is scrubbed of every secret this target holds.
    let result = match result {
        Ok(detail) => Ok(detail.map(|d| target.scrub(&d))),
        Err(f) => Err(f.map_message(|m| target.scrub(m))),
    };
    Outcome {
        target: target.to_string(),
        check: target.check(),
        elapsed: began.elapsed(),
        result,
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
