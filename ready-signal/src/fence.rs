//! The vocabulary of the write fence that Redis's script and the file backend both apply
//! (PROTOCOL.md, "Fencing"): what a write asks for and whether it was applied. A leaf module,
//! so the two backends share it without importing each other.

/// What a write is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Write the record: a first write (epoch 0) takes a new epoch and wins; later ones are
    /// refused when a newer epoch holds the record.
    Put,
    /// A fenced writer's attempt: takes a new epoch only when no other instance holds the record.
    Retake,
    /// Remove the record, only if it is this instance's.
    Del,
}

impl Op {
    /// The op's name in the write script's arguments.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Retake => "retake",
            Op::Del => "del",
        }
    }
}

/// Whether a write was applied (with the writer's epoch) or refused by the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Yes { epoch: u64 },
    FencedOff,
}
