//! [`Transport`] with mutual TLS over a real tonic server on loopback: a node with a certificate
//! from the cluster CA is served; a caller without a certificate, with one from another CA, or
//! talking plain HTTP/2 is refused before any service sees it; and a caller refuses a server
//! whose certificate is not from its CA. Broken material is refused when loaded, naming the
//! file.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corvid_proto::v1::router_client::RouterClient;
use corvid_proto::v1::router_server::{Router, RouterServer};
use corvid_proto::v1::{DeliveryReport, Envelope};
use corvid_proto::{Transport, TransportError};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// Upper bound for a call that should succeed or fail; a hang fails the test instead.
const PATIENCE: Duration = Duration::from_secs(10);

/// A certificate authority that issues node certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A node's transport: certificate for 127.0.0.1 and localhost issued by this CA.
    fn node(&self) -> Transport {
        self.node_named(&["127.0.0.1", "localhost"])
    }

    /// A node's transport with a certificate for `names` (DNS names or IP addresses) issued
    /// by this CA.
    fn node_named(&self, names: &[&str]) -> Transport {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Transport::mutual_tls_pem(
            (self.cert.pem().as_bytes(), "ca.pem"),
            (cert.pem().as_bytes(), "node.pem"),
            (key.serialize_pem().as_bytes(), "node.key"),
        )
        .unwrap()
    }
}

/// A `Router` that counts the calls that reached it and answers with an empty stream.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

#[tonic::async_trait]
impl Router for Counting {
    type DeliverStream = ReceiverStream<Result<DeliveryReport, Status>>;

    async fn deliver(
        &self,
        _request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let (_tx, rx) = mpsc::channel(1);
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn serve(transport: &Transport) -> (SocketAddr, Counting) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Counting::default();
    let server = transport
        .server()
        .unwrap()
        .add_service(RouterServer::new(service.clone()))
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(server);
    (addr, service)
}

/// Opens a `Deliver` call from `client` to `addr`: Ok if the server's service answered.
async fn call(client: &Transport, addr: SocketAddr) -> Result<(), String> {
    let channel = client
        .endpoint(&addr.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(PATIENCE)
        .connect_lazy();
    let (_tx, rx) = mpsc::channel::<Envelope>(1);
    let reply = tokio::time::timeout(
        PATIENCE,
        RouterClient::new(channel).deliver(ReceiverStream::new(rx)),
    )
    .await
    .map_err(|_| "timed out".to_owned())?;
    reply.map(|_| ()).map_err(|status| status.to_string())
}

#[tokio::test]
async fn a_node_with_a_certificate_from_the_cluster_ca_is_served() {
    let ca = Ca::new("cluster");
    let (addr, served) = serve(&ca.node()).await;
    call(&ca.node(), addr).await.unwrap();
    assert_eq!(served.0.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_caller_with_a_certificate_from_another_ca_is_refused() {
    let (cluster, stranger) = (Ca::new("cluster"), Ca::new("stranger"));
    let (addr, served) = serve(&cluster.node()).await;
    // The stranger does not trust the cluster's CA either; give it a transport that trusts the
    // cluster CA but proves itself with the stranger's certificate.
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &stranger.cert, &stranger.key)
        .unwrap();
    let impostor = Transport::mutual_tls_pem(
        (cluster.cert.pem().as_bytes(), "ca.pem"),
        (cert.pem().as_bytes(), "node.pem"),
        (key.serialize_pem().as_bytes(), "node.key"),
    )
    .unwrap();
    assert!(call(&impostor, addr).await.is_err());
    assert_eq!(
        served.0.load(Ordering::SeqCst),
        0,
        "no call may reach the service"
    );
}

#[tokio::test]
async fn a_plain_http2_caller_is_refused_by_a_tls_node() {
    let ca = Ca::new("cluster");
    let (addr, served) = serve(&ca.node()).await;
    assert!(call(&Transport::plaintext(), addr).await.is_err());
    assert_eq!(served.0.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_caller_refuses_a_server_whose_certificate_is_from_another_ca() {
    let (cluster, stranger) = (Ca::new("cluster"), Ca::new("stranger"));
    let (addr, served) = serve(&stranger.node()).await;
    assert!(call(&cluster.node(), addr).await.is_err());
    assert_eq!(served.0.load(Ordering::SeqCst), 0);
}

/// `cluster.tls.server_name`: pods advertise their IP addresses, which no certificate can list
/// in advance, so every node's certificate names one DNS name (`corvid-cluster`) and callers
/// check it instead of the address dialled. Without the setting, the same certificate is
/// refused when dialling 127.0.0.1 (it does not name that address).
#[tokio::test]
async fn a_server_name_replaces_the_dialled_host_in_the_certificate_check() {
    let ca = Ca::new("cluster");
    let (addr, served) = serve(&ca.node_named(&["corvid-cluster"])).await;

    let by_address = ca.node_named(&["corvid-cluster"]);
    assert_eq!(by_address.server_name(), None);
    assert!(
        call(&by_address, addr).await.is_err(),
        "a certificate for corvid-cluster must not pass for 127.0.0.1"
    );
    assert_eq!(served.0.load(Ordering::SeqCst), 0);

    let by_name = ca
        .node_named(&["corvid-cluster"])
        .with_server_name("corvid-cluster");
    assert_eq!(by_name.server_name(), Some("corvid-cluster"));
    call(&by_name, addr).await.unwrap();
    assert_eq!(served.0.load(Ordering::SeqCst), 1);

    // The name is checked, not ignored: another name is refused.
    let other = ca.node().with_server_name("other-cluster");
    assert!(call(&other, addr).await.is_err());
    // An empty name keeps checking the host dialled.
    assert_eq!(ca.node().with_server_name(" ").server_name(), None);
    assert_eq!(served.0.load(Ordering::SeqCst), 1);
}

/// The server name does not weaken the CA check: a server whose certificate names the right
/// DNS name but comes from another CA is refused.
#[tokio::test]
async fn a_server_name_still_needs_the_cluster_ca() {
    let (cluster, stranger) = (Ca::new("cluster"), Ca::new("stranger"));
    let (addr, served) = serve(&stranger.node_named(&["corvid-cluster"])).await;
    let caller = cluster
        .node_named(&["corvid-cluster"])
        .with_server_name("corvid-cluster");
    assert!(call(&caller, addr).await.is_err());
    assert_eq!(served.0.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn plaintext_still_works_between_plaintext_nodes() {
    let (addr, served) = serve(&Transport::plaintext()).await;
    call(&Transport::plaintext(), addr).await.unwrap();
    assert_eq!(served.0.load(Ordering::SeqCst), 1);
}

#[test]
fn broken_material_is_refused_naming_the_file() {
    let ca = Ca::new("cluster");
    let ca_pem = ca.cert.pem();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca.cert, &ca.key)
        .unwrap();
    let load = |ca: &str, cert: &str, key: &str| {
        Transport::mutual_tls_pem(
            (ca.as_bytes(), "ca.pem"),
            (cert.as_bytes(), "node.pem"),
            (key.as_bytes(), "node.key"),
        )
    };

    let e = load("not pem", &cert.pem(), &key.serialize_pem()).unwrap_err();
    assert!(matches!(e, TransportError::Pem { .. }), "{e}");
    assert!(e.to_string().contains("CA certificate `ca.pem`"), "{e}");

    let e = load(&ca_pem, &key.serialize_pem(), &key.serialize_pem()).unwrap_err();
    assert!(e.to_string().contains("node certificate `node.pem`"), "{e}");

    let e = load(&ca_pem, &cert.pem(), &cert.pem()).unwrap_err();
    assert!(e.to_string().contains("node key `node.key`"), "{e}");

    // A key that is not the certificate's.
    let other = KeyPair::generate().unwrap();
    let e = load(&ca_pem, &cert.pem(), &other.serialize_pem()).unwrap_err();
    assert!(matches!(e, TransportError::Tls(_)), "{e}");

    let missing = Transport::mutual_tls(
        std::path::Path::new("/nonexistent/ca.pem"),
        std::path::Path::new("/nonexistent/node.pem"),
        std::path::Path::new("/nonexistent/node.key"),
    )
    .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("`/nonexistent/ca.pem`: cannot read"),
        "{missing}"
    );
}
