//! The element tree and the writer.
//!
//! Names, namespaces and attribute values are [`CompactString`]s: up to 24 bytes are held
//! inline (every stanza name, most namespaces, ids, types and JIDs), so parsing or copying a
//! stanza allocates for its longer texts only.

pub use compact_str::{CompactString, ToCompactString};

/// An attribute. `ns` is `None` for unprefixed attributes (which have no namespace in XML),
/// and `Some(NS_XML)` for `xml:lang`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Namespace of a prefixed attribute.
    pub ns: Option<CompactString>,
    /// Local name.
    pub name: CompactString,
    /// Unescaped value.
    pub value: CompactString,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Unescaped character data.
    Text(String),
}

/// An XML element with its namespace resolved. Prefixes are not kept: the writer chooses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name.
    pub name: CompactString,
    /// Resolved namespace URI ("" for none).
    pub ns: CompactString,
    /// Attributes in document order.
    pub attrs: Vec<Attr>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// A new empty element.
    pub fn new(name: impl Into<CompactString>, ns: impl Into<CompactString>) -> Self {
        Self {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder: sets (or replaces) an unprefixed attribute.
    pub fn with_attr(
        mut self,
        name: impl Into<CompactString>,
        value: impl Into<CompactString>,
    ) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder: appends a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.push(child);
        self
    }

    /// Builder: appends text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.push_text(text);
        self
    }

    /// Value of an unprefixed attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Sets (or replaces) an unprefixed attribute.
    pub fn set_attr(&mut self, name: impl Into<CompactString>, value: impl Into<CompactString>) {
        let name = name.into();
        let value = value.into();
        match self
            .attrs
            .iter_mut()
            .find(|a| a.ns.is_none() && a.name == name)
        {
            Some(a) => a.value = value,
            None => self.attrs.push(Attr {
                ns: None,
                name,
                value,
            }),
        }
    }

    /// Removes an unprefixed attribute, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let idx = self
            .attrs
            .iter()
            .position(|a| a.ns.is_none() && a.name == name)?;
        Some(self.attrs.remove(idx).value.into_string())
    }

    /// `xml:lang`, if present.
    pub fn lang(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.as_deref() == Some(crate::NS_XML) && a.name == "lang")
            .map(|a| a.value.as_str())
    }

    /// True if this element has that local name and namespace.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// Child elements in order.
    pub fn child_elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this name and namespace.
    pub fn child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.child_elements().find(|e| e.is(name, ns))
    }

    /// Mutable access to the first child element with this name and namespace.
    pub fn child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|n| match n {
            Node::Element(e) if e.is(name, ns) => Some(e),
            _ => None,
        })
    }

    /// All direct text children concatenated.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// Appends a child element.
    pub fn push(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    /// Appends text, merging it into a directly preceding text node so that adjacent
    /// character data stays one [`Node::Text`].
    pub fn push_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        match self.children.last_mut() {
            Some(Node::Text(t)) => t.push_str(&text),
            _ => self.children.push(Node::Text(text)),
        }
    }

    /// Like [`Element::push_text`] for a borrowed string (no allocation when merging).
    pub(crate) fn push_str(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.children.last_mut() {
            Some(Node::Text(t)) => t.push_str(text),
            _ => self.children.push(Node::Text(text.to_owned())),
        }
    }

    /// Serializes into `out`. `parent_ns` is the default namespace in scope where this element is
    /// written (e.g. `jabber:client` for a stanza on a client stream): `xmlns` is emitted only
    /// when `self.ns` differs from it. Prefixed attributes get prefix declarations as needed
    /// (`xml:` never needs one). Text and attribute values are escaped.
    pub fn write_to(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns {
            out.push_str(" xmlns='");
            escape_attr(&self.ns, out);
            out.push('\'');
        }
        // Prefixes for namespaced attributes, declared on this element. Elements never carry a
        // prefix (they use the default namespace), so generated names cannot clash with theirs.
        let mut prefixes: Vec<&str> = Vec::new();
        for a in &self.attrs {
            if let Some(ns) = attr_ns(a) {
                if ns != crate::NS_XML && !prefixes.contains(&ns) {
                    prefixes.push(ns);
                    out.push_str(" xmlns:ns");
                    push_index(out, prefixes.len());
                    out.push_str("='");
                    escape_attr(ns, out);
                    out.push('\'');
                }
            }
        }
        for a in &self.attrs {
            match attr_ns(a) {
                None => {
                    // The default namespace is written from `ns`; an `xmlns` pseudo-attribute
                    // would duplicate or contradict it.
                    if a.name == "xmlns" {
                        continue;
                    }
                    out.push(' ');
                }
                Some(crate::NS_XML) => out.push_str(" xml:"),
                Some(ns) => {
                    let idx = prefixes.iter().position(|p| *p == ns).map_or(0, |i| i + 1);
                    out.push_str(" ns");
                    push_index(out, idx);
                    out.push(':');
                }
            }
            out.push_str(&a.name);
            out.push_str("='");
            escape_attr(&a.value, out);
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for child in &self.children {
            match child {
                Node::Element(e) => e.write_to(out, &self.ns),
                Node::Text(t) => escape_text(t, out),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }

    /// Serializes as a document fragment whose default namespace is `parent_ns`.
    pub fn to_xml(&self, parent_ns: &str) -> String {
        let mut s = String::new();
        self.write_to(&mut s, parent_ns);
        s
    }
}

/// The namespace of an attribute, treating `Some("")` like `None` (no namespace).
fn attr_ns(a: &Attr) -> Option<&str> {
    a.ns.as_deref().filter(|ns| !ns.is_empty())
}

fn push_index(out: &mut String, n: usize) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, "{n}");
}

/// Escapes character data (`&`, `<`, `>`).
///
/// A carriage return is written as `&#xD;` as well: a literal one would be turned into a line
/// feed by the receiver's line-end normalization (XML 1.0 §2.11).
pub fn escape_text(s: &str, out: &mut String) {
    escape(s, out, |b| matches!(b, b'&' | b'<' | b'>' | b'\r'));
}

/// Escapes an attribute value for use between single or double quotes.
///
/// Besides `& < > ' "`, tab, line feed and carriage return are written as character
/// references, because attribute-value normalization (XML 1.0 §3.3.3) would turn literal ones
/// into spaces.
pub fn escape_attr(s: &str, out: &mut String) {
    escape(s, out, |b| {
        matches!(b, b'&' | b'<' | b'>' | b'\'' | b'"' | b'\t' | b'\n' | b'\r')
    });
}

fn escape(s: &str, out: &mut String, special: impl Fn(u8) -> bool) {
    let bytes = s.as_bytes();
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !special(b) {
            continue;
        }
        // Every special byte is ASCII, so `i` and `i + 1` are char boundaries.
        out.push_str(&s[last..i]);
        out.push_str(match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'\'' => "&apos;",
            b'"' => "&quot;",
            b'\t' => "&#x9;",
            b'\n' => "&#xA;",
            _ => "&#xD;",
        });
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{NS_CLIENT, NS_XML};

    #[test]
    fn test_size() {
        // Element sits in every stanza on the hot path: four Vec/String headers, nothing more.
        assert!(
            std::mem::size_of::<Element>() <= 96,
            "{}",
            std::mem::size_of::<Element>()
        );
        assert!(std::mem::size_of::<Node>() <= 96);
        assert!(std::mem::size_of::<Attr>() <= 72);
    }

    #[test]
    fn builders_and_accessors() {
        let mut e = Element::new("message", NS_CLIENT)
            .with_attr("to", "juliet@example.com")
            .with_attr("type", "chat")
            .with_attr("to", "romeo@example.net")
            .with_child(Element::new("body", NS_CLIENT).with_text("hi"))
            .with_text("a")
            .with_text("b");
        assert_eq!(e.attr("to"), Some("romeo@example.net"));
        assert_eq!(e.attrs.len(), 2, "with_attr replaces");
        assert!(e.is("message", NS_CLIENT));
        assert!(!e.is("message", "jabber:server"));
        assert_eq!(
            e.child("body", NS_CLIENT).map(|b| b.text()),
            Some("hi".into())
        );
        assert!(e.child("body", "urn:other").is_none());
        assert_eq!(e.text(), "ab");
        assert_eq!(e.children.len(), 2, "adjacent text is merged");
        e.child_mut("body", NS_CLIENT).unwrap().push_text("!");
        assert_eq!(e.child("body", NS_CLIENT).unwrap().text(), "hi!");
        assert_eq!(e.remove_attr("type"), Some("chat".into()));
        assert_eq!(e.remove_attr("type"), None);
        assert_eq!(e.lang(), None);
        e.attrs.push(Attr {
            ns: Some(NS_XML.into()),
            name: "lang".into(),
            value: "en".into(),
        });
        assert_eq!(e.lang(), Some("en"));
        assert_eq!(e.attr("lang"), None, "xml:lang is not the unprefixed lang");
        assert_eq!(e.child_elements().count(), 1);
    }

    #[test]
    fn writer_elides_inherited_default_namespace() {
        // RFC 6120 §9.1.4 / §4.8.3: stanzas on a jabber:client stream need no xmlns.
        let e = Element::new("iq", NS_CLIENT)
            .with_attr("type", "set")
            .with_attr("id", "tn281v37")
            .with_child(
                Element::new("bind", "urn:ietf:params:xml:ns:xmpp-bind").with_child(
                    Element::new("resource", "urn:ietf:params:xml:ns:xmpp-bind")
                        .with_text("balcony"),
                ),
            );
        assert_eq!(
            e.to_xml(NS_CLIENT),
            "<iq type='set' id='tn281v37'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>balcony</resource></bind></iq>"
        );
        assert_eq!(
            Element::new("iq", NS_CLIENT).to_xml(""),
            "<iq xmlns='jabber:client'/>",
            "differs from the scope: declared"
        );
        assert_eq!(
            Element::new("x", "").to_xml(NS_CLIENT),
            "<x xmlns=''/>",
            "no namespace inside a defaulted scope must undeclare it"
        );
    }

    #[test]
    fn writer_xml_lang_and_prefixed_attributes() {
        let mut e = Element::new("message", NS_CLIENT);
        e.attrs.push(Attr {
            ns: Some(NS_XML.into()),
            name: "lang".into(),
            value: "en".into(),
        });
        e.attrs.push(Attr {
            ns: Some("urn:a".into()),
            name: "x".into(),
            value: "1".into(),
        });
        e.attrs.push(Attr {
            ns: Some("urn:b".into()),
            name: "y".into(),
            value: "2".into(),
        });
        e.attrs.push(Attr {
            ns: Some("urn:a".into()),
            name: "z".into(),
            value: "3".into(),
        });
        assert_eq!(
            e.to_xml(NS_CLIENT),
            "<message xmlns:ns1='urn:a' xmlns:ns2='urn:b' xml:lang='en' ns1:x='1' ns2:y='2' ns1:z='3'/>"
        );
    }

    #[test]
    fn writer_escapes_text_and_attributes() {
        let e = Element::new("body", NS_CLIENT)
            .with_attr("a", "it's \"<&>\"\tx\ny")
            .with_text("a & b <c> ]]> \r ☺ '\"");
        assert_eq!(
            e.to_xml(NS_CLIENT),
            "<body a='it&apos;s &quot;&lt;&amp;&gt;&quot;&#x9;x&#xA;y'>\
             a &amp; b &lt;c&gt; ]]&gt; &#xD; ☺ '\"</body>"
        );
    }

    #[test]
    fn writer_skips_xmlns_pseudo_attribute() {
        let e = Element::new("query", "jabber:iq:roster").with_attr("xmlns", "urn:bogus");
        assert_eq!(e.to_xml(NS_CLIENT), "<query xmlns='jabber:iq:roster'/>");
    }

    #[test]
    fn escape_helpers() {
        let mut s = String::new();
        escape_text("plain", &mut s);
        escape_text("<&>", &mut s);
        assert_eq!(s, "plain&lt;&amp;&gt;");
        let mut s = String::new();
        escape_attr("'\"", &mut s);
        assert_eq!(s, "&apos;&quot;");
    }
}
