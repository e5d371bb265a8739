//! `http://` and `https://`: the status must be in the accepted set, optionally the body must match.
//!
//! Redirects are followed only within the same host (a health endpoint that bounces to a login
//! page elsewhere is not healthy), proxies from the environment are ignored for loopback, and the
//! body is read only when a match is asked for, and then at most [`BODY_LIMIT`] bytes of it.

use std::ops::RangeInclusive;

use reqwest::redirect;
use url::Url;

use crate::failure::{Failure, FailureKind, Phase};
use crate::net::{self, TlsOptions};
use crate::options::{Options, split_query};
use crate::progress::Progress;
use crate::text::truncate;

/// How much of a body is searched for `body=`; a huge body must not cost the probe memory.
const BODY_LIMIT: usize = 1 << 20;

/// At most this many same-host redirects are followed.
const MAX_REDIRECTS: usize = 5;

/// A validated `http://` or `https://` target.
#[derive(Debug, Clone)]
pub(crate) struct HttpTarget {
    url: Url,
    accept: StatusSet,
    body: Option<String>,
    tls: TlsOptions,
}

/// Accepted status codes, such as `200-299` or `200,204,301-302`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusSet(Vec<RangeInclusive<u16>>);

impl StatusSet {
    pub(crate) fn parse(s: &str) -> Result<StatusSet, Failure> {
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim) {
            let code = |c: &str| match c.trim().parse::<u16>() {
                Ok(n) if (100..=599).contains(&n) => Ok(n),
                _ => Err(Failure::config(format!(
                    "option `status`: `{}` is not an HTTP status (100-599)",
                    truncate(c, 20)
                ))),
            };
            let range = match part.split_once('-') {
                Some((lo, hi)) => code(lo)?..=code(hi)?,
                None => code(part)?..=code(part)?,
            };
            if range.is_empty() {
                return Err(Failure::config(format!(
                    "option `status`: `{}` is an empty range",
                    truncate(part, 20)
                )));
            }
            ranges.push(range);
        }
        Ok(StatusSet(ranges))
    }

    fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.contains(&status))
    }
}

impl HttpTarget {
    pub(crate) fn from_url(url: &Url, opts: &mut Options) -> Result<HttpTarget, Failure> {
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Failure::config("no host"));
        }
        let accept = match opts.take("status")? {
            Some(s) => StatusSet::parse(&s)?,
            None => StatusSet(vec![200..=299]),
        };
        let body = opts.take("body")?;
        if body.as_deref() == Some("") {
            return Err(Failure::config("option `body` is empty"));
        }
        let tls = TlsOptions {
            ca_file: opts.take_path("ca_file")?,
            server_name: None,
            insecure: opts.take_bool("insecure")?,
        };
        if url.scheme() == "http" && (tls.ca_file.is_some() || tls.insecure) {
            return Err(Failure::config("tls options need the https:// scheme"));
        }
        // The remaining query belongs to the endpoint, not to us: our options are removed from
        // it and the rest is sent byte for byte (`?verbose` stays `?verbose`, `a,b` stays `a,b`).
        let mut url = url.clone();
        let keep: Vec<&str> = split_query(url.query().unwrap_or_default())
            .filter(|(k, _, _)| !matches!(k.as_str(), "status" | "body" | "ca_file" | "insecure"))
            .map(|(_, _, raw)| raw)
            .collect();
        let keep = keep.join("&");
        url.set_query((!keep.is_empty()).then_some(keep.as_str()));
        url.set_fragment(None);
        opts.pass_through();
        Ok(HttpTarget {
            url,
            accept,
            body,
            tls,
        })
    }
}

impl HttpTarget {
    #[cfg(test)]
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }
}

pub(crate) async fn check(t: &HttpTarget, progress: &Progress) -> Result<Option<String>, Failure> {
    let origin = (
        t.url.host_str().map(str::to_owned),
        t.url.port_or_known_default(),
    );
    let policy = redirect::Policy::custom(move |attempt| {
        let same = (
            attempt.url().host_str().map(str::to_owned),
            attempt.url().port_or_known_default(),
        ) == origin;
        if !same {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("more than 5 redirects (a redirect loop?)")
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .redirect(policy)
        .user_agent(concat!("healthcheck/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(0)
        // Roots are ours (below, https only): parsing reqwest's copy would cost every probe.
        .tls_built_in_root_certs(false);
    // Resolve here, so a name that does not resolve is a DNS failure naming the host, and the
    // address talked to is known.
    if let Some(url::Host::Domain(host)) = t.url.host() {
        let port = t.url.port_or_known_default().unwrap_or(80);
        let addrs = net::resolve(host, port, progress).await?;
        builder = builder.resolve_to_addrs(host, &addrs);
        progress.talking_to(match addrs.as_slice() {
            [one] => one.to_string(),
            _ => format!("{host}:{port}"),
        });
    } else if let Some(host) = t.url.host_str() {
        let port = t.url.port_or_known_default().unwrap_or(80);
        progress.talking_to(format!("{host}:{port}"));
    }
    if is_loopback(&t.url) {
        builder = builder.no_proxy();
    }
    // reqwest connects (TCP, then TLS) inside its connector: the layer tells this check when that
    // is done, so a deadline says "tls handshake with" or "waiting for the response from" truly.
    let https = t.url.scheme() == "https";
    if https {
        // TCP first, ourselves (one extra connection, https only): then a connector still busy at
        // the deadline is in the TLS handshake, and a refused port says so in TCP's own words.
        let host = t
            .url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']']);
        let port = t.url.port_or_known_default().unwrap_or(443);
        drop(net::connect(host, port, progress).await?);
    }
    builder = builder.connector_layer(ConnectPhase {
        phase: progress.phase_handle(),
        connecting: if https { Phase::Tls } else { Phase::Connect },
    });
    if t.url.scheme() == "https" {
        builder = builder.use_preconfigured_tls(t.tls.client_config()?);
    }
    let client = builder
        .build()
        .map_err(|e| progress.fail(FailureKind::Config, format!("http client: {}", chain(&e))))?;

    progress.step(Phase::Protocol, "waiting for the response from");
    let mut response = client
        .get(t.url.clone())
        .send()
        .await
        .map_err(|e| request_failure(&e, progress))?;
    let status = response.status();
    if !t.accept.contains(status.as_u16()) {
        let mut reason = format!("status {}", status.as_u16());
        if status.is_redirection()
            && let Some(to) = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
        {
            reason.push_str(&format!(
                " redirect to {} not followed (other host)",
                location(&t.url, to)
            ));
        }
        return Err(progress.fail(FailureKind::Unhealthy, reason));
    }
    let Some(needle) = &t.body else {
        return Ok(Some(format!("status {}", status.as_u16())));
    };

    progress.step(Phase::Read, "reading body from");
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        match response
            .chunk()
            .await
            .map_err(|e| progress.fail(FailureKind::Io, format!("reading body: {}", chain(&e))))?
        {
            Some(chunk) => {
                // Search only what this chunk can complete: rescanning the whole body at every
                // chunk made a 1 MiB body quadratic (about a second in a debug build).
                let from = body.len().saturating_sub(needle.len().saturating_sub(1));
                body.extend_from_slice(&chunk);
                if contains(&body[from..], needle.as_bytes()) {
                    return Ok(Some(format!("status {}, body matched", status.as_u16())));
                }
            }
            None => break,
        }
    }
    let read = if body.len() >= BODY_LIMIT {
        " in the first 1 MiB"
    } else {
        ""
    };
    Err(progress.fail(
        FailureKind::Unhealthy,
        format!(
            "status {} but body does not contain `{}`{read}",
            status.as_u16(),
            truncate(needle, 80)
        ),
    ))
}

/// A connector layer that moves the check's phase: `connecting` while reqwest connects, then
/// `Protocol` once the connection (and its TLS) is up.
#[derive(Debug, Clone)]
struct ConnectPhase {
    phase: crate::progress::PhaseHandle,
    connecting: Phase,
}

impl<S> tower_layer::Layer<S> for ConnectPhase {
    type Service = ConnectPhaseService<S>;

    fn layer(&self, inner: S) -> ConnectPhaseService<S> {
        ConnectPhaseService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct ConnectPhaseService<S> {
    inner: S,
    layer: ConnectPhase,
}

impl<S, R> tower_service::Service<R> for ConnectPhaseService<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.layer.phase.set(self.layer.connecting);
        let connecting = self.inner.call(request);
        let phase = self.layer.phase.clone();
        Box::pin(async move {
            let connected = connecting.await;
            if connected.is_ok() {
                phase.set(Phase::Protocol);
            }
            connected
        })
    }
}

/// A `Location` as scheme, host and path only: its query may carry a token.
fn location(base: &Url, to: &str) -> String {
    match base.join(to) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            truncate(
                &format!(
                    "{}://{}{port}{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.path()
                ),
                200,
            )
        }
        Err(_) => "an unparseable location".into(),
    }
}

/// A request error typed by what its source chain holds (an I/O error kind, a TLS error) and by
/// the phase the connector layer left (TLS for an HTTPS connect that failed after our TCP check).
fn request_failure(e: &reqwest::Error, progress: &Progress) -> Failure {
    let mut source = std::error::Error::source(e);
    let mut refused = false;
    let mut tls = false;
    while let Some(s) = source {
        tls |= s.is::<rustls::Error>();
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            tls |= io.get_ref().is_some_and(|i| i.is::<rustls::Error>());
        }
        source = s.source();
    }
    let kind = if e.is_redirect() {
        FailureKind::Unhealthy
    } else if refused {
        progress.set(Phase::Connect);
        FailureKind::Refused
    } else if tls || (e.is_connect() && progress.phase() == Phase::Tls) {
        progress.set(Phase::Tls);
        FailureKind::Tls
    } else {
        FailureKind::Io
    };
    progress.fail(kind, chain(e))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// A reqwest error as one line: its causes, without the URL (which may carry credentials).
fn chain(e: &reqwest::Error) -> String {
    if e.is_redirect()
        && let Some(src) = std::error::Error::source(e)
    {
        return src.to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        let text = match text.find(" (os error") {
            Some(i) => text[..i].to_lowercase(),
            None => text,
        };
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        return truncate(&e.to_string(), 300);
    }
    // The innermost causes are the informative ones ("connection refused").
    truncate(&parts[parts.len().saturating_sub(2)..].join(": "), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets_parse_lists_and_ranges() {
        let s = StatusSet::parse("200,204,301-302").unwrap();
        assert!(s.contains(204) && s.contains(302) && !s.contains(201));
        let e = |s: &str| StatusSet::parse(s).unwrap_err().to_string();
        assert!(e("299-200").contains("empty range"));
        assert!(e("abc").contains("`abc`"));
        assert!(StatusSet::parse("700").is_err());
    }

    #[test]
    fn our_options_are_not_sent_to_the_endpoint() {
        let t = crate::Target::parse_with(
            "http://h/health?full=1&status=200&verbose&l=a,b+c%2C&body=ok",
            &|_| None,
        )
        .unwrap();
        assert_eq!(
            t.http_url().unwrap().as_str(),
            "http://h/health?full=1&verbose&l=a,b+c%2C"
        );
    }
}
