//! What a check is doing right now (phase and peer address), so a check the deadline ends can
//! say "timed out after 900ms reading from 10.0.0.3:6379". Shared vocabulary: a leaf module.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::failure::{Failure, FailureKind, Phase};

/// The phase and address of one running check.
///
/// Checks of one probe run on one task (joined, not spawned), so cells are enough; the phase
/// alone is atomic, because an HTTP client's connector (which must be `Send + 'static`) moves it.
#[derive(Debug)]
pub(crate) struct Progress {
    phase: PhaseHandle,
    /// Precisely what is awaited, and in which phase it was said (it applies only there).
    doing: Cell<Option<(Phase, &'static str)>>,
    address: RefCell<Option<String>>,
}

/// The phase of one check, settable from anywhere.
#[derive(Debug, Clone)]
pub(crate) struct PhaseHandle(Arc<AtomicU8>);

const PHASES: [Phase; 6] = [
    Phase::Resolve,
    Phase::Connect,
    Phase::Tls,
    Phase::Auth,
    Phase::Protocol,
    Phase::Read,
];

impl PhaseHandle {
    pub(crate) fn set(&self, phase: Phase) {
        let i = PHASES.iter().position(|p| *p == phase).unwrap_or(0);
        self.0.store(i as u8, Ordering::Relaxed);
    }

    fn get(&self) -> Phase {
        PHASES
            .get(self.0.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or(Phase::Resolve)
    }
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            phase: PhaseHandle(Arc::new(AtomicU8::new(0))),
            doing: Cell::new(None),
            address: RefCell::new(None),
        }
    }

    /// Enters `phase`, keeping the address.
    pub(crate) fn set(&self, phase: Phase) {
        self.phase.set(phase);
    }

    /// Enters `phase`, saying precisely what is awaited ("waiting for PONG from").
    pub(crate) fn step(&self, phase: Phase, doing: &'static str) {
        self.phase.set(phase);
        self.doing.set(Some((phase, doing)));
    }

    /// A handle that moves the phase from outside this task.
    pub(crate) fn phase_handle(&self) -> PhaseHandle {
        self.phase.clone()
    }

    /// Records the address (or name) being talked to.
    pub(crate) fn talking_to(&self, address: impl Into<String>) {
        *self.address.borrow_mut() = Some(address.into());
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase.get()
    }

    pub(crate) fn address(&self) -> Option<String> {
        self.address.borrow().clone()
    }

    /// A failure of `kind` in the current phase, at the current address.
    pub(crate) fn fail(&self, kind: FailureKind, message: impl Into<String>) -> Failure {
        let phase = self.phase();
        let doing = self
            .doing
            .get()
            .filter(|(p, _)| *p == phase)
            .map(|(_, d)| d);
        Failure::new(kind, message)
            .at(phase, self.address())
            .doing(doing)
    }
}
