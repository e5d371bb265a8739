//! `healthcheck-sidecar`: parse flags, wire the sources, the writer and the HTTP server.

fn main() {}
