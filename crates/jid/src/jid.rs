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
        todo!()
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
        FullJid { bare: self.clone(), resource }
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
        todo!()
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
