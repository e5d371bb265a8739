//! What a check is doing right now (phase and peer address), so a check the deadline ends can
//! say "timed out after 900ms reading from 10.0.0.3:6379". Shared vocabulary: a leaf module.

use std::cell::{Cell, RefCell};

use crate::failure::{Failure, FailureKind, Phase};

/// The phase and address of one running check.
///
/// Checks of one probe run on one task (joined, not spawned), so cells are enough.
#[derive(Debug)]
pub(crate) struct Progress {
    phase: Cell<Phase>,
    doing: Cell<Option<&'static str>>,
    address: RefCell<Option<String>>,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            phase: Cell::new(Phase::Resolve),
            doing: Cell::new(None),
            address: RefCell::new(None),
        }
    }

    /// Enters `phase`, keeping the address.
    pub(crate) fn set(&self, phase: Phase) {
        self.phase.set(phase);
        self.doing.set(None);
    }

    /// Enters `phase`, saying precisely what is awaited ("waiting for PONG from").
    pub(crate) fn step(&self, phase: Phase, doing: &'static str) {
        self.phase.set(phase);
        self.doing.set(Some(doing));
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
        Failure::new(kind, message)
            .at(self.phase(), self.address())
            .doing(self.doing.get())
    }
}
