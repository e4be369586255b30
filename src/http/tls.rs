//! HTTPS without a proxy in front: TLS (rustls) on the same port as plain
//! HTTP, HTTP/2 chosen by ALPN so a browser's tabs share one connection,
//! and the certificate files read again when they change (a renewal by
//! certbot or acme.sh needs no restart).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use tokio_rustls::rustls::crypto::ring::{default_provider, sign::any_supported_type};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::shutdown::Shutdown;

/// How often the certificate files are looked at for a change.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The TLS side of the listener.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    certs: Arc<Certs>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.certs.cert)
            .finish()
    }
}

/// The certificate served now, and where it came from.
#[derive(Debug)]
struct Certs {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times when last read.
    seen: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

impl Tls {
    /// Reads the PEM certificate chain and private key, with errors that
    /// name the file and what is wrong with it.
    pub fn load(cert: &Path, key: &Path) -> io::Result<Tls> {
        let certified = read_pair(cert, key)?;
        let certs = Arc::new(Certs {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new((modified(cert), modified(key))),
        });
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        // HTTP/2 first: every tab of a browser shares one connection.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs,
        })
    }

    /// Reads the files again whenever they change, until shutdown. A pair
    /// that does not load (a renewal half-written) is logged and the
    /// current certificate kept; the next change is tried again.
    pub fn watch(&self, mut shutdown: Shutdown) {
        let certs = self.certs.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(RELOAD_EVERY) => {}
                    _ = shutdown.wait() => return,
                }
                let stamps = (modified(&certs.cert), modified(&certs.key));
                if *certs.seen.lock() == stamps {
                    continue;
                }
                let (cert, key) = (certs.cert.clone(), certs.key.clone());
                match tokio::task::spawn_blocking(move || read_pair(&cert, &key)).await {
                    Ok(Ok(pair)) => {
                        *certs.current.write() = Arc::new(pair);
                        *certs.seen.lock() = stamps;
                        tracing::info!(
                            "reloaded the TLS certificate from {}",
                            certs.cert.display()
                        );
                    }
                    Ok(Err(error)) => {
                        *certs.seen.lock() = stamps;
                        tracing::warn!("the TLS certificate changed but does not load ({error}); still serving the previous one");
                    }
                    Err(_) => tracing::warn!(
                        "reading the TLS certificate panicked; still serving the previous one"
                    ),
                }
            }
        });
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_pair(cert: &Path, key: &Path) -> io::Result<CertifiedKey> {
    let bad = |path: &Path, what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, format!("cannot read a PEM certificate chain ({e})")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(bad(
            cert,
            "holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key, format!("not a PEM private key ({e})")))?;
    let signing = any_supported_type(&private)
        .map_err(|e| bad(key, format!("a key rustls cannot sign with ({e})")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        bad(
            key,
            format!(
                "does not belong to the certificate in {} ({e})",
                cert.display()
            ),
        )
    })?;
    Ok(certified)
}
