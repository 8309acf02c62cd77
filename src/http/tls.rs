//! HTTPS: a rustls server configuration (ring provider, TLS 1.2 and 1.3) from PEM files. With
//! it, apikeyd may listen beyond loopback; without it, only a declared TLS-terminating proxy
//! allows that (`--behind-tls-proxy`), because keys travel in request headers.

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server configuration for the certificate chain and private key in these PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, Box<dyn Error>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {}: no certificate found", cert.display()).into());
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(config)
}
