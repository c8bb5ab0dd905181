//! XML for XMPP streams: an incremental parser, an element tree and an escaping writer.
//!
//! # Layout
//! - `element.rs`: [`Element`], [`Node`], [`Attr`] and the writer (`Element::write_to`).
//! - `parser.rs`: [`Parser`], fed bytes as they arrive, yielding [`StreamEvent`]s.
//! - `error.rs`: [`XmlError`], one variant per RFC 6120 stream-error condition it maps to.
//!
//! ```text
//!  bytes ──feed──▶ Parser ──next_event──▶ Open(StreamHeader) | Element(Element) | Close
//!                    │ limits: stanza bytes, depth, attributes
//!                    └─ errors: not-well-formed, restricted-xml, invalid-namespace, policy-violation
//! ```

mod element;
mod error;
mod parser;

pub use element::{escape_attr, escape_text, Attr, CompactString, Element, Node, ToCompactString};
pub use error::XmlError;
pub use parser::{Limits, Parser, StreamEvent, StreamHeader};

/// The namespace of the stream element (`stream:` prefix).
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
/// The namespace bound to the `xml` prefix.
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
/// Default content namespace of client streams.
pub const NS_CLIENT: &str = "jabber:client";
