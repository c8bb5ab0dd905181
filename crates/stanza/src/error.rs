//! Stanza errors (RFC 6120 §8.3) and stream errors (RFC 6120 §4.9).

use corvid_xml::{Attr, Element};

use crate::ns;

/// The `type` of a stanza error (RFC 6120 §8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry.
    Cancel,
    /// Proceed; the condition was only a warning.
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting.
    Wait,
}

impl ErrorType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

/// Defined stanza error conditions (RFC 6120 §8.3.3), each with its usual type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the names are the RFC's
pub enum Condition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    Gone,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    Redirect,
    RegistrationRequired,
    RemoteServerNotFound,
    RemoteServerTimeout,
    ResourceConstraint,
    ServiceUnavailable,
    SubscriptionRequired,
    UndefinedCondition,
    UnexpectedRequest,
}

impl Condition {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        use Condition::*;
        match self {
            BadRequest => "bad-request",
            Conflict => "conflict",
            FeatureNotImplemented => "feature-not-implemented",
            Forbidden => "forbidden",
            Gone => "gone",
            InternalServerError => "internal-server-error",
            ItemNotFound => "item-not-found",
            JidMalformed => "jid-malformed",
            NotAcceptable => "not-acceptable",
            NotAllowed => "not-allowed",
            NotAuthorized => "not-authorized",
            PolicyViolation => "policy-violation",
            RecipientUnavailable => "recipient-unavailable",
            Redirect => "redirect",
            RegistrationRequired => "registration-required",
            RemoteServerNotFound => "remote-server-not-found",
            RemoteServerTimeout => "remote-server-timeout",
            ResourceConstraint => "resource-constraint",
            ServiceUnavailable => "service-unavailable",
            SubscriptionRequired => "subscription-required",
            UndefinedCondition => "undefined-condition",
            UnexpectedRequest => "unexpected-request",
        }
    }

    /// The type RFC 6120 §8.3.3 shows for this condition.
    pub fn default_type(self) -> ErrorType {
        use Condition::*;
        match self {
            BadRequest | JidMalformed | NotAcceptable | PolicyViolation | Redirect => {
                ErrorType::Modify
            }
            Forbidden | NotAuthorized | RegistrationRequired | SubscriptionRequired => {
                ErrorType::Auth
            }
            InternalServerError | RecipientUnavailable | RemoteServerTimeout
            | ResourceConstraint => ErrorType::Wait,
            Conflict
            | FeatureNotImplemented
            | Gone
            | ItemNotFound
            | NotAllowed
            | RemoteServerNotFound
            | ServiceUnavailable
            | UndefinedCondition
            | UnexpectedRequest => ErrorType::Cancel,
        }
    }
}

/// A stanza error: an `<error/>` child of a stanza of type `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    /// The error type.
    pub ty: ErrorType,
    /// The defined condition.
    pub condition: Condition,
    /// Human-readable text (English), if any.
    pub text: Option<String>,
    /// The entity that generated the error (RFC 6120 §8.3.2 `by`).
    pub by: Option<String>,
}

impl StanzaError {
    /// An error with the condition's usual type.
    pub fn new(condition: Condition) -> Self {
        Self {
            ty: condition.default_type(),
            condition,
            text: None,
            by: None,
        }
    }
    /// With explanatory text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    /// With the `by` attribute.
    pub fn with_by(mut self, by: impl Into<String>) -> Self {
        self.by = Some(by.into());
        self
    }
    /// The `<error/>` element (in `jabber:client`).
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("error", ns::CLIENT).with_attr("type", self.ty.as_str());
        if let Some(by) = &self.by {
            e.set_attr("by", by.clone());
        }
        e.push(Element::new(self.condition.as_str(), ns::STANZAS));
        if let Some(t) = &self.text {
            let mut text = Element::new("text", ns::STANZAS).with_text(t.clone());
            text.attrs.push(Attr {
                ns: Some(corvid_xml::NS_XML.into()),
                name: "lang".into(),
                value: "en".into(),
            });
            e.push(text);
        }
        e
    }
}

/// Stream error conditions (RFC 6120 §4.9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the names are the RFC's
pub enum StreamCondition {
    BadFormat,
    BadNamespacePrefix,
    Conflict,
    ConnectionTimeout,
    HostGone,
    HostUnknown,
    ImproperAddressing,
    InternalServerError,
    InvalidFrom,
    InvalidNamespace,
    InvalidXml,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    RemoteConnectionFailed,
    Reset,
    ResourceConstraint,
    RestrictedXml,
    SeeOtherHost,
    SystemShutdown,
    UndefinedCondition,
    UnsupportedEncoding,
    UnsupportedFeature,
    UnsupportedStanzaType,
    UnsupportedVersion,
}

impl StreamCondition {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        use StreamCondition::*;
        match self {
            BadFormat => "bad-format",
            BadNamespacePrefix => "bad-namespace-prefix",
            Conflict => "conflict",
            ConnectionTimeout => "connection-timeout",
            HostGone => "host-gone",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            InvalidXml => "invalid-xml",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            RemoteConnectionFailed => "remote-connection-failed",
            Reset => "reset",
            ResourceConstraint => "resource-constraint",
            RestrictedXml => "restricted-xml",
            SeeOtherHost => "see-other-host",
            SystemShutdown => "system-shutdown",
            UndefinedCondition => "undefined-condition",
            UnsupportedEncoding => "unsupported-encoding",
            UnsupportedFeature => "unsupported-feature",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
    }
}

/// A stream error: sent as `<stream:error/>`, after which the stream is closed (RFC 6120 §4.9.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// The condition.
    pub condition: StreamCondition,
    /// Human-readable text (English), if any.
    pub text: Option<String>,
    /// Character data of the condition element itself: only `see-other-host` has any, the host
    /// to reconnect to (RFC 6120 §4.9.3.19).
    pub content: Option<String>,
}

impl StreamError {
    /// An error without text.
    pub fn new(condition: StreamCondition) -> Self {
        Self {
            condition,
            text: None,
            content: None,
        }
    }
    /// `see-other-host` naming where to reconnect (RFC 6120 §4.9.3.19): a domain name, an IPv4
    /// address, or an IPv6 address in square brackets, each optionally with `:port`.
    pub fn see_other_host(host: impl Into<String>) -> Self {
        Self {
            condition: StreamCondition::SeeOtherHost,
            text: None,
            content: Some(host.into()),
        }
    }
    /// With explanatory text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    /// The `<stream:error/>` element.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("error", ns::STREAM);
        let mut condition = Element::new(self.condition.as_str(), ns::STREAMS);
        if let Some(content) = &self.content {
            condition = condition.with_text(content.clone());
        }
        e.push(condition);
        if let Some(t) = &self.text {
            let mut text = Element::new("text", ns::STREAMS).with_text(t.clone());
            text.attrs.push(Attr {
                ns: Some(corvid_xml::NS_XML.into()),
                name: "lang".into(),
                value: "en".into(),
            });
            e.push(text);
        }
        e
    }
}

impl From<&corvid_xml::XmlError> for StreamError {
    fn from(e: &corvid_xml::XmlError) -> Self {
        use corvid_xml::XmlError::*;
        let condition = match e {
            NotWellFormed(_) => StreamCondition::NotWellFormed,
            RestrictedXml(_) => StreamCondition::RestrictedXml,
            InvalidNamespace(_) => StreamCondition::InvalidNamespace,
            PolicyViolation(_) => StreamCondition::PolicyViolation,
            UnsupportedEncoding(_) => StreamCondition::UnsupportedEncoding,
        };
        StreamError::new(condition).with_text(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_error_element_has_type_condition_and_text() {
        // RFC 6120 §8.3.2: <error type='…'><condition xmlns='…stanzas'/><text xml:lang=…/></error>
        let e = StanzaError::new(Condition::ServiceUnavailable)
            .with_text("nobody here")
            .to_element();
        assert_eq!(e.attr("type"), Some("cancel"));
        assert!(e.child("service-unavailable", ns::STANZAS).is_some());
        assert_eq!(
            e.child("text", ns::STANZAS).map(|t| t.text()),
            Some("nobody here".to_string())
        );
    }

    #[test]
    fn stream_error_is_in_stream_namespace_with_condition() {
        // RFC 6120 §4.9.2
        let e = StreamError::new(StreamCondition::HostUnknown).to_element();
        assert!(e.is("error", ns::STREAM));
        assert!(e.child("host-unknown", ns::STREAMS).is_some());
    }

    #[test]
    fn see_other_host_carries_the_host_as_the_condition_text() {
        // RFC 6120 §4.9.3.19: <see-other-host xmlns='…streams'>[2001:db8::9]:5222</see-other-host>
        let e = StreamError::see_other_host("[2001:db8::9]:5222").to_element();
        let condition = e.child("see-other-host", ns::STREAMS).unwrap();
        assert_eq!(condition.text(), "[2001:db8::9]:5222");
        // Other conditions stay empty elements.
        let e = StreamError::new(StreamCondition::SystemShutdown).to_element();
        assert_eq!(e.child("system-shutdown", ns::STREAMS).unwrap().text(), "");
    }

    #[test]
    fn default_types_follow_rfc_6120_section_8_3_3() {
        assert_eq!(Condition::BadRequest.default_type(), ErrorType::Modify);
        assert_eq!(
            Condition::ServiceUnavailable.default_type(),
            ErrorType::Cancel
        );
        assert_eq!(Condition::NotAuthorized.default_type(), ErrorType::Auth);
        assert_eq!(
            Condition::ResourceConstraint.default_type(),
            ErrorType::Wait
        );
    }
}
