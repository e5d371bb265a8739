//! Read-only HTTP views of the snapshot.
