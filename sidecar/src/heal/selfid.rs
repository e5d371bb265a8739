//! Finding the sidecar's own container, so the governor never restarts it whatever its labels say
//! (a service must never be responsible for its own restart).
//!
//! The sources (mountinfo, cgroup v1 and v2) are ready-signal's [`ready_signal::container`], the
//! same that agents record in their ready-signal records; the host name's short id is the last
//! resort here, which the caller only trusts when a container with that id prefix exists.

/// This process's container id, full when the kernel's files say it, else the short id from the
/// host name; `None` outside a container (or one that hides all three).
pub fn find() -> Option<String> {
    ready_signal::container::find().or_else(ready_signal::container::short_id)
}
