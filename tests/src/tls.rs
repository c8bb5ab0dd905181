//! The client side of TLS for tests: the load generator's connector that accepts the server's
//! self-signed certificate (it still checks the handshake signatures), with the ring provider.

use corvid_loadgen::tls::Trust;
use tokio_rustls::TlsConnector;

/// ALPN protocol id for direct TLS (XEP-0368 §3).
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

/// A connector trusting any certificate; with ALPN `xmpp-client` when `alpn` is set (direct
/// TLS, XEP-0368). TLS 1.3 and 1.2 are offered, so 1.3 is negotiated with Corvid.
pub fn connector(alpn: bool) -> anyhow::Result<TlsConnector> {
    let protocols: &[&[u8]] = if alpn { &[ALPN_XMPP_CLIENT] } else { &[] };
    corvid_loadgen::tls::connector(&Trust::AnyCertificate, protocols)
}
