//! Modules and what they register.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use corvid_stanza::{IqType, Stanza, StanzaError};
use corvid_xml::{CompactString, Element};

use crate::{Event, Flow, Hook, Services};

/// A specification a module implements, for disco and the DOAP file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// `RFC 6120`, `XEP-0199`, …
    pub id: &'static str,
    /// The version implemented.
    pub version: &'static str,
    /// `complete` or `partial`.
    pub status: &'static str,
}

/// A disco identity (XEP-0030 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// e.g. `server`.
    pub category: String,
    /// e.g. `im`.
    pub kind: String,
    /// Human-readable name.
    pub name: String,
}

/// Who an IQ is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqTarget {
    /// The server's domain (RFC 6120 §10.3).
    Server,
    /// A local account's bare JID, answered by the server on its behalf (RFC 6121 §8.5.2.1.3),
    /// including a client's own account (an IQ without `to`, RFC 6120 §10.3.3).
    Account,
}

/// A handler's answer: a result payload (or an empty result), or a stanza error.
pub type IqOutcome = Result<Option<Element>, StanzaError>;

/// Answers IQs of one namespace.
#[async_trait]
pub trait IqHandler: Send + Sync {
    /// Handles a `get` or `set` IQ (its single payload child is `iq.iq_payload()`).
    async fn handle(&self, services: &Services, iq: &Stanza) -> IqOutcome;

    /// Like [`IqHandler::handle`], plus stanzas to route right after the answer, in order
    /// (e.g. XEP-0237: an empty roster result, then the changes as roster pushes). The default
    /// has none.
    async fn handle_then(&self, services: &Services, iq: &Stanza) -> (IqOutcome, Vec<Stanza>) {
        (self.handle(services, iq).await, Vec::new())
    }
}

/// A feature module. It sees the server only through what it registers and [`Services`].
pub trait Module: Send + Sync {
    /// A short stable name (`ping`, `disco`).
    fn name(&self) -> &'static str;
    /// The specifications it implements.
    fn specs(&self) -> &'static [Spec];
    /// Declares its IQ handlers, features, identities and hooks.
    fn register(self: Arc<Self>, r: &mut Registrar);
}

type IqKey = (IqTarget, bool, CompactString, CompactString);
/// Listeners of one event, by priority.
type HookTable = HashMap<&'static str, Vec<(i32, Arc<dyn Hook>)>>;

/// Collects registrations from modules; frozen into [`Modules`].
#[derive(Default)]
pub struct Registrar {
    iq: HashMap<IqKey, Arc<dyn IqHandler>>,
    features: Vec<String>,
    account_features: Vec<String>,
    identities: Vec<Identity>,
    hooks: HookTable,
    specs: Vec<(&'static str, Spec)>,
    stream_features: Vec<Element>,
}

impl Registrar {
    /// An empty registrar.
    pub fn new() -> Self {
        Self::default()
    }
    /// Serves `get` (or `set` if `set`) IQs whose payload is `<name xmlns=ns/>` sent to `target`.
    pub fn iq(&mut self, target: IqTarget, set: bool, name: &str, ns: &str, h: Arc<dyn IqHandler>) {
        self.iq.insert((target, set, name.into(), ns.into()), h);
    }
    /// Advertises a feature of the server in disco#info.
    pub fn feature(&mut self, var: &str) {
        if !self.features.iter().any(|f| f == var) {
            self.features.push(var.to_owned());
        }
    }
    /// Advertises a feature of every account (disco#info to a bare JID).
    pub fn account_feature(&mut self, var: &str) {
        if !self.account_features.iter().any(|f| f == var) {
            self.account_features.push(var.to_owned());
        }
    }
    /// Adds a disco identity of the server.
    pub fn identity(&mut self, category: &str, kind: &str, name: &str) {
        self.identities.push(Identity {
            category: category.into(),
            kind: kind.into(),
            name: name.into(),
        });
    }
    /// Advertises an element in `<stream:features/>` after authentication (e.g. XEP-0352's
    /// `<csi xmlns='urn:xmpp:csi:0'/>`).
    pub fn stream_feature(&mut self, element: Element) {
        self.stream_features.push(element);
    }
    /// Listens to the event named `event` (see [`Event::name`]); higher priority runs first.
    pub fn hook(&mut self, event: &'static str, priority: i32, h: Arc<dyn Hook>) {
        self.hooks.entry(event).or_default().push((priority, h));
    }
    /// Installs a module.
    pub fn install(&mut self, m: Arc<dyn Module>) {
        for s in m.specs() {
            self.specs.push((m.name(), *s));
        }
        m.register(self);
    }
    /// Freezes the tables.
    pub fn freeze(mut self) -> Modules {
        for list in self.hooks.values_mut() {
            list.sort_by_key(|h| std::cmp::Reverse(h.0));
        }
        self.features.sort();
        self.account_features.sort();
        Modules {
            iq: self.iq,
            features: self.features,
            account_features: self.account_features,
            identities: self.identities,
            hooks: self.hooks,
            specs: self.specs,
            stream_features: self.stream_features,
        }
    }
}

/// What all modules registered, read-only.
pub struct Modules {
    iq: HashMap<IqKey, Arc<dyn IqHandler>>,
    features: Vec<String>,
    account_features: Vec<String>,
    identities: Vec<Identity>,
    hooks: HookTable,
    specs: Vec<(&'static str, Spec)>,
    stream_features: Vec<Element>,
}

impl Modules {
    /// The handler for a get/set IQ sent to `target`, by its payload's name and namespace.
    pub fn iq_handler(
        &self,
        target: IqTarget,
        ty: IqType,
        payload: &Element,
    ) -> Option<&Arc<dyn IqHandler>> {
        let set = match ty {
            IqType::Set => true,
            IqType::Get => false,
            IqType::Result | IqType::Error => return None,
        };
        // The key's names are compact strings: short ones (most) are copied without allocating.
        self.iq
            .get(&(target, set, payload.name.clone(), payload.ns.clone()))
    }
    /// Server features, sorted.
    pub fn features(&self) -> &[String] {
        &self.features
    }
    /// Account features, sorted.
    pub fn account_features(&self) -> &[String] {
        &self.account_features
    }
    /// Server identities.
    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }
    /// Elements modules advertise in the post-authentication stream features.
    pub fn stream_features(&self) -> &[Element] {
        &self.stream_features
    }
    /// Every (module, spec) installed.
    pub fn specs(&self) -> &[(&'static str, Spec)] {
        &self.specs
    }
    /// Runs the event's hooks by priority until one stops it; each sees `services`.
    pub async fn run(&self, services: &Services, event: &mut Event<'_>) -> Flow {
        if let Some(list) = self.hooks.get(event.name()) {
            for (_, h) in list {
                if h.wants(event) && h.on_with(services, event).await == Flow::Stop {
                    return Flow::Stop;
                }
            }
        }
        Flow::Continue
    }
}
