//! The ready-signal CLI: placeholder, filled by the ready-signal issue.
fn main() {}
