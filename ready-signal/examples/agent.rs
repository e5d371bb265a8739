//! An example agent: a work loop that ticks, a ready signal, and a way to freeze the loop.
//!
//! `AGENT_NAME` names it (default `example`), `WORK_MS` sets one work item's duration (default
//! 200). The store comes from the `READY_SIGNAL_*` variables.
//!
//! - SIGUSR1 freezes the work loop: the loop's thread blocks, as the field's deadlocked asyncio
//!   loop did, while the process, its signal handling and the publisher stay alive. The record
//!   goes stale, then dead, and the container's probe turns unhealthy.
//! - SIGUSR2 thaws it.
//! - SIGTERM or SIGINT: publish `stopping`, remove the record, exit 0.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ready_signal::{ReadySignal, StoreConfig};
use tokio::signal::unix::{SignalKind, signal};

/// A gate the work loop passes on every iteration; closed, it blocks the loop's thread.
#[derive(Debug, Default)]
struct Gate {
    frozen: Mutex<bool>,
    thawed: Condvar,
}

impl Gate {
    fn set(&self, frozen: bool) {
        if let Ok(mut f) = self.frozen.lock() {
            *f = frozen;
        }
        self.thawed.notify_all();
    }

    /// Blocks the calling thread while the gate is frozen.
    fn pass(&self) {
        let Ok(mut frozen) = self.frozen.lock() else {
            return;
        };
        while *frozen {
            frozen = match self.thawed.wait(frozen) {
                Ok(f) => f,
                Err(_) => return,
            };
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let name = std::env::var("AGENT_NAME").unwrap_or_else(|_| "example".into());
    let work = Duration::from_millis(
        std::env::var("WORK_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200),
    );
    let interval = std::env::var("HEARTBEAT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let stall_after = std::env::var("STALL_AFTER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);

    let mut builder = ReadySignal::builder(&name).store(StoreConfig::from_env()?);
    if let Some(i) = interval {
        builder = builder.interval(i);
    }
    if let Some(s) = stall_after {
        builder = builder.stall_after(s);
    }
    let signal_handle = builder.start()?;
    eprintln!(
        "agent {name}: instance {} starting",
        signal_handle.instance()
    );

    // Two worker threads: when the work loop blocks one, signals are still handled on the other.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let gate = Arc::new(Gate::default());
        let handle = Arc::new(signal_handle);

        // "Starting": pretend to warm up, then announce readiness.
        tokio::time::sleep(work).await;
        handle.ready();
        eprintln!("agent {name}: ready");

        let worker = {
            let (gate, handle) = (Arc::clone(&gate), Arc::clone(&handle));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(work).await; // one work item
                    gate.pass(); // a frozen gate blocks this thread: the field's deadlock
                    handle.tick();
                }
            })
        };

        let mut usr1 = signal(SignalKind::user_defined1())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = usr1.recv() => { eprintln!("agent {name}: work loop frozen"); gate.set(true) }
                _ = usr2.recv() => { eprintln!("agent {name}: work loop thawed"); gate.set(false) }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        eprintln!("agent {name}: stopping");
        gate.set(false);
        worker.abort();
        handle.stopping();
        if let Ok(handle) = Arc::try_unwrap(handle) {
            handle.close().await;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    // Do not wait for a work item still in flight.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
