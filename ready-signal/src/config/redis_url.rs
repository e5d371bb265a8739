//! The Redis store URL grammar (see [`StoreConfig::redis`](super::StoreConfig::redis)): one
//! server, the master that Sentinels name, or a Cluster's seed nodes, with credentials kept out
//! of every message.

use ::url::Url;

use super::url::{addr_of, cut, parse_url};
use crate::error::Error;
use crate::stores::{RedisStore, Sentinels, Topology};

/// Parses a Redis store URL (see [`StoreConfig::redis`](super::StoreConfig::redis)).
pub(super) fn parse(url: &str) -> Result<RedisStore, Error> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let default_port = if scheme.as_deref() == Some("redis+sentinel") {
        26379
    } else {
        6379
    };
    let (first, hosts) = split_hosts(url, default_port)?;
    let parsed = parse_url(&first, &["redis", "redis+sentinel"])?;
    let mut options: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut take = |name: &str| {
        let at = options.iter().position(|(k, _)| k == name)?;
        Some(options.remove(at).1)
    };
    let (topology, db) = if parsed.scheme() == "redis+sentinel" {
        let master = percent_encoding::percent_decode_str(parsed.path().trim_start_matches('/'))
            .decode_utf8_lossy()
            .into_owned();
        if master.is_empty() || master.contains('/') || master.len() > 200 {
            return Err(Error::Config(
                "name the master in the path: redis+sentinel://host:26379,host:26379/MASTER_NAME"
                    .into(),
            ));
        }
        let db = match take("db") {
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| Error::Config("option `db` must be a database number".into()))?,
            None => 0,
        };
        if let Some((k, _)) = options.first() {
            return Err(Error::Config(format!(
                "unknown option `{}` (redis+sentinel:// takes db=N)",
                cut(k, 40)
            )));
        }
        let topology = Topology::Sentinel(Sentinels {
            addrs: hosts,
            master,
            password: None,
        });
        (topology, db)
    } else {
        let cluster = match take("cluster").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(Error::Config(
                    "option `cluster` must be true or false".into(),
                ));
            }
        };
        if hosts.len() > 1 && !cluster {
            return Err(Error::Config(
                "a host list is for a Redis Cluster (redis://HOSTS?cluster=true) or Sentinels \
                 (redis+sentinel://HOSTS/MASTER_NAME)"
                    .into(),
            ));
        }
        let db = match parsed.path().trim_matches('/') {
            "" => 0,
            db => db.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
                Error::Config("the path must be a database number (redis://host/0)".into())
            })?,
        };
        if cluster && db != 0 {
            return Err(Error::Config("a Redis Cluster has only database 0".into()));
        }
        let topology = if cluster {
            Topology::Cluster(hosts)
        } else {
            Topology::Single(addr_of(&parsed, 6379)?)
        };
        (topology, db)
    };
    // User and password as redis-rs reads them (percent-decoded; `+` stays a plus sign).
    let mut plain = parsed.clone();
    plain
        .set_scheme("redis")
        .map_err(|()| Error::Config("not a redis URL".into()))?;
    plain.set_path(&format!("/{db}"));
    if !matches!(topology, Topology::Single(_)) {
        plain.set_query(None);
    }
    let info = redis::IntoConnectionInfo::into_connection_info(plain.as_str())
        .map_err(|e| Error::Config(format!("redis URL: {}", e.detail().unwrap_or("invalid"))))?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let addr = match &topology {
        Topology::Single(addr) => addr.clone(),
        Topology::Sentinel(s) => format!(
            "{} (sentinels, master {})",
            s.addrs.join(","),
            cut(&s.master, 60)
        ),
        Topology::Cluster(seeds) => format!("{} (cluster)", seeds.join(",")),
    };
    Ok(RedisStore {
        topology,
        settings,
        addr,
    })
}

/// The most hosts a Sentinel or Cluster host list may name.
const MAX_HOSTS: usize = 64;

/// Splits a host list out of a URL's authority (`redis+sentinel://u:p@a:1,b:2/name`): the URL
/// with its first host only, and every host as `host:port`. Errors name a host by its position,
/// never its text (the text around it may hold a password).
fn split_hosts(url: &str, default_port: u16) -> Result<(String, Vec<String>), Error> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return Ok((url.to_string(), Vec::new()));
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let hosts_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    let list = &url[hosts_start..end];
    let seeds: Vec<&str> = list.split(',').collect();
    if seeds.len() > MAX_HOSTS {
        return Err(Error::Config(format!(
            "more than {MAX_HOSTS} hosts in the host list"
        )));
    }
    let mut hosts = Vec::with_capacity(seeds.len());
    for (i, seed) in seeds.iter().enumerate() {
        let at = i + 1;
        if seed.is_empty() {
            return Err(Error::Config(format!(
                "host {at} of the host list is empty (write host1:port,host2:port)"
            )));
        }
        let parsed = Url::parse(&format!("redis://{seed}"))
            .map_err(|e| Error::Config(format!("host {at} of the host list: {e}")))?;
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err(Error::Config(format!(
                "host {at} of the host list is not host:port"
            )));
        }
        hosts.push(
            addr_of(&parsed, default_port)
                .map_err(|e| Error::Config(format!("host {at} of the host list: {e}")))?,
        );
    }
    let first = format!("{}{}{}", &url[..hosts_start], seeds[0], &url[end..]);
    Ok((first, hosts))
}

#[cfg(test)]
mod tests {
    use crate::StoreConfig;
    use crate::redis_store::keys::Layout;
    use crate::stores::Topology;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    /// A Sentinel URL names its hosts and master; passwords (the URL's, the Sentinels') never
    /// show in `describe()` or Debug.
    #[test]
    fn sentinel_urls_parse_and_redact() {
        let s = StoreConfig::new()
            .redis("redis+sentinel://u:canary-pw@s1,[::1]:26380/my%20master?db=3")
            .unwrap()
            .redis_sentinel_password("canary-sentinel".into())
            .unwrap();
        assert_eq!(
            s.describe(),
            "redis at s1:26379,[::1]:26380 (sentinels, master my master), namespace default"
        );
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("canary") && !s.describe().contains("canary"),
            "{debug}"
        );
        let r = s.redis.as_ref().unwrap();
        assert_eq!(r.settings.db(), 3);
        assert_eq!(r.settings.password(), Some("canary-pw"));
        assert_eq!(r.settings.username(), Some("u"));
        let Topology::Sentinel(sentinels) = &r.topology else {
            panic!("not a sentinel store")
        };
        assert_eq!(sentinels.addrs, ["s1:26379", "[::1]:26380"]);
        assert_eq!(sentinels.password.as_deref(), Some("canary-sentinel"));
        assert_eq!(s.redis_addr(), None);
    }

    /// A Cluster seed list (or a single seed) with `cluster=true` means layout 2; only db 0.
    #[test]
    fn cluster_urls_parse_and_redact() {
        let s = StoreConfig::new()
            .redis("redis://:canary@a:7000,b:7001,c?cluster=true")
            .unwrap();
        assert_eq!(
            s.describe(),
            "redis at a:7000,b:7001,c:6379 (cluster), namespace default"
        );
        assert!(!format!("{s:?}").contains("canary"));
        assert_eq!(s.keys().layout(), Layout::Cluster);
        assert_eq!(s.redis_addr(), None);
        let one = StoreConfig::new()
            .redis("redis://a:7000?cluster=true")
            .unwrap();
        assert_eq!(one.redis_addr(), Some("a:7000"));
        assert_eq!(one.keys().layout(), Layout::Cluster);
        let single = StoreConfig::new().redis("redis://a?cluster=false").unwrap();
        assert_eq!(single.keys().layout(), Layout::Single);
        let err = |url: &str| StoreConfig::new().redis(url).unwrap_err().to_string();
        assert!(err("redis://a:1/2?cluster=true").contains("only database 0"));
        assert!(err("redis://a?cluster=yes").contains("must be true or false"));
        let e = err("redis://:canary@a:1,b:x?cluster=true");
        assert!(e.starts_with("host 2 of the host list: "), "{e}");
        assert!(!e.contains("canary"), "{e}");
    }

    /// Bad hosts are named by position and no part of the URL (which may hold a password)
    /// is echoed; a missing master name or an unknown option is said.
    #[test]
    fn bad_host_lists_name_the_position() {
        let err = |url: &str| StoreConfig::new().redis(url).unwrap_err().to_string();
        let e = err("redis+sentinel://:canary@a:1,,c/m");
        assert!(e.contains("host 2 of the host list is empty"), "{e}");
        let e = err("redis+sentinel://:canary@a:1,b:99999/m");
        assert!(e.starts_with("host 2 of the host list: "), "{e}");
        assert!(!e.contains("canary"), "{e}");
        let e = err("redis+sentinel://a:1,b:2");
        assert!(e.contains("name the master"), "{e}");
        let e = err("redis+sentinel://a/m?cluster=true");
        assert!(e.contains("unknown option `cluster`"), "{e}");
        let e = err("redis://:canary@a:1,b:2");
        assert!(e.contains("redis+sentinel://"), "{e}");
        assert!(!e.contains("canary"), "{e}");
        let e = StoreConfig::new()
            .redis("redis://a")
            .unwrap()
            .redis_sentinel_password("x".into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not redis+sentinel://"), "{e}");
        let e = StoreConfig::from_lookup(lookup(&[(
            "READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE",
            "/nonexistent",
        )]))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE: cannot read /nonexistent"),
            "{e}"
        );
    }
}
