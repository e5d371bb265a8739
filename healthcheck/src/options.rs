//! A target's query options, shared by every check: each check takes the options it knows and
//! [`Options::finish`] rejects whatever is left, naming it. A leaf module (checks import it).
//!
//! Values are percent-decoded only: `+` stays a plus sign (`password_file=/run/secrets/a+b`).

use std::path::PathBuf;

use url::Url;

use crate::failure::Failure;
use crate::secret::{self, Secret};
pub(crate) use crate::text::{percent_decode, split_query};
use ready_signal::files;

/// The query options of one target, in the order written.
#[derive(Debug)]
pub(crate) struct Options {
    /// Position in the query (from 1), name, value.
    pairs: Vec<(usize, String, String)>,
    /// The names the target's check asked for: the options it takes.
    known: Vec<&'static str>,
}

impl Options {
    pub(crate) fn new(url: &Url) -> Options {
        Options {
            pairs: split_query(url.query().unwrap_or_default())
                .enumerate()
                .map(|(i, (k, v, _))| (i + 1, k, v))
                .collect(),
            known: Vec::new(),
        }
    }

    /// Removes and returns option `name`; repeated options are an error.
    pub(crate) fn take(&mut self, name: &'static str) -> Result<Option<String>, Failure> {
        if !self.known.contains(&name) {
            self.known.push(name);
        }
        let mut found = None;
        let mut i = 0;
        while i < self.pairs.len() {
            if self.pairs[i].1 == name {
                let (_, _, v) = self.pairs.remove(i);
                if found.replace(v).is_some() {
                    return Err(Failure::config(format!("option `{name}` given twice")));
                }
            } else {
                i += 1;
            }
        }
        Ok(found)
    }

    pub(crate) fn take_bool(&mut self, name: &'static str) -> Result<bool, Failure> {
        match self.take(name)?.as_deref() {
            None | Some("false") | Some("0") | Some("no") => Ok(false),
            Some("") | Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(_) => Err(Failure::config(format!(
                "option `{name}` must be true or false"
            ))),
        }
    }

    pub(crate) fn take_path(&mut self, name: &'static str) -> Result<Option<PathBuf>, Failure> {
        Ok(self.take(name)?.map(PathBuf::from))
    }

    /// A secret named by a `*_file` option, read now so a missing file fails at parse time.
    pub(crate) fn take_secret_file(
        &mut self,
        name: &'static str,
    ) -> Result<Option<Secret>, Failure> {
        match self.take_path(name)? {
            Some(path) => secret::read_file(&path).map(Some),
            None => Ok(None),
        }
    }

    /// Leaves the remaining options to the endpoint (HTTP query strings belong to the server).
    pub(crate) fn pass_through(&mut self) {
        self.pairs.clear();
    }

    /// Rejects what no check took. The unknown name is not repeated (a password pasted into a
    /// query would be printed): its position is, with the options the target takes.
    pub(crate) fn finish(self) -> Result<(), Failure> {
        let Some((at, _, _)) = self.pairs.first() else {
            return Ok(());
        };
        let takes = if self.known.is_empty() {
            "this target takes no options".to_string()
        } else {
            format!("this target takes {}", self.known.join(", "))
        };
        Err(Failure::config(format!(
            "unknown option (option {at} of the query, its name not repeated here); {takes}"
        )))
    }
}

/// Host and port of a network target, with the scheme's default port.
pub(crate) fn host_port(url: &Url, default_port: u16) -> Result<(String, u16), Failure> {
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(h) => h.to_string(),
        None => return Err(Failure::config("no host")),
    };
    if host.is_empty() {
        return Err(Failure::config("no host"));
    }
    Ok((host, url.port().unwrap_or(default_port)))
}

/// A file named in an option or variable, read within bounds; errors name the path.
pub(crate) fn read_named_file(
    what: &str,
    path: &std::path::Path,
    limit: u64,
) -> Result<Vec<u8>, Failure> {
    files::read_bounded(path, limit)
        .map_err(|e| Failure::config(format!("cannot read {what} {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `+` stays a plus sign and `%XX` is decoded, in keys and values.
    #[test]
    fn values_decode_percent_only() {
        let url = Url::parse("redis://h?password_file=/run/a+b%21&x").unwrap();
        let mut o = Options::new(&url);
        assert_eq!(
            o.take("password_file").unwrap().as_deref(),
            Some("/run/a+b!")
        );
        assert_eq!(o.take("x").unwrap().as_deref(), Some(""));
    }
}
