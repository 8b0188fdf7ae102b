//! Serving HTTPS, as a real API server does: in-cluster clients
//! (`rest.InClusterConfig` in client-go, `kube::Config::incluster` in
//! kube-rs) only speak `https://KUBERNETES_SERVICE_HOST:PORT` and verify the
//! server against the service account's `ca.crt`.
//!
//! Plain HTTP stays the default; [`TlsConfig`] turns TLS on with a PEM
//! certificate chain and key. ALPN offers `http/1.1` only, since kubesim
//! serves HTTP/1.1 (Go clients offer `h2` and fall back).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake that has not finished by then is dropped, so a client that
/// connects and says nothing holds no more than a task.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The serving certificate of an HTTPS simulator.
#[derive(Clone)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_pem: Vec<u8>,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key_pem: Vec<u8>,
    /// PEM CA certificates that clients should trust, written into
    /// [`crate::Server::kubeconfig_yaml`]; `None`: the chain itself (which
    /// verifies when it ends with its CA).
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads the certificate chain, key and optional CA bundle from PEM files.
    pub fn from_files(cert: &Path, key: &Path, ca: Option<&Path>) -> io::Result<TlsConfig> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        Ok(TlsConfig {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            ca_pem: ca.map(read).transpose()?,
        })
    }

    /// What a client should trust (PEM).
    pub fn trust_pem(&self) -> &[u8] {
        self.ca_pem.as_deref().unwrap_or(&self.cert_pem)
    }

    /// The TLS side of a listener; fails on a bad certificate or key.
    pub fn acceptor(&self) -> io::Result<TlsAcceptor> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("TLS {what}: {e}"))
        };
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("certificate", &e))?;
        if certs.is_empty() {
            return Err(invalid("certificate", &"no PEM certificate found"));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| invalid("key", &e))?;
        // An explicit provider, so no process-wide default needs installing.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("versions", &e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid("certificate and key", &e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// An [`axum::serve::Listener`] that hands out connections once their TLS
/// handshake is done. Handshakes run concurrently, so a slow client does not
/// hold up the others; dropping the listener abandons the unfinished ones.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
        TlsListener {
            tcp,
            acceptor,
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => Some((tls, peer)),
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    None
                                }
                                Err(_) => None,
                            }
                        });
                    }
                    // As axum's TcpListener: per-connection errors are the
                    // client's; others (out of file descriptors) pass with time.
                    Err(e) if is_connection_error(&e) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
