//! The three parts, each normalized once.

use crate::JidError;

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
    pub fn new(s: &str) -> Result<Self, JidError> {
        todo!()
    }
    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl DomainPart {
    /// Normalizes and validates a domainpart.
    pub fn new(s: &str) -> Result<Self, JidError> {
        todo!()
    }
    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl ResourcePart {
    /// Normalizes and validates a resourcepart.
    pub fn new(s: &str) -> Result<Self, JidError> {
        todo!()
    }
    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
