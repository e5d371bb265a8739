//! The sources: tasks that each own one connection and send [`crate::writer::Change`]s.
