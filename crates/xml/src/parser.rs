//! The incremental stream parser.

use crate::{Attr, Element, XmlError};

/// Limits on what a peer may send. Exceeding one is `policy-violation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest top-level element (stanza), in bytes of its serialized form as received.
    /// Also bounds the bytes buffered while waiting for a token to complete.
    pub max_stanza_bytes: usize,
    /// Deepest nesting below the stream element (a stanza is depth 1).
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_stanza_bytes: 256 * 1024, max_depth: 32, max_attributes: 64 }
    }
}

/// The opening stream tag as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// Resolved namespace of the root element (must be `NS_STREAM`; the parser checks).
    pub ns: String,
    /// Local name of the root element (must be `stream`; the parser checks).
    pub name: String,
    /// The default namespace declared on it (`xmlns='jabber:client'`), if any.
    pub default_ns: Option<String>,
    /// Its attributes (`to`, `from`, `version`, `id`, `xml:lang` with `ns = Some(NS_XML)`).
    pub attrs: Vec<Attr>,
}

impl StreamHeader {
    /// Value of an unprefixed attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.ns.is_none() && a.name == name).map(|a| a.value.as_str())
    }
    /// `xml:lang`, if present.
    pub fn lang(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.as_deref() == Some(crate::NS_XML) && a.name == "lang")
            .map(|a| a.value.as_str())
    }
}

/// What the parser yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// `<stream:stream ...>` was received.
    Open(StreamHeader),
    /// A complete top-level element (a stanza or a negotiation element).
    Element(Element),
    /// `</stream:stream>` was received.
    Close,
}

/// An incremental parser: bytes go in with [`Parser::feed`] as they arrive from the socket, in
/// pieces of any size; complete events come out of [`Parser::next_event`].
///
/// Whitespace between top-level elements (keepalives) is skipped. After an error the parser is
/// poisoned and keeps returning it.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
}

impl Parser {
    /// A parser expecting a stream header (an optional `<?xml ...?>` declaration first).
    pub fn new(limits: Limits) -> Self {
        todo!()
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        todo!()
    }

    /// The next complete event, `Ok(None)` if more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        todo!()
    }

    /// Stream restart (RFC 6120 §4.3.3, after STARTTLS and SASL): forget all parser state and
    /// expect a new stream header. Bytes already fed but not yet consumed are kept (a client
    /// may pipeline the new header right after `<success/>`).
    pub fn reset(&mut self) {
        todo!()
    }

    /// Bytes fed but not yet consumed.
    pub fn buffered(&self) -> usize {
        todo!()
    }
}
