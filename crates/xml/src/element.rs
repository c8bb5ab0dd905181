//! The element tree and the writer.

/// An attribute. `ns` is `None` for unprefixed attributes (which have no namespace in XML),
/// and `Some(NS_XML)` for `xml:lang`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Namespace of a prefixed attribute.
    pub ns: Option<String>,
    /// Local name.
    pub name: String,
    /// Unescaped value.
    pub value: String,
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
    pub name: String,
    /// Resolved namespace URI ("" for none).
    pub ns: String,
    /// Attributes in document order.
    pub attrs: Vec<Attr>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// A new empty element.
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Self {
        todo!()
    }
    /// Builder: sets (or replaces) an unprefixed attribute.
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        todo!()
    }
    /// Builder: appends a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        todo!()
    }
    /// Builder: appends text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        todo!()
    }
    /// Value of an unprefixed attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        todo!()
    }
    /// Sets (or replaces) an unprefixed attribute.
    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        todo!()
    }
    /// Removes an unprefixed attribute, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        todo!()
    }
    /// `xml:lang`, if present.
    pub fn lang(&self) -> Option<&str> {
        todo!()
    }
    /// True if this element has that local name and namespace.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        todo!()
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
        todo!()
    }
    /// Mutable access to the first child element with this name and namespace.
    pub fn child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        todo!()
    }
    /// All direct text children concatenated.
    pub fn text(&self) -> String {
        todo!()
    }
    /// Appends a child element.
    pub fn push(&mut self, child: Element) {
        todo!()
    }
    /// Serializes into `out`. `parent_ns` is the default namespace in scope where this element is
    /// written (e.g. `jabber:client` for a stanza on a client stream): `xmlns` is emitted only
    /// when `self.ns` differs from it. Prefixed attributes get prefix declarations as needed
    /// (`xml:` never needs one). Text and attribute values are escaped.
    pub fn write_to(&self, out: &mut String, parent_ns: &str) {
        todo!()
    }
    /// Serializes as a document fragment whose default namespace is `parent_ns`.
    pub fn to_xml(&self, parent_ns: &str) -> String {
        let mut s = String::new();
        self.write_to(&mut s, parent_ns);
        s
    }
}

/// Escapes character data (`&`, `<`, `>`).
pub fn escape_text(s: &str, out: &mut String) {
    todo!()
}

/// Escapes an attribute value for use between single or double quotes.
pub fn escape_attr(s: &str, out: &mut String) {
    todo!()
}
