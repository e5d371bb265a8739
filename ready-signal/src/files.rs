//! Reading the small files an agent or a probe is given (record files, secrets, CA bundles,
//! config) without ever blocking: a FIFO with no writer or `/dev/zero` would otherwise hold the
//! reader past every deadline or fill its memory. Files are opened non-blocking, must be regular,
//! and are read up to a bound. The one copy of this rule: the `healthcheck` probe uses it too.
//!
//! A leaf module: it imports nothing of the crate.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest secret file (password, token, nkey seed, creds) read.
pub const SECRET_LIMIT: u64 = 64 * 1024;
/// The largest record file read: a record is a few hundred bytes.
pub const RECORD_LIMIT: u64 = 64 * 1024;
/// The largest config file or CA bundle read.
pub const CONFIG_LIMIT: u64 = 1024 * 1024;

/// Why a file could not be read; the message names no content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Open or read failed.
    #[error("{}", io_reason(.0))]
    Io(#[source] std::io::Error),
    /// A FIFO, device, socket or directory.
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    /// Bigger than the bound.
    #[error("larger than {limit} bytes")]
    TooLarge {
        /// The bound.
        limit: u64,
    },
}

impl FileError {
    /// The file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FileError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Reads at most `limit` bytes of a regular file; anything else is an error, at once.
///
/// ```no_run
/// use ready_signal::files::{SECRET_LIMIT, read_bounded};
///
/// let password = read_bounded("/run/secrets/redis".as_ref(), SECRET_LIMIT)?;
/// # Ok::<(), ready_signal::files::FileError>(())
/// ```
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let file = OpenOptions::new()
        .read(true)
        // Opening a FIFO for reading blocks until a writer appears, unless non-blocking.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(FileError::Io)?;
    let meta = file.metadata().map_err(FileError::Io)?;
    let ft = meta.file_type();
    if !ft.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(FileError::NotRegular(what));
    }
    if meta.len() > limit {
        return Err(FileError::TooLarge { limit });
    }
    read_limited(file, limit)
}

fn read_limited(file: File, limit: u64) -> Result<Vec<u8>, FileError> {
    let mut buf = Vec::new();
    // One byte more than allowed tells a file that grew since fstat from one that fits.
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(FileError::Io)?;
    if buf.len() as u64 > limit {
        return Err(FileError::TooLarge { limit });
    }
    Ok(buf)
}

/// An I/O error without the noise std adds ("No such file or directory (os error 2)").
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO with no writer, a device and a directory are refused at once; size is bounded.
    #[test]
    fn refuses_non_regular_and_large_files() {
        assert!(matches!(
            read_bounded(Path::new("/dev/zero"), 10),
            Err(FileError::NotRegular("a device"))
        ));
        assert!(matches!(
            read_bounded(Path::new("/"), 10),
            Err(FileError::NotRegular("a directory"))
        ));
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(matches!(
            read_bounded(&fifo, 10),
            Err(FileError::NotRegular("a FIFO"))
        ));
        let big = dir.path().join("big");
        std::fs::write(&big, "x".repeat(11)).unwrap();
        assert!(matches!(
            read_bounded(&big, 10),
            Err(FileError::TooLarge { limit: 10 })
        ));
        std::fs::write(&big, "x".repeat(10)).unwrap();
        assert_eq!(read_bounded(&big, 10).unwrap().len(), 10);
    }

    /// A missing file is told apart from one that cannot be read, and its message has no noise.
    #[test]
    fn missing_file_is_not_found_without_os_error_noise() {
        let e = read_bounded(Path::new("/nonexistent/secret"), 10).unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert_eq!(e.to_string(), "no such file or directory");
        assert!(std::error::Error::source(&e).is_some());
    }
}
