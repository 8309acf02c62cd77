//! HTTPS through actix-web's rustls support: the real binary serves TLS with a certificate
//! generated here, a rustls client that trusts only that certificate gets answers, and plain
//! HTTP on the same port gets none; the admin page's session cookie is `Secure` there.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};

use crate::support::binary::Server;

/// One HTTPS request; returns the raw response (read until the server closes).
fn https(server: &Server, roots: &rustls::RootCertStore, request: &str) -> String {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    // A server may close without close_notify after `Connection: close`; what was read counts.
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The real binary serving TLS with a certificate made here for `localhost` (files in `dir`),
/// and the roots a client trusts it with.
fn tls_server(dir: &std::path::Path) -> (Server, rustls::RootCertStore) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    let server = Server::start(
        &dir.join("k.db"),
        &[("APIKEYD_TLS_CERT", cert.to_str().unwrap()), ("APIKEYD_TLS_KEY", key.to_str().unwrap())],
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(generated.cert.der().to_vec())).unwrap();
    (server, roots)
}

#[test]
fn the_server_speaks_tls_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (server, roots) = tls_server(dir.path());
    let root = server.printed_root_key().unwrap();

    let health = https(&server, &roots, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");
    let listed = https(
        &server,
        &roots,
        &format!(
            "GET /api/v1/keys HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {root}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(listed.starts_with("HTTP/1.1 200") && listed.contains("\"success\":true"), "{listed}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let (status, _) = server.request("GET", "/healthz", &[], None);
    assert_eq!(status, 0, "plain HTTP must not be served on the TLS port");
}

#[test]
fn the_admin_pages_session_cookie_is_secure_under_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (server, roots) = tls_server(dir.path());
    // A root key is base62 after its prefix: nothing in it needs form encoding.
    let body = format!("api_key={}", server.printed_root_key().unwrap());
    let login = https(
        &server,
        &roots,
        &format!(
            "POST /admin/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {login}"));
    assert!(cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Strict"), "{cookie}");
    assert!(cookie.trim_end().ends_with("; Secure"), "{cookie}");
}
