//! `<stream:features/>` per state (RFC 6120 §4.3.2).

use corvid_sasl::{ChannelBindings, Mechanism};
use corvid_stanza::ns;
use corvid_xml::escape_text;

/// Mechanisms offered on a connection: -PLUS only with channel-binding data (RFC 5802 §6),
/// PLAIN only over TLS (RFC 6120 §13.8), nothing but STARTTLS before TLS when it is required.
pub fn mechanisms(tls: bool, cb: &ChannelBindings, allow_plain: bool) -> Vec<Mechanism> {
    let has_cb = cb.tls_exporter.is_some() || cb.tls_server_end_point.is_some();
    Mechanism::ALL
        .into_iter()
        .filter(|m| match m {
            Mechanism::ScramSha256Plus | Mechanism::ScramSha1Plus => tls && has_cb,
            Mechanism::Plain => tls && allow_plain,
            Mechanism::ScramSha256 | Mechanism::ScramSha1 => true,
        })
        .collect()
}

/// Features before authentication.
pub fn pre_auth(
    out: &mut String,
    offer_starttls: bool,
    starttls_required: bool,
    mechs: &[Mechanism],
    cb: &ChannelBindings,
) {
    out.push_str("<stream:features>");
    if offer_starttls {
        out.push_str("<starttls xmlns='");
        out.push_str(ns::TLS);
        if starttls_required {
            out.push_str("'><required/></starttls>");
        } else {
            out.push_str("'/>");
        }
    }
    if !starttls_required && !mechs.is_empty() {
        out.push_str("<mechanisms xmlns='");
        out.push_str(ns::SASL);
        out.push_str("'>");
        for m in mechs {
            out.push_str("<mechanism>");
            escape_text(m.name(), out);
            out.push_str("</mechanism>");
        }
        out.push_str("</mechanisms>");
        // XEP-0440: which channel-binding types this connection supports.
        if mechs.iter().any(|m| m.is_plus()) {
            out.push_str("<sasl-channel-binding xmlns='");
            out.push_str(ns::SASL_CB);
            out.push_str("'>");
            if cb.tls_server_end_point.is_some() {
                out.push_str("<channel-binding type='tls-server-end-point'/>");
            }
            if cb.tls_exporter.is_some() {
                out.push_str("<channel-binding type='tls-exporter'/>");
            }
            out.push_str("</sasl-channel-binding>");
        }
    }
    out.push_str("</stream:features>");
}

/// Features after authentication: resource binding, and the legacy session marked optional
/// (draft-cridland-xmpp-session-01) for old clients.
pub fn post_auth(out: &mut String, extra: &str) {
    out.push_str("<stream:features><bind xmlns='");
    out.push_str(ns::BIND);
    out.push_str("'/><session xmlns='");
    out.push_str(ns::SESSION);
    out.push_str("'><optional/></session>");
    out.push_str(extra);
    out.push_str("</stream:features>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_plus_only_over_tls() {
        // RFC 6120 §13.8: PLAIN only with TLS; -PLUS needs channel-binding data.
        let cb = ChannelBindings {
            tls_exporter: Some(vec![1; 32]),
            tls_server_end_point: None,
        };
        let none = ChannelBindings::default();
        assert_eq!(
            mechanisms(false, &none, true),
            vec![Mechanism::ScramSha256, Mechanism::ScramSha1]
        );
        assert_eq!(
            mechanisms(true, &none, true),
            vec![
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::Plain
            ]
        );
        assert_eq!(mechanisms(true, &cb, false).len(), 4);
    }

    #[test]
    fn required_starttls_offers_nothing_else() {
        // RFC 6120 §5.3.1: when TLS is mandatory-to-negotiate, only <starttls><required/> is offered.
        let mut s = String::new();
        pre_auth(
            &mut s,
            true,
            true,
            &[Mechanism::ScramSha1],
            &ChannelBindings::default(),
        );
        assert_eq!(
            s,
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"
        );
    }
}
