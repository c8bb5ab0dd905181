//! The three parts, each normalized once.
//!
//! Normalization happens in the constructors and nowhere else, so two parts that compare equal
//! name the same address (RFC 7622 §3).

use std::net::{Ipv4Addr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, Hyphens, Uts46};
use precis_core::profile::PrecisFastInvocation;
use precis_profiles::{OpaqueString, UsernameCaseMapped};

use crate::JidError;

/// The longest a part may be, in bytes, after normalization (RFC 7622 §3.2, §3.3, §3.4).
const MAX_PART_BYTES: usize = 1023;

/// The longest a DNS label may be, in octets of its ASCII (A-label) form (RFC 1035 §2.3.4).
const MAX_LABEL_BYTES: usize = 63;

/// Characters RFC 7622 §3.3.1 forbids in a localpart even though PRECIS allows them.
const FORBIDDEN_IN_LOCALPART: [char; 8] = ['"', '&', '\'', '/', ':', '<', '>', '@'];

/// A normalized localpart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodePart(String);
/// A normalized domainpart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainPart(String);
/// A normalized resourcepart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePart(String);

impl NodePart {
    /// Normalizes and validates a localpart.
    ///
    /// PRECIS UsernameCaseMapped (RFC 8265 §3.3: width mapping, case mapping, NFC, bidi rule),
    /// then the characters RFC 7622 §3.3.1 forbids.
    pub fn new(s: &str) -> Result<Self, JidError> {
        if s.is_empty() {
            return Err(JidError::EmptyNode);
        }
        let normalized = UsernameCaseMapped::enforce(s).map_err(|_| JidError::InvalidNode)?;
        if normalized.contains(FORBIDDEN_IN_LOCALPART) {
            return Err(JidError::InvalidNode);
        }
        check_length(&normalized, "localpart")?;
        Ok(Self(normalized.into_owned()))
    }
    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl DomainPart {
    /// Normalizes and validates a domainpart.
    ///
    /// One trailing dot is stripped (RFC 7622 §3.2). An IP literal (`[IPv6]`) or a dotted IPv4
    /// address is kept as written (IPv6 hex digits lowercased). Anything else goes through
    /// IDNA UTS #46 ToUnicode with the STD3 (letter-digit-hyphen) rules, which also lowercases
    /// and width-maps; every label must then be non-empty and at most 63 octets in its A-label
    /// form.
    pub fn new(s: &str) -> Result<Self, JidError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err(JidError::EmptyDomain);
        }
        let normalized = if let Some(inner) = s.strip_prefix('[') {
            let addr = inner.strip_suffix(']').ok_or(JidError::InvalidDomain)?;
            addr.parse::<Ipv6Addr>()
                .map_err(|_| JidError::InvalidDomain)?;
            s.to_ascii_lowercase()
        } else if s.parse::<Ipv4Addr>().is_ok() {
            s.to_owned()
        } else {
            idn_to_unicode(s)?
        };
        check_length(&normalized, "domainpart")?;
        Ok(Self(normalized))
    }
    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ResourcePart {
    /// Normalizes and validates a resourcepart with PRECIS OpaqueString (RFC 7622 §3.4,
    /// RFC 8265 §4.2).
    pub fn new(s: &str) -> Result<Self, JidError> {
        if s.is_empty() {
            return Err(JidError::EmptyResource);
        }
        let normalized = OpaqueString::enforce(s).map_err(|_| JidError::InvalidResource)?;
        check_length(&normalized, "resourcepart")?;
        Ok(Self(normalized.into_owned()))
    }
    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 7622 §3.2-§3.4: each part is 1 to 1023 bytes after normalization. Emptiness is checked
/// before normalization so each part reports its own `Empty*` error.
fn check_length(s: &str, part: &'static str) -> Result<(), JidError> {
    if s.len() > MAX_PART_BYTES {
        return Err(JidError::TooLong(part));
    }
    Ok(())
}

/// UTS #46 ToUnicode, then the per-label DNS checks on the ASCII form.
fn idn_to_unicode(s: &str) -> Result<String, JidError> {
    let uts46 = Uts46::new();
    let (unicode, result) = uts46.to_unicode(s.as_bytes(), AsciiDenyList::STD3, Hyphens::Allow);
    if result.is_err() {
        return Err(JidError::InvalidDomain);
    }
    let ascii = uts46
        .to_ascii(
            unicode.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Allow,
            idna::uts46::DnsLength::Ignore,
        )
        .map_err(|_| JidError::InvalidDomain)?;
    let labels_ok = ascii
        .split('.')
        .all(|label| !label.is_empty() && label.len() <= MAX_LABEL_BYTES);
    if !labels_ok {
        return Err(JidError::InvalidDomain);
    }
    Ok(unicode.into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc7622_3_3_localpart_is_case_mapped() {
        assert_eq!(NodePart::new("Juliet").unwrap().as_str(), "juliet");
    }

    #[test]
    fn rfc8265_3_3_localpart_width_mapping() {
        // FULLWIDTH LATIN letters map to their ASCII decompositions.
        assert_eq!(NodePart::new("ｊｕｌｉｅｔ").unwrap().as_str(), "juliet");
    }

    #[test]
    fn rfc7622_3_3_1_forbidden_localpart_characters() {
        for c in ['"', '&', '\'', '/', ':', '<', '>', '@'] {
            let s = format!("jul{c}iet");
            assert_eq!(NodePart::new(&s), Err(JidError::InvalidNode), "{s}");
        }
    }

    #[test]
    fn rfc7622_3_3_localpart_rejects_space_and_symbols() {
        assert_eq!(NodePart::new("foo bar"), Err(JidError::InvalidNode));
        assert_eq!(NodePart::new("♚"), Err(JidError::InvalidNode));
        assert_eq!(NodePart::new(""), Err(JidError::EmptyNode));
    }

    #[test]
    fn rfc7622_3_3_localpart_too_long() {
        assert!(NodePart::new(&"a".repeat(1023)).is_ok());
        assert_eq!(
            NodePart::new(&"a".repeat(1024)),
            Err(JidError::TooLong("localpart"))
        );
        // Measured after normalization: 1024 fullwidth letters map to 1024 ASCII bytes.
        assert_eq!(
            NodePart::new(&"Ａ".repeat(1024)),
            Err(JidError::TooLong("localpart"))
        );
        // 341 × 3 bytes = 1023: accepted even though it is 341 characters.
        assert!(NodePart::new(&"ａ".repeat(341)).is_ok());
    }

    #[test]
    fn rfc7622_3_2_domain_lowercased_and_trailing_dot_stripped() {
        assert_eq!(
            DomainPart::new("Example.COM").unwrap().as_str(),
            "example.com"
        );
        assert_eq!(
            DomainPart::new("example.com.").unwrap().as_str(),
            "example.com"
        );
        // Only one dot is stripped; what remains has an empty label.
        assert_eq!(
            DomainPart::new("example.com.."),
            Err(JidError::InvalidDomain)
        );
        assert_eq!(DomainPart::new("."), Err(JidError::EmptyDomain));
        assert_eq!(DomainPart::new(""), Err(JidError::EmptyDomain));
    }

    #[test]
    fn rfc7622_3_2_idn_domain_to_unicode() {
        assert_eq!(
            DomainPart::new("xn--mnchen-3ya.de").unwrap().as_str(),
            "münchen.de"
        );
        assert_eq!(
            DomainPart::new("MÜNCHEN.de").unwrap().as_str(),
            "münchen.de"
        );
        // Width mapping applies to domains too (UTS #46 mapping).
        assert_eq!(
            DomainPart::new("ｅｘａｍｐｌｅ.com").unwrap().as_str(),
            "example.com"
        );
        assert_eq!(DomainPart::new("xn--a.de"), Err(JidError::InvalidDomain));
    }

    #[test]
    fn rfc7622_3_2_domain_labels_checked() {
        assert_eq!(DomainPart::new("a..b"), Err(JidError::InvalidDomain));
        assert_eq!(
            DomainPart::new(".example.com"),
            Err(JidError::InvalidDomain)
        );
        assert!(DomainPart::new(&format!("{}.com", "a".repeat(63))).is_ok());
        assert_eq!(
            DomainPart::new(&format!("{}.com", "a".repeat(64))),
            Err(JidError::InvalidDomain)
        );
        assert_eq!(
            DomainPart::new("exa mple.com"),
            Err(JidError::InvalidDomain)
        );
        assert_eq!(
            DomainPart::new("exa<mple.com"),
            Err(JidError::InvalidDomain)
        );
    }

    #[test]
    fn rfc7622_3_2_domain_too_long() {
        let label = "a".repeat(60);
        let long = vec![label.as_str(); 17].join("."); // 17 × 61 − 1 = 1036 bytes
        assert_eq!(DomainPart::new(&long), Err(JidError::TooLong("domainpart")));
        let ok = vec![label.as_str(); 16].join("."); // 975 bytes
        assert!(DomainPart::new(&ok).is_ok());
    }

    #[test]
    fn rfc7622_3_2_ip_literals_kept() {
        assert_eq!(DomainPart::new("192.0.2.1").unwrap().as_str(), "192.0.2.1");
        assert_eq!(
            DomainPart::new("[2001:DB8::1]").unwrap().as_str(),
            "[2001:db8::1]"
        );
        assert_eq!(DomainPart::new("[::1]").unwrap().as_str(), "[::1]");
        assert_eq!(DomainPart::new("[not-an-ip]"), Err(JidError::InvalidDomain));
        assert_eq!(DomainPart::new("[::1"), Err(JidError::InvalidDomain));
    }

    #[test]
    fn rfc7622_3_4_resource_opaque_string() {
        assert_eq!(ResourcePart::new("Balcony").unwrap().as_str(), "Balcony");
        assert_eq!(ResourcePart::new("foo bar").unwrap().as_str(), "foo bar");
        // Non-ASCII spaces map to ASCII space (RFC 8265 §4.2.1).
        assert_eq!(
            ResourcePart::new("foo\u{3000}bar").unwrap().as_str(),
            "foo bar"
        );
        // Control characters are disallowed.
        assert_eq!(
            ResourcePart::new("foo\u{7}"),
            Err(JidError::InvalidResource)
        );
        assert_eq!(ResourcePart::new(""), Err(JidError::EmptyResource));
    }

    #[test]
    fn rfc7622_3_4_resource_too_long() {
        assert!(ResourcePart::new(&"r".repeat(1023)).is_ok());
        assert_eq!(
            ResourcePart::new(&"r".repeat(1024)),
            Err(JidError::TooLong("resourcepart"))
        );
    }
}
