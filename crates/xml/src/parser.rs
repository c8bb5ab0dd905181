//! The incremental stream parser.
//!
//! quick-xml cannot resume in the middle of a token, and a socket read may end anywhere (inside a
//! tag, an attribute value, a multi-byte character). So the parser keeps its own buffer and first
//! finds where the next *complete* token ends: a tag `<…>` (skipping `>` inside quoted attribute
//! values), character data up to the next `<`, a CDATA section, or the XML declaration. How far
//! it has scanned is remembered, so data arriving a byte at a time is scanned once, not
//! quadratically. Each complete token is then handed to quick-xml for attribute parsing and
//! unescaping, while namespaces are resolved here with a scope stack.
//!
//! Everything XMPP forbids (RFC 6120 §11.1: comments, processing instructions, DTDs, internal or
//! external entity references) is refused as soon as it is recognised, before the parser
//! buffers it: there is no DTD, hence no entity expansion at all.

use std::borrow::Cow;

use memchr::{memchr, memchr3, memmem};
use quick_xml::escape::{resolve_xml_entity, unescape_with, EscapeError};
use quick_xml::events::attributes::Attributes;

use crate::{Attr, CompactString, Element, XmlError, NS_STREAM, NS_XML};

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
        Self {
            max_stanza_bytes: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
        }
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
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.name == name)
            .map(|a| a.value.as_str())
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
///
/// Memory: an incomplete token or stanza never holds more than `max_stanza_bytes`; beyond that
/// the buffer holds only what the caller fed and has not drained with `next_event`, so feed
/// bounded socket reads and drain after each.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    /// Received bytes; `buf[pos..]` is not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    /// How far past `pos` the current incomplete token has been scanned.
    scanned: usize,
    /// The quote character of the attribute value the tag scan stopped inside, or 0.
    quote: u8,
    doc: Doc,
    poisoned: Option<XmlError>,
}

/// The namespace URI the `xmlns` prefix is bound to; nothing may be declared with it.
const NS_XMLNS: &str = "http://www.w3.org/2000/xmlns/";
/// A UTF-8 byte order mark, tolerated at the very start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";
const CDATA_OPEN: &[u8] = b"<![CDATA[";
/// Buffers that grew past this (for a large stanza) are shrunk back once drained.
const SHRINK_ABOVE: usize = 64 * 1024;
const SHRUNK_CAPACITY: usize = 8 * 1024;

/// Where in the document the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the stream header; the XML declaration is allowed until it or anything else
    /// markup-like has been seen.
    Prolog { decl_allowed: bool },
    /// Inside the stream element.
    Stream,
    /// After `</stream:stream>`: only whitespace may follow.
    Closed,
}

/// A complete token at the start of the unconsumed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `<…>`: a start, end or empty-element tag.
    Tag(usize),
    /// Character data up to (not including) the next `<`.
    Text(usize),
    /// `<![CDATA[…]]>`.
    CData(usize),
    /// `<?xml …?>`.
    Decl(usize),
}

impl Token {
    fn len(self) -> usize {
        match self {
            Token::Tag(n) | Token::Text(n) | Token::CData(n) | Token::Decl(n) => n,
        }
    }
}

/// One namespace declaration in scope. The prefixes and namespaces every stream header
/// declares are borrowed constants, so the stream element's declarations, held for the whole
/// session, own no strings.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Binding {
    /// `""` for the default namespace.
    prefix: Cow<'static, str>,
    uri: Cow<'static, str>,
}

/// Prefixes and namespaces that stream headers declare, kept as constants instead of copies.
const INTERNED: [&str; 6] = [
    "",
    "stream",
    NS_STREAM,
    crate::NS_CLIENT,
    "jabber:server",
    "jabber:server:dialback",
];

/// The constant equal to `s`, if it is one of [`INTERNED`].
fn interned(s: &str) -> Option<&'static str> {
    INTERNED.iter().find(|k| **k == s).copied()
}

/// An open element below the stream element.
#[derive(Debug)]
struct Open {
    element: Element,
    /// Where its qualified name starts in [`Doc::qnames`].
    qname_start: usize,
    /// `bindings.len()` when it was entered: its own declarations follow.
    frame: usize,
}

/// Document state: everything `reset` forgets.
#[derive(Debug)]
struct Doc {
    state: State,
    /// Nothing has been consumed yet (a byte order mark may come).
    at_start: bool,
    /// A self-closing stream header was read: `Close` is owed after `Open`.
    pending_close: bool,
    /// Bytes consumed for the top-level element being built.
    stanza_bytes: usize,
    /// Open elements below the stream element; `stack[0]` is the stanza.
    stack: Vec<Open>,
    /// Qualified names of the elements in `stack`, concatenated.
    qnames: String,
    /// Declarations made on the elements in `stack`, outermost first.
    bindings: Vec<Binding>,
    /// Qualified name of the stream element (once its header is read).
    root_qname: Cow<'static, str>,
    /// Declarations made on the stream element: in scope for the whole stream, so kept at
    /// their exact size (an idle session holds only these).
    root_bindings: Box<[Binding]>,
}

impl Parser {
    /// A parser expecting a stream header (an optional `<?xml ...?>` declaration first).
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            quote: 0,
            doc: Doc::new(),
            poisoned: None,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, `Ok(None)` if more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        self.advance()
            .inspect_err(|e| self.poisoned = Some(e.clone()))
    }

    /// Stream restart (RFC 6120 §4.3.3, after STARTTLS and SASL): forget all parser state and
    /// expect a new stream header. Bytes already fed but not yet consumed are kept (a client
    /// may pipeline the new header right after `<success/>`).
    ///
    /// A poisoned parser stays poisoned: a stream that failed is not restarted.
    pub fn reset(&mut self) {
        self.scanned = 0;
        self.quote = 0;
        self.doc = Doc::new();
    }

    /// Frees the input buffer if everything fed has been consumed, so that a connection
    /// waiting for its next stanza holds no buffer (an idle session's memory); the next
    /// [`Parser::feed`] allocates again. Keeps a partly received token.
    ///
    /// Between stanzas it also frees the element and namespace stacks: what stays is the
    /// stream element's name and declarations, at their exact size.
    pub fn release_idle(&mut self) {
        if self.pos == self.buf.len() && self.buf.capacity() > 0 {
            self.buf = Vec::new();
            self.pos = 0;
        }
        self.doc.release_idle();
    }

    /// Bytes fed but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Drops consumed bytes from the front of the buffer. Only when at least half of it is
    /// consumed, so each byte is moved O(1) times however the input is split.
    fn compact(&mut self) {
        if self.pos == 0 {
            return;
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > SHRINK_ABOVE {
                self.buf.shrink_to(SHRUNK_CAPACITY);
            }
        } else if self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    fn advance(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        if self.doc.pending_close {
            self.doc.pending_close = false;
            return Ok(Some(StreamEvent::Close));
        }
        loop {
            if self.doc.stack.is_empty() {
                if !self.skip_top_level()? {
                    return Ok(None);
                }
                if self.doc.state == State::Closed {
                    return Err(XmlError::NotWellFormed(
                        "data after the end of the stream".into(),
                    ));
                }
            }
            let Some(token) = self.scan_token()? else {
                return Ok(None);
            };
            let start = self.pos;
            let len = token.len();
            self.pos += len;
            self.scanned = 0;
            self.quote = 0;
            self.doc.stanza_bytes += len;
            let event = self
                .doc
                .process(token, &self.buf[start..start + len], &self.limits)?;
            if self.doc.stack.is_empty() {
                self.doc.stanza_bytes = 0;
            }
            if event.is_some() {
                return Ok(event);
            }
        }
    }

    /// Skips what may sit between top-level elements: a byte order mark at the very start, and
    /// whitespace. `Ok(true)` when the next byte is `<`, `Ok(false)` when more bytes are needed.
    fn skip_top_level(&mut self) -> Result<bool, XmlError> {
        if self.doc.at_start {
            let avail = &self.buf[self.pos..];
            let n = avail.len().min(BOM.len());
            if n == 0 {
                return Ok(false);
            }
            if avail[..n] == BOM[..n] {
                if n < BOM.len() {
                    return Ok(false);
                }
                self.pos += BOM.len();
            }
            self.doc.at_start = false;
        }
        let ws = self.buf[self.pos..]
            .iter()
            .take_while(|b| is_xml_ws(**b))
            .count();
        self.pos += ws;
        match self.buf.get(self.pos) {
            None => Ok(false),
            Some(b'<') => Ok(true),
            Some(_) => Err(XmlError::NotWellFormed(match self.doc.state {
                State::Prolog { .. } => "character data before the stream header".into(),
                State::Stream => "character data outside of a stanza".into(),
                State::Closed => "data after the end of the stream".into(),
            })),
        }
    }

    /// Finds the complete token at `pos`, or `None` if it has not fully arrived. Enforces the
    /// size limit on the token (and on the incomplete tail, so it cannot grow without bound).
    fn scan_token(&mut self) -> Result<Option<Token>, XmlError> {
        let avail = &self.buf[self.pos..];
        let decl_allowed = self.doc.state == State::Prolog { decl_allowed: true };
        let found = match avail.first() {
            None => return Ok(None),
            Some(b'<') => scan_markup(avail, &mut self.scanned, &mut self.quote, decl_allowed)?,
            Some(_) => scan_text(avail, &mut self.scanned),
        };
        let pending = found.map_or(avail.len(), Token::len);
        if self.doc.stanza_bytes.saturating_add(pending) > self.limits.max_stanza_bytes {
            return Err(XmlError::PolicyViolation(format!(
                "stanza larger than {} bytes",
                self.limits.max_stanza_bytes
            )));
        }
        Ok(found)
    }
}

/// Scans markup starting with `<`. Forbidden constructs are refused from their first bytes.
fn scan_markup(
    avail: &[u8],
    scanned: &mut usize,
    quote: &mut u8,
    decl_allowed: bool,
) -> Result<Option<Token>, XmlError> {
    let Some(&second) = avail.get(1) else {
        return Ok(None);
    };
    match second {
        b'!' => {
            let rest = &avail[2..];
            let want = &CDATA_OPEN[2..];
            let n = rest.len().min(want.len());
            if rest[..n] != want[..n] {
                return Err(match rest.first() {
                    Some(b'-') => XmlError::RestrictedXml("comments are not allowed".into()),
                    Some(b) if b.is_ascii_uppercase() => XmlError::RestrictedXml(
                        "document type and markup declarations are not allowed".into(),
                    ),
                    _ => XmlError::NotWellFormed("invalid markup after '<!'".into()),
                });
            }
            if n < want.len() {
                return Ok(None);
            }
            let from = (*scanned).max(CDATA_OPEN.len());
            match memmem::find(&avail[from..], b"]]>") {
                Some(i) => Ok(Some(Token::CData(from + i + 3))),
                None => {
                    // The terminator may be split: resume two bytes back.
                    *scanned = avail.len().saturating_sub(2).max(CDATA_OPEN.len());
                    Ok(None)
                }
            }
        }
        b'?' => {
            let rest = &avail[2..];
            let n = rest.len().min(3);
            let is_xml_target =
                rest[..n] == b"xml"[..n] && rest.get(3).is_none_or(|b| *b == b'?' || is_xml_ws(*b));
            if !is_xml_target {
                return Err(XmlError::RestrictedXml(
                    "processing instructions are not allowed".into(),
                ));
            }
            if rest.len() < 4 {
                return Ok(None);
            }
            if !decl_allowed {
                return Err(XmlError::RestrictedXml(
                    "an XML declaration is only allowed before the stream header".into(),
                ));
            }
            let from = (*scanned).max(5);
            match memmem::find(&avail[from..], b"?>") {
                Some(i) => Ok(Some(Token::Decl(from + i + 2))),
                None => {
                    *scanned = avail.len().saturating_sub(1).max(5);
                    Ok(None)
                }
            }
        }
        _ => {
            // A tag: ends at the first `>` outside a quoted attribute value.
            let mut i = (*scanned).max(1);
            let mut q = *quote;
            while i < avail.len() {
                if q != 0 {
                    match memchr(q, &avail[i..]) {
                        Some(j) => {
                            i += j + 1;
                            q = 0;
                        }
                        None => i = avail.len(),
                    }
                } else {
                    match memchr3(b'>', b'\'', b'"', &avail[i..]) {
                        Some(j) => {
                            let b = avail[i + j];
                            i += j + 1;
                            if b == b'>' {
                                return Ok(Some(Token::Tag(i)));
                            }
                            q = b;
                        }
                        None => i = avail.len(),
                    }
                }
            }
            *scanned = i;
            *quote = q;
            Ok(None)
        }
    }
}

/// Scans character data: complete once the next `<` is there.
fn scan_text(avail: &[u8], scanned: &mut usize) -> Option<Token> {
    match memchr(b'<', &avail[*scanned..]) {
        Some(i) => Some(Token::Text(*scanned + i)),
        None => {
            *scanned = avail.len();
            None
        }
    }
}

impl Doc {
    fn new() -> Self {
        Self {
            state: State::Prolog { decl_allowed: true },
            at_start: true,
            pending_close: false,
            stanza_bytes: 0,
            stack: Vec::new(),
            qnames: String::new(),
            bindings: Vec::new(),
            root_qname: Cow::Borrowed(""),
            root_bindings: Box::default(),
        }
    }

    /// Frees the stacks for elements below the stream element when none is open.
    fn release_idle(&mut self) {
        if !self.stack.is_empty() {
            return;
        }
        if self.stack.capacity() > 0 {
            self.stack = Vec::new();
        }
        if self.qnames.capacity() > 0 {
            self.qnames = String::new();
        }
        if self.bindings.capacity() > 0 {
            self.bindings = Vec::new();
        }
    }

    /// Applies one complete token (`bytes` is all of it).
    fn process(
        &mut self,
        token: Token,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<Option<StreamEvent>, XmlError> {
        match token {
            Token::Decl(_) => {
                let inner = &bytes[2..bytes.len() - 2];
                self.declaration(utf8(inner)?)?;
                Ok(None)
            }
            Token::CData(n) => {
                let text = utf8(&bytes[CDATA_OPEN.len()..n - 3])?;
                check_chars(text)?;
                self.append_text(&normalize_newlines(text))?;
                Ok(None)
            }
            Token::Text(_) => {
                let raw = utf8(bytes)?;
                if memmem::find(bytes, b"]]>").is_some() {
                    return Err(XmlError::NotWellFormed("']]>' in character data".into()));
                }
                let normalized = normalize_newlines(raw);
                let text = unescape(&normalized)?;
                check_chars(&text)?;
                self.append_text(&text)?;
                Ok(None)
            }
            Token::Tag(n) => {
                let inner = &bytes[1..n - 1];
                if let Some(name) = inner.strip_prefix(b"/") {
                    self.end_tag(utf8(name)?)
                } else {
                    match inner.strip_suffix(b"/") {
                        Some(inner) => self.start_tag(utf8(inner)?, true, limits),
                        None => self.start_tag(utf8(inner)?, false, limits),
                    }
                }
            }
        }
    }

    fn append_text(&mut self, text: &str) -> Result<(), XmlError> {
        match self.stack.last_mut() {
            Some(parent) => {
                parent.element.push_str(text);
                Ok(())
            }
            // Stream-level whitespace never reaches here; anything else there is an error.
            None => Err(XmlError::NotWellFormed(
                "character data outside of a stanza".into(),
            )),
        }
    }

    /// `<?xml version='1.0' encoding='UTF-8'?>`; `inner` is what follows `<?`.
    fn declaration(&mut self, inner: &str) -> Result<(), XmlError> {
        let mut version = None;
        for attr in Attributes::new(inner, 3) {
            let attr =
                attr.map_err(|e| XmlError::NotWellFormed(format!("XML declaration: {e}")))?;
            let key = utf8(attr.key.as_ref())?;
            let value = utf8(&attr.value)?;
            match key {
                "version" => version = Some(value.to_owned()),
                "encoding" => {
                    if !value.eq_ignore_ascii_case("UTF-8") {
                        return Err(XmlError::UnsupportedEncoding(format!(
                            "encoding '{}' declared; only UTF-8 is supported",
                            excerpt(value)
                        )));
                    }
                }
                "standalone" => {}
                _ => {
                    return Err(XmlError::NotWellFormed(format!(
                        "unknown XML declaration attribute '{}'",
                        excerpt(key)
                    )))
                }
            }
        }
        match version {
            Some(v) if v.starts_with("1.") => {}
            _ => {
                return Err(XmlError::NotWellFormed(
                    "XML declaration without version 1.x".into(),
                ))
            }
        }
        self.state = State::Prolog {
            decl_allowed: false,
        };
        Ok(())
    }

    fn end_tag(&mut self, name: &str) -> Result<Option<StreamEvent>, XmlError> {
        let name = name.trim_end_matches(is_xml_ws_char);
        if self.state != State::Stream {
            return Err(XmlError::NotWellFormed(format!(
                "end tag </{}> outside of the stream",
                excerpt(name)
            )));
        }
        let open = match self.stack.last() {
            Some(top) => &self.qnames[top.qname_start..],
            None => &self.root_qname,
        };
        if name != open {
            return Err(XmlError::NotWellFormed(format!(
                "end tag </{}> does not match <{}>",
                excerpt(name),
                excerpt(open)
            )));
        }
        let Some(open) = self.stack.pop() else {
            self.state = State::Closed;
            return Ok(Some(StreamEvent::Close));
        };
        self.qnames.truncate(open.qname_start);
        self.bindings.truncate(open.frame);
        Ok(self.attach(open.element))
    }

    /// Adds a finished element to its parent, or returns it if it is a stanza.
    fn attach(&mut self, element: Element) -> Option<StreamEvent> {
        match self.stack.last_mut() {
            Some(parent) => {
                parent.element.push(element);
                None
            }
            None => Some(StreamEvent::Element(element)),
        }
    }

    /// A start tag (or empty-element tag when `empty`); `inner` is between `<` and `>` or `/>`.
    fn start_tag(
        &mut self,
        inner: &str,
        empty: bool,
        limits: &Limits,
    ) -> Result<Option<StreamEvent>, XmlError> {
        let header = match self.state {
            State::Prolog { .. } => true,
            State::Stream => false,
            State::Closed => {
                return Err(XmlError::NotWellFormed(
                    "data after the end of the stream".into(),
                ))
            }
        };
        if !header && self.stack.len() >= limits.max_depth {
            return Err(XmlError::PolicyViolation(format!(
                "elements nested deeper than {}",
                limits.max_depth
            )));
        }
        let name_end = inner.find(is_xml_ws_char).unwrap_or(inner.len());
        let qname = &inner[..name_end];
        let (prefix, local) = split_qname(qname).ok_or_else(|| {
            XmlError::NotWellFormed(format!("invalid element name '{}'", excerpt(qname)))
        })?;

        let frame = self.bindings.len();
        let mut attrs: Vec<Attr> = Vec::new();
        // Attributes whose prefix is resolved once all declarations on this tag are known;
        // their `ns` holds the prefix meanwhile.
        let mut deferred: Vec<usize> = Vec::new();
        let mut count = 0usize;
        let mut it = Attributes::new(inner, name_end);
        it.with_checks(false); // duplicates are checked below, on expanded names
        for attr in it {
            let attr =
                attr.map_err(|e| XmlError::NotWellFormed(format!("malformed attribute: {e}")))?;
            count += 1;
            if count > limits.max_attributes {
                return Err(XmlError::PolicyViolation(format!(
                    "more than {} attributes on one element",
                    limits.max_attributes
                )));
            }
            // XML 1.0 §3.1: attributes are separated by whitespace, which quick-xml does not
            // insist on. The value borrows from `inner`, so its offset tells what follows it.
            if let Cow::Borrowed(v) = &attr.value {
                let after = (v.as_ptr() as usize)
                    .wrapping_sub(inner.as_ptr() as usize)
                    .wrapping_add(v.len() + 1);
                if inner.as_bytes().get(after).is_some_and(|b| !is_xml_ws(*b)) {
                    return Err(XmlError::NotWellFormed(
                        "attributes must be separated by whitespace".into(),
                    ));
                }
            }
            let key = utf8(attr.key.as_ref())?;
            let value = attr_value(utf8(&attr.value)?)?;
            if key == "xmlns" {
                self.declare(frame, "", value)?;
            } else if let Some(p) = key.strip_prefix("xmlns:") {
                if !is_ncname(p) {
                    return Err(XmlError::NotWellFormed(format!(
                        "invalid namespace prefix '{}'",
                        excerpt(p)
                    )));
                }
                self.declare(frame, p, value)?;
            } else {
                let (ap, an) = split_qname(key).ok_or_else(|| {
                    XmlError::NotWellFormed(format!("invalid attribute name '{}'", excerpt(key)))
                })?;
                let ns = match ap {
                    "" => None,
                    "xml" => Some(CompactString::const_new(NS_XML)),
                    other => {
                        deferred.push(attrs.len());
                        Some(CompactString::from(other))
                    }
                };
                attrs.push(Attr {
                    ns,
                    name: CompactString::from(an),
                    value,
                });
            }
        }

        let unbound = |p: &str| {
            let msg = format!("undeclared namespace prefix '{}'", excerpt(p));
            if header {
                XmlError::InvalidNamespace(msg)
            } else {
                XmlError::NotWellFormed(msg)
            }
        };
        let ns = CompactString::from(self.resolve(prefix).ok_or_else(|| unbound(prefix))?);
        for i in deferred {
            if let Some(a) = attrs.get_mut(i) {
                let p = a.ns.take().unwrap_or_default();
                a.ns = Some(self.resolve(&p).ok_or_else(|| unbound(&p))?.into());
            }
        }
        for (i, a) in attrs.iter().enumerate() {
            if attrs[..i].iter().any(|b| b.name == a.name && b.ns == a.ns) {
                return Err(XmlError::NotWellFormed(format!(
                    "duplicate attribute '{}'",
                    excerpt(&a.name)
                )));
            }
        }

        if header {
            if local != "stream" || ns != NS_STREAM {
                return Err(XmlError::InvalidNamespace(format!(
                    "expected <stream> in {NS_STREAM}, got <{}> in '{}'",
                    excerpt(local),
                    excerpt(&ns)
                )));
            }
            let default_ns = self.bindings[frame..]
                .iter()
                .find(|b| b.prefix.is_empty())
                .map(|b| b.uri.clone().into_owned());
            // No element is open yet, so `bindings` holds exactly the header's declarations.
            self.root_bindings = std::mem::take(&mut self.bindings).into_boxed_slice();
            self.root_qname = interned_qname(qname);
            if empty {
                self.state = State::Closed;
                self.pending_close = true;
            } else {
                self.state = State::Stream;
            }
            return Ok(Some(StreamEvent::Open(StreamHeader {
                ns: ns.into_string(),
                name: local.to_owned(),
                default_ns,
                attrs,
            })));
        }

        let element = Element {
            name: CompactString::from(local),
            ns,
            attrs,
            children: Vec::new(),
        };
        if empty {
            self.bindings.truncate(frame);
            return Ok(self.attach(element));
        }
        let qname_start = self.qnames.len();
        self.qnames.push_str(qname);
        self.stack.push(Open {
            element,
            qname_start,
            frame,
        });
        Ok(None)
    }

    /// Records `xmlns:prefix='uri'` (or `xmlns='uri'` for prefix `""`) on the element whose
    /// bindings start at `frame`, enforcing Namespaces in XML 1.0 §3.
    fn declare(&mut self, frame: usize, prefix: &str, uri: CompactString) -> Result<(), XmlError> {
        let fail = |why: &str| {
            Err(XmlError::NotWellFormed(format!(
                "namespace declaration for '{}': {why}",
                excerpt(prefix)
            )))
        };
        if prefix == "xml" {
            // May be declared, but only to its fixed value; it is predefined anyway.
            return if uri == NS_XML {
                Ok(())
            } else {
                fail("the xml prefix is reserved")
            };
        }
        if prefix == "xmlns" {
            return fail("the xmlns prefix cannot be declared");
        }
        if uri == NS_XML || uri == NS_XMLNS {
            return fail("reserved namespace name");
        }
        if !prefix.is_empty() && uri.is_empty() {
            return fail("a prefix cannot be bound to the empty namespace");
        }
        if self.bindings[frame..].iter().any(|b| b.prefix == prefix) {
            return fail("declared twice");
        }
        self.bindings.push(Binding {
            prefix: interned(prefix).map_or_else(|| Cow::Owned(prefix.to_owned()), Cow::Borrowed),
            uri: interned(&uri).map_or_else(|| Cow::Owned(uri.into_string()), Cow::Borrowed),
        });
        Ok(())
    }

    /// The namespace a prefix (`""` for none) stands for at this point.
    fn resolve(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(NS_XML);
        }
        let mut in_scope = self
            .bindings
            .iter()
            .rev()
            .chain(self.root_bindings.iter().rev());
        // Most lookups are for the default namespace (""): a length test, not a memcmp call.
        let declares = |b: &&Binding| {
            if prefix.is_empty() {
                b.prefix.is_empty()
            } else {
                b.prefix == prefix
            }
        };
        match in_scope.find(declares) {
            Some(b) => Some(&b.uri),
            // An unprefixed name with no default namespace in scope has no namespace.
            None if prefix.is_empty() => Some(""),
            None => None,
        }
    }
}

/// The stream element's qualified name, borrowed when it is the usual `stream:stream`.
fn interned_qname(qname: &str) -> Cow<'static, str> {
    const USUAL: &str = "stream:stream";
    if qname == USUAL {
        Cow::Borrowed(USUAL)
    } else {
        Cow::Owned(qname.to_owned())
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, XmlError> {
    std::str::from_utf8(bytes)
        .map_err(|_| XmlError::UnsupportedEncoding("data is not valid UTF-8".into()))
}

/// At most 40 characters of peer-supplied text, for error messages.
fn excerpt(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn is_xml_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_xml_ws_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Line-end normalization (XML 1.0 §2.11): `\r\n` and lone `\r` become `\n`.
fn normalize_newlines(s: &str) -> Cow<'_, str> {
    if !s.contains('\r') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An attribute value as the application sees it: normalized (XML 1.0 §3.3.3: literal
/// whitespace characters become spaces), unescaped and checked.
fn attr_value(raw: &str) -> Result<CompactString, XmlError> {
    if raw.contains('<') {
        return Err(XmlError::NotWellFormed("'<' in an attribute value".into()));
    }
    let normalized = if raw.bytes().any(|b| matches!(b, b'\t' | b'\n' | b'\r')) {
        let crlf = normalize_newlines(raw);
        Cow::Owned(crlf.replace(['\t', '\n'], " "))
    } else {
        Cow::Borrowed(raw)
    };
    let value = unescape(&normalized)?;
    check_chars(&value)?;
    // Short values are held inline; a long unescaped one keeps its buffer.
    Ok(match value {
        Cow::Borrowed(v) => CompactString::from(v),
        Cow::Owned(v) => CompactString::from(v),
    })
}

/// Resolves the five predefined entities and character references; any other entity
/// reference is restricted XML (RFC 6120 §11.1), a bare `&` is not well-formed.
fn unescape(s: &str) -> Result<Cow<'_, str>, XmlError> {
    unescape_with(s, resolve_xml_entity).map_err(|e| match e {
        EscapeError::UnrecognizedEntity(_, name) if is_name(&name) => {
            XmlError::RestrictedXml(format!("undefined entity '&{};'", excerpt(&name)))
        }
        EscapeError::InvalidCharRef(e) => {
            XmlError::NotWellFormed(format!("invalid character reference: {e}"))
        }
        EscapeError::UnrecognizedEntity(..) | EscapeError::UnterminatedEntity(_) => {
            XmlError::NotWellFormed("'&' not starting an entity reference".into())
        }
    })
}

/// Refuses characters outside the XML 1.0 `Char` production (§2.2): control characters other
/// than tab, line feed and carriage return, and U+FFFE/U+FFFF. (Surrogates cannot occur in a
/// Rust string.)
fn check_chars(s: &str) -> Result<(), XmlError> {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let bad = match b {
            b'\t' | b'\n' | b'\r' => false,
            0..=0x1F => true,
            // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
            0xEF => {
                bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
            }
            _ => false,
        };
        if bad {
            return Err(XmlError::NotWellFormed(
                "character not allowed in XML".into(),
            ));
        }
    }
    Ok(())
}

/// Splits `prefix:local` (prefix `""` if none), both parts being `NCName`s.
fn split_qname(s: &str) -> Option<(&str, &str)> {
    match s.split_once(':') {
        Some((p, l)) if is_ncname(p) && is_ncname(l) => Some((p, l)),
        Some(_) => None,
        None if is_ncname(s) => Some(("", s)),
        None => None,
    }
}

/// XML `Name` (colons allowed).
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == ':' || is_name_start(c))
        && chars.all(|c| c == ':' || is_name_char(c))
}

/// Namespaces in XML `NCName`: a `Name` without colons.
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// XML 1.0 (fifth edition) `NameStartChar`, without the colon.
fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 (fifth edition) `NameChar`, without the colon.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Node;

    const HEADER: &[u8] =
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

    fn open() -> Parser {
        let mut p = Parser::new(Limits::default());
        p.feed(HEADER);
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
        p
    }

    #[test]
    fn an_idle_parser_holds_no_buffer_but_keeps_a_partial_stanza() {
        let mut p = open();
        p.feed(b"<message><body>hi</body></message><presence");
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(_)))));
        assert_eq!(p.next_event(), Ok(None));
        // Half a stanza is buffered: it must survive.
        p.release_idle();
        assert_eq!(p.buffered(), b"<presence".len());
        p.feed(b"/>");
        let Ok(Some(StreamEvent::Element(e))) = p.next_event() else {
            panic!("the partial stanza was lost")
        };
        assert_eq!(e.name, "presence");
        // Everything consumed: nothing is held while waiting.
        p.release_idle();
        assert_eq!(p.buf.capacity(), 0);
        p.feed(b"<iq/>");
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(_)))));
    }

    /// Between stanzas only the stream element's name and declarations stay (issue #7: idle
    /// session memory), and they still scope every later stanza (Namespaces in XML 1.0 §6.1,
    /// RFC 6120 §4.8): declarations made inside a stanza do not outlive it.
    #[test]
    fn between_stanzas_only_the_stream_element_is_held_and_still_in_scope() {
        let mut p = Parser::new(Limits::default());
        p.feed(b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' xmlns:x='urn:example:x'>");
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
        p.feed(b"<message xmlns:y='urn:example:y'><x:a y:b='1'><c xmlns='urn:example:c'/></x:a></message>");
        let Ok(Some(StreamEvent::Element(m))) = p.next_event() else {
            panic!("no stanza")
        };
        assert_eq!(m.ns, "jabber:client");
        let Some(Node::Element(a)) = m.children.first() else {
            panic!("no child")
        };
        assert_eq!((a.ns.as_str(), a.name.as_str()), ("urn:example:x", "a"));
        assert_eq!(a.attrs[0].ns.as_deref(), Some("urn:example:y"));

        p.release_idle();
        assert_eq!(p.doc.stack.capacity(), 0);
        assert_eq!(p.doc.qnames.capacity(), 0);
        assert_eq!(p.doc.bindings.capacity(), 0);
        assert_eq!(p.doc.root_bindings.len(), 3);
        // The usual namespaces are constants, not copies.
        assert!(p.doc.root_bindings[..2]
            .iter()
            .all(|b| matches!(b.uri, Cow::Borrowed(_))));

        // The stream's declarations still apply; the stanza's `y` does not.
        p.feed(b"<iq><x:q/></iq><s:features/>");
        let Ok(Some(StreamEvent::Element(iq))) = p.next_event() else {
            panic!("no stanza")
        };
        assert_eq!(iq.ns, "jabber:client");
        assert!(matches!(iq.children.first(), Some(Node::Element(q)) if q.ns == "urn:example:x"));
        let Ok(Some(StreamEvent::Element(f))) = p.next_event() else {
            panic!("no features")
        };
        assert_eq!(f.ns, NS_STREAM);
        p.release_idle();
        p.feed(b"<presence><y:z/></presence>");
        assert!(matches!(p.next_event(), Err(XmlError::NotWellFormed(_))));

        // The stream still closes with its own (custom-prefixed) name, and only with it.
        let mut p = Parser::new(Limits::default());
        p.feed(b"<s:stream xmlns:s='http://etherx.jabber.org/streams'><iq/>");
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(_)))));
        p.release_idle();
        p.feed(b"</stream:stream>");
        assert!(matches!(p.next_event(), Err(XmlError::NotWellFormed(_))));
        let mut p = Parser::new(Limits::default());
        p.feed(b"<s:stream xmlns:s='http://etherx.jabber.org/streams'><iq/>");
        let _ = (p.next_event(), p.next_event());
        p.release_idle();
        p.feed(b"</s:stream>");
        assert_eq!(p.next_event(), Ok(Some(StreamEvent::Close)));
    }

    #[test]
    fn tag_scan_resumes_where_it_stopped() {
        // Byte-at-a-time input must not be rescanned from the token start each time.
        let mut p = open();
        for (i, b) in b"<message to='a>b' x=\"'\"".iter().enumerate() {
            p.feed(&[*b]);
            assert_eq!(p.next_event(), Ok(None));
            // (A lone `<` is not scanned yet: the next byte says what it starts.)
            assert_eq!(
                p.scanned,
                if i == 0 { 0 } else { p.buffered() },
                "after byte {i}"
            );
        }
        assert_eq!(p.quote, 0);
        p.feed(b" y='");
        assert_eq!(p.next_event(), Ok(None));
        assert_eq!(
            p.quote, b'\'',
            "inside a quoted value, '>' does not end the tag"
        );
        p.feed(b">'/>");
        let Ok(Some(StreamEvent::Element(e))) = p.next_event() else {
            panic!()
        };
        assert_eq!(e.attr("to"), Some("a>b"));
        assert_eq!(e.attr("y"), Some(">"));
        assert_eq!((p.scanned, p.quote), (0, 0));
    }

    #[test]
    fn text_and_cdata_scan_resume_where_they_stopped() {
        let mut p = open();
        p.feed(b"<body>");
        assert_eq!(p.next_event(), Ok(None));
        for _ in 0..10 {
            p.feed(b"x");
            assert_eq!(p.next_event(), Ok(None));
            assert_eq!(p.scanned, p.buffered());
        }
        p.feed(b"<![CDATA[");
        assert_eq!(p.next_event(), Ok(None));
        for b in b"abc]]" {
            p.feed(&[*b]);
            assert_eq!(p.next_event(), Ok(None));
            // Two bytes back, in case they start the terminator.
            assert!(p.scanned >= p.buffered() - 2);
        }
        p.feed(b"></body>");
        let Ok(Some(StreamEvent::Element(e))) = p.next_event() else {
            panic!()
        };
        // The terminator arrived split across feeds and was still found.
        assert_eq!(e.text(), "xxxxxxxxxxabc");
    }

    #[test]
    fn buffer_is_compacted_as_stanzas_are_consumed() {
        let mut p = open();
        let stanza = b"<message to='romeo@example.net'><body>hi</body></message>";
        for _ in 0..1000 {
            for b in stanza {
                p.feed(&[*b]);
                while let Some(ev) = p.next_event().unwrap_or(None) {
                    assert!(matches!(ev, StreamEvent::Element(_)));
                }
            }
            assert!(p.buf.len() <= 2 * stanza.len(), "{}", p.buf.len());
        }
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn large_buffer_is_shrunk_after_use() {
        let mut p = open();
        let big = format!("<message><body>{}</body></message>", "x".repeat(200_000));
        p.feed(big.as_bytes());
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(_)))));
        p.feed(b"<presence/>");
        assert!(p.buf.capacity() < SHRINK_ABOVE);
    }

    #[test]
    fn xml_1_0_names() {
        for ok in ["a", "_x", "stream", "x-1.2", "café", "日本"] {
            assert!(is_ncname(ok), "{ok}");
        }
        for bad in ["", "1a", "-a", ".a", "a:b", "a b", "a\u{1}", "a/"] {
            assert!(!is_ncname(bad), "{bad:?}");
        }
        assert_eq!(split_qname("stream:stream"), Some(("stream", "stream")));
        assert_eq!(split_qname("iq"), Some(("", "iq")));
        assert_eq!(split_qname("a:b:c"), None);
        assert_eq!(split_qname(":a"), None);
        assert!(is_name("a:b") && !is_name("#a"));
    }

    #[test]
    fn xml_1_0_chars() {
        assert!(check_chars("a\t\n\r ☺ \u{FFFD} 𝄞").is_ok());
        for bad in ["\u{0}", "\u{1F}", "\u{FFFE}", "\u{FFFF}", "x\u{B}"] {
            assert!(check_chars(bad).is_err(), "{bad:?}");
        }
    }
}
