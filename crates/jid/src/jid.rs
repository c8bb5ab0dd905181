//! Bare, full, and either.

use std::fmt;
use std::str::FromStr;

use crate::{DomainPart, JidError, NodePart, ResourcePart};

/// `[localpart@]domainpart`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BareJid {
    node: Option<NodePart>,
    domain: DomainPart,
}

/// `[localpart@]domainpart/resourcepart`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FullJid {
    bare: BareJid,
    resource: ResourcePart,
}

/// Either kind, where both are legal (a stanza's `to` and `from`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Jid {
    /// No resource.
    Bare(BareJid),
    /// With a resource.
    Full(FullJid),
}

impl BareJid {
    /// From parts.
    pub fn from_parts(node: Option<NodePart>, domain: DomainPart) -> Self {
        Self { node, domain }
    }
    /// Parses and normalizes `node` and `domain`.
    pub fn new(node: Option<&str>, domain: &str) -> Result<Self, JidError> {
        let node = node.map(NodePart::new).transpose()?;
        let domain = DomainPart::new(domain)?;
        Ok(Self { node, domain })
    }
    /// The localpart.
    pub fn node(&self) -> Option<&NodePart> {
        self.node.as_ref()
    }
    /// The domainpart.
    pub fn domain(&self) -> &DomainPart {
        &self.domain
    }
    /// This JID with a resource.
    pub fn with_resource(&self, resource: ResourcePart) -> FullJid {
        FullJid {
            bare: self.clone(),
            resource,
        }
    }
}

impl FullJid {
    /// From a bare JID and a resource.
    pub fn new(bare: BareJid, resource: ResourcePart) -> Self {
        Self { bare, resource }
    }
    /// The bare JID.
    pub fn bare(&self) -> &BareJid {
        &self.bare
    }
    /// The resourcepart.
    pub fn resource(&self) -> &ResourcePart {
        &self.resource
    }
}

impl Jid {
    /// The bare part.
    pub fn bare(&self) -> &BareJid {
        match self {
            Jid::Bare(b) => b,
            Jid::Full(f) => f.bare(),
        }
    }
    /// The resource, if any.
    pub fn resource(&self) -> Option<&ResourcePart> {
        match self {
            Jid::Bare(_) => None,
            Jid::Full(f) => Some(f.resource()),
        }
    }
    /// The localpart, if any.
    pub fn node(&self) -> Option<&NodePart> {
        self.bare().node()
    }
    /// The domainpart.
    pub fn domain(&self) -> &DomainPart {
        self.bare().domain()
    }
}

impl FromStr for Jid {
    type Err = JidError;
    /// Splits per RFC 7622 §3.1 (resource after the first `/`, localpart before the first `@`
    /// preceding it), then normalizes each part.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (bare, resource) = match s.split_once('/') {
            Some((bare, resource)) => (bare, Some(resource)),
            None => (s, None),
        };
        let (node, domain) = match bare.split_once('@') {
            Some((node, domain)) => (Some(node), domain),
            None => (None, bare),
        };
        // Check the domain first: `@/x` and `/x` are missing their domain before anything else.
        if domain.is_empty() {
            return Err(JidError::EmptyDomain);
        }
        let bare = BareJid::new(node, domain)?;
        match resource {
            None => Ok(Jid::Bare(bare)),
            Some(resource) => Ok(Jid::Full(FullJid::new(bare, ResourcePart::new(resource)?))),
        }
    }
}
impl FromStr for BareJid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<Jid>()? {
            Jid::Bare(b) => Ok(b),
            Jid::Full(_) => Err(JidError::WrongKind("expected a bare JID")),
        }
    }
}
impl FromStr for FullJid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<Jid>()? {
            Jid::Full(f) => Ok(f),
            Jid::Bare(_) => Err(JidError::WrongKind("expected a full JID")),
        }
    }
}

impl fmt::Display for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) => write!(f, "{}@{}", n.as_str(), self.domain.as_str()),
            None => f.write_str(self.domain.as_str()),
        }
    }
}
impl fmt::Display for FullJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.bare, self.resource.as_str())
    }
}
impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Jid::Bare(b) => b.fmt(f),
            Jid::Full(j) => j.fmt(f),
        }
    }
}
impl From<BareJid> for Jid {
    fn from(b: BareJid) -> Self {
        Jid::Bare(b)
    }
}
impl From<FullJid> for Jid {
    fn from(f: FullJid) -> Self {
        Jid::Full(f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Jid, JidError> {
        s.parse()
    }

    #[test]
    fn rfc7622_3_5_valid_examples() {
        // (input, normalized form)
        let cases = [
            ("juliet@example.com", "juliet@example.com"),
            ("juliet@example.com/foo", "juliet@example.com/foo"),
            ("juliet@example.com/foo bar", "juliet@example.com/foo bar"),
            ("juliet@example.com/foo@bar", "juliet@example.com/foo@bar"),
            ("foo\\20bar@example.com", "foo\\20bar@example.com"),
            ("fussball@example.com", "fussball@example.com"),
            ("fußball@example.com", "fußball@example.com"),
            ("π@example.com", "π@example.com"),
            ("Σ@example.com/foo", "σ@example.com/foo"),
            ("σ@example.com/foo", "σ@example.com/foo"),
            ("ς@example.com/foo", "ς@example.com/foo"),
            ("king@example.com/♚", "king@example.com/♚"),
            ("example.com", "example.com"),
            ("example.com/foobar", "example.com/foobar"),
            ("a.example.com/b@example.net", "a.example.com/b@example.net"),
        ];
        for (input, expected) in cases {
            let jid = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(jid.to_string(), expected, "{input}");
        }
    }

    #[test]
    fn rfc7622_3_5_invalid_examples() {
        let cases = [
            ("\"juliet\"@example.com", JidError::InvalidNode),
            ("foo bar@example.com", JidError::InvalidNode),
            ("juliet@example.com/", JidError::EmptyResource),
            ("@example.com/", JidError::EmptyNode),
            ("henry\u{2163}@example.com", JidError::InvalidNode),
            ("♚@example.com", JidError::InvalidNode),
            ("juliet@", JidError::EmptyDomain),
            ("/foobar", JidError::EmptyDomain),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), Err(expected), "{input}");
        }
    }

    #[test]
    fn rfc7622_3_1_empty_parts() {
        assert_eq!(parse(""), Err(JidError::EmptyDomain));
        assert_eq!(parse("@example.com"), Err(JidError::EmptyNode));
        assert_eq!(parse("example.com/"), Err(JidError::EmptyResource));
        assert_eq!(parse("juliet@/balcony"), Err(JidError::EmptyDomain));
    }

    #[test]
    fn rfc7622_3_3_and_3_4_case_mapping_node_and_domain_not_resource() {
        let jid = parse("Juliet@Example.COM/Balcony").unwrap();
        assert_eq!(jid.to_string(), "juliet@example.com/Balcony");
        assert_eq!(jid.node().unwrap().as_str(), "juliet");
        assert_eq!(jid.domain().as_str(), "example.com");
        assert_eq!(jid.resource().unwrap().as_str(), "Balcony");
        assert_eq!(jid, parse("juliet@example.com/Balcony").unwrap());
        assert_ne!(jid, parse("juliet@example.com/balcony").unwrap());
    }

    #[test]
    fn rfc7622_3_1_resource_is_everything_after_first_slash() {
        let jid = parse("juliet@example.com/foo/bar@baz").unwrap();
        assert_eq!(jid.node().unwrap().as_str(), "juliet");
        assert_eq!(jid.domain().as_str(), "example.com");
        assert_eq!(jid.resource().unwrap().as_str(), "foo/bar@baz");
        // An `@` after the first `/` does not make a localpart.
        let jid = parse("example.com/a@b").unwrap();
        assert_eq!(jid.node(), None);
        assert_eq!(jid.resource().unwrap().as_str(), "a@b");
    }

    #[test]
    fn rfc7622_3_1_second_at_in_domain_is_invalid() {
        assert_eq!(parse("a@b@example.com"), Err(JidError::InvalidDomain));
    }

    #[test]
    fn rfc8265_width_mapping_in_jid() {
        let jid = parse("ｊｕｌｉｅｔ@ｅｘａｍｐｌｅ.com").unwrap();
        assert_eq!(jid.to_string(), "juliet@example.com");
    }

    #[test]
    fn rfc7622_3_2_trailing_dot_and_idn() {
        assert_eq!(
            parse("juliet@example.com./r").unwrap().to_string(),
            "juliet@example.com/r"
        );
        assert_eq!(
            parse("Juliet@xn--mnchen-3ya.DE").unwrap().to_string(),
            "juliet@münchen.de"
        );
        assert_eq!(
            parse("juliet@[::1]/r").unwrap().to_string(),
            "juliet@[::1]/r"
        );
    }

    #[test]
    fn rfc7622_too_long_parts() {
        let node = "n".repeat(1024);
        assert_eq!(
            parse(&format!("{node}@example.com")),
            Err(JidError::TooLong("localpart"))
        );
        let res = "r".repeat(1024);
        assert_eq!(
            parse(&format!("example.com/{res}")),
            Err(JidError::TooLong("resourcepart"))
        );
    }

    #[test]
    fn display_round_trip() {
        for s in [
            "juliet@example.com",
            "juliet@example.com/balcony",
            "example.com",
            "example.com/foo/bar@baz",
            "σ@münchen.de/♚",
            "[2001:db8::1]",
        ] {
            let jid = parse(s).unwrap();
            assert_eq!(jid.to_string(), s);
            assert_eq!(parse(&jid.to_string()).unwrap(), jid);
        }
    }

    #[test]
    fn bare_and_full_kinds() {
        let full: FullJid = "juliet@example.com/balcony".parse().unwrap();
        assert_eq!(full.bare().to_string(), "juliet@example.com");
        assert!("juliet@example.com".parse::<FullJid>().is_err());
        assert!("juliet@example.com/r".parse::<BareJid>().is_err());
        let bare = BareJid::new(Some("Romeo"), "Example.net").unwrap();
        assert_eq!(bare.to_string(), "romeo@example.net");
        let full = bare.with_resource(ResourcePart::new("orchard").unwrap());
        assert_eq!(Jid::from(full).to_string(), "romeo@example.net/orchard");
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn test_size() {
        use std::mem::size_of;
        assert_eq!(size_of::<NodePart>(), 16);
        assert_eq!(size_of::<DomainPart>(), 16);
        assert_eq!(size_of::<ResourcePart>(), 16);
        assert_eq!(size_of::<BareJid>(), 32);
        assert_eq!(size_of::<FullJid>(), 48);
        assert_eq!(size_of::<Jid>(), 48);
    }

    /// Nothing a peer sends may panic the parser (RFC 6120 §8.3.3.8: it is `jid-malformed`).
    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet = [
            "a", "Z", "@", "/", ".", "[", "]", ":", "xn--", "ß", "Σ", "\u{0}", "\u{200d}",
            "\u{5d0}", "1", "-", " ", "\u{3000}", "♚", "Ⅳ", "\"", "\u{301}", "ｅ",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut s = String::new();
            for _ in 0..(next() % 10) {
                s.push_str(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
            if let Ok(jid) = s.parse::<Jid>() {
                // Whatever parses is normalized: printing and parsing again is a fixed point.
                assert_eq!(jid.to_string().parse::<Jid>().as_ref(), Ok(&jid), "{s:?}");
            }
        }
    }
}
