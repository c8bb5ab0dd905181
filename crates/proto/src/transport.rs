//! How a node opens gRPC connections to other nodes and serves them: plain HTTP/2, or mutual
//! TLS where both ends prove membership with a certificate from the cluster's CA.
//!
//! Every client channel and every server of the cluster is made here ([`Transport::endpoint`],
//! [`Transport::server`]), so a node never talks to another in a way its configuration does not
//! say. With mutual TLS:
//! - the server asks every caller for a certificate and refuses the handshake unless it chains
//!   to the cluster CA (a process without one, or with one from another CA, never reaches a
//!   service);
//! - the caller checks the server's certificate against the same CA and against the host it
//!   dialled (the `host` of `host:port`, a DNS name or an IP address in the certificate's
//!   subject alternative names), or, when a server name is set
//!   ([`Transport::with_server_name`]), against that one name whatever address it dialled: one
//!   certificate naming it serves every node whose advertised address is an IP address that no
//!   certificate could list in advance (Kubernetes pod IPs).
//!
//! Membership is therefore "holds a key and certificate issued by the cluster CA": give each
//! cluster its own CA, and give the CA's key to nothing but the tool that issues node
//! certificates.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};

use crate::ClusterError;

/// Why the inter-node TLS material cannot be used. Each names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A file could not be read.
    #[error("{what} `{path}`: cannot read: {error}")]
    Read {
        /// Which file (`CA certificate`, `node certificate`, `node key`).
        what: &'static str,
        /// Its path.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file holds no usable PEM item of the kind needed.
    #[error("{what} `{path}`: {problem}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The material parsed, but TLS refused it (e.g. a key that does not match the certificate).
    #[error("TLS configuration refused: {0}")]
    Tls(String),
}

/// The cluster CA and this node's identity, checked once when loaded.
#[derive(Debug)]
struct MutualTls {
    ca: Certificate,
    identity: Identity,
    /// The name every server's certificate is checked against; `None`: the host dialled.
    server_name: Option<String>,
}

/// How this node connects to and accepts other nodes. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    tls: Option<Arc<MutualTls>>,
}

impl Transport {
    /// Plain HTTP/2: no encryption, no authentication. Only for a private network (and tests).
    pub fn plaintext() -> Self {
        Self::default()
    }

    /// Mutual TLS with the cluster CA and this node's certificate chain and private key, all
    /// PEM. Every file is read and checked now, so a wrong path or a key that does not fit the
    /// certificate stops the node at start with a message naming the file.
    pub fn mutual_tls(
        ca_file: &Path,
        cert_file: &Path,
        key_file: &Path,
    ) -> Result<Self, TransportError> {
        let ca = read("CA certificate", ca_file)?;
        let cert = read("node certificate", cert_file)?;
        let key = read("node key", key_file)?;
        Self::mutual_tls_pem(
            (&ca, &ca_file.display().to_string()),
            (&cert, &cert_file.display().to_string()),
            (&key, &key_file.display().to_string()),
        )
    }

    /// [`Self::mutual_tls`] from PEM bytes, each with the name to report problems under.
    pub fn mutual_tls_pem(
        (ca, ca_name): (&[u8], &str),
        (cert, cert_name): (&[u8], &str),
        (key, key_name): (&[u8], &str),
    ) -> Result<Self, TransportError> {
        certificates("CA certificate", ca_name, ca)?;
        certificates("node certificate", cert_name, cert)?;
        if let Err(e) = PrivateKeyDer::from_pem_slice(key) {
            return Err(TransportError::Pem {
                what: "node key",
                path: key_name.to_owned(),
                problem: format!("no private key in PEM form ({e})"),
            });
        }
        let transport = Self {
            tls: Some(Arc::new(MutualTls {
                ca: Certificate::from_pem(ca),
                identity: Identity::from_pem(cert, key),
                server_name: None,
            })),
        };
        // Build both sides once so that a key that does not fit its certificate, or a CA that
        // is not a usable trust anchor, is refused now rather than at the first connection.
        transport
            .server()
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        transport
            .endpoint("localhost:1")
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        Ok(transport)
    }

    /// Under mutual TLS, checks every server's certificate against `name` (a DNS name its
    /// subject alternative names must hold) instead of the host dialled; an empty `name` keeps
    /// checking the host dialled. No effect on a plaintext transport. The CA check is unchanged:
    /// the name only says which of the CA's certificates a server may present.
    pub fn with_server_name(self, name: &str) -> Self {
        let name = name.trim();
        match self.tls {
            Some(tls) => Self {
                tls: Some(Arc::new(MutualTls {
                    ca: tls.ca.clone(),
                    identity: tls.identity.clone(),
                    server_name: (!name.is_empty()).then(|| name.to_owned()),
                })),
            },
            None => self,
        }
    }

    /// The name servers' certificates are checked against instead of the host dialled, if set.
    pub fn server_name(&self) -> Option<&str> {
        self.tls.as_ref().and_then(|t| t.server_name.as_deref())
    }

    /// Whether connections are mutually authenticated.
    pub fn is_mutual_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A lazily connecting endpoint for the node at `addr` (`host:port`, or a URI whose scheme
    /// is ignored): `https` with this node's certificate under mutual TLS, `http` otherwise.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, ClusterError> {
        let authority = addr.split_once("://").map_or(addr, |(_, rest)| rest);
        let authority = authority.trim_end_matches('/');
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
            .map_err(|e| ClusterError::Invalid(format!("node address `{addr}`: {e}")))?;
        match &self.tls {
            None => Ok(endpoint),
            Some(tls) => {
                let mut config = ClientTlsConfig::new()
                    .ca_certificate(tls.ca.clone())
                    .identity(tls.identity.clone());
                if let Some(name) = &tls.server_name {
                    config = config.domain_name(name.clone());
                }
                endpoint
                    .tls_config(config)
                    .map_err(|e| ClusterError::Invalid(format!("TLS towards `{addr}`: {e}")))
            }
        }
    }

    /// A gRPC server builder that, under mutual TLS, requires every caller's certificate to
    /// chain to the cluster CA.
    pub fn server(&self) -> Result<Server, ClusterError> {
        let builder = Server::builder();
        match &self.tls {
            None => Ok(builder),
            Some(tls) => builder
                .tls_config(
                    ServerTlsConfig::new()
                        .identity(tls.identity.clone())
                        .client_ca_root(tls.ca.clone())
                        .client_auth_optional(false),
                )
                .map_err(|e| ClusterError::Internal(format!("server TLS: {e}"))),
        }
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|error| TransportError::Read {
        what,
        path: path.display().to_string(),
        error,
    })
}

/// Checks that `pem` holds at least one certificate and nothing unparsable.
fn certificates(what: &'static str, name: &str, pem: &[u8]) -> Result<(), TransportError> {
    let problem = |problem: String| TransportError::Pem {
        what,
        path: name.to_owned(),
        problem,
    };
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| problem(format!("unreadable PEM ({e})")))?;
        found += 1;
    }
    if found == 0 {
        return Err(problem("no CERTIFICATE in PEM form".to_owned()));
    }
    Ok(())
}
