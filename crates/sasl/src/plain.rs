//! Parsing of the PLAIN message (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`.

use std::fmt;

use crate::credentials::prepare_password;
use crate::Failure;

/// RFC 4616 §2: each field is at most 255 octets.
const MAX_FIELD: usize = 255;

/// A parsed PLAIN message.
pub(crate) struct PlainMessage {
    /// The authorization identity, `None` when empty.
    pub authzid: Option<String>,
    /// The authentication identity.
    pub authcid: String,
    /// The password, already prepared with PRECIS OpaqueString.
    pub password: String,
}

// Hand-written so the password never reaches a log through `{:?}`.
impl fmt::Debug for PlainMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainMessage")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Splits and checks a PLAIN message: exactly two NULs, non-empty authcid and passwd, every
/// field valid UTF-8 of at most 255 octets, and a password PRECIS OpaqueString accepts.
pub(crate) fn parse_plain(msg: &[u8]) -> Result<PlainMessage, Failure> {
    let mut fields = msg.split(|b| *b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(Failure::MalformedRequest);
    };
    if authcid.is_empty() || password.is_empty() {
        return Err(Failure::MalformedRequest);
    }
    let text = |field: &[u8]| -> Result<String, Failure> {
        if field.len() > MAX_FIELD {
            return Err(Failure::MalformedRequest);
        }
        String::from_utf8(field.to_vec()).map_err(|_| Failure::MalformedRequest)
    };
    let authzid = text(authzid)?;
    let authcid = text(authcid)?;
    let password = text(password)?;
    let password = prepare_password(&password)?.into_owned();
    Ok(PlainMessage {
        authzid: (!authzid.is_empty()).then_some(authzid),
        authcid,
        password,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc4616_2_fields() {
        let m = parse_plain(b"\0tim\0tanstaaftanstaaf").unwrap();
        assert_eq!(m.authzid, None);
        assert_eq!(m.authcid, "tim");
        assert_eq!(m.password, "tanstaaftanstaaf");
        let m = parse_plain(b"Ursel\0Kurt\0xipj3plmq").unwrap();
        assert_eq!(m.authzid.as_deref(), Some("Ursel"));
        assert_eq!(m.authcid, "Kurt");
    }

    #[test]
    fn rfc4616_2_malformed() {
        let long = [b'a'; 256];
        let mut oversize_pass = b"\0tim\0".to_vec();
        oversize_pass.extend_from_slice(&long);
        let mut oversize_authz = long.to_vec();
        oversize_authz.extend_from_slice(b"\0tim\0pw");
        for bad in [
            &b""[..],
            b"tim",
            b"\0tim",
            b"\0\0pw",
            b"\0tim\0",
            b"\0tim\0pw\0",
            b"a\0b\0c\0d",
            b"\0t\xffm\0pw",
            b"\0tim\0p\x07w",
            &oversize_pass,
            &oversize_authz,
        ] {
            assert_eq!(
                parse_plain(bad).unwrap_err(),
                Failure::MalformedRequest,
                "{bad:?}"
            );
        }
        let mut max = b"\0tim\0".to_vec();
        max.extend_from_slice(&[b'a'; 255]);
        assert!(parse_plain(&max).is_ok());
    }

    #[test]
    fn debug_redacts_password() {
        let m = parse_plain(b"\0tim\0secret").unwrap();
        assert!(!format!("{m:?}").contains("secret"));
    }
}
