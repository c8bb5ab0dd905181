//! The connection state machine: negotiation (RFC 6120 §4–§7) and the bound session. No I/O.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use corvid_core::random_id;
use corvid_jid::{BareJid, DomainPart, FullJid, Jid, NodePart, ResourcePart};
use corvid_sasl::{ChannelBindings, Failure, Mechanism, ServerSession, Step, StoredCredentials};
use corvid_stanza::{ns, Condition, ParseError, Stanza, StanzaError, StreamCondition, StreamError};
use corvid_xml::{escape_attr, escape_text, Element, StreamEvent, StreamHeader, XmlError};

use crate::features;

/// What the machine needs to know about the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Domains served; the first is used when a client omits `to`.
    pub domains: Arc<[DomainPart]>,
    /// Whether TLS can be offered on this connection at all.
    pub tls_available: bool,
    /// STARTTLS is mandatory-to-negotiate (RFC 6120 §5.3.1).
    pub require_starttls: bool,
    /// Offer PLAIN (over TLS only).
    pub allow_plain: bool,
    /// Failed SASL attempts before the stream is closed (RFC 6120 §6.4.5).
    pub max_auth_attempts: u32,
    /// SCRAM iteration count shown for unknown users.
    pub fake_iterations: u32,
    /// Extra post-authentication stream features, serialized (from modules).
    pub extra_features: Arc<str>,
}

/// Everything that can happen to a connection.
#[derive(Debug)]
pub enum Input {
    /// The parser produced an event.
    Xml(StreamEvent),
    /// The parser failed.
    XmlError(XmlError),
    /// TLS is up (after STARTTLS, or from the start for direct TLS).
    TlsEstablished(ChannelBindings),
    /// The credential lookup asked for finished (`Err` = store unavailable).
    Credentials(Result<Option<StoredCredentials>, String>),
    /// The bind asked for finished.
    Bound(Result<(), BindFailure>),
    /// A negotiation step or an idle session timed out.
    Timeout,
    /// The server is shutting down.
    Shutdown,
    /// The peer closed the TCP connection.
    PeerGone,
}

/// Why a bind failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindFailure {
    /// Too many resources for this account.
    TooManyResources,
    /// The registry could not take the write.
    Unavailable,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes.
    Send(String),
    /// Flush, then run the TLS handshake; feed [`Input::TlsEstablished`] after it.
    StartTls,
    /// Stream restart: reset the parser (RFC 6120 §4.3.3).
    ResetParser,
    /// Look up credentials; feed [`Input::Credentials`].
    LookupCredentials(BareJid),
    /// The connection authenticated as this account (release unauthenticated-connection limits).
    Authenticated(BareJid),
    /// Bind this full JID in the session registry; feed [`Input::Bound`].
    Bind(FullJid),
    /// Route this stanza (its `from` is stamped).
    Route(Stanza),
    /// A top-level element that is not a stanza: offer it to modules (XEP-0352 and the like);
    /// if none takes it, call [`Machine::stream_error`] with `unsupported-stanza-type`.
    Nonza(Element),
    /// Close the connection after writing what is pending.
    Close,
}

/// Where the connection is.
#[derive(Debug)]
pub enum State {
    /// Waiting for a stream header (at start and after each restart).
    AwaitHeader,
    /// Only `<starttls/>` is acceptable.
    AwaitStartTls,
    /// Waiting for `<auth/>` (or `<starttls/>` if offered).
    AwaitAuth,
    /// A SASL exchange is under way.
    Sasl(Box<ServerSession>),
    /// Authenticated; waiting for the bind IQ.
    AwaitBind,
    /// A bind is being committed; the IQ id to answer.
    Binding(String, FullJid),
    /// A bound session exchanging stanzas.
    Bound(FullJid),
    /// We sent `</stream:stream>` and wait for the peer's.
    Closing,
    /// Done.
    Closed,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Machine {
    config: Config,
    state: State,
    tls: bool,
    cb: ChannelBindings,
    domain: Option<DomainPart>,
    authenticated: Option<BareJid>,
    header_sent: bool,
    auth_failures: u32,
    offered: Vec<Mechanism>,
    stream_id: String,
}

impl Machine {
    /// A new connection; `tls` is true for direct TLS (XEP-0368), then `cb` holds its
    /// channel-binding data.
    pub fn new(config: Config, tls: bool, cb: ChannelBindings) -> Self {
        Self {
            config,
            state: State::AwaitHeader,
            tls,
            cb,
            domain: None,
            authenticated: None,
            header_sent: false,
            auth_failures: 0,
            offered: Vec::new(),
            stream_id: String::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The bound full JID, once bound.
    pub fn jid(&self) -> Option<&FullJid> {
        match &self.state {
            State::Bound(j) | State::Binding(_, j) => Some(j),
            _ => None,
        }
    }

    /// True once bound (the idle timeout applies instead of the negotiation timeout).
    pub fn is_bound(&self) -> bool {
        matches!(self.state, State::Bound(_))
    }

    /// True when nothing more will be processed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Handles one input, appending actions to `out`.
    pub fn handle(&mut self, input: Input, out: &mut Vec<Action>) {
        if matches!(self.state, State::Closed) {
            return;
        }
        match input {
            Input::Xml(StreamEvent::Open(h)) => self.on_header(h, out),
            Input::Xml(StreamEvent::Element(e)) => self.on_element(e, out),
            Input::Xml(StreamEvent::Close) => {
                // RFC 6120 §4.4: answer the peer's close with ours, then end.
                if !matches!(self.state, State::Closing) {
                    out.push(Action::Send("</stream:stream>".into()));
                }
                self.state = State::Closed;
                out.push(Action::Close);
            }
            Input::XmlError(e) => self.stream_error(StreamError::from(&e), out),
            Input::TlsEstablished(cb) => {
                self.tls = true;
                self.cb = cb;
                self.header_sent = false;
                self.state = State::AwaitHeader;
            }
            Input::Credentials(r) => self.on_credentials(r, out),
            Input::Bound(r) => self.on_bound(r, out),
            Input::Timeout => {
                if matches!(self.state, State::Closing) {
                    self.state = State::Closed;
                    out.push(Action::Close);
                } else {
                    self.stream_error(StreamError::new(StreamCondition::ConnectionTimeout), out);
                }
            }
            Input::Shutdown => {
                self.stream_error(StreamError::new(StreamCondition::SystemShutdown), out)
            }
            Input::PeerGone => {
                self.state = State::Closed;
                out.push(Action::Close);
            }
        }
    }

    /// Sends a stream error and closes (RFC 6120 §4.9.1.1). If no header was sent on this
    /// stream yet, one is sent first (§4.9.1.2).
    pub fn stream_error(&mut self, err: StreamError, out: &mut Vec<Action>) {
        let mut s = String::new();
        if !self.header_sent {
            self.write_header(&mut s, None);
        }
        s.push_str("<stream:error>");
        for child in err.to_element().child_elements() {
            child.write_to(&mut s, ns::STREAM);
        }
        s.push_str("</stream:error></stream:stream>");
        out.push(Action::Send(s));
        self.state = State::Closed;
        out.push(Action::Close);
    }

    /// Closes the stream politely (RFC 6120 §4.4).
    pub fn close(&mut self, out: &mut Vec<Action>) {
        if matches!(self.state, State::Closing | State::Closed) {
            return;
        }
        out.push(Action::Send("</stream:stream>".into()));
        self.state = State::Closing;
    }

    fn write_header(&mut self, s: &mut String, to: Option<&str>) {
        self.stream_id = random_id(16);
        let domain = self
            .domain
            .as_ref()
            .unwrap_or(&self.config.domains[0])
            .as_str()
            .to_owned();
        s.push_str("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='");
        escape_attr(&self.stream_id, s);
        s.push_str("' from='");
        escape_attr(&domain, s);
        if let Some(to) = to {
            s.push_str("' to='");
            escape_attr(to, s);
        }
        s.push_str("' version='1.0' xml:lang='en'>");
        self.header_sent = true;
    }

    fn on_header(&mut self, h: StreamHeader, out: &mut Vec<Action>) {
        if !matches!(self.state, State::AwaitHeader) {
            return self.stream_error(StreamError::new(StreamCondition::NotWellFormed), out);
        }
        // RFC 6120 §4.7.2: 'to' names the domain; absent, the default domain is assumed.
        let domain = match h.attr("to").map(DomainPart::new) {
            None => Ok(self
                .domain
                .clone()
                .unwrap_or_else(|| self.config.domains[0].clone())),
            Some(Ok(d)) if self.config.domains.contains(&d) => Ok(d),
            Some(_) => Err(()),
        };
        let domain = match domain {
            Ok(d) => d,
            Err(()) => {
                return self.stream_error(StreamError::new(StreamCondition::HostUnknown), out)
            }
        };
        if self.domain.as_ref().is_some_and(|d| *d != domain) {
            // A restart may not switch domains mid-negotiation.
            return self.stream_error(StreamError::new(StreamCondition::HostUnknown), out);
        }
        self.domain = Some(domain);
        // RFC 6120 §4.8.1 / §4.9.3.10: the content namespace must be jabber:client.
        if h.default_ns.as_deref() != Some(ns::CLIENT) {
            return self.stream_error(
                StreamError::new(StreamCondition::InvalidNamespace)
                    .with_text("the default namespace must be jabber:client"),
                out,
            );
        }
        // RFC 6120 §4.7.5: we speak version 1.0 only; an absent version means pre-1.0.
        let version_ok = h
            .attr("version")
            .and_then(|v| v.split('.').next())
            .is_some_and(|major| major == "1");
        if !version_ok {
            return self.stream_error(StreamError::new(StreamCondition::UnsupportedVersion), out);
        }
        // The client's 'from' (RFC 6120 §4.7.1) must match who authenticated (§4.9.3.9).
        let from = h.attr("from").map(|f| f.parse::<Jid>());
        let from_text = match (&from, &self.authenticated) {
            (Some(Err(_)), _) => {
                return self.stream_error(StreamError::new(StreamCondition::InvalidFrom), out)
            }
            (Some(Ok(j)), Some(me)) if j.bare() != me => {
                return self.stream_error(StreamError::new(StreamCondition::InvalidFrom), out)
            }
            (Some(Ok(j)), _) => Some(j.to_string()),
            (None, _) => None,
        };
        let mut s = String::new();
        self.write_header(&mut s, from_text.as_deref());
        if self.authenticated.is_some() {
            features::post_auth(&mut s, &self.config.extra_features);
            self.state = State::AwaitBind;
        } else {
            let offer_starttls = !self.tls && self.config.tls_available;
            let required = offer_starttls && self.config.require_starttls;
            self.offered = if required {
                Vec::new()
            } else {
                features::mechanisms(self.tls, &self.cb, self.config.allow_plain)
            };
            features::pre_auth(&mut s, offer_starttls, required, &self.offered, &self.cb);
            self.state = if required {
                State::AwaitStartTls
            } else {
                State::AwaitAuth
            };
        }
        out.push(Action::Send(s));
    }

    fn on_element(&mut self, el: Element, out: &mut Vec<Action>) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::AwaitStartTls => {
                self.state = State::AwaitStartTls;
                if el.is("starttls", ns::TLS) {
                    self.proceed_tls(out);
                } else {
                    // RFC 6120 §5.3.1: TLS is mandatory-to-negotiate here.
                    self.stream_error(
                        StreamError::new(StreamCondition::PolicyViolation)
                            .with_text("STARTTLS is required"),
                        out,
                    );
                }
            }
            State::AwaitAuth => {
                self.state = State::AwaitAuth;
                if el.is("starttls", ns::TLS) && !self.tls && self.config.tls_available {
                    self.proceed_tls(out);
                } else if el.is("auth", ns::SASL) {
                    self.on_auth(el, out);
                } else if el.is("abort", ns::SASL) {
                    // RFC 6120 §6.4.5: nothing to abort, still a failure.
                    self.sasl_failure(Failure::Aborted, out);
                } else {
                    // RFC 6120 §6.4.? / §4.9.3.12: stanzas before authentication.
                    self.stream_error(StreamError::new(StreamCondition::NotAuthorized), out);
                }
            }
            State::Sasl(mut session) => {
                if el.is("response", ns::SASL) {
                    match decode_sasl_payload(&el) {
                        Ok(bytes) => {
                            let step = session.respond(&bytes);
                            self.state = State::Sasl(session);
                            self.on_step(step, out);
                        }
                        Err(f) => {
                            self.state = State::AwaitAuth;
                            self.sasl_failure(f, out);
                        }
                    }
                } else if el.is("abort", ns::SASL) {
                    // RFC 6120 §6.4.5
                    self.state = State::AwaitAuth;
                    self.sasl_failure(Failure::Aborted, out);
                } else if el.is("auth", ns::SASL) {
                    // A new <auth/> mid-exchange: the old one is abandoned.
                    self.state = State::AwaitAuth;
                    self.sasl_failure(Failure::Aborted, out);
                } else {
                    self.stream_error(StreamError::new(StreamCondition::NotAuthorized), out);
                }
            }
            State::AwaitBind => {
                self.state = State::AwaitBind;
                self.on_bind_request(el, out);
            }
            State::Binding(id, jid) => {
                // The client must wait for the bind result (RFC 6120 §7.1).
                self.state = State::Binding(id, jid);
                self.stream_error(StreamError::new(StreamCondition::NotAuthorized), out);
            }
            State::Bound(jid) => {
                self.state = State::Bound(jid.clone());
                self.on_stanza(&jid, el, out);
            }
            State::AwaitHeader => {
                self.stream_error(StreamError::new(StreamCondition::NotWellFormed), out)
            }
            State::Closing => self.state = State::Closing,
            State::Closed => {}
        }
    }

    fn proceed_tls(&mut self, out: &mut Vec<Action>) {
        out.push(Action::Send(format!("<proceed xmlns='{}'/>", ns::TLS)));
        out.push(Action::StartTls);
        self.state = State::AwaitHeader;
    }

    fn on_auth(&mut self, el: Element, out: &mut Vec<Action>) {
        let mechanism = el.attr("mechanism").and_then(Mechanism::from_name);
        let Some(mechanism) = mechanism.filter(|m| self.offered.contains(m)) else {
            // RFC 6120 §6.5.7 (PLAIN without TLS lands here too: it is never offered then).
            return self.sasl_failure(Failure::InvalidMechanism, out);
        };
        let initial = match decode_sasl_payload(&el) {
            Ok(b) => b,
            Err(f) => return self.sasl_failure(f, out),
        };
        let plus_offered = self.offered.iter().any(|m| m.is_plus());
        let mut session = ServerSession::new(
            mechanism,
            self.cb.clone(),
            plus_offered,
            self.config.fake_iterations,
        );
        let step = session.start(&initial);
        self.state = State::Sasl(Box::new(session));
        self.on_step(step, out);
    }

    fn on_step(&mut self, step: Result<Step, Failure>, out: &mut Vec<Action>) {
        match step {
            Ok(Step::NeedCredentials { username }) => {
                // The authcid is a localpart of this domain; a malformed one is looked up as
                // an account that cannot exist, so the exchange goes on identically (no enumeration).
                let domain = self
                    .domain
                    .clone()
                    .unwrap_or_else(|| self.config.domains[0].clone());
                match NodePart::new(&username) {
                    Ok(node) => out.push(Action::LookupCredentials(BareJid::from_parts(
                        Some(node),
                        domain,
                    ))),
                    Err(_) => self.on_credentials(Ok(None), out),
                }
            }
            Ok(Step::Challenge(bytes)) => {
                out.push(Action::Send(format!(
                    "<challenge xmlns='{}'>{}</challenge>",
                    ns::SASL,
                    encode_payload(&bytes)
                )));
            }
            Ok(Step::Success {
                username,
                authzid,
                additional,
            }) => self.on_success(username, authzid, additional, out),
            Err(f) => {
                self.state = State::AwaitAuth;
                self.sasl_failure(f, out);
            }
        }
    }

    fn on_credentials(
        &mut self,
        creds: Result<Option<StoredCredentials>, String>,
        out: &mut Vec<Action>,
    ) {
        let State::Sasl(session) = &mut self.state else {
            return;
        };
        match creds {
            Ok(c) => {
                let step = session.credentials(c.as_ref());
                self.on_step(step, out);
            }
            Err(_) => {
                // RFC 6120 §6.5.11: the store is down; the client may retry later.
                self.state = State::AwaitAuth;
                self.sasl_failure(Failure::TemporaryAuthFailure, out);
            }
        }
    }

    fn on_success(
        &mut self,
        username: String,
        authzid: Option<String>,
        additional: Vec<u8>,
        out: &mut Vec<Action>,
    ) {
        let domain = self
            .domain
            .clone()
            .unwrap_or_else(|| self.config.domains[0].clone());
        let Ok(node) = NodePart::new(&username) else {
            self.state = State::AwaitAuth;
            return self.sasl_failure(Failure::NotAuthorized, out);
        };
        let me = BareJid::from_parts(Some(node), domain);
        // RFC 6120 §6.3.8: an authzid other than the account itself is not allowed here.
        if let Some(a) = authzid {
            if a.parse::<BareJid>().ok().as_ref() != Some(&me) {
                self.state = State::AwaitAuth;
                return self.sasl_failure(Failure::InvalidAuthzid, out);
            }
        }
        let body = if additional.is_empty() {
            String::new()
        } else {
            B64.encode(&additional)
        };
        out.push(Action::Send(format!(
            "<success xmlns='{}'>{}</success>",
            ns::SASL,
            body
        )));
        out.push(Action::Authenticated(me.clone()));
        out.push(Action::ResetParser);
        self.authenticated = Some(me);
        self.header_sent = false;
        self.state = State::AwaitHeader;
    }

    fn sasl_failure(&mut self, f: Failure, out: &mut Vec<Action>) {
        out.push(Action::Send(format!(
            "<failure xmlns='{}'><{}/></failure>",
            ns::SASL,
            f.condition()
        )));
        self.state = State::AwaitAuth;
        if f != Failure::TemporaryAuthFailure {
            self.auth_failures += 1;
        }
        // RFC 6120 §6.4.5: a configurable, reasonable number of retries.
        if self.auth_failures >= self.config.max_auth_attempts {
            self.stream_error(
                StreamError::new(StreamCondition::PolicyViolation)
                    .with_text("too many failed authentication attempts"),
                out,
            );
        }
    }

    fn on_bind_request(&mut self, el: Element, out: &mut Vec<Action>) {
        let Some(me) = self.authenticated.clone() else {
            return self.stream_error(StreamError::new(StreamCondition::NotAuthorized), out);
        };
        let iq = match Stanza::parse(el, ns::CLIENT) {
            Ok(s) => s,
            Err(ParseError::Invalid(st, err)) => return self.send_error(&st, &err, None, out),
            Err(ParseError::NotAStanza) => {
                return self.stream_error(
                    StreamError::new(StreamCondition::UnsupportedStanzaType),
                    out,
                )
            }
        };
        let bind = iq.element().child("bind", ns::BIND);
        let (Some(bind), Some(corvid_stanza::IqType::Set)) = (bind, iq.iq_type()) else {
            // RFC 6120 §7.1: nothing but binding before a resource is bound.
            return self.stream_error(StreamError::new(StreamCondition::NotAuthorized), out);
        };
        let requested = bind
            .child("resource", ns::BIND)
            .map(|r| r.text())
            .filter(|t| !t.trim().is_empty());
        let resource = match requested {
            // RFC 6120 §7.6: the server generates one when the client does not ask.
            None => ResourcePart::new(&random_id(9)),
            Some(r) => ResourcePart::new(&r),
        };
        let Ok(resource) = resource else {
            // RFC 6120 §7.7.2.1: a resourcepart that is not valid is bad-request.
            let err = StanzaError::new(Condition::BadRequest).with_text("invalid resourcepart");
            return self.send_error(&iq, &err, None, out);
        };
        let jid = me.with_resource(resource);
        let id = iq.id().unwrap_or_default().to_owned();
        self.state = State::Binding(id, jid.clone());
        out.push(Action::Bind(jid));
    }

    fn on_bound(&mut self, r: Result<(), BindFailure>, out: &mut Vec<Action>) {
        let State::Binding(id, jid) = std::mem::replace(&mut self.state, State::AwaitBind) else {
            return;
        };
        match r {
            Ok(()) => {
                let mut s = String::from("<iq type='result' id='");
                escape_attr(&id, &mut s);
                s.push_str("'><bind xmlns='");
                s.push_str(ns::BIND);
                s.push_str("'><jid>");
                escape_text(&jid.to_string(), &mut s);
                s.push_str("</jid></bind></iq>");
                out.push(Action::Send(s));
                self.state = State::Bound(jid);
            }
            Err(f) => {
                let condition = match f {
                    // RFC 6120 §7.6.2.1
                    BindFailure::TooManyResources => Condition::ResourceConstraint,
                    BindFailure::Unavailable => Condition::InternalServerError,
                };
                let mut s = String::from("<iq type='error' id='");
                escape_attr(&id, &mut s);
                s.push_str("'>");
                StanzaError::new(condition)
                    .to_element()
                    .write_to(&mut s, ns::CLIENT);
                s.push_str("</iq>");
                out.push(Action::Send(s));
            }
        }
    }

    fn on_stanza(&mut self, me: &FullJid, el: Element, out: &mut Vec<Action>) {
        // Not a stanza: modules may take it (XEP-0352 `<active/>`); the driver ends the stream
        // with unsupported-stanza-type (RFC 6120 §4.9.3.24) if none does.
        let is_stanza =
            el.ns == ns::CLIENT && matches!(el.name.as_str(), "message" | "presence" | "iq");
        if !is_stanza {
            out.push(Action::Nonza(el));
            return;
        }
        let mut stanza = match Stanza::parse(el, ns::CLIENT) {
            Ok(s) => s,
            // RFC 6120 §4.9.3.24
            Err(ParseError::NotAStanza) => {
                return self.stream_error(
                    StreamError::new(StreamCondition::UnsupportedStanzaType),
                    out,
                )
            }
            // A bad stanza is a stanza error; the stream stays up (RFC 6120 §8.3).
            Err(ParseError::Invalid(st, err)) => return self.send_error(&st, &err, Some(me), out),
        };
        // RFC 6120 §8.1.2.1: 'from' is stamped; a client claiming another address is
        // an invalid-from stream error.
        if let Some(from) = stanza.from() {
            let ok = match from {
                Jid::Full(f) => f == me,
                Jid::Bare(b) => b == me.bare(),
            };
            if !ok {
                return self.stream_error(StreamError::new(StreamCondition::InvalidFrom), out);
            }
        }
        stanza.set_from(Jid::Full(me.clone()));
        out.push(Action::Route(stanza));
    }

    fn send_error(
        &mut self,
        st: &Stanza,
        err: &StanzaError,
        me: Option<&FullJid>,
        out: &mut Vec<Action>,
    ) {
        if let Some(mut reply) = st.error_reply(err) {
            reply.set_to(me.map(|j| Jid::Full(j.clone())));
            out.push(Action::Send(reply.element().to_xml(ns::CLIENT)));
        }
    }
}

/// RFC 6120 §6.4.2: the payload is base64; an empty element means "no data" and `=` means an
/// empty response. Whitespace is tolerated.
fn decode_sasl_payload(el: &Element) -> Result<Vec<u8>, Failure> {
    let text: String = el
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    B64.decode(text.as_bytes())
        .map_err(|_| Failure::IncorrectEncoding)
}

fn encode_payload(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "=".into()
    } else {
        B64.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use corvid_xml::{Limits, Parser};

    use super::*;

    fn config() -> Config {
        Config {
            domains: vec![DomainPart::new("localhost").unwrap()].into(),
            tls_available: true,
            require_starttls: true,
            allow_plain: true,
            max_auth_attempts: 2,
            fake_iterations: 4096,
            extra_features: "".into(),
        }
    }

    /// Feeds `xml` through a real parser into the machine, collecting actions.
    struct Harness {
        m: Machine,
        p: Parser,
    }

    impl Harness {
        fn new(config: Config) -> Self {
            Self {
                m: Machine::new(config, false, ChannelBindings::default()),
                p: Parser::new(Limits::default()),
            }
        }
        fn feed(&mut self, xml: &str) -> Vec<Action> {
            self.p.feed(xml.as_bytes());
            let mut out = Vec::new();
            loop {
                match self.p.next_event() {
                    Ok(Some(ev)) => self.m.handle(Input::Xml(ev), &mut out),
                    Ok(None) => break,
                    Err(e) => {
                        self.m.handle(Input::XmlError(e), &mut out);
                        break;
                    }
                }
                if out.iter().any(|a| matches!(a, Action::ResetParser)) {
                    self.p.reset();
                }
            }
            out
        }
        fn input(&mut self, i: Input) -> Vec<Action> {
            let mut out = Vec::new();
            self.m.handle(i, &mut out);
            if out.contains(&Action::ResetParser) {
                self.p.reset();
            }
            out
        }
        fn open(&mut self) -> Vec<Action> {
            self.feed(HEADER)
        }
        /// Drives the machine to a bound session as juliet@localhost/balcony, via PLAIN.
        fn bound(config: Config) -> Self {
            let mut h = Self::new(config);
            h.open();
            h.feed("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
            h.p = Parser::new(Limits::default());
            h.input(Input::TlsEstablished(ChannelBindings::default()));
            h.open();
            let a = h.feed(&plain_auth("juliet", "r0m30myr0m30"));
            assert!(matches!(&a[..], [Action::LookupCredentials(_)]), "{a:?}");
            let a = h.input(Input::Credentials(Ok(Some(creds()))));
            assert!(sent(&a).contains("<success"), "{a:?}");
            h.open();
            let a = h.feed("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind></iq>");
            assert_eq!(
                a,
                vec![Action::Bind("juliet@localhost/balcony".parse().unwrap())]
            );
            let a = h.input(Input::Bound(Ok(())));
            assert!(
                sent(&a).contains("<jid>juliet@localhost/balcony</jid>"),
                "{a:?}"
            );
            h
        }
    }

    const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

    fn creds() -> StoredCredentials {
        let k = |h| {
            corvid_sasl::ScramKeys::derive(h, "r0m30myr0m30", b"saltsaltsaltsalt", 4096).unwrap()
        };
        StoredCredentials {
            sha1: k(corvid_sasl::ScramHash::Sha1),
            sha256: k(corvid_sasl::ScramHash::Sha256),
        }
    }

    fn plain_auth(user: &str, pass: &str) -> String {
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
            B64.encode(format!("\0{user}\0{pass}"))
        )
    }

    fn sent(actions: &[Action]) -> String {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    fn closes_with(actions: &[Action], condition: &str) {
        let s = sent(actions);
        assert!(s.contains("<stream:error>"), "no stream error in {s}");
        assert!(
            s.contains(&format!(
                "<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            )),
            "expected {condition}: {s}"
        );
        assert!(s.ends_with("</stream:stream>"), "{s}");
        assert_eq!(actions.last(), Some(&Action::Close));
    }

    #[test]
    fn first_features_offer_only_required_starttls() {
        // RFC 6120 §5.3.1, §9.1.1 step 3
        let mut h = Harness::new(config());
        let s = sent(&h.open());
        assert!(
            s.starts_with("<?xml version='1.0'?><stream:stream xmlns='jabber:client'"),
            "{s}"
        );
        assert!(
            s.contains("from='localhost'")
                && s.contains("version='1.0'")
                && s.contains("xml:lang='en'")
        );
        assert!(
            s.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>")
        );
        assert!(!s.contains("mechanisms"));
    }

    #[test]
    fn stream_ids_differ_per_stream() {
        // RFC 6120 §4.7.3: unique per stream.
        let id = |s: String| {
            s.split("id='")
                .nth(1)
                .unwrap()
                .split('\'')
                .next()
                .unwrap()
                .to_owned()
        };
        let a = id(sent(&Harness::new(config()).open()));
        let b = id(sent(&Harness::new(config()).open()));
        assert_ne!(a, b);
        assert!(a.len() >= 16);
    }

    #[test]
    fn starttls_gets_proceed_then_tls_then_a_new_stream_with_mechanisms() {
        // RFC 6120 §9.1.1 steps 4-8
        let mut h = Harness::new(config());
        h.open();
        let a = h.feed("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        assert_eq!(
            sent(&a),
            "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        );
        assert_eq!(a.last(), Some(&Action::StartTls));
        h.p = Parser::new(Limits::default());
        let cb = ChannelBindings {
            tls_exporter: Some(vec![7; 32]),
            tls_server_end_point: Some(vec![9; 32]),
        };
        h.input(Input::TlsEstablished(cb));
        let s = sent(&h.open());
        for m in [
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256",
            "SCRAM-SHA-1",
            "PLAIN",
        ] {
            assert!(
                s.contains(&format!("<mechanism>{m}</mechanism>")),
                "{m} missing: {s}"
            );
        }
        // XEP-0440
        assert!(
            s.contains("<channel-binding type='tls-exporter'/>")
                && s.contains("<channel-binding type='tls-server-end-point'/>")
        );
        assert!(
            !s.contains("starttls"),
            "STARTTLS must not be offered twice"
        );
    }

    #[test]
    fn anything_but_starttls_when_it_is_required_is_a_policy_violation() {
        // RFC 6120 §5.3.1
        let mut h = Harness::new(config());
        h.open();
        closes_with(&h.feed(&plain_auth("juliet", "x")), "policy-violation");
    }

    #[test]
    fn plain_is_not_offered_or_accepted_without_tls() {
        // RFC 6120 §13.8: PLAIN only over TLS.
        let mut h = Harness::new(Config {
            require_starttls: false,
            ..config()
        });
        let s = sent(&h.open());
        assert!(
            s.contains("<mechanism>SCRAM-SHA-1</mechanism>") && !s.contains("PLAIN"),
            "{s}"
        );
        assert!(
            s.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            "optional STARTTLS: {s}"
        );
        let a = h.feed(&plain_auth("juliet", "r0m30myr0m30"));
        assert!(sent(&a).contains("<invalid-mechanism/>"), "{a:?}");
    }

    #[test]
    fn unknown_host_wrong_namespace_and_old_version_are_stream_errors() {
        // RFC 6120 §4.9.3.6 host-unknown, §4.9.3.10 invalid-namespace, §4.9.3.25 unsupported-version;
        // §4.9.1.2: the header is sent before the error.
        let mut h = Harness::new(config());
        let a = h.feed(&HEADER.replace("to='localhost'", "to='example.org'"));
        assert!(sent(&a).starts_with("<?xml version='1.0'?><stream:stream"));
        closes_with(&a, "host-unknown");
        closes_with(
            &Harness::new(config())
                .feed(&HEADER.replace("xmlns='jabber:client'", "xmlns='jabber:server'")),
            "invalid-namespace",
        );
        closes_with(
            &Harness::new(config())
                .feed(&HEADER.replace("to='localhost' version='1.0'", "to='localhost'")),
            "unsupported-version",
        );
    }

    #[test]
    fn bad_base64_is_incorrect_encoding_and_failures_are_limited() {
        // RFC 6120 §6.5.3, §6.4.5
        let mut h = Harness::new(Config {
            require_starttls: false,
            ..config()
        });
        h.open();
        let a = h.feed("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>!!!notbase64</auth>");
        assert_eq!(
            sent(&a),
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><incorrect-encoding/></failure>"
        );
        let a = h.feed("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-UNKNOWN'/>");
        assert!(sent(&a).contains("<invalid-mechanism/>"));
        closes_with(&a, "policy-violation");
    }

    #[test]
    fn wrong_password_fails_and_the_client_may_retry() {
        // RFC 6120 §6.4.5, §6.5.10
        let mut h = Harness::new(Config {
            require_starttls: false,
            ..config()
        });
        h.open();
        h.feed("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        h.p = Parser::new(Limits::default());
        h.input(Input::TlsEstablished(ChannelBindings::default()));
        h.open();
        h.feed(&plain_auth("juliet", "wrong"));
        let a = h.input(Input::Credentials(Ok(Some(creds()))));
        assert_eq!(
            sent(&a),
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
        );
        h.feed(&plain_auth("juliet", "r0m30myr0m30"));
        let a = h.input(Input::Credentials(Ok(Some(creds()))));
        assert!(sent(&a).starts_with("<success"));
        assert!(a.contains(&Action::Authenticated("juliet@localhost".parse().unwrap())));
    }

    #[test]
    fn store_outage_is_temporary_auth_failure() {
        // RFC 6120 §6.5.11
        let mut h = Harness::new(Config {
            require_starttls: false,
            ..config()
        });
        h.open();
        h.feed("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        h.p = Parser::new(Limits::default());
        h.input(Input::TlsEstablished(ChannelBindings::default()));
        h.open();
        h.feed(&plain_auth("juliet", "r0m30myr0m30"));
        let a = h.input(Input::Credentials(Err("down".into())));
        assert!(sent(&a).contains("<temporary-auth-failure/>"));
    }

    #[test]
    fn after_authentication_bind_and_optional_session_are_offered() {
        // RFC 6120 §7.2; draft-cridland-xmpp-session
        let h = Harness::bound(config());
        assert!(h.m.is_bound());
    }

    #[test]
    fn stanzas_get_from_stamped() {
        // RFC 6120 §8.1.2.1
        let mut h = Harness::bound(config());
        let a =
            h.feed("<message to='romeo@localhost' type='chat' id='m1'><body>hi</body></message>");
        let [Action::Route(st)] = &a[..] else {
            panic!("{a:?}")
        };
        assert_eq!(st.element().attr("from"), Some("juliet@localhost/balcony"));
    }

    #[test]
    fn a_foreign_from_is_invalid_from() {
        // RFC 6120 §8.1.2.1, §4.9.3.9
        let mut h = Harness::bound(config());
        closes_with(
            &h.feed("<message from='romeo@localhost/x' to='romeo@localhost'/>"),
            "invalid-from",
        );
    }

    #[test]
    fn a_bare_own_from_is_accepted() {
        let mut h = Harness::bound(config());
        let a = h.feed("<message from='juliet@localhost' to='romeo@localhost'/>");
        assert!(matches!(&a[..], [Action::Route(_)]));
    }

    #[test]
    fn a_bad_stanza_is_a_stanza_error_and_the_stream_stays() {
        // RFC 6120 §8.2.3 (iq needs an id), §8.3
        let mut h = Harness::bound(config());
        let a = h.feed("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>");
        let s = sent(&a);
        assert!(
            s.contains("type='error'")
                && s.contains("<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
            "{s}"
        );
        assert!(!a.contains(&Action::Close));
        assert!(h.m.is_bound());
    }

    #[test]
    fn unknown_top_level_elements_are_offered_to_modules_as_nonzas() {
        // RFC 6120 §4.9.3.24: the driver answers unsupported-stanza-type unless a module takes
        // the element (Action::Nonza); the machine hands it over untouched.
        let mut h = Harness::bound(config());
        let a = h.feed("<foo xmlns='urn:example'/>");
        assert_eq!(a, vec![Action::Nonza(Element::new("foo", "urn:example"))]);
        assert!(h.m.is_bound());
    }

    #[test]
    fn stanzas_before_authentication_are_not_authorized() {
        // RFC 6120 §4.9.3.12
        let mut h = Harness::new(Config {
            require_starttls: false,
            ..config()
        });
        h.open();
        closes_with(&h.feed("<message to='romeo@localhost'/>"), "not-authorized");
    }

    #[test]
    fn bind_conflict_failure_and_invalid_resource() {
        // RFC 6120 §7.6.2.1 resource-constraint, §7.7.2.1 bad-request
        let mut h = Harness::new(config());
        h.open();
        h.feed("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        h.p = Parser::new(Limits::default());
        h.input(Input::TlsEstablished(ChannelBindings::default()));
        h.open();
        h.feed(&plain_auth("juliet", "r0m30myr0m30"));
        h.input(Input::Credentials(Ok(Some(creds()))));
        h.open();
        let a = h.feed("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>a\u{378}b</resource></bind></iq>");
        assert!(sent(&a).contains("<bad-request"), "{a:?}");
        let a =
            h.feed("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
        let Some(Action::Bind(jid)) = a.first() else {
            panic!("{a:?}")
        };
        assert!(
            !jid.resource().as_str().is_empty(),
            "server-generated resource"
        );
        let a = h.input(Input::Bound(Err(BindFailure::TooManyResources)));
        assert!(sent(&a).contains("<resource-constraint"), "{a:?}");
    }

    #[test]
    fn timeouts_and_shutdown_are_stream_errors() {
        // RFC 6120 §4.9.3.4 connection-timeout, §4.9.3.20 system-shutdown
        let mut h = Harness::new(config());
        h.open();
        closes_with(&h.input(Input::Timeout), "connection-timeout");
        let mut h = Harness::bound(config());
        closes_with(&h.input(Input::Shutdown), "system-shutdown");
    }

    #[test]
    fn the_peers_close_is_answered_with_ours() {
        // RFC 6120 §4.4
        let mut h = Harness::bound(config());
        let a = h.feed("</stream:stream>");
        assert_eq!(
            a,
            vec![Action::Send("</stream:stream>".into()), Action::Close]
        );
    }
}
