//! The local-file backend: `{dir}/{namespace}/{agent}/{replica}.json`, written atomically.
//!
//! All writers and readers of one directory share one kernel clock (they are in one container or
//! on one host), so freshness is judged from the file's own `beat_ms` against the local clock,
//! and instances are ordered by a rule of that one host (see [`claim_epoch`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;
use crate::fence::{Applied, Op};
use crate::files::{FileError, RECORD_LIMIT, read_bounded};
use crate::name::Name;
use crate::record::{Record, malformed};

/// The record file of one replica.
pub fn record_path(dir: &Path, ns: &Name, agent: &Name, replica: &Name) -> PathBuf {
    dir.join(ns.as_str())
        .join(agent.as_str())
        .join(format!("{replica}.json"))
}

/// The epoch a new instance takes in the file backend: one more than the file's current epoch
/// (live or expired), and at least this host's milliseconds since boot. Both are of this host
/// only: the boot clock is monotonic and shared by every process and container of the host, so
/// a later claim has a higher epoch even after the file was removed, whatever the wall clock did.
pub(crate) fn claim_epoch(existing: Option<&Record>) -> u64 {
    let after = existing.map_or(0, |r| r.epoch).saturating_add(1);
    after.max(boot_ms())
}

/// Milliseconds since this host booted (`/proc/uptime`), 0 when unknown.
fn boot_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |secs| (secs * 1000.0) as u64)
}

/// Writes `record` (op [`Op::Put`] or [`Op::Retake`]) with the same fence as the Redis script:
/// a record of another instance that is still live (its `beat_ms + ttl_ms` not passed) and holds
/// a higher epoch is left alone; a first write (epoch 0) takes a new epoch and wins; a retake
/// applies only when no other instance's record is live. The check and the rename are two
/// steps, so two writers racing within one write are ordered best effort.
///
/// The record goes to a temporary file beside its final name, then is renamed over, so a reader
/// sees the old record or the new one, never half of one.
pub(crate) fn write(path: &Path, record: &Record, op: Op) -> Result<Applied, Error> {
    let existing = read(path).ok().flatten();
    let mine = existing
        .as_ref()
        .is_some_and(|e| e.instance == record.instance);
    let live_other = existing.as_ref().filter(|e| {
        e.instance != record.instance && e.beat_ms.saturating_add(e.ttl_ms) >= record.beat_ms
    });
    if let Some(other) = live_other
        && (op != Op::Put || (record.epoch > 0 && other.epoch > record.epoch))
    {
        return Ok(Applied::FencedOff);
    }
    let mut record = record.clone();
    // Taking the record: the instance starts now, by this host's clock.
    record.started_ms = record.beat_ms;
    if mine && let Some(e) = &existing {
        // One instance, one process tree: pid, host, container and start stay those of its
        // first writer.
        record.epoch = record.epoch.max(e.epoch);
        record.pid = e.pid;
        record.host = e.host.clone();
        record.container = e.container.clone();
        record.started_ms = e.started_ms;
    }
    if record.epoch == 0 || op == Op::Retake && !mine {
        record.epoch = claim_epoch(existing.as_ref());
    }
    store(path, &record)?;
    Ok(Applied::Yes {
        epoch: record.epoch,
    })
}

fn store(path: &Path, record: &Record) -> Result<(), Error> {
    static TMP_SEQ: AtomicU64 = AtomicU64::new(0);
    let file_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::File { path, source }
    };
    let parent = path
        .parent()
        .ok_or_else(|| Error::Config(format!("{} has no directory", path.display())))?;
    std::fs::create_dir_all(parent).map_err(file_err(parent))?;
    // Unique per process and per write, so two publishers in one process never share a file.
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.{}.{seq}.tmp", std::process::id()));
    let json = serde_json::to_vec(record)
        .map_err(|e| Error::Config(format!("encoding the record: {e}")))?;
    let mut file = std::fs::File::create(&tmp).map_err(file_err(&tmp))?;
    file.write_all(&json).map_err(file_err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(file_err(path))
}

/// Removes a record file if it belongs to `instance` (or does not parse); another instance's
/// record is left alone.
pub(crate) fn remove(path: &Path, instance: &str) -> Result<(), Error> {
    match read(path) {
        Ok(Some(existing)) if existing.instance != instance => Ok(()),
        _ => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::File {
                path: path.to_path_buf(),
                source: e,
            }),
            _ => Ok(()),
        },
    }
}

/// Reads a record file; `Ok(None)` when there is none.
pub(crate) fn read(path: &Path) -> Result<Option<Record>, Error> {
    match read_bounded(path, RECORD_LIMIT) {
        Ok(bytes) => Record::from_json(&bytes)
            .map(Some)
            .map_err(|reason| malformed(path.display().to_string(), reason)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(FileError::Io(source)) => Err(Error::File {
            path: path.to_path_buf(),
            source,
        }),
        // Not a regular file, or too large: an I/O error of kind InvalidInput that keeps the
        // bounded read's own error as its source.
        Err(refused) => Err(Error::File {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, refused),
        }),
    }
}

/// The replica names with a record file for `agent`.
pub(crate) fn replicas(dir: &Path, ns: &Name, agent: &Name) -> Result<Vec<Name>, Error> {
    names_in(&dir.join(ns.as_str()).join(agent.as_str()), ".json")
}

/// The agent names with a directory in namespace `ns`.
pub(crate) fn agents(dir: &Path, ns: &Name) -> Result<Vec<Name>, Error> {
    names_in(&dir.join(ns.as_str()), "")
}

/// The valid names of the entries of `dir` that end in `suffix` (without it), sorted; none when
/// `dir` does not exist.
fn names_in(dir: &Path, suffix: &str) -> Result<Vec<Name>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::File {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut names: Vec<Name> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(suffix)
                .and_then(|n| Name::new(n).ok())
        })
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::State;

    fn record(instance: &str, epoch: u64, beat_ms: u64) -> Record {
        Record {
            v: 1,
            agent: "worker".into(),
            replica: "r1".into(),
            instance: instance.into(),
            epoch,
            state: State::Ready,
            reason: String::new(),
            pid: 7,
            host: "h".into(),
            interval_ms: 100,
            ttl_ms: 300,
            since_ms: beat_ms,
            beat_ms,
            seq: 1,
            container: String::new(),
            started_ms: 0,
        }
    }

    fn epoch_of(applied: Applied) -> u64 {
        match applied {
            Applied::Yes { epoch } => epoch,
            Applied::FencedOff => 0,
        }
    }

    /// The file fence: a later first write wins; the older instance's writes and retakes are
    /// refused while the newer record is live, and its retake succeeds, with a higher epoch,
    /// once that record expired; removal leaves another instance's file alone.
    #[test]
    fn files_are_fenced_by_epoch_like_redis() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns/worker/r1.json");
        let (old, new) = ("9999999999999-0000000a", "0000000000001-0000000b");
        let t = 1_732_540_000_000;
        let e_old = epoch_of(write(&path, &record(old, 0, t), Op::Put).unwrap());
        assert!(e_old > 0);
        assert_eq!(
            epoch_of(write(&path, &record(old, e_old, t + 100), Op::Put).unwrap()),
            e_old,
            "the same instance continues its epoch"
        );
        let e_new = epoch_of(write(&path, &record(new, 0, t + 150), Op::Put).unwrap());
        assert!(
            e_new > e_old,
            "a first write takes a higher epoch: {e_new} <= {e_old}"
        );
        assert_eq!(
            write(&path, &record(old, e_old, t + 200), Op::Put).unwrap(),
            Applied::FencedOff
        );
        assert_eq!(
            write(&path, &record(old, 0, t + 250), Op::Retake).unwrap(),
            Applied::FencedOff,
            "no retake while the newer record is live"
        );
        remove(&path, old).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().instance, new);
        // The newer record's beat + ttl has passed: the old instance retakes with a new epoch.
        let e_back = epoch_of(write(&path, &record(old, 0, t + 500), Op::Retake).unwrap());
        assert!(e_back > e_new, "{e_back} <= {e_new}");
        let stored = read(&path).unwrap().unwrap();
        assert_eq!((stored.instance.as_str(), stored.epoch), (old, e_back));
    }
}

#[cfg(test)]
mod bounded_read_tests {
    use super::*;

    /// A record path that is a FIFO with no writer, a device or a huge file is refused at once
    /// instead of blocking or filling memory.
    #[test]
    fn fifo_and_device_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("r.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert!(read(&fifo).is_err());
        assert!(read(Path::new("/dev/zero")).is_err());
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; RECORD_LIMIT as usize + 1]).unwrap();
        let e = read(&big).unwrap_err();
        assert!(e.to_string().contains("larger than 65536 bytes"), "{e}");
    }
}
