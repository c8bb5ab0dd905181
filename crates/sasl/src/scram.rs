//! Parsing of the SCRAM client messages (RFC 5802 §7). Pure syntax: the policy (which gs2 flag
//! is acceptable, whether the binding data match) lives in `server.rs`.
//!
//! No SCRAM extension is defined for use, so every extension attribute is refused, and `m=`
//! must be refused anyway (RFC 5802 §5.1).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::Failure;

/// The gs2 channel-binding flag (RFC 5802 §7 `gs2-cbind-flag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CbFlag {
    /// `n`: the client does not support channel binding.
    Unsupported,
    /// `y`: the client supports it but thinks the server does not.
    NotUsed,
    /// `p=<cb-name>`: the client binds to this channel-binding type.
    Used(String),
}

/// A parsed `client-first-message`.
#[derive(Debug, Clone)]
pub(crate) struct ClientFirst {
    /// `gs2-header` exactly as sent, both commas included (it is echoed in `c=`).
    pub gs2_header: String,
    /// The channel-binding flag.
    pub flag: CbFlag,
    /// The decoded authzid (`a=`), if any.
    pub authzid: Option<String>,
    /// The decoded username (`n=`).
    pub username: String,
    /// The client nonce (`r=`).
    pub nonce: String,
    /// `client-first-message-bare` exactly as sent (part of the AuthMessage).
    pub bare: String,
}

/// A parsed `client-final-message`.
#[derive(Debug)]
pub(crate) struct ClientFinal<'a> {
    /// The decoded `c=` value.
    pub channel_binding: Vec<u8>,
    /// The `r=` value.
    pub nonce: &'a str,
    /// The decoded `p=` value.
    pub proof: Vec<u8>,
    /// `client-final-message-without-proof` (part of the AuthMessage).
    pub without_proof: &'a str,
}

/// Parses `gs2-header client-first-message-bare`.
pub(crate) fn parse_client_first(msg: &str) -> Result<ClientFirst, Failure> {
    let mut fields = msg.splitn(3, ',');
    let (Some(flag), Some(authz), Some(bare)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(Failure::MalformedRequest);
    };
    let gs2_header = &msg[..flag.len() + authz.len() + 2];
    let flag = match flag {
        "n" => CbFlag::Unsupported,
        "y" => CbFlag::NotUsed,
        _ => match flag.strip_prefix("p=") {
            Some(name) if is_cb_name(name) => CbFlag::Used(name.to_owned()),
            _ => return Err(Failure::MalformedRequest),
        },
    };
    let authzid = match authz {
        "" => None,
        _ => match authz.strip_prefix("a=") {
            Some(name) => Some(decode_saslname(name)?),
            None => return Err(Failure::MalformedRequest),
        },
    };
    let mut attrs = bare.split(',');
    let (Some(user), Some(nonce), None) = (attrs.next(), attrs.next(), attrs.next()) else {
        // Fewer than two attributes, or extensions after the nonce.
        return Err(Failure::MalformedRequest);
    };
    // `m=` (reserved-mext) lands here too: the first attribute must be `n=`.
    let username = decode_saslname(user.strip_prefix("n=").ok_or(Failure::MalformedRequest)?)?;
    let nonce = nonce.strip_prefix("r=").ok_or(Failure::MalformedRequest)?;
    if !is_printable(nonce) {
        return Err(Failure::MalformedRequest);
    }
    Ok(ClientFirst {
        gs2_header: gs2_header.to_owned(),
        flag,
        authzid,
        username,
        nonce: nonce.to_owned(),
        bare: bare.to_owned(),
    })
}

/// Parses `c=…,r=…,p=…` (no extensions).
pub(crate) fn parse_client_final(msg: &str) -> Result<ClientFinal<'_>, Failure> {
    let mut attrs = msg.split(',');
    let (Some(cb), Some(nonce), Some(proof), None) =
        (attrs.next(), attrs.next(), attrs.next(), attrs.next())
    else {
        return Err(Failure::MalformedRequest);
    };
    let cb = cb.strip_prefix("c=").ok_or(Failure::MalformedRequest)?;
    let nonce = nonce.strip_prefix("r=").ok_or(Failure::MalformedRequest)?;
    let proof_b64 = proof.strip_prefix("p=").ok_or(Failure::MalformedRequest)?;
    let without_proof = &msg[..msg.len() - proof.len() - 1];
    Ok(ClientFinal {
        channel_binding: STANDARD.decode(cb).map_err(|_| Failure::MalformedRequest)?,
        nonce,
        proof: STANDARD
            .decode(proof_b64)
            .map_err(|_| Failure::MalformedRequest)?,
        without_proof,
    })
}

/// Decodes a `saslname` (RFC 5802 §5.1): `=2C` is `,` and `=3D` is `=`; any other `=`, a bare
/// `,`, a NUL, or an empty name is malformed.
pub(crate) fn decode_saslname(s: &str) -> Result<String, Failure> {
    if s.is_empty() {
        return Err(Failure::MalformedRequest);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['=', ',', '\0']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("=2C") {
            out.push(',');
        } else if tail.starts_with("=3D") {
            out.push('=');
        } else {
            return Err(Failure::MalformedRequest);
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `printable` (RFC 5802 §7): `%x21-2B / %x2D-7E`, at least one.
fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `cb-name` (RFC 5802 §7): `1*(ALPHA / DIGIT / "." / "-")`.
fn is_cb_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc5802_5_1_saslname_escapes() {
        assert_eq!(decode_saslname("juliet").unwrap(), "juliet");
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert_eq!(decode_saslname("=3D=2C").unwrap(), "=,");
        assert_eq!(decode_saslname("jül").unwrap(), "jül");
        for bad in [
            "", "a=2c", "a=", "a=2", "a=41", "a=3d", "=", "a,b", "a\0b", "=2Ç",
        ] {
            assert_eq!(
                decode_saslname(bad),
                Err(Failure::MalformedRequest),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rfc5802_7_client_first_fields() {
        let first = parse_client_first("p=tls-exporter,a=admin=2Cx,n=us=3Der,r=abc").unwrap();
        assert_eq!(first.gs2_header, "p=tls-exporter,a=admin=2Cx,");
        assert_eq!(first.flag, CbFlag::Used("tls-exporter".into()));
        assert_eq!(first.authzid.as_deref(), Some("admin,x"));
        assert_eq!(first.username, "us=er");
        assert_eq!(first.nonce, "abc");
        assert_eq!(first.bare, "n=us=3Der,r=abc");
        assert_eq!(
            parse_client_first("y,,n=u,r=x").unwrap().flag,
            CbFlag::NotUsed
        );
    }

    #[test]
    fn rfc5802_7_client_first_malformed() {
        for bad in [
            "",
            "n",
            "n,",
            "n,,",
            "x,,n=u,r=abc",
            "p=,,n=u,r=abc",
            "p=tls_unique,,n=u,r=abc",
            "n,b=x,n=u,r=abc",
            "n,a=,n=u,r=abc",
            "n,,m=ext,n=u,r=abc",
            "n,,n=u",
            "n,,n=,r=abc",
            "n,,r=abc,n=u",
            "n,,n=u,r=",
            "n,,n=u,r=a b",
            "n,,n=u,r=abc,x=ext",
            "n,,n=u,r=abc,",
            "n,,n=u=,r=abc",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rfc5802_7_client_final_malformed() {
        for bad in [
            "",
            "c=biws",
            "c=biws,r=abc",
            "c=biws,r=abc,x=1,p=AAAA",
            "r=abc,c=biws,p=AAAA",
            "c=biws,r=abc,p=AAAA,",
            "c=b!ws,r=abc,p=AAAA",
            "c=biws,r=abc,p=A",
            "c=biws,r=abc,q=AAAA",
        ] {
            assert!(parse_client_final(bad).is_err(), "{bad:?}");
        }
        let ok = parse_client_final("c=biws,r=abc,p=AAAA").unwrap();
        assert_eq!(ok.channel_binding, b"n,,");
        assert_eq!(ok.without_proof, "c=biws,r=abc");
        assert_eq!(ok.proof, [0, 0, 0]);
    }
}
