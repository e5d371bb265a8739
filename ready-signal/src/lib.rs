//! ready-signal: placeholder, filled by the ready-signal issue.
#![deny(missing_docs)]
