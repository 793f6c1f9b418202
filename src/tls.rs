//! TLS for the listeners: rustls with the `ring` provider (no OpenSSL, no system library).
//!
//! A [`ServerTls`] holds the current `rustls::ServerConfig` of one listener, built from the
//! PEM files named in its `[mqtt.tls]` / `[wire.tls]` section. [`ServerTls::reload`] reads
//! the files again (SIGHUP): new handshakes use the new certificates, live connections keep
//! the session they negotiated, and a file that does not load leaves the old configuration
//! in place. [`ServerTls::accept`] runs one handshake under the configured timeout and
//! returns the stream with the client certificate's identity when one is configured.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::config::{IdentitySource, TlsListenerConfig};

/// Why a TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} file {path}: {problem} (key `{key}`)")]
    File {
        /// Which file (`cert_file`, `key_file`, `client_ca_file`).
        key: &'static str,
        /// What it is for.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the combination (a key that does not match the certificate, a CA
    /// that is not a CA, ...).
    #[error("{listener} TLS: {source}")]
    Rustls {
        /// The listener (`[mqtt.tls]` or `[wire.tls]`).
        listener: &'static str,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The client verifier could not be built from the client CA file.
    #[error("{listener} TLS: client_ca_file: {source}")]
    ClientCa {
        /// The listener.
        listener: &'static str,
        /// What rustls said.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

/// Why one handshake failed. Logged per connection at debug level and counted.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer did not finish the handshake in time.
    #[error("TLS handshake timed out")]
    Timeout,
    /// The peer is not speaking TLS, or negotiation failed (no common version or cipher,
    /// a refused or missing client certificate).
    #[error("TLS handshake failed: {0}")]
    Failed(#[source] std::io::Error),
    /// `identity_as_username` is set and the verified certificate has no such name.
    #[error("client certificate has no {0:?} to use as user name")]
    NoIdentity(IdentitySource),
}

/// One listener's TLS: its settings and the current rustls configuration.
#[derive(Debug)]
pub struct ServerTls {
    settings: TlsListenerConfig,
    listener: &'static str,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl ServerTls {
    /// Loads the files named by `settings`; `listener` names the section in errors
    /// (`"[mqtt.tls]"`).
    pub fn load(settings: &TlsListenerConfig, listener: &'static str) -> Result<Self, TlsError> {
        let config = build(settings, listener)?;
        Ok(Self {
            settings: settings.clone(),
            listener,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the files again; on success new handshakes use them. On failure the previous
    /// configuration stays in force and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(build(&self.settings, self.listener)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// The section this listener is configured in, for logs.
    pub fn listener(&self) -> &'static str {
        self.listener
    }

    /// Runs the server side of a handshake on `tcp` (bounded by `handshake_timeout_ms`).
    /// Returns the TLS stream and, with `identity_as_username`, the name taken from the
    /// verified client certificate.
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, Option<String>), HandshakeError> {
        let config = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let timeout = Duration::from_millis(self.settings.handshake_timeout_ms);
        let stream = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Err(_) => return Err(HandshakeError::Timeout),
            Ok(Err(e)) => return Err(HandshakeError::Failed(e)),
            Ok(Ok(s)) => s,
        };
        let Some(source) = self.settings.identity_as_username else {
            return Ok((stream, None));
        };
        // The verifier has checked the chain; a missing certificate here means it was
        // optional (`require_client_cert = false`) and the client sent none.
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first());
        match leaf {
            None => Ok((stream, None)),
            Some(cert) => match identity(cert, source) {
                Some(name) => Ok((stream, Some(name))),
                None => Err(HandshakeError::NoIdentity(source)),
            },
        }
    }
}

/// Builds a server configuration: certificate chain and key, and a client verifier when a
/// client CA file is set.
fn build(s: &TlsListenerConfig, listener: &'static str) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&s.cert_file, "cert_file", "certificate")?;
    let key = PrivateKeyDer::from_pem_file(&s.key_file).map_err(|e| TlsError::File {
        key: "key_file",
        what: "private key",
        path: s.key_file.clone(),
        problem: pem_problem(e),
    })?;
    let rustls_err = |source| TlsError::Rustls { listener, source };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?;
    let builder = match &s.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(path, "client_ca_file", "client CA")? {
                roots.add(cert).map_err(rustls_err)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if s.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|source| TlsError::ClientCa { listener, source })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).map_err(rustls_err)
}

/// Every certificate in a PEM file; an empty file is an error.
fn certificates(
    path: &Path,
    key: &'static str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_err = |problem| TlsError::File {
        key,
        what,
        path: path.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(pem_problem(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(pem_problem(e)))?;
    if certs.is_empty() {
        return Err(file_err("holds no PEM CERTIFICATE block".to_owned()));
    }
    Ok(certs)
}

fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "holds no usable PEM block".to_owned(),
        other => format!("is not valid PEM ({other:?})"),
    }
}

/// The name a certificate gives its subject: the common name, or the first DNS name,
/// e-mail address or URI among its subject alternative names. `None` when it has none (or
/// does not parse, which cannot happen after rustls verified it).
pub fn identity(cert: &CertificateDer<'_>, source: IdentitySource) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    let tbs = &cert.tbs_certificate;
    match source {
        IdentitySource::Cn => tbs
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .find(|atv| atv.oid == x509_cert::der::oid::db::rfc4519::CN)
            .and_then(|atv| directory_string(&atv.value)),
        IdentitySource::San => {
            use x509_cert::ext::pkix::name::GeneralName;
            let ext =
                tbs.extensions.as_ref()?.iter().find(|e| {
                    e.extn_id == x509_cert::der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME
                })?;
            let names =
                x509_cert::ext::pkix::SubjectAltName::from_der(ext.extn_value.as_bytes()).ok()?;
            names.0.into_iter().find_map(|n| match n {
                GeneralName::DnsName(s) => Some(s.to_string()),
                GeneralName::Rfc822Name(s) => Some(s.to_string()),
                GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
                _ => None,
            })
        }
    }
}

/// A directory string as text: UTF8String, PrintableString or IA5String (the encodings
/// CAs use for a common name).
fn directory_string(value: &x509_cert::der::Any) -> Option<String> {
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    if let Ok(s) = value.decode_as::<Utf8StringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = value.decode_as::<PrintableStringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    value
        .decode_as::<Ia5StringRef<'_>>()
        .ok()
        .map(|s| s.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(cn: &str, sans: &[&str]) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if !cn.is_empty() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn identity_from_common_name_and_san() {
        let cert = cert_with("sensor-42", &["dev42.example"]);
        assert_eq!(
            identity(&cert, IdentitySource::Cn).as_deref(),
            Some("sensor-42")
        );
        assert_eq!(
            identity(&cert, IdentitySource::San).as_deref(),
            Some("dev42.example")
        );
    }

    #[test]
    fn identity_missing_is_none() {
        let cert = cert_with("", &[]);
        assert_eq!(identity(&cert, IdentitySource::Cn), None);
        assert_eq!(identity(&cert, IdentitySource::San), None);
        assert_eq!(
            identity(
                &CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]),
                IdentitySource::Cn
            ),
            None
        );
    }

    #[test]
    fn missing_and_empty_files_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let settings = TlsListenerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert_file: dir.path().join("nope.pem"),
            key_file: empty.clone(),
            client_ca_file: None,
            require_client_cert: true,
            identity_as_username: None,
            handshake_timeout_ms: 1000,
        };
        let e = ServerTls::load(&settings, "[mqtt.tls]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cert_file") && e.contains("nope.pem"), "{e}");
        let settings = TlsListenerConfig {
            cert_file: empty,
            ..settings
        };
        let e = ServerTls::load(&settings, "[mqtt.tls]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no PEM CERTIFICATE"), "{e}");
    }
}
