//! `corvid cert ca|node`: the cluster's own certificate authority and the node certificates it
//! issues, for mutual TLS between nodes (`[cluster.tls]`).
//!
//! `cert ca --dir D` writes `D/ca.pem` and `D/ca.key`; `cert node --dir D --name N HOST…`
//! writes `D/N.pem` and `D/N.key`, a certificate for every HOST (DNS names or IP addresses: the
//! host parts of the node's advertised address) signed by the CA in `D`. Keys are written
//! readable by their owner only, and no file is ever overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::cli::{CertCommand, CliError};

/// The CA's files in its folder.
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
/// How long a CA certificate lasts.
const CA_DAYS: i64 = 3650;

/// Runs one `cert` command, reporting the files written on `out`.
pub fn run(command: &CertCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        CertCommand::Ca { dir, name } => create_ca(dir, name, out),
        CertCommand::Node {
            dir,
            name,
            hosts,
            days,
        } => create_node(dir, name, hosts, *days, out),
    }
}

fn create_ca(dir: &Path, name: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    refuse_existing(&[&cert_path, &key_path])?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, CA_DAYS);
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let cert = params.self_signed(&key).map_err(rcgen_error)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::Runtime(format!("cannot create {}: {e}", dir.display())))?;
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(&cert_path, cert.pem().as_bytes(), false)?;
    report(out, &cert_path, &key_path)
}

fn create_node(
    dir: &Path,
    name: &str,
    hosts: &[String],
    days: u32,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(CliError::Usage(format!(
            "--name `{name}`: a plain file name is needed (it becomes {name}.pem and {name}.key)"
        )));
    }
    if hosts.is_empty() {
        return Err(CliError::Usage(
            "name at least one HOST (DNS name or IP address) the node is reached at".into(),
        ));
    }
    if days == 0 {
        return Err(CliError::Usage("--days must be at least 1".into()));
    }
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    refuse_existing(&[&cert_path, &key_path])?;
    let ca_pem = read(&dir.join(CA_CERT))?;
    let ca_key = KeyPair::from_pem(&read(&dir.join(CA_KEY))?).map_err(|e| {
        CliError::Runtime(format!(
            "{}: not a private key: {e}",
            dir.join(CA_KEY).display()
        ))
    })?;
    // rcgen signs with an issuer `Certificate`; rebuilding it from the CA's own parameters and
    // key gives the same subject and key identifier as the certificate on disk.
    let ca = CertificateParams::from_ca_cert_pem(&ca_pem)
        .map_err(|e| {
            CliError::Runtime(format!(
                "{}: not a CA certificate: {e}",
                dir.join(CA_CERT).display()
            ))
        })?
        .self_signed(&ca_key)
        .map_err(rcgen_error)?;

    let mut params = CertificateParams::new(hosts.to_vec())
        .map_err(|e| CliError::Usage(format!("HOST: {e}")))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Every node is both: it serves its peers and calls them.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    set_validity(&mut params, i64::from(days));
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(rcgen_error)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(&cert_path, cert.pem().as_bytes(), false)?;
    report(out, &cert_path, &key_path)
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // A little slack for clocks that are behind.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn refuse_existing(paths: &[&PathBuf]) -> Result<(), CliError> {
    for path in paths {
        if path.exists() {
            return Err(CliError::Usage(format!(
                "{} exists already; nothing was written (remove it to issue a new one)",
                path.display()
            )));
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Runtime(format!("cannot read {}: {e}", path.display())))
}

/// Writes a new file (never replacing one); `secret` files are readable by their owner only.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .map_err(|e| CliError::Runtime(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::Runtime(format!("cannot write {}: {e}", path.display())))
}

fn report(out: &mut dyn Write, cert: &Path, key: &Path) -> Result<(), CliError> {
    writeln!(out, "wrote {}\nwrote {}", cert.display(), key.display())
        .map_err(|e| CliError::Runtime(format!("cannot write to stdout: {e}")))
}

fn rcgen_error(e: rcgen::Error) -> CliError {
    CliError::Runtime(format!("certificate generation failed: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use super::*;

    fn node(dir: &Path, name: &str, hosts: &[&str]) -> Result<(), CliError> {
        let command = CertCommand::Node {
            dir: dir.to_owned(),
            name: name.into(),
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            days: 30,
        };
        run(&command, &mut Vec::new())
    }

    fn ca(dir: &Path) -> Result<(), CliError> {
        let command = CertCommand::Ca {
            dir: dir.to_owned(),
            name: "test cluster".into(),
        };
        run(&command, &mut Vec::new())
    }

    #[test]
    fn issued_node_certificates_are_accepted_by_the_transport() {
        let dir = tempfile::tempdir().unwrap();
        ca(dir.path()).unwrap();
        node(dir.path(), "node1", &["127.0.0.1", "node1.corvid.svc"]).unwrap();
        let transport = corvid_proto::Transport::mutual_tls(
            &dir.path().join("ca.pem"),
            &dir.path().join("node1.pem"),
            &dir.path().join("node1.key"),
        );
        assert!(transport.is_ok(), "{:?}", transport.err());
        let pem = std::fs::read(dir.path().join("node1.pem")).unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = der.parse_x509().unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        use x509_parser::extensions::GeneralName;
        let names = &san.general_names;
        // An address is an IP SAN (what TLS checks for an IP host), not a DNS name "127.0.0.1".
        assert!(
            names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])),
            "{names:?}"
        );
        assert!(
            names.contains(&GeneralName::DNSName("node1.corvid.svc")),
            "{names:?}"
        );
        assert!(!cert.is_ca());
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private_and_nothing_is_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        ca(dir.path()).unwrap();
        node(dir.path(), "n", &["localhost"]).unwrap();
        for key in ["ca.key", "n.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        let before = std::fs::read(dir.path().join("ca.key")).unwrap();
        let again = ca(dir.path()).unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
        assert_eq!(std::fs::read(dir.path().join("ca.key")).unwrap(), before);
        assert!(node(dir.path(), "n", &["localhost"]).is_err());
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        ca(dir.path()).unwrap();
        assert_eq!(node(dir.path(), "n", &[]).unwrap_err().exit_code(), 64);
        assert_eq!(
            node(dir.path(), "../n", &["h"]).unwrap_err().exit_code(),
            64
        );
        let no_ca = tempfile::tempdir().unwrap();
        let e = node(no_ca.path(), "n", &["h"]).unwrap_err();
        assert!(e.to_string().contains("ca.pem"), "{e}");
    }
}
