//! Roster storage: the items, the roster version, and the stored subscription requests.
//!
//! Three stores, each opened by name (STYLE habit 10):
//! - map `roster`: key = the contact's bare JID, value = a versioned JSON [`RosterItem`]. Only
//!   items the user has (added, or created by a subscription the user made or approved) live
//!   here: RFC 6121 §3.1.3 forbids adding an item for someone who merely asked.
//! - kv `roster_version`: the XEP-0237 version counter, with a random epoch so that a client's
//!   cached version never matches a roster of a deleted and re-created account.
//! - map `roster_pending`: key = the contact's bare JID, value = the complete inbound
//!   `subscribe` stanza the user has not answered yet (RFC 6121 §3.1.3 rule 4), redelivered at
//!   every new available resource.
//!
//! [`load_item`] and [`load_roster`] are the read API other modules use for authorization.

use corvid_core::Services;
use corvid_jid::BareJid;
use corvid_storage::StoreError;
use corvid_xml::{Element, Limits, Parser, StreamEvent};
use serde::{Deserialize, Serialize};

use super::subscription::{SubState, Subscription};

/// The map store of roster items.
pub const ROSTER_MAP: &str = "roster";
/// The key-value store of roster versions.
pub const VERSION_KV: &str = "roster_version";
/// The map store of unanswered inbound subscription requests.
pub const PENDING_MAP: &str = "roster_pending";
/// Map store: contact bare JID → the roster version (counter) of its last change, for
/// XEP-0237 diffs. Entries outlive removed items (tombstones) until pruned.
pub const CHANGES_MAP: &str = "roster_changes";
/// Archive store whose ids are the roster versions (see `latest_counter`).
pub const VERSION_LOG: &str = "roster_versions";
/// Entries kept in [`CHANGES_MAP`] before the oldest are pruned (clients older than the
/// pruned range get the full roster).
const CHANGES_KEPT: usize = 2000;

/// The format version written in every stored document.
const FORMAT: u32 = 1;

/// One roster item (RFC 6121 §2.1.2): a contact, the user's handle and groups for it, and the
/// subscription state between the two (Appendix A).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID, normalized (the map key).
    pub jid: String,
    /// The user's handle for the contact (§2.1.2.4); `None` when empty or absent.
    pub name: Option<String>,
    /// The groups (§2.1.2.6), without duplicates, in the order the client gave them.
    pub groups: Vec<String>,
    /// The subscription state, including "pending in" and the pre-approval.
    pub state: SubState,
}

impl RosterItem {
    /// A new item without name or groups, in state "None".
    pub fn new(contact: &BareJid) -> Self {
        Self {
            jid: contact.to_string(),
            name: None,
            groups: Vec::new(),
            state: SubState::NONE,
        }
    }

    /// The roster `subscription` attribute: whether presence flows to (`to`), from (`from`),
    /// both ways or not at all. `from`/`both` is what authorizes the contact to see the
    /// user's presence.
    pub fn subscription(&self) -> Subscription {
        self.state.subscription
    }
}

/// The stored form of an item: plain fields, so the format does not follow the Rust types.
#[derive(Debug, Serialize, Deserialize)]
struct StoredItem {
    v: u32,
    jid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    subscription: String,
    #[serde(default)]
    pending_out: bool,
    #[serde(default)]
    pending_in: bool,
    #[serde(default)]
    pre_approved: bool,
}

/// The stored roster version.
#[derive(Debug, Serialize, Deserialize)]
struct StoredVersion {
    v: u32,
    epoch: String,
    /// Unused since version counters moved to the [`VERSION_LOG`] archive; kept so older
    /// documents still parse.
    #[serde(default)]
    n: u64,
    /// Changes up to this counter were pruned from [`CHANGES_MAP`]: a client with an older
    /// version cannot get a diff.
    #[serde(default)]
    floor: u64,
}

/// A stored subscription request.
#[derive(Debug, Serialize, Deserialize)]
struct StoredRequest {
    v: u32,
    xml: String,
}

/// Serializes an item.
pub(crate) fn encode_item(item: &RosterItem) -> Vec<u8> {
    let stored = StoredItem {
        v: FORMAT,
        jid: item.jid.clone(),
        name: item.name.clone(),
        groups: item.groups.clone(),
        subscription: item.state.subscription.as_str().to_owned(),
        pending_out: item.state.pending_out,
        pending_in: item.state.pending_in,
        pre_approved: item.state.pre_approved,
    };
    // Serializing a struct of strings and booleans cannot fail.
    serde_json::to_vec(&stored).unwrap_or_default()
}

/// Deserializes an item; `Corrupt` if the bytes are not one.
pub(crate) fn decode_item(bytes: &[u8]) -> Result<RosterItem, StoreError> {
    let s: StoredItem = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("roster item: {e}")))?;
    if s.v != FORMAT {
        return Err(StoreError::Corrupt(format!(
            "roster item: unknown format {}",
            s.v
        )));
    }
    let subscription = Subscription::from_attr(&s.subscription).ok_or_else(|| {
        StoreError::Corrupt(format!("roster item: subscription `{}`", s.subscription))
    })?;
    Ok(RosterItem {
        jid: s.jid,
        name: s.name,
        groups: s.groups,
        state: SubState {
            subscription,
            pending_out: s.pending_out,
            pending_in: s.pending_in,
            pre_approved: s.pre_approved,
        },
    })
}

/// The item for `contact` in `owner`'s roster, if there is one.
pub async fn load_item(
    services: &Services,
    owner: &BareJid,
    contact: &BareJid,
) -> Result<Option<RosterItem>, StoreError> {
    let map = services.store.map(ROSTER_MAP);
    match map.get(owner, &contact.to_string()).await? {
        Some(bytes) => decode_item(&bytes).map(Some),
        None => Ok(None),
    }
}

/// Every item of `owner`'s roster, ordered by contact JID.
pub async fn load_roster(
    services: &Services,
    owner: &BareJid,
) -> Result<Vec<RosterItem>, StoreError> {
    let map = services.store.map(ROSTER_MAP);
    map.all(owner)
        .await?
        .iter()
        .map(|(_, bytes)| decode_item(bytes))
        .collect()
}

/// How many items `owner` has.
pub(crate) async fn count_items(services: &Services, owner: &BareJid) -> Result<usize, StoreError> {
    Ok(services.store.map(ROSTER_MAP).all(owner).await?.len())
}

/// Inserts or replaces an item.
pub(crate) async fn save_item(
    services: &Services,
    owner: &BareJid,
    item: &RosterItem,
) -> Result<(), StoreError> {
    services
        .store
        .map(ROSTER_MAP)
        .set(owner, &item.jid, &encode_item(item))
        .await
}

/// Removes an item; false if there was none.
pub(crate) async fn delete_item(
    services: &Services,
    owner: &BareJid,
    contact: &BareJid,
) -> Result<bool, StoreError> {
    services
        .store
        .map(ROSTER_MAP)
        .delete(owner, &contact.to_string())
        .await
}

/// The stored version document, or a fresh one (and false) if none was stored yet.
async fn load_version(
    services: &Services,
    owner: &BareJid,
) -> Result<(StoredVersion, bool), StoreError> {
    match services.store.kv(VERSION_KV).get(owner).await? {
        Some(bytes) => {
            let v: StoredVersion = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("roster version: {e}")))?;
            Ok((v, true))
        }
        None => Ok((
            StoredVersion {
                v: FORMAT,
                epoch: corvid_core::random_id(6),
                n: 0,
                floor: 0,
            },
            false,
        )),
    }
}

/// The newest version counter of `owner`'s roster (0 before the first change). The counters
/// are ids of the archive [`VERSION_LOG`], which every backend hands out atomically and in
/// increasing order, so servers sharing one store never give two changes the same version.
async fn latest_counter(services: &Services, owner: &BareJid) -> Result<u64, StoreError> {
    // The log keeps only its newest entries (older ones are removed after each append).
    let items = services
        .store
        .archive(VERSION_LOG)
        .range(owner, None, 256)
        .await?;
    Ok(items.iter().map(|(id, _)| *id).max().unwrap_or(0))
}

/// The version document with its epoch, stored if it was not yet.
async fn stored_version(services: &Services, owner: &BareJid) -> Result<StoredVersion, StoreError> {
    let (v, stored) = load_version(services, owner).await?;
    if !stored {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        services.store.kv(VERSION_KV).set(owner, &bytes).await?;
    }
    Ok(v)
}

/// The current roster version (RFC 6121 §2.1.1). A fresh roster gets its epoch stored at
/// once, so the version a client caches stays valid until the first change.
pub(crate) async fn current_version(
    services: &Services,
    owner: &BareJid,
) -> Result<String, StoreError> {
    let v = stored_version(services, owner).await?;
    let n = latest_counter(services, owner).await?;
    Ok(format!("{}-{n}", v.epoch))
}

/// Moves the roster to a new version (every change that causes a roster push, §2.6.3),
/// records that `contact`'s item changed in it (for XEP-0237 diffs), and returns it.
pub(crate) async fn bump_version(
    services: &Services,
    owner: &BareJid,
    contact: &BareJid,
) -> Result<String, StoreError> {
    let mut v = stored_version(services, owner).await?;
    let log = services.store.archive(VERSION_LOG);
    let next = log
        .append(owner, contact.to_string().as_bytes(), None)
        .await?;
    let changes = services.store.map(CHANGES_MAP);
    changes
        .set(owner, &contact.to_string(), next.to_string().as_bytes())
        .await?;
    let older: Vec<u64> = log
        .range(owner, None, 256)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| *id < next)
        .collect();
    if !older.is_empty() {
        log.remove(owner, &older).await?;
    }
    let all = changes.all(owner).await?;
    if all.len() > CHANGES_KEPT {
        // Keep the newest half; remember where the gap starts.
        let mut counters: Vec<(u64, String)> = all
            .into_iter()
            .map(|(k, val)| (parse_counter(&val), k))
            .collect();
        counters.sort();
        let cut = counters.len() - CHANGES_KEPT / 2;
        for (n, key) in &counters[..cut] {
            v.floor = v.floor.max(*n);
            changes.delete(owner, key).await?;
        }
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        services.store.kv(VERSION_KV).set(owner, &bytes).await?;
    }
    Ok(format!("{}-{next}", v.epoch))
}

fn parse_counter(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// What changed since the version a client cached (XEP-0237 §4, RFC 6121 §2.6.3), oldest first:
/// each contact with the version of its change and its item (`None`: removed). `None` when no
/// diff can be computed (another epoch, a version from the future, or pruned history): then the
/// client gets the full roster.
pub(crate) async fn changes_since(
    services: &Services,
    owner: &BareJid,
    client_ver: &str,
) -> Result<Option<Vec<(String, BareJid, Option<RosterItem>)>>, StoreError> {
    let (v, stored) = load_version(services, owner).await?;
    let current = latest_counter(services, owner).await?;
    let Some((epoch, n)) = client_ver.rsplit_once('-') else {
        return Ok(None);
    };
    let Ok(n) = n.parse::<u64>() else {
        return Ok(None);
    };
    if !stored || epoch != v.epoch || n > current || n < v.floor {
        return Ok(None);
    }
    let mut changed: Vec<(u64, String)> = services
        .store
        .map(CHANGES_MAP)
        .all(owner)
        .await?
        .into_iter()
        .map(|(k, val)| (parse_counter(&val), k))
        .filter(|(c, _)| *c > n)
        .collect();
    changed.sort();
    let mut out = Vec::with_capacity(changed.len());
    for (c, key) in changed {
        let Ok(contact) = key.parse::<BareJid>() else {
            continue;
        };
        let item = load_item(services, owner, &contact).await?;
        out.push((format!("{}-{c}", v.epoch), contact, item));
    }
    Ok(Some(out))
}

/// Whether a subscription request from `contact` awaits `owner`'s answer.
pub(crate) async fn has_request(
    services: &Services,
    owner: &BareJid,
    contact: &BareJid,
) -> Result<bool, StoreError> {
    Ok(services
        .store
        .map(PENDING_MAP)
        .get(owner, &contact.to_string())
        .await?
        .is_some())
}

/// How many subscription requests await `owner`'s answer.
pub(crate) async fn count_requests(
    services: &Services,
    owner: &BareJid,
) -> Result<usize, StoreError> {
    Ok(services.store.map(PENDING_MAP).all(owner).await?.len())
}

/// Stores (or replaces: one per contact, §3.1.3 rule 4) the complete request stanza.
pub(crate) async fn save_request(
    services: &Services,
    owner: &BareJid,
    contact: &BareJid,
    stanza: &Element,
) -> Result<(), StoreError> {
    let stored = StoredRequest {
        v: FORMAT,
        xml: stanza.to_xml(corvid_stanza::ns::CLIENT),
    };
    let bytes = serde_json::to_vec(&stored).unwrap_or_default();
    services
        .store
        .map(PENDING_MAP)
        .set(owner, &contact.to_string(), &bytes)
        .await
}

/// Forgets a request (answered, or the contact withdrew it).
pub(crate) async fn delete_request(
    services: &Services,
    owner: &BareJid,
    contact: &BareJid,
) -> Result<bool, StoreError> {
    services
        .store
        .map(PENDING_MAP)
        .delete(owner, &contact.to_string())
        .await
}

/// Every stored request stanza. Entries that no longer parse are skipped (and reported by the
/// caller's log through the count difference), so one bad entry cannot block the others.
pub(crate) async fn load_requests(
    services: &Services,
    owner: &BareJid,
) -> Result<Vec<Element>, StoreError> {
    let all = services.store.map(PENDING_MAP).all(owner).await?;
    Ok(all
        .iter()
        .filter_map(|(_, bytes)| serde_json::from_slice::<StoredRequest>(bytes).ok())
        .filter(|r| r.v == FORMAT)
        .filter_map(|r| parse_stanza(&r.xml))
        .collect())
}

/// Parses one stanza serialized by [`Element::to_xml`] in the `jabber:client` namespace.
fn parse_stanza(xml: &str) -> Option<Element> {
    let mut parser = Parser::new(Limits {
        max_stanza_bytes: xml.len() + 1024,
        max_depth: 64,
        max_attributes: 256,
    });
    parser.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    parser.feed(xml.as_bytes());
    match parser.next_event() {
        Ok(Some(StreamEvent::Open(_))) => {}
        _ => return None,
    }
    match parser.next_event() {
        Ok(Some(StreamEvent::Element(e))) => Some(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_through_their_stored_form() {
        let jid: BareJid = "romeo@example.net".parse().unwrap();
        let mut item = RosterItem::new(&jid);
        item.name = Some("Romeo".into());
        item.groups = vec!["Friends".into(), "Lovers".into()];
        item.state = SubState::FROM_PENDING_OUT;
        let back = decode_item(&encode_item(&item)).unwrap();
        assert_eq!(back, item);
        assert_eq!(back.subscription(), Subscription::From);
        let pre = RosterItem {
            state: SubState::NONE.pre_approved(),
            ..RosterItem::new(&jid)
        };
        assert_eq!(decode_item(&encode_item(&pre)).unwrap(), pre);
    }

    #[test]
    fn garbage_is_reported_as_corrupt() {
        assert!(matches!(
            decode_item(b"{not json"),
            Err(StoreError::Corrupt(_))
        ));
        let wrong =
            br#"{"v":1,"jid":"a@b","subscription":"remove","pending_out":false,"pending_in":false}"#;
        assert!(matches!(decode_item(wrong), Err(StoreError::Corrupt(e)) if e.contains("remove")));
        let future = br#"{"v":9,"jid":"a@b","subscription":"none"}"#;
        assert!(matches!(decode_item(future), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn stored_requests_parse_back_with_their_extensions() {
        // RFC 6121 §3.1.3 rule 4: the complete stanza, extended content included.
        let el = Element::new("presence", "jabber:client")
            .with_attr("from", "juliet@example.com")
            .with_attr("to", "romeo@example.net")
            .with_attr("type", "subscribe")
            .with_child(
                Element::new("nick", "http://jabber.org/protocol/nick").with_text("Jules <3"),
            );
        let back = parse_stanza(&el.to_xml("jabber:client")).unwrap();
        assert_eq!(back, el);
        assert_eq!(parse_stanza("<presence"), None);
    }
}
