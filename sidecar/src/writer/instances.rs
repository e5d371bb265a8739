//! The instances each container has run, remembered by the book: `judge` adds the instance it
//! links to a container, and a Docker re-inspect that shows a new start moves them to the
//! container's predecessors. A leaf of the writer, so both can use it without depending on each
//! other.

/// Instance ids remembered per container and start, at most: a container restarted in a crash
/// loop keeps its latest predecessors, not all of them.
const MAX_INSTANCES: usize = 16;

/// Adds `instance` to `list` (once), dropping the oldest past [`MAX_INSTANCES`].
pub(super) fn remember(list: &mut Vec<String>, instance: &str) {
    if list.iter().any(|i| i == instance) {
        return;
    }
    list.push(instance.to_owned());
    if list.len() > MAX_INSTANCES {
        list.remove(0);
    }
}
