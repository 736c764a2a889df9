//! TLS to registries: which scheme a registry is spoken to in, and the rustls configuration
//! for it.
//!
//! ```text
//!  --insecure                          → plain HTTP
//!  <certs-dir>/<host:port>/ exists     → HTTPS, even on loopback (how a registry on this host
//!                                        asks for TLS)
//!  loopback (127.0.0.0/8, ::1, localhost) → plain HTTP
//!  anything else                       → HTTPS
//! ```
//!
//! Trusted roots are the Mozilla roots compiled into the binary (webpki-roots), so a host
//! needs no CA bundle installed, plus docker's per-registry directory
//! (`/etc/swarm/certs.d/<host:port>/`, the daemon's `--registry-certs-dir`):
//!
//! ```text
//!  *.crt           CA certificates (PEM) trusted for this registry
//!  NAME.cert       a client certificate (PEM chain) for mutual TLS, with its key NAME.key
//! ```
//!
//! Certificates are always verified: there is no "skip verification" switch; `--insecure`
//! means plain HTTP, as the registry's address says nothing secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::image::error::{ImageError, Result};

/// Where the per-registry CA directories live unless the daemon is told otherwise.
pub const DEFAULT_CERTS_DIR: &str = "/etc/swarm/certs.d";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The scheme for a registry; see the module docs.
pub fn scheme_for(insecure: bool, loopback: bool, has_certs_dir: bool) -> Scheme {
    if insecure {
        Scheme::Http
    } else if has_certs_dir || !loopback {
        Scheme::Https
    } else {
        Scheme::Http
    }
}

/// The certs.d directory of `registry` (`host:port` as the user named it), if there is one.
/// A name that could step out of `certs_dir` has none.
pub fn registry_certs_dir(certs_dir: &Path, registry: &str) -> Option<PathBuf> {
    if registry.is_empty() || registry.contains('/') || registry == "." || registry == ".." {
        return None;
    }
    let dir = certs_dir.join(registry);
    dir.is_dir().then_some(dir)
}

/// The rustls configuration for one registry: built-in roots, the CAs of its certs.d
/// directory, and its client certificate if it has one.
pub fn client_config(registry: &str, dir: Option<&Path>) -> Result<ClientConfig> {
    let tls_error = |message: String| ImageError::Tls {
        registry: registry.to_string(),
        message,
    };
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut client_pair = None;
    if let Some(dir) = dir {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| ImageError::io(format!("read {}", dir.display()), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in &entries {
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    let certs = read_certs(path).map_err(tls_error)?;
                    for cert in certs {
                        roots.add(cert).map_err(|e| {
                            tls_error(format!("CA certificate {}: {e}", path.display()))
                        })?;
                    }
                }
                Some("cert") => {
                    let key_path = path.with_extension("key");
                    let certs = read_certs(path).map_err(tls_error)?;
                    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
                        tls_error(format!(
                            "client key {} (for {}): {e}",
                            key_path.display(),
                            path.display()
                        ))
                    })?;
                    if client_pair.replace((certs, key)).is_some() {
                        return Err(tls_error(format!(
                            "{}: more than one client certificate (*.cert)",
                            dir.display()
                        )));
                    }
                }
                _ => {}
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_root_certificates(roots);
    match client_pair {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| tls_error(format!("client certificate: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Every certificate of a PEM file; a file with none is an error (a typo'd CA must not be
/// silently ignored).
fn read_certs(path: &Path) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| format!("certificate {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// A person's explanation of a TLS failure found in an error's source chain, with what to
/// do about it; `None` when the failure was not TLS.
pub fn explain(
    error: &(dyn std::error::Error + 'static),
    certs_dir: &Path,
    registry: &str,
) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = rustls_error(e) {
            let ca = certs_dir.join(registry).join("ca.crt");
            return Some(match tls {
                rustls::Error::InvalidCertificate(why) => format!(
                    "certificate verify failed: {why:?}: the registry's certificate is not \
                     trusted (put its CA in {})",
                    ca.display()
                ),
                rustls::Error::InvalidMessage(_) => format!(
                    "{tls}: is {registry} a plain-HTTP registry? (use --insecure, or remove {})",
                    ca.parent().unwrap_or(certs_dir).display()
                ),
                other => other.to_string(),
            });
        }
        current = e.source();
    }
    None
}

/// The rustls error `e` is, or wraps: hyper-rustls wraps tokio-rustls' `io::Error` (which
/// wraps the rustls error) in another `io::Error`, and `io::Error::source` skips the error
/// it wraps, so the layers are peeled with `get_ref`.
fn rustls_error<'a>(mut e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    for _ in 0..8 {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner: &(dyn std::error::Error + 'static) =
            e.downcast_ref::<std::io::Error>()?.get_ref()?;
        e = inner;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_tls_errors_are_found_under_io_errors() {
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, cert));
        let message = explain(&wrapped, Path::new("/certs.d"), "r:5000").unwrap();
        assert!(
            message.starts_with("certificate verify failed: UnknownIssuer"),
            "{message}"
        );
        assert!(message.contains("/certs.d/r:5000/ca.crt"), "{message}");
        assert_eq!(
            explain(&std::io::Error::other("x"), Path::new("/c"), "r"),
            None
        );
    }

    #[test]
    fn t10_scheme_per_registry() {
        assert_eq!(scheme_for(true, false, false), Scheme::Http, "--insecure");
        assert_eq!(
            scheme_for(true, true, true),
            Scheme::Http,
            "--insecure wins"
        );
        assert_eq!(scheme_for(false, true, false), Scheme::Http, "loopback");
        assert_eq!(scheme_for(false, true, true), Scheme::Https, "certs.d");
        assert_eq!(scheme_for(false, false, false), Scheme::Https, "the rest");
    }

    #[test]
    fn t10_certs_dir_names_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("127.0.0.1:5000")).unwrap();
        assert_eq!(
            registry_certs_dir(tmp.path(), "127.0.0.1:5000"),
            Some(tmp.path().join("127.0.0.1:5000"))
        );
        assert_eq!(registry_certs_dir(tmp.path(), "127.0.0.1:5001"), None);
        assert_eq!(registry_certs_dir(tmp.path(), ".."), None);
        assert_eq!(registry_certs_dir(tmp.path(), "a/../.."), None);
    }

    #[test]
    fn t10_a_ca_file_without_certificates_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(client_config("r", Some(tmp.path())).is_ok(), "empty dir");
        std::fs::write(tmp.path().join("ca.crt"), "not a certificate\n").unwrap();
        let e = client_config("r", Some(tmp.path())).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        std::fs::remove_file(tmp.path().join("ca.crt")).unwrap();
        std::fs::write(tmp.path().join("client.cert"), "x").unwrap();
        let e = client_config("r", Some(tmp.path())).unwrap_err();
        assert!(e.to_string().contains("client.cert"), "{e}");
    }
}
