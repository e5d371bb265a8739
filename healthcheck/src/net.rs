//! Connecting: resolve a name, try every address, optionally wrap in TLS.
//!
//! In containers `localhost` resolves to both `::1` and `127.0.0.1` and a server often listens on
//! only one of them, so every address is tried, concurrently, and the first to accept wins.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::failure::{Failure, FailureKind, Phase};
use crate::progress::Progress;
use ready_signal::files::io_reason;

/// Resolves `host:port` to every address it has.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    progress: &Progress,
) -> Result<Vec<SocketAddr>, Failure> {
    progress.set(Phase::Resolve);
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    progress.talking_to(host);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| progress.fail(FailureKind::Dns, dns_reason(&e)))?
        .collect();
    if addrs.is_empty() {
        return Err(progress.fail(FailureKind::Dns, "no addresses"));
    }
    Ok(addrs)
}

/// getaddrinfo's own words, as the system gives them (glibc "Name or service not known", musl
/// "Name does not resolve"): nothing is decided on them, the kind is DNS whatever they say.
fn dns_reason(e: &io::Error) -> String {
    crate::text::truncate(&io_reason(e).to_lowercase(), 200)
}

/// Connects to the first of `host`'s addresses that accepts.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    progress: &Progress,
) -> Result<TcpStream, Failure> {
    let addrs = resolve(host, port, progress).await?;
    progress.set(Phase::Connect);
    progress.talking_to(match addrs.as_slice() {
        [one] => one.to_string(),
        _ => format!("{host}:{port}"),
    });
    let mut attempts: FuturesUnordered<_> = addrs
        .iter()
        .map(|&addr| async move { (addr, TcpStream::connect(addr).await) })
        .collect();
    let mut failures = Vec::new();
    while let Some((addr, result)) = attempts.next().await {
        match result {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                progress.talking_to(addr.to_string());
                return Ok(stream);
            }
            Err(e) => failures.push((addr, e)),
        }
    }
    let kind = if failures.iter().all(|(_, e)| {
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
        )
    }) {
        FailureKind::Refused
    } else {
        FailureKind::Io
    };
    let address = match failures.as_slice() {
        [(one, _)] => one.to_string(),
        _ => format!("{host}:{port}"),
    };
    Err(Failure::new(kind, describe_failures(&failures)).at(Phase::Connect, Some(address)))
}

fn describe_failures(failures: &[(SocketAddr, io::Error)]) -> String {
    let reasons: Vec<(SocketAddr, String)> =
        failures.iter().map(|(a, e)| (*a, io_reason(e))).collect();
    match reasons.as_slice() {
        [(_, reason)] => reason.clone(),
        _ if reasons.iter().all(|(_, r)| r == &reasons[0].1) => {
            let each: Vec<String> = reasons.iter().map(|(a, _)| a.to_string()).collect();
            format!("{} (all of {})", reasons[0].1, each.join(", "))
        }
        _ => {
            let each: Vec<String> = reasons.iter().map(|(a, r)| format!("{a} {r}")).collect();
            each.join(", ")
        }
    }
}

/// How to verify a TLS peer.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsOptions {
    /// PEM file of CA certificates; the webpki roots when absent.
    pub(crate) ca_file: Option<PathBuf>,
    /// Name to verify instead of the host in the URL.
    pub(crate) server_name: Option<String>,
    /// Skip verification; only when the target says `insecure=true`.
    pub(crate) insecure: bool,
}

impl TlsOptions {
    /// Builds a rustls client configuration. Errors name the CA file.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, Failure> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Failure::new(FailureKind::Tls, format!("tls setup: {e}")))?;
        if self.insecure {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(insecure::NoVerification::new()))
                .with_no_client_auth());
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let pem = crate::options::read_named_file(
                    "ca_file",
                    path,
                    ready_signal::files::CONFIG_LIMIT,
                )?;
                let bad = |e: &dyn std::fmt::Display| {
                    Failure::config(format!("ca_file {}: {e}", path.display()))
                };
                let mut added = 0;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| bad(&e))?;
                    roots.add(cert).map_err(|e| bad(&e))?;
                    added += 1;
                }
                if added == 0 {
                    return Err(bad(&"no PEM certificates in it"));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }
}

/// Performs a TLS handshake over `stream`, verifying `host` (or the configured server name).
pub(crate) async fn tls(
    stream: TcpStream,
    host: &str,
    options: &TlsOptions,
    progress: &Progress,
) -> Result<TlsStream<TcpStream>, Failure> {
    progress.set(Phase::Tls);
    let config = options.client_config()?;
    let name = options.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| Failure::config(format!("`{name}` is not a valid tls server name")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, stream)
        .await
        .map_err(|e| {
            let kind = if e.kind() == io::ErrorKind::InvalidData {
                FailureKind::Tls
            } else {
                FailureKind::Io
            };
            progress.fail(kind, crate::text::truncate(&io_reason(&e), 300))
        })
}

/// The verifier behind `insecure=true`: accepts any certificate, still checks signatures.
mod insecure {
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    pub(super) struct NoVerification(CryptoProvider);

    impl NoVerification {
        pub(super) fn new() -> NoVerification {
            NoVerification(rustls::crypto::ring::default_provider())
        }
    }

    impl ServerCertVerifier for NoVerification {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
