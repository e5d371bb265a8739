//! The local-file backend: `{dir}/{namespace}/{agent}/{replica}.json`, written atomically.
//!
//! All writers and readers of one directory share one kernel clock (they are in one container or
//! on one host), so freshness is judged from the file's own `beat_ms` against the local clock.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::{Record, malformed};
use crate::{Error, Name};

/// The record file of one replica.
pub fn record_path(dir: &Path, ns: &Name, agent: &Name, replica: &Name) -> PathBuf {
    dir.join(ns.as_str())
        .join(agent.as_str())
        .join(format!("{replica}.json"))
}

/// Writes `record` to a temporary file beside its final name, then renames it over, so a reader
/// sees the old record or the new one, never half of one. A record of a newer instance is left
/// alone (the same fence as Redis's, best effort: the check and the rename are two steps).
pub(crate) fn write(path: &Path, record: &Record) -> Result<(), Error> {
    static TMP_SEQ: AtomicU64 = AtomicU64::new(0);
    let file_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::File { path, source }
    };
    if let Ok(Some(existing)) = read(path)
        && existing.instance > record.instance
    {
        return Ok(());
    }
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

/// Removes a record file if it still belongs to `instance` (or an older one).
pub(crate) fn remove(path: &Path, instance: &str) -> Result<(), Error> {
    match read(path) {
        Ok(Some(existing)) if existing.instance.as_str() > instance => Ok(()),
        _ => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::File {
                path: path.to_path_buf(),
                source: e,
            }),
            _ => Ok(()),
        },
    }
}

/// The largest record or secret file read. A record is a few hundred bytes; a FIFO, a device or
/// a huge file in its place must neither block the reader nor fill its memory.
pub(crate) const READ_LIMIT: u64 = 64 * 1024;

/// Reads a regular file of at most [`READ_LIMIT`] bytes; anything else is an error, at once.
pub(crate) fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    // Stat before opening: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path)?;
    let refuse =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
    if !meta.is_file() {
        return Err(refuse("not a regular file"));
    }
    if meta.len() > READ_LIMIT {
        return Err(refuse("larger than 64 KiB"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(READ_LIMIT + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > READ_LIMIT {
        return Err(refuse("larger than 64 KiB"));
    }
    Ok(bytes)
}

/// Reads a record file; `Ok(None)` when there is none.
pub(crate) fn read(path: &Path) -> Result<Option<Record>, Error> {
    match read_bounded(path) {
        Ok(bytes) => Record::from_json(&bytes)
            .map(Some)
            .map_err(|reason| malformed(path.display().to_string(), reason)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::File {
            path: path.to_path_buf(),
            source,
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
mod bounded_read_tests {
    use super::*;

    /// A FIFO with no writer and a device are refused at once instead of blocking or filling memory.
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
        assert!(read_bounded(Path::new("/dev/zero")).is_err());
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; READ_LIMIT as usize + 1]).unwrap();
        assert!(read_bounded(&big).is_err());
    }
}
