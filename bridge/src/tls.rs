//! TLS client configuration from PEM files: rustls with the `ring` provider, the CA that
//! must have signed the server's certificate, and optionally this client's certificate.
//! Used by the MQTT upstream and by the broker's own client (`outpost --tls-ca`).

use std::path::Path;
use std::sync::Arc;

/// Builds a client configuration trusting the CA certificates in `ca_file` and, with
/// `client_cert` = (certificate chain file, private key file), presenting that certificate.
/// Errors name the file and the problem.
pub fn client_config(
    ca_file: &Path,
    client_cert: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    let pem = read(ca_file)?;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("{}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate found", ca_file.display()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let Some((cert, key)) = client_cert else {
        return Ok(builder.with_no_client_auth());
    };
    let pem = read(cert)?;
    let chain = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let pem = read(key)?;
    let key_der = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key found", key.display()))?;
    builder
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| format!("client certificate: {e}"))
}
