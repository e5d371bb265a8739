//! `ready_signal._native`: the ready-signal crate as a Python extension module.
//!
//! This file only translates: Python arguments to the crate's builder, the crate's errors to the
//! Python exceptions of `ready_signal.errors`, and the publisher's warnings to `last_error`. The
//! protocol, the stores and the heartbeat are the crate's own; nothing here reimplements them.
//! The Pythonic surface (context managers, asyncio, signals, fork) is in `ready_signal/__init__.py`.
//!
//! The GIL: the publisher is the crate's own OS thread running Rust only, so it never needs the
//! GIL. `tick()` and `busy()` are atomic stores and keep the GIL (releasing it would cost more
//! than the call); everything that can wait (shutdown) releases it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use ready_signal::{Error, Handle, ReadySignal, StoreConfig};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// One running publisher: the crate's [`Handle`] and who owns it.
///
/// `frozen` (no `&mut self`), so a method can run on one Python thread while `close` waits with
/// the GIL released on another; the handle sits in a mutex only for the moment `close` takes it.
#[pyclass(module = "ready_signal._native", name = "Publisher", frozen)]
struct Publisher {
    handle: Mutex<Option<Handle>>,
    /// The process that started the publisher: a forked child has the handle's memory but not
    /// its thread, and must neither write through it nor join it.
    pid: u32,
    agent: String,
    replica: String,
    instance: String,
}

#[pymethods]
impl Publisher {
    /// Validates the settings, publishes `starting` and starts the publisher thread.
    #[new]
    #[pyo3(signature = (agent, *, redis_url=None, nats_url=None, dir=None, namespace=None,
        replica=None, instance=None, interval=None, ttl=None, stall_after=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        agent: &str,
        redis_url: Option<&str>,
        nats_url: Option<&str>,
        dir: Option<std::path::PathBuf>,
        namespace: Option<&str>,
        replica: Option<&str>,
        instance: Option<&str>,
        interval: Option<f64>,
        ttl: Option<f64>,
        stall_after: Option<f64>,
    ) -> PyResult<Publisher> {
        install_log_capture();
        let err = |e| to_py_err(py, e);
        // The environment first (READY_SIGNAL_*), then what the caller passed explicitly.
        let mut store = StoreConfig::from_env().map_err(err)?;
        if let Some(url) = redis_url {
            store = store.redis(url).map_err(err)?;
        }
        if let Some(url) = nats_url {
            store = store.nats(url).map_err(err)?;
        }
        if let Some(dir) = dir {
            store = store.dir(dir);
        }
        if let Some(ns) = namespace {
            store = store.namespace(ready_signal::Name::new(ns).map_err(err)?);
        }
        let mut builder = ReadySignal::builder(agent).store(store);
        if let Some(replica) = replica {
            builder = builder.replica(replica);
        }
        if let Some(instance) = instance {
            builder = builder.instance(instance);
        }
        if let Some(s) = interval {
            builder = builder.interval(duration("interval", s)?);
        }
        if let Some(s) = ttl {
            builder = builder.ttl(duration("ttl", s)?);
        }
        if let Some(s) = stall_after {
            builder = builder.stall_after(duration("stall_after", s)?);
        }
        let handle = builder.start().map_err(err)?;
        Ok(Publisher {
            agent: handle.agent().to_string(),
            replica: handle.replica().to_string(),
            instance: handle.instance().to_string(),
            handle: Mutex::new(Some(handle)),
            pid: std::process::id(),
        })
    }

    /// Marks progress of the work loop: a clock read and an atomic store, GIL kept.
    fn tick(&self) {
        if let Some(h) = self.lock().as_ref() {
            h.tick();
        }
    }

    /// Declares that the current item may take up to `seconds` without ticks (0 ends it).
    fn busy(&self, seconds: f64) -> PyResult<()> {
        let budget = duration("busy budget", seconds)?;
        if let Some(h) = self.lock().as_ref() {
            h.busy(budget);
        }
        Ok(())
    }

    fn ready(&self, py: Python<'_>) -> PyResult<()> {
        self.with_live(py, |h| h.ready())
    }

    fn not_ready(&self, py: Python<'_>, reason: &str) -> PyResult<()> {
        self.with_live(py, |h| h.not_ready(reason))
    }

    fn starting(&self, py: Python<'_>) -> PyResult<()> {
        self.with_live(py, |h| h.starting())
    }

    fn stopping(&self, py: Python<'_>) -> PyResult<()> {
        self.with_live(py, |h| h.stopping())
    }

    /// Publishes `stopping`, removes the record and joins the publisher thread, with the GIL
    /// released (bounded by the crate's store timeouts). Idempotent. In a forked child it only
    /// lets go of the inherited handle: the thread it refers to is the parent's.
    fn close(&self, py: Python<'_>) {
        let taken = self.lock().take();
        if let Some(handle) = taken {
            if self.forked() {
                std::mem::forget(handle);
            } else {
                py.detach(move || handle.shutdown());
            }
        }
    }

    /// Whether `close` has run (or the handle was inherited through fork and let go of).
    #[getter]
    fn closed(&self) -> bool {
        self.lock().is_none()
    }

    /// Whether this object was created in another process (this one is a forked child).
    #[getter]
    fn forked(&self) -> bool {
        std::process::id() != self.pid
    }

    #[getter]
    fn agent(&self) -> &str {
        &self.agent
    }

    #[getter]
    fn replica(&self) -> &str {
        &self.replica
    }

    #[getter]
    fn instance(&self) -> &str {
        &self.instance
    }

    /// The container id the publisher records (the crate's own finding, read once per
    /// process), or None outside a container.
    #[getter]
    fn container(&self) -> Option<&'static str> {
        ready_signal::container::current()
    }

    /// The last warning the publisher logged for this agent (a store it could not write), as
    /// one line, or None. It is the crate's own message; a later success does not clear it.
    #[getter]
    fn last_error(&self) -> Option<String> {
        let key = thread_name(&self.agent);
        last_errors().get(&key).cloned()
    }
}

impl Publisher {
    fn lock(&self) -> MutexGuard<'_, Option<Handle>> {
        // A panic cannot happen while the lock is held (only take/as_ref); recover regardless.
        self.handle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_live(&self, py: Python<'_>, f: impl FnOnce(&Handle)) -> PyResult<()> {
        if self.forked() {
            return Err(publisher_error(
                py,
                format!(
                    "this ReadySignal was started by process {} and was inherited through fork; \
                     a child process starts its own ReadySignal (with its own replica name)",
                    self.pid
                ),
            ));
        }
        match self.lock().as_ref() {
            Some(h) => {
                f(h);
                Ok(())
            }
            None => Err(publisher_error(py, format!("of {} is closed", self.agent))),
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let handle = self
            .handle
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // In a forked child, joining a thread that only exists in the parent would wait
        // forever: let go of the handle instead. Otherwise the crate's Drop publishes `stopping`
        // and joins its thread, which never needs the GIL: bounded, and it cannot deadlock. The
        // Python side closes explicitly (context managers, atexit) so that this rarely runs.
        if let Some(handle) = handle
            && std::process::id() != self.pid
        {
            std::mem::forget(handle);
        }
    }
}

/// Seconds as a Duration; a negative, infinite or NaN value is a configuration error.
fn duration(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| PyValueError::new_err(format!("{what}: {s} is not a number of seconds")))
}

/// The crate's error as the exception of its kind (`ready_signal.errors`), matched by kind.
fn to_py_err(py: Python<'_>, e: Error) -> PyErr {
    let class = if e.is_invalid_name() {
        "InvalidNameError"
    } else if e.is_fenced_off() {
        "FencedOffError"
    } else if e.is_malformed() {
        "MalformedError"
    } else if e.is_timeout() {
        "StoreTimeoutError"
    } else if e.is_store_unavailable() {
        "StoreUnavailableError"
    } else {
        match e {
            Error::Config(_) => "ConfigError",
            Error::File { .. } => "FileStoreError",
            Error::Publisher(_) => "PublisherError",
            _ => "ReadySignalError",
        }
    };
    raise(py, class, e.to_string())
}

fn publisher_error(py: Python<'_>, message: String) -> PyErr {
    raise(
        py,
        "PublisherError",
        format!("the ready-signal publisher {message}"),
    )
}

fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    let made = py
        .import("ready_signal.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((message.clone(),)));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        // Only if the package is broken: still say what went wrong.
        Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
    }
}

/// The publisher thread's name for `agent` (the crate names it so); warnings are keyed by it.
fn thread_name(agent: &str) -> String {
    format!("ready-signal-{agent}")
}

fn last_errors() -> MutexGuard<'static, HashMap<String, String>> {
    static LAST: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    LAST.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Records the crate's warnings per publisher thread (for `last_error`) and prints them to
/// stderr, filtered by `READY_SIGNAL_LOG` (tracing's env-filter syntax; default
/// `ready_signal=warn`, `off` to silence). Runs on the publisher thread without the GIL.
struct CaptureWarnings;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureWarnings {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if *event.metadata().level() > tracing::Level::WARN {
            return;
        }
        let Some(name) = std::thread::current().name().map(str::to_string) else {
            return;
        };
        let mut line = LineVisitor(String::new(), String::new());
        event.record(&mut line);
        let text = if line.1.is_empty() {
            line.0
        } else {
            format!("{}: {}", line.0, line.1)
        };
        last_errors().insert(name, text);
    }
}

/// Collects an event's message and its `error` field.
struct LineVisitor(String, String);

impl tracing::field::Visit for LineVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.0 = format!("{value:?}"),
            "error" => self.1 = format!("{value:?}"),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.0 = value.to_string(),
            "error" => self.1 = value.to_string(),
            _ => {}
        }
    }
}

fn install_log_capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = std::env::var("READY_SIGNAL_LOG")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "ready_signal=warn".to_string());
        let print = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(tracing_subscriber::EnvFilter::new(filter));
        // `last_error` sees the crate's warnings whatever READY_SIGNAL_LOG prints.
        let capture = CaptureWarnings.with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.target().starts_with("ready_signal")
        }));
        // Another subscriber (none is usual in a Python process) keeps its place.
        let _ = tracing_subscriber::registry()
            .with(print)
            .with(capture)
            .try_init();
    });
}

/// The extension module; `ready_signal/__init__.py` wraps it.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Publisher>()?;
    m.add(
        "DEFAULT_INTERVAL",
        ready_signal::DEFAULT_INTERVAL.as_secs_f64(),
    )?;
    m.add(
        "DEFAULT_STALL_AFTER",
        ready_signal::DEFAULT_STALL_AFTER.as_secs_f64(),
    )?;
    m.add("DEFAULT_TTL_INTERVALS", ready_signal::DEFAULT_TTL_INTERVALS)?;
    Ok(())
}
