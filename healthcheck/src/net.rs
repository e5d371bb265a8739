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

use crate::checks::Progress;
use crate::secret::io_reason;

/// Resolves `host:port` to every address it has.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    progress: &Progress,
) -> Result<Vec<SocketAddr>, String> {
    progress.set("resolving");
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {}", dns_reason(&e)))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}: no addresses"));
    }
    Ok(addrs)
}

/// getaddrinfo's messages are long and vary by libc; keep the gist.
fn dns_reason(e: &io::Error) -> String {
    let s = e.to_string().to_lowercase();
    if s.contains("name or service not known")
        || s.contains("not known")
        || s.contains("nodename nor servname")
    {
        "name not known".into()
    } else if s.contains("temporary failure") || s.contains("try again") {
        "temporary failure in name resolution".into()
    } else {
        io_reason(e)
    }
}

/// Connects to the first of `host`'s addresses that accepts.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    progress: &Progress,
) -> Result<TcpStream, String> {
    let addrs = resolve(host, port, progress).await?;
    progress.set("connecting");
    let mut attempts: FuturesUnordered<_> = addrs
        .iter()
        .map(|&addr| async move { (addr, TcpStream::connect(addr).await) })
        .collect();
    let mut failures = Vec::new();
    while let Some((addr, result)) = attempts.next().await {
        match result {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => failures.push((addr, io_reason(&e))),
        }
    }
    Err(describe_failures(host, port, &failures))
}

fn describe_failures(host: &str, port: u16, failures: &[(SocketAddr, String)]) -> String {
    match failures {
        [(_, reason)] => format!("connect {host}:{port}: {reason}"),
        _ if failures.iter().all(|(_, r)| r == &failures[0].1) => {
            format!(
                "connect {host}:{port}: {} (all {} addresses)",
                failures[0].1,
                failures.len()
            )
        }
        _ => {
            let each: Vec<String> = failures.iter().map(|(a, r)| format!("{a} {r}")).collect();
            format!("connect {host}:{port}: {}", each.join(", "))
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
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls setup: {e}"))?;
        if self.insecure {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(insecure::NoVerification::new()))
                .with_no_client_auth());
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!("cannot read ca_file {}: {}", path.display(), io_reason(&e))
                })?;
                let mut added = 0;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                    added += 1;
                }
                if added == 0 {
                    return Err(format!(
                        "ca_file {}: no PEM certificates in it",
                        path.display()
                    ));
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
) -> Result<TlsStream<TcpStream>, String> {
    progress.set("tls handshake");
    let config = options.client_config()?;
    let name = options.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| format!("`{name}` is not a valid tls server name"))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, stream)
        .await
        .map_err(|e| format!("tls handshake: {}", io_reason(&e)))
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
