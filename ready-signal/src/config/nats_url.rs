//! The NATS store URL grammar (see [`StoreConfig::nats`](super::StoreConfig::nats)): one server
//! or a seed list, with the credentials taken out of the URL before any library sees it.

use super::url::{addr_of, parse_url};
use crate::error::Error;
use crate::stores::{NatsAuth, NatsStore};

/// Parses a NATS store URL or seed list.
pub(super) fn parse(url: &str) -> Result<NatsStore, Error> {
    let (first, others) = split_seeds(url)?;
    let in_seed = |i: usize, e: Error| match others.is_empty() {
        true => e,
        false => Error::Config(format!(
            "host {} of the seed list: {}",
            i + 1,
            config_text(e)
        )),
    };
    let mut parsed = parse_url(&first, &["nats", "tls"]).map_err(|e| in_seed(0, e))?;
    let scheme = parsed.scheme().to_string();
    // Credentials leave the URL here and reach async-nats as options, so that no URL this
    // crate hands over (async-nats logs its server URLs at debug level) carries a secret.
    // Only `%XX` is decoded: in userinfo a `+` is a plus sign, not a space.
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = Some(decode(parsed.username())).filter(|u| !u.is_empty());
    let auth = match (&user, parsed.password().map(decode)) {
        (Some(u), Some(p)) => NatsAuth::UserPassword(u.clone(), p),
        (Some(token), None) => NatsAuth::Token(token.clone()),
        _ => NatsAuth::None,
    };
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let mut addrs = vec![addr_of(&parsed, 4222).map_err(|e| in_seed(0, e))?];
    for (i, seed) in others.iter().enumerate() {
        let seed_url = parse_url(&format!("{scheme}://{seed}"), &["nats", "tls"])
            .map_err(|e| in_seed(i + 1, e))?;
        if !matches!(seed_url.path(), "" | "/") || seed_url.query().is_some() {
            return Err(in_seed(i + 1, Error::Config("not host[:port]".into())));
        }
        addrs.push(addr_of(&seed_url, 4222).map_err(|e| in_seed(i + 1, e))?);
    }
    let servers = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            format!("{scheme}://{addr}")
                .parse::<async_nats::ServerAddr>()
                .map_err(|e| in_seed(i, Error::Config(e.to_string())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NatsStore {
        servers,
        addr: addrs.join(","),
        user,
        auth,
    })
}

/// The most hosts a NATS seed list may name (as in the probe's `nats://` targets).
const MAX_SEEDS: usize = 64;

/// Splits a NATS seed list (`scheme://[userinfo@]h1,h2,h3[/...]`): the URL with only the first
/// host, and the other hosts as written. A URL without a comma in its authority comes back whole.
/// Errors name a position in the list, never its text (the first host carries the credentials).
fn split_seeds(url: &str) -> Result<(String, Vec<String>), Error> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return Ok((url.to_string(), Vec::new()));
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    if !authority.contains(',') {
        return Ok((url.to_string(), Vec::new()));
    }
    let hosts: Vec<&str> = authority.split(',').collect();
    if hosts.len() > MAX_SEEDS {
        return Err(Error::Config(format!(
            "more than {MAX_SEEDS} hosts in the seed list"
        )));
    }
    for (i, host) in hosts.iter().enumerate() {
        // The first host's credentials end at its last `@`; nothing after it is a host then.
        let host = match i {
            0 => host.rsplit_once('@').map_or(*host, |(_, h)| h),
            _ => host,
        };
        if host.is_empty() {
            return Err(Error::Config(format!(
                "host {} of the seed list is empty (write host1:port,host2:port)",
                i + 1
            )));
        }
        if host.contains('@') {
            return Err(Error::Config(format!(
                "host {} of the seed list carries credentials: give them once, before the first \
                 host (nats://user:password@host1,host2), with `,` and `@` in them \
                 percent-encoded (%2C, %40)",
                i + 1
            )));
        }
    }
    let first = format!("{}{}{}", &url[..start], hosts[0], &url[end..]);
    Ok((first, hosts[1..].iter().map(|h| h.to_string()).collect()))
}

/// The text of a configuration error, for a message that adds where it was found.
fn config_text(e: Error) -> String {
    match e {
        Error::Config(text) => text,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::StoreConfig;
    use crate::error::Error;
    use crate::stores::NatsAuth;

    #[test]
    fn nats_credentials_leave_the_url() {
        let s = StoreConfig::new()
            .nats("nats://u:canary%40pw@nats:4222")
            .unwrap();
        let nats = s.nats.as_ref().unwrap();
        assert!(
            !format!("{:?}", nats.servers).contains("canary"),
            "{:?}",
            nats.servers
        );
        assert!(matches!(&nats.auth, NatsAuth::UserPassword(u, p) if u == "u" && p == "canary@pw"));
        let s = StoreConfig::new().nats("nats://u:a+b@nats").unwrap();
        assert!(
            matches!(&s.nats.as_ref().unwrap().auth, NatsAuth::UserPassword(_, p) if p == "a+b")
        );
        let s = StoreConfig::new().nats("nats://tok-canary@nats").unwrap();
        assert!(matches!(&s.nats.as_ref().unwrap().auth, NatsAuth::Token(t) if t == "tok-canary"));
        assert!(!format!("{:?}", servers(&s)).contains("canary"));
    }

    fn servers(s: &StoreConfig) -> Vec<String> {
        let nats = s.nats.as_ref().unwrap();
        nats.servers
            .iter()
            .map(|a| a.as_url_str().to_string())
            .collect()
    }

    /// A seed list gives every host, each with 4222 unless it names a port, in the order given.
    #[test]
    fn nats_seed_list_with_default_ports() {
        let s = StoreConfig::new()
            .nats("nats://n1,n2:4223,10.0.0.3,[::1]:4225")
            .unwrap();
        assert_eq!(
            servers(&s),
            [
                "nats://n1:4222",
                "nats://n2:4223",
                "nats://10.0.0.3:4222",
                "nats://[::1]:4225"
            ]
        );
        assert!(
            s.describe()
                .starts_with("nats at n1:4222,n2:4223,10.0.0.3:4222,[::1]:4225,"),
            "{}",
            s.describe()
        );
        let one = StoreConfig::new().nats("nats://n1").unwrap();
        assert_eq!(servers(&one), ["nats://n1:4222"]);
    }

    /// `tls://` applies to every seed.
    #[test]
    fn nats_seed_list_keeps_the_tls_scheme() {
        let s = StoreConfig::new().nats("tls://n1:4443,n2").unwrap();
        assert_eq!(servers(&s), ["tls://n1:4443", "tls://n2:4222"]);
        assert!(
            s.nats
                .as_ref()
                .unwrap()
                .servers
                .iter()
                .all(|a| a.tls_required())
        );
    }

    /// Credentials before the first host apply to every seed and appear in no URL, message or
    /// `Debug`; a password file names the user of the seed list's URL.
    #[test]
    fn nats_seed_list_credentials_apply_to_all_and_stay_hidden() {
        let s = StoreConfig::new()
            .nats("nats://u:canary%2Cpw@n1,n2,n3:4300")
            .unwrap();
        let nats = s.nats.as_ref().unwrap();
        assert!(matches!(&nats.auth, NatsAuth::UserPassword(u, p) if u == "u" && p == "canary,pw"));
        assert_eq!(nats.servers.len(), 3);
        let shown = format!("{s:?} {} {:?}", s.describe(), servers(&s));
        assert!(!shown.contains("canary"), "{shown}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "canary-file\n").unwrap();
        let file = file.display().to_string();
        let s = StoreConfig::from_lookup(move |k| match k {
            "READY_SIGNAL_NATS_URL" => Some("nats://svc@n1,n2".into()),
            "READY_SIGNAL_NATS_PASSWORD_FILE" => Some(file.clone()),
            _ => None,
        })
        .unwrap();
        let nats = s.nats.as_ref().unwrap();
        assert!(
            matches!(&nats.auth, NatsAuth::UserPassword(u, p) if u == "svc" && p == "canary-file")
        );
        assert_eq!(servers(&s), ["nats://n1:4222", "nats://n2:4222"]);
    }

    /// Errors in a seed list name the host's position and the variable, never the credentials.
    #[test]
    fn nats_seed_list_errors_name_the_position() {
        let err = |url: &'static str| {
            let e = StoreConfig::from_lookup(move |k| {
                (k == "READY_SIGNAL_NATS_URL").then(|| url.to_string())
            })
            .unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{e:?}");
            let text = e.to_string();
            assert!(text.starts_with("READY_SIGNAL_NATS_URL: "), "{text}");
            assert!(!text.contains("canary"), "{text}");
            text
        };
        let t = err("nats://u:canary@n1,v:canary2@n2,n3");
        assert!(
            t.contains("host 2 of the seed list carries credentials"),
            "{t}"
        );
        let t = err("nats://n1,n2,canary@n3");
        assert!(
            t.contains("host 3 of the seed list carries credentials"),
            "{t}"
        );
        let t = err("nats://u:canary@n1,,n3");
        assert!(t.contains("host 2 of the seed list is empty"), "{t}");
        let t = err("nats://u:canary@n1,n2:99999");
        assert!(t.contains("host 2 of the seed list: not a URL"), "{t}");
        let t = err("nats://u:canary@n1:x,n2");
        assert!(t.contains("host 1 of the seed list"), "{t}");
        let t = err("http://u:canary@n1,n2");
        assert!(t.contains("scheme `http`"), "{t}");
    }
}
