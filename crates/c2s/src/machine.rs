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
            Input::Shutdown => self.stream_error(StreamError::new(StreamCondition::SystemShutdown), out),
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
        let domain = self.domain.as_ref().unwrap_or(&self.config.domains[0]).as_str().to_owned();
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
            None => Ok(self.domain.clone().unwrap_or_else(|| self.config.domains[0].clone())),
            Some(Ok(d)) if self.config.domains.contains(&d) => Ok(d),
            Some(_) => Err(()),
        };
        let domain = match domain {
            Ok(d) => d,
            Err(()) => return self.stream_error(StreamError::new(StreamCondition::HostUnknown), out),
        };
        if self.domain.as_ref().is_some_and(|d| *d != domain) {
            // A restart may not switch domains mid-negotiation.
            return self.stream_error(StreamError::new(StreamCondition::HostUnknown), out);
        }
        self.domain = Some(domain);
        // RFC 6120 §4.8.1 / §4.9.3.10: the content namespace must be jabber:client.
        if h.default_ns.as_deref() != Some(ns::CLIENT) {
            return self.stream_error(
                StreamError::new(StreamCondition::InvalidNamespace).with_text("the default namespace must be jabber:client"),
                out,
            );
        }
        // RFC 6120 §4.7.5: we speak version 1.0 only; an absent version means pre-1.0.
        let version_ok = h.attr("version").and_then(|v| v.split('.').next()).is_some_and(|major| major == "1");
        if !version_ok {
            return self.stream_error(StreamError::new(StreamCondition::UnsupportedVersion), out);
        }
        // The client's 'from' (RFC 6120 §4.7.1) must match who authenticated (§4.9.3.9).
        let from = h.attr("from").map(|f| f.parse::<Jid>());
        let from_text = match (&from, &self.authenticated) {
            (Some(Err(_)), _) => return self.stream_error(StreamError::new(StreamCondition::InvalidFrom), out),
            (Some(Ok(j)), Some(me)) if j.bare() != me => {
                return self.stream_error(StreamError::new(StreamCondition::InvalidFrom), out)
            }
            (Some(Ok(j)), _) => Some(j.to_string()),
            (None, _) => None,
        };
        let mut s = String::new();
        self.write_header(&mut s, from_text.as_deref());
        if self.authenticated.is_some() {
            features::post_auth(&mut s);
            self.state = State::AwaitBind;
        } else {
            let offer_starttls = !self.tls && self.config.tls_available;
            let required = offer_starttls && self.config.require_starttls;
            self.offered = if required { Vec::new() } else { features::mechanisms(self.tls, &self.cb, self.config.allow_plain) };
            features::pre_auth(&mut s, offer_starttls, required, &self.offered, &self.cb);
            self.state = if required { State::AwaitStartTls } else { State::AwaitAuth };
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
                        StreamError::new(StreamCondition::PolicyViolation).with_text("STARTTLS is required"),
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
            State::AwaitHeader => self.stream_error(StreamError::new(StreamCondition::NotWellFormed), out),
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
        let mut session = ServerSession::new(mechanism, self.cb.clone(), plus_offered, self.config.fake_iterations);
        let step = session.start(&initial);
        self.state = State::Sasl(Box::new(session));
        self.on_step(step, out);
    }

    fn on_step(&mut self, step: Result<Step, Failure>, out: &mut Vec<Action>) {
        match step {
            Ok(Step::NeedCredentials { username }) => {
                // The authcid is a localpart of this domain; a malformed one is looked up as
                // an account that cannot exist, so the exchange goes on identically (no enumeration).
                let domain = self.domain.clone().unwrap_or_else(|| self.config.domains[0].clone());
                match NodePart::new(&username) {
                    Ok(node) => out.push(Action::LookupCredentials(BareJid::from_parts(Some(node), domain))),
                    Err(_) => self.on_credentials(Ok(None), out),
                }
            }
            Ok(Step::Challenge(bytes)) => {
                out.push(Action::Send(format!("<challenge xmlns='{}'>{}</challenge>", ns::SASL, encode_payload(&bytes))));
            }
            Ok(Step::Success { username, authzid, additional }) => self.on_success(username, authzid, additional, out),
            Err(f) => {
                self.state = State::AwaitAuth;
                self.sasl_failure(f, out);
            }
        }
    }

    fn on_credentials(&mut self, creds: Result<Option<StoredCredentials>, String>, out: &mut Vec<Action>) {
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

    fn on_success(&mut self, username: String, authzid: Option<String>, additional: Vec<u8>, out: &mut Vec<Action>) {
        let domain = self.domain.clone().unwrap_or_else(|| self.config.domains[0].clone());
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
        let body = if additional.is_empty() { String::new() } else { B64.encode(&additional) };
        out.push(Action::Send(format!("<success xmlns='{}'>{}</success>", ns::SASL, body)));
        out.push(Action::Authenticated(me.clone()));
        out.push(Action::ResetParser);
        self.authenticated = Some(me);
        self.header_sent = false;
        self.state = State::AwaitHeader;
    }

    fn sasl_failure(&mut self, f: Failure, out: &mut Vec<Action>) {
        out.push(Action::Send(format!("<failure xmlns='{}'><{}/></failure>", ns::SASL, f.condition())));
        self.state = State::AwaitAuth;
        if f != Failure::TemporaryAuthFailure {
            self.auth_failures += 1;
        }
        // RFC 6120 §6.4.5: a configurable, reasonable number of retries.
        if self.auth_failures >= self.config.max_auth_attempts {
            self.stream_error(
                StreamError::new(StreamCondition::PolicyViolation).with_text("too many failed authentication attempts"),
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
                return self.stream_error(StreamError::new(StreamCondition::UnsupportedStanzaType), out)
            }
        };
        let bind = iq.element().child("bind", ns::BIND);
        let (Some(bind), Some(corvid_stanza::IqType::Set)) = (bind, iq.iq_type()) else {
            // RFC 6120 §7.1: nothing but binding before a resource is bound.
            return self.stream_error(StreamError::new(StreamCondition::NotAuthorized), out);
        };
        let requested = bind.child("resource", ns::BIND).map(|r| r.text()).filter(|t| !t.trim().is_empty());
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
                StanzaError::new(condition).to_element().write_to(&mut s, ns::CLIENT);
                s.push_str("</iq>");
                out.push(Action::Send(s));
            }
        }
    }

    fn on_stanza(&mut self, me: &FullJid, el: Element, out: &mut Vec<Action>) {
        let mut stanza = match Stanza::parse(el, ns::CLIENT) {
            Ok(s) => s,
            // RFC 6120 §4.9.3.24
            Err(ParseError::NotAStanza) => {
                return self.stream_error(StreamError::new(StreamCondition::UnsupportedStanzaType), out)
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

    fn send_error(&mut self, st: &Stanza, err: &StanzaError, me: Option<&FullJid>, out: &mut Vec<Action>) {
        if let Some(mut reply) = st.error_reply(err) {
            reply.set_to(me.map(|j| Jid::Full(j.clone())));
            out.push(Action::Send(reply.element().to_xml(ns::CLIENT)));
        }
    }
}

/// RFC 6120 §6.4.2: the payload is base64; an empty element means "no data" and `=` means an
/// empty response. Whitespace is tolerated.
fn decode_sasl_payload(el: &Element) -> Result<Vec<u8>, Failure> {
    let text: String = el.text().chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    B64.decode(text.as_bytes()).map_err(|_| Failure::IncorrectEncoding)
}

fn encode_payload(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "=".into()
    } else {
        B64.encode(bytes)
    }
}
