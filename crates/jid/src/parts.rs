//! The three parts, each normalized once.
//!
//! Normalization happens in the constructors and nowhere else, so two parts that compare equal
//! name the same address (RFC 7622 §3).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

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

// Each part is an immutable shared string: a JID is copied many times per stanza (routes,
// hooks, the stanza's own copies), and a copy is then a reference count, not an allocation.
// Equality, hashing and order are those of the text.

/// A normalized localpart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodePart(Arc<str>);
/// A normalized domainpart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainPart(Arc<str>);
/// A normalized resourcepart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePart(Arc<str>);

impl NodePart {
    /// Normalizes and validates a localpart.
    ///
    /// PRECIS UsernameCaseMapped (RFC 8265 §3.3: width mapping, case mapping, NFC, bidi rule),
    /// then the characters RFC 7622 §3.3.1 forbids.
    pub fn new(s: &str) -> Result<Self, JidError> {
        if s.is_empty() {
            return Err(JidError::EmptyNode);
        }
        if let Some(fast) = ascii_localpart(s) {
            check_length(&fast, "localpart")?;
            return Ok(Self(fast));
        }
        let normalized = UsernameCaseMapped::enforce(s).map_err(|_| JidError::InvalidNode)?;
        if normalized.contains(FORBIDDEN_IN_LOCALPART) {
            return Err(JidError::InvalidNode);
        }
        check_length(&normalized, "localpart")?;
        Ok(Self(normalized.as_ref().into()))
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
            ascii_lowercase(s)
        } else if s.parse::<Ipv4Addr>().is_ok() {
            s.into()
        } else if let Some(fast) = ascii_domain(s) {
            fast
        } else {
            idn_to_unicode(s)?.into()
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
        // Printable ASCII and space are FreeformClass code points that OpaqueString maps to
        // themselves (RFC 8264 §9.11, RFC 8265 §4.2.1): nothing to do.
        if s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            check_length(s, "resourcepart")?;
            return Ok(Self(s.into()));
        }
        let normalized = OpaqueString::enforce(s).map_err(|_| JidError::InvalidResource)?;
        check_length(&normalized, "resourcepart")?;
        Ok(Self(normalized.as_ref().into()))
    }
    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The localpart of an all-ASCII string without PRECIS's tables: the printable ASCII characters
/// (U+0021..U+007E) are exactly the ASCII code points IdentifierClass allows (RFC 8264 §9.11),
/// UsernameCaseMapped's case mapping is then ASCII lowercasing, width mapping and NFC change
/// nothing, and the bidi rule holds for text without right-to-left characters (RFC 8265 §3.3).
/// None when the string needs the full algorithm (or is refused by it: a space, a control).
/// The characters RFC 7622 §3.3.1 forbids are refused by the caller's check in both paths.
fn ascii_localpart(s: &str) -> Option<Arc<str>> {
    let printable = s
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && !FORBIDDEN_IN_LOCALPART.contains(&char::from(b)));
    printable.then(|| ascii_lowercase(s))
}

/// `s` with ASCII letters lowercased, copied once when it has none to lower (the usual case).
fn ascii_lowercase(s: &str) -> Arc<str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        s.to_ascii_lowercase().into()
    } else {
        s.into()
    }
}

/// The domainpart of a plain ASCII host name without UTS #46's tables: letters, digits and
/// hyphens in non-empty labels of at most 63 octets, none an A-label (`xn--`, which must be
/// decoded to Unicode). UTS #46 then only lowercases. None when the full algorithm is needed.
fn ascii_domain(s: &str) -> Option<Arc<str>> {
    let ldh = s.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_BYTES
            && !label
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    ldh.then(|| ascii_lowercase(s))
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

    /// The ASCII fast paths must give exactly what the full PRECIS / UTS #46 algorithms give:
    /// every printable ASCII character alone and in pairs, mixed case, and host-name shapes.
    #[test]
    fn ascii_fast_paths_agree_with_the_full_algorithms() {
        let mut samples: Vec<String> = (0x20u8..=0x7e).map(|b| char::from(b).to_string()).collect();
        for a in (0x20u8..=0x7e).step_by(3) {
            for b in (0x20u8..=0x7e).step_by(5) {
                samples.push(format!("{}x{}Y", char::from(a), char::from(b)));
            }
        }
        samples.extend(
            [
                "Juliet",
                "ROMEO",
                "a.b",
                "-lead",
                "trail-",
                "xn--bcher-kva",
                "XN--bcher-kva.example",
                "Example.COM",
                "a..b",
                "a-b.c-d",
                "1.2.3",
                "x_y",
                "double--hyphen",
            ]
            .map(String::from),
        );
        samples.push("a".repeat(63) + ".example");
        samples.push("a".repeat(64) + ".example");
        for s in &samples {
            if let Some(fast) = ascii_localpart(s) {
                let slow = UsernameCaseMapped::enforce(s.as_str()).map(|n| n.into_owned());
                assert_eq!(
                    Ok(&*fast),
                    slow.as_deref().map_err(|_| ()),
                    "localpart {s:?}"
                );
            }
            if s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                let slow = OpaqueString::enforce(s.as_str()).map(|n| n.into_owned());
                assert_eq!(slow.ok().as_deref(), Some(s.as_str()), "resourcepart {s:?}");
            }
            if let Some(fast) = ascii_domain(s) {
                assert_eq!(Ok(&*fast), idn_to_unicode(s).as_deref(), "domainpart {s:?}");
            }
        }
        // And the fast paths do not swallow what must be refused or rewritten.
        assert_eq!(ascii_localpart("a b"), None);
        assert_eq!(ascii_localpart("a@b"), None);
        assert_eq!(ascii_domain("xn--bcher-kva.example"), None);
        assert_eq!(ascii_domain("a_b.example"), None);
        assert_eq!(ascii_domain("a..b"), None);
    }

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
