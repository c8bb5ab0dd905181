//! The `jabber:iq:roster` payload (RFC 6121 §2.1): parsing and checking a roster set, and
//! building roster results and pushes. Pure: no storage, no routing.

use corvid_jid::{BareJid, FullJid, Jid};
use corvid_stanza::{ns, Condition, Kind, Stanza, StanzaError};
use corvid_xml::Element;

use super::store::RosterItem;

/// The roster namespace (RFC 6121 §2.1).
pub const NS_ROSTER: &str = "jabber:iq:roster";
/// The roster versioning stream feature (RFC 6121 §2.6.1, XEP-0237).
pub const NS_ROSTERVER: &str = "urn:xmpp:features:rosterver";

/// What a client may store in its roster: the "server-configured limits" of RFC 6121 §2.3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most items in one roster; adding one more is `resource-constraint`.
    pub max_items: usize,
    /// Longest `name`, in bytes (`not-acceptable`, §2.3.3).
    pub max_name_bytes: usize,
    /// Most groups on one item (`not-acceptable`).
    pub max_groups: usize,
    /// Longest group name, in bytes (`not-acceptable`, §2.3.3).
    pub max_group_bytes: usize,
    /// Most unanswered subscription requests kept for one user (RFC 6121 §3.1.3 security
    /// warning); further requests from new contacts are dropped.
    pub max_pending_requests: usize,
    /// Most entities one session remembers having sent directed presence to (§4.6).
    pub max_directed: usize,
}

/// The limits Corvid applies.
pub const LIMITS: Limits = Limits {
    max_items: 1000,
    max_name_bytes: 1023,
    max_groups: 64,
    max_group_bytes: 1023,
    max_pending_requests: 1000,
    max_directed: 1000,
};

/// A checked roster set (RFC 6121 §2.1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRequest {
    /// Add or update the item exactly as given (§2.3, §2.4): a roster item is atomic.
    Update {
        /// The contact.
        jid: BareJid,
        /// The handle; an empty `name` is no name (§2.4.1 implementation note).
        name: Option<String>,
        /// The groups, in the client's order.
        groups: Vec<String>,
    },
    /// `subscription='remove'` (§2.5).
    Remove {
        /// The contact.
        jid: BareJid,
    },
}

fn bad_request(text: &str) -> StanzaError {
    StanzaError::new(Condition::BadRequest).with_text(text)
}

fn not_acceptable(text: &str) -> StanzaError {
    StanzaError::new(Condition::NotAcceptable).with_text(text)
}

/// Checks a roster set's `<query/>` (RFC 6121 §2.1.5, errors of §2.3.3 and §2.5.3 that need
/// no storage). The `subscription` attribute is ignored unless it is `remove`, and `ask` and
/// `approved` are ignored (§2.1.2.1, §2.1.2.2, §2.1.2.5).
pub fn parse_set(query: &Element, limits: &Limits) -> Result<SetRequest, StanzaError> {
    let mut items = query.child_elements().filter(|e| e.is("item", NS_ROSTER));
    let Some(item) = items.next() else {
        return Err(bad_request("a roster set carries one <item/>"));
    };
    if items.next().is_some() {
        // §2.3.3 bad-request rule 1.
        return Err(bad_request("a roster set carries only one <item/>"));
    }
    let Some(raw) = item.attr("jid") else {
        // §2.1.2.3: 'jid' is REQUIRED.
        return Err(bad_request("the item has no 'jid'"));
    };
    let jid = match raw.parse::<Jid>() {
        Ok(Jid::Bare(b)) => b,
        Ok(Jid::Full(_)) => {
            return Err(bad_request("roster items are bare JIDs"));
        }
        Err(e) => {
            return Err(StanzaError::new(Condition::JidMalformed).with_text(format!("'jid': {e}")))
        }
    };
    if item.attr("subscription") == Some("remove") {
        return Ok(SetRequest::Remove { jid });
    }
    let name = item.attr("name").filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.len() > limits.max_name_bytes) {
        // §2.3.3 not-acceptable rule 1.
        return Err(not_acceptable("the 'name' is too long"));
    }
    let mut groups: Vec<String> = Vec::new();
    for g in item.child_elements().filter(|e| e.is("group", NS_ROSTER)) {
        let text = g.text();
        if text.is_empty() {
            // §2.3.3 not-acceptable rule 2.
            return Err(not_acceptable("a <group/> is empty"));
        }
        if text.len() > limits.max_group_bytes {
            // §2.3.3 not-acceptable rule 3.
            return Err(not_acceptable("a <group/> name is too long"));
        }
        if groups.contains(&text) {
            // §2.3.3 bad-request rule 2.
            return Err(bad_request("the same <group/> appears twice"));
        }
        if groups.len() == limits.max_groups {
            return Err(not_acceptable("too many groups on one item"));
        }
        groups.push(text);
    }
    Ok(SetRequest::Update {
        jid,
        name: name.map(str::to_owned),
        groups,
    })
}

/// The `<item/>` for a roster result or push (§2.1.2): `jid`, `name`, `subscription`, `ask`
/// and `approved` as the state says, then the groups.
pub fn item_element(item: &RosterItem) -> Element {
    let mut el = Element::new("item", NS_ROSTER).with_attr("jid", item.jid.clone());
    if let Some(name) = &item.name {
        el.set_attr("name", name.clone());
    }
    el.set_attr("subscription", item.state.subscription_attr());
    if let Some(ask) = item.state.ask() {
        el.set_attr("ask", ask);
    }
    if item.state.approved() {
        el.set_attr("approved", "true");
    }
    for g in &item.groups {
        el.push(Element::new("group", NS_ROSTER).with_text(g.clone()));
    }
    el
}

/// The `<item subscription='remove'/>` of a push announcing a deletion (§2.5.2).
pub fn removed_element(jid: &BareJid) -> Element {
    Element::new("item", NS_ROSTER)
        .with_attr("jid", jid.to_string())
        .with_attr("subscription", "remove")
}

/// A roster result's `<query ver=…/>` with every item (§2.1.4).
pub fn result_query<'a>(ver: &str, items: impl IntoIterator<Item = &'a RosterItem>) -> Element {
    let mut q = Element::new("query", NS_ROSTER).with_attr("ver", ver);
    for item in items {
        q.push(item_element(item));
    }
    q
}

/// A roster push (§2.1.6) of one item to one interested resource, from the user's bare JID,
/// with the new version (§2.6.3: every push carries one).
pub fn push(owner: &BareJid, to: &FullJid, id: &str, ver: &str, item: Element) -> Stanza {
    let el = Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", id)
        .with_attr("from", owner.to_string())
        .with_attr("to", to.to_string())
        .with_child(
            Element::new("query", NS_ROSTER)
                .with_attr("ver", ver)
                .with_child(item),
        );
    Stanza::from_trusted(Kind::Iq, el)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::subscription::SubState;

    fn query(items: &[Element]) -> Element {
        let mut q = Element::new("query", NS_ROSTER);
        for i in items {
            q.push(i.clone());
        }
        q
    }

    fn item(jid: &str) -> Element {
        Element::new("item", NS_ROSTER).with_attr("jid", jid)
    }

    fn group(name: &str) -> Element {
        Element::new("group", NS_ROSTER).with_text(name)
    }

    fn condition(r: Result<SetRequest, StanzaError>) -> (Condition, String) {
        let e = r.unwrap_err();
        (e.condition, e.text.unwrap_or_default())
    }

    #[test]
    fn a_set_adds_the_item_as_given() {
        // RFC 6121 §2.3.1: jid, name and groups; the subscription attribute is ignored
        // (§2.1.2.5: "the server MUST ignore all values … other than remove").
        let q = query(&[item("Nurse@Example.com")
            .with_attr("name", "Nurse")
            .with_attr("subscription", "both")
            .with_attr("ask", "subscribe")
            .with_child(group("Servants"))
            .with_child(group("Family"))]);
        assert_eq!(
            parse_set(&q, &LIMITS),
            Ok(SetRequest::Update {
                jid: "nurse@example.com".parse().unwrap(),
                name: Some("Nurse".into()),
                groups: vec!["Servants".into(), "Family".into()],
            })
        );
    }

    #[test]
    fn an_empty_name_is_no_name() {
        // §2.4.1 implementation note.
        let q = query(&[item("romeo@example.net").with_attr("name", "")]);
        assert!(matches!(
            parse_set(&q, &LIMITS),
            Ok(SetRequest::Update { name: None, .. })
        ));
    }

    #[test]
    fn subscription_remove_is_a_removal() {
        // §2.5.1.
        let q = query(&[item("nurse@example.com").with_attr("subscription", "remove")]);
        assert_eq!(
            parse_set(&q, &LIMITS),
            Ok(SetRequest::Remove {
                jid: "nurse@example.com".parse().unwrap()
            })
        );
    }

    #[test]
    fn invalid_sets_get_the_errors_of_section_2_3_3() {
        let two = query(&[item("a@example.com"), item("b@example.com")]);
        assert_eq!(
            condition(parse_set(&two, &LIMITS)),
            (
                Condition::BadRequest,
                "a roster set carries only one <item/>".into()
            )
        );
        let dup = query(&[item("a@example.com")
            .with_child(group("Servants"))
            .with_child(group("Servants"))]);
        assert_eq!(
            condition(parse_set(&dup, &LIMITS)),
            (
                Condition::BadRequest,
                "the same <group/> appears twice".into()
            )
        );
        let long_name = query(&[item("a@example.com").with_attr("name", "x".repeat(1024))]);
        assert_eq!(
            condition(parse_set(&long_name, &LIMITS)),
            (Condition::NotAcceptable, "the 'name' is too long".into())
        );
        let empty_group = query(&[item("a@example.com").with_child(group(""))]);
        assert_eq!(
            condition(parse_set(&empty_group, &LIMITS)),
            (Condition::NotAcceptable, "a <group/> is empty".into())
        );
        let long_group = query(&[item("a@example.com").with_child(group(&"g".repeat(1024)))]);
        assert_eq!(
            condition(parse_set(&long_group, &LIMITS)),
            (
                Condition::NotAcceptable,
                "a <group/> name is too long".into()
            )
        );
        let mut many = item("a@example.com");
        for i in 0..=LIMITS.max_groups {
            many.push(group(&format!("g{i}")));
        }
        assert_eq!(
            condition(parse_set(&query(&[many]), &LIMITS)),
            (
                Condition::NotAcceptable,
                "too many groups on one item".into()
            )
        );
    }

    #[test]
    fn items_without_a_usable_jid_are_refused() {
        assert_eq!(
            condition(parse_set(&query(&[]), &LIMITS)),
            (
                Condition::BadRequest,
                "a roster set carries one <item/>".into()
            )
        );
        let no_jid = query(&[Element::new("item", NS_ROSTER)]);
        assert_eq!(
            condition(parse_set(&no_jid, &LIMITS)).1,
            "the item has no 'jid'"
        );
        let full = query(&[item("romeo@example.net/orchard")]);
        assert_eq!(
            condition(parse_set(&full, &LIMITS)).1,
            "roster items are bare JIDs"
        );
        let bad = query(&[item("a@b@c")]);
        assert_eq!(
            condition(parse_set(&bad, &LIMITS)).0,
            Condition::JidMalformed
        );
    }

    #[test]
    fn items_show_subscription_ask_and_approved() {
        // §2.1.2.1, §2.1.2.2, §2.1.2.5.
        let jid: BareJid = "romeo@example.net".parse().unwrap();
        let mut it = RosterItem::new(&jid);
        it.name = Some("Romeo".into());
        it.groups = vec!["Friends".into()];
        it.state = SubState::NONE_PENDING_OUT_IN;
        let el = item_element(&it);
        assert_eq!(el.attr("jid"), Some("romeo@example.net"));
        assert_eq!(el.attr("name"), Some("Romeo"));
        assert_eq!(el.attr("subscription"), Some("none"));
        assert_eq!(el.attr("ask"), Some("subscribe"));
        assert_eq!(el.attr("approved"), None);
        assert_eq!(
            el.child("group", NS_ROSTER).map(Element::text).as_deref(),
            Some("Friends")
        );
        it.state = SubState::TO.pre_approved();
        let el = item_element(&it);
        assert_eq!(
            (el.attr("subscription"), el.attr("ask"), el.attr("approved")),
            (Some("to"), None, Some("true"))
        );
    }

    #[test]
    fn a_push_is_a_set_from_the_bare_jid_with_one_item_and_a_version() {
        // §2.1.6 and §2.6.3.
        let owner: BareJid = "juliet@example.com".parse().unwrap();
        let to: FullJid = "juliet@example.com/balcony".parse().unwrap();
        let p = push(
            &owner,
            &to,
            "push1",
            "e-7",
            removed_element(&"nurse@example.com".parse().unwrap()),
        );
        let el = p.element();
        assert_eq!(el.attr("type"), Some("set"));
        assert_eq!(el.attr("from"), Some("juliet@example.com"));
        assert_eq!(el.attr("to"), Some("juliet@example.com/balcony"));
        let q = el.child("query", NS_ROSTER).unwrap();
        assert_eq!(q.attr("ver"), Some("e-7"));
        assert_eq!(q.child_elements().count(), 1);
        assert_eq!(
            q.child("item", NS_ROSTER).unwrap().attr("subscription"),
            Some("remove")
        );
    }

    #[test]
    fn a_result_lists_every_item_with_the_version() {
        let a = RosterItem::new(&"a@example.com".parse().unwrap());
        let b = RosterItem::new(&"b@example.com".parse().unwrap());
        let q = result_query("e-3", [&a, &b]);
        assert_eq!(q.attr("ver"), Some("e-3"));
        assert_eq!(q.child_elements().count(), 2);
        // §2.1.4: an empty roster is a query without items, not an error.
        assert_eq!(result_query("e-0", []).child_elements().count(), 0);
    }
}
