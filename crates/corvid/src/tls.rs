//! The server certificate: loaded from the configured PEM files, or generated self-signed for
//! the domains and kept in the data folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use corvid_c2s::TlsMaterial;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256, Sha384, Sha512};
use tracing::{info, warn};

/// ALPN protocol id for direct TLS (XEP-0368 §3).
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

/// Loads or generates the certificate and builds the acceptors.
pub fn material(
    cert_file: &str,
    key_file: &str,
    data_dir: &Path,
    domains: &[String],
) -> anyhow::Result<TlsMaterial> {
    let (certs, key) = if cert_file.is_empty() {
        self_signed(data_dir, domains)?
    } else {
        load(Path::new(cert_file), Path::new(key_file))?
    };
    let leaf = certs
        .first()
        .ok_or_else(|| anyhow!("tls.cert_file: no certificate in {cert_file}"))?;
    let server_end_point = server_end_point(leaf.as_ref());
    let mut provider = rustls::crypto::ring::default_provider();
    // Our order, not the client's: AES-128-GCM with SHA-256 first (the suite every TLS 1.3
    // implementation must have, RFC 8446 §9.1). Against AES-256-GCM-SHA384, which rustls and
    // OpenSSL clients list first, it takes 10 AES rounds instead of 14 per block, and its
    // handshake hashing uses the CPU's SHA-256 instructions, where SHA-384 has none on x86.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    // TLS 1.2 and 1.3 only (rustls has nothing older).
    let mut base = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls: the certificate and key do not match or are unsupported")?;
    base.ignore_client_order = true;
    // Resumption tickets are encrypted with a rotating key and carry the session themselves:
    // no per-session server memory. One per handshake (rustls sends two by default): an XMPP
    // client keeps one connection, so it resumes with one ticket at a time.
    base.ticketer = rustls::crypto::ring::Ticketer::new().context("TLS session tickets")?;
    base.send_tls13_tickets = 1;
    let mut direct = base.clone();
    direct.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
    Ok(TlsMaterial::new(base, direct, server_end_point))
}

fn load(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("tls.cert_file: cannot read {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "tls.cert_file: {} is not a PEM certificate chain",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(anyhow!(
            "tls.cert_file: {} holds no certificate",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("tls.key_file: {} holds no PEM private key", key.display()))?;
    Ok((certs, key))
}

fn self_signed(
    dir: &Path,
    domains: &[String],
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let tls_dir: PathBuf = dir.join("tls");
    let (cert_path, key_path) = (
        tls_dir.join("self-signed.crt"),
        tls_dir.join("self-signed.key"),
    );
    if !(cert_path.exists() && key_path.exists()) {
        std::fs::create_dir_all(&tls_dir)
            .with_context(|| format!("cannot create {}", tls_dir.display()))?;
        let generated = rcgen::generate_simple_self_signed(domains.to_vec())
            .context("generating a certificate")?;
        std::fs::write(&cert_path, generated.cert.pem())
            .with_context(|| format!("cannot write {}", cert_path.display()))?;
        write_private(&key_path, generated.key_pair.serialize_pem().as_bytes())?;
    }
    let (certs, key) = load(&cert_path, &key_path)?;
    let fingerprint = certs
        .first()
        .map(|c| hex_colon(&Sha256::digest(c.as_ref())))
        .unwrap_or_default();
    warn!(
        what = "self-signed-certificate",
        path = %cert_path.display(),
        sha256 = %fingerprint,
        "no certificate configured (tls.cert_file): using a self-signed one; clients will ask to trust it, compare this fingerprint"
    );
    info!(what = "certificate", domains = ?domains, sha256 = %fingerprint);
    Ok((certs, key))
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, data).with_context(|| format!("cannot write {}", path.display()))
}

fn hex_colon(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 5929 §4.1: the certificate hashed with its signature's hash function, SHA-256 when that
/// is MD5 or SHA-1. Undefined for other algorithms (e.g. Ed25519): then not offered.
pub fn server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    let hash = match oid.as_str() {
        // md5WithRSA, sha1WithRSA, ecdsa-with-SHA1, sha256WithRSA, ecdsa-with-SHA256, RSASSA-PSS (SHA-256 assumed)
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.10045.4.1"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.3.2" => 256,
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => 384,
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => 512,
        _ => return None,
    };
    Some(match hash {
        256 => Sha256::digest(der).to_vec(),
        384 => Sha384::digest(der).to_vec(),
        _ => Sha512::digest(der).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_kept_in_the_data_folder_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let domains = vec!["localhost".to_string()];
        let first = material("", "", dir.path(), &domains).unwrap();
        let cert = std::fs::read(dir.path().join("tls/self-signed.crt")).unwrap();
        let second = material("", "", dir.path(), &domains).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("tls/self-signed.crt")).unwrap(),
            cert,
            "not regenerated"
        );
        assert_eq!(first.server_end_point, second.server_end_point);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("tls/self-signed.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "the private key must not be readable by others"
            );
        }
    }

    #[test]
    fn tls_server_end_point_is_the_sha256_of_an_ecdsa_sha256_certificate() {
        // RFC 5929 §4.1: the certificate's signature hash (SHA-256 here).
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = c.cert.der().to_vec();
        assert_eq!(server_end_point(&der), Some(Sha256::digest(&der).to_vec()));
        assert_eq!(server_end_point(b"not a certificate"), None);
    }

    #[test]
    fn configured_pem_files_are_loaded_and_bad_ones_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["example.org".into()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
        let m = material(
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            dir.path(),
            &[],
        );
        assert!(m.is_ok());
        assert!(
            !dir.path().join("tls").exists(),
            "no self-signed certificate when one is configured"
        );
        std::fs::write(&key, "garbage").unwrap();
        let err = material(
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            dir.path(),
            &[],
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("tls.key_file"), "{err:#}");
    }
}
