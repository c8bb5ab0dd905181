//! RFC 6121 presence subscription states (Appendix A) and their transitions, without I/O.
//!
//! Everything here is described from the perspective of one account (the *user*) and one roster
//! item (the *contact*), exactly as RFC 6121 Appendix A does. The user's server calls
//! [`outbound`] when one of the user's clients sends a presence stanza of type `subscribe`,
//! `subscribed`, `unsubscribe` or `unsubscribed`, and [`inbound`] when such a stanza arrives
//! from the contact. Each returns the new [`SubState`] to store and what to do, in RFC order:
//!
//! ```text
//!   user's client ──Outbound──▶ outbound(state, ev) ──▶ OutboundResult
//!                                                        ├ state        store it
//!                                                        ├ presence     Unavailable: before routing
//!                                                        ├ route        send the stanza to the contact
//!                                                        ├ presence     Available: after routing
//!                                                        └ roster_push  to the interested resources
//!
//!   contact ─────Inbound──────▶ inbound(state, ev)  ──▶ InboundResult
//!                                                        ├ state        store it
//!                                                        ├ deliver      to the user's available resources
//!                                                        ├ roster_push  after delivery (§3.1.6, §3.3.3)
//!                                                        ├ auto_reply   to the contact, on the user's behalf
//!                                                        ├ presence     the user's own, to the contact
//!                                                        └ send_probe   probe the contact's presence
//! ```
//!
//! The nine states of A.1 are the four values of the roster `subscription` attribute combined
//! with "pending out" (the user asked the contact, shown as `ask='subscribe'`) and "pending in"
//! (the contact asked the user, never shown in the roster). The pre-approval of §3.4 (the
//! roster `approved` attribute) is a tenth bit that only exists in "None", "None + Pending Out"
//! and "To", the three states from which an outbound `subscribed` cannot approve anything.
//!
//! The transition tables are written out row by row in [`outbound`] and [`inbound`] so they
//! can be read against the RFC; the tests restate every row.

use std::fmt;

/// The value of a roster item's `subscription` attribute (RFC 6121 §2.1.2.5), i.e. the
/// primary subscription state of A.1 without its pending sub-states.
///
/// The variants follow the RFC's order rather than the alphabet, so that they read like the
/// tables. The `remove` value of the attribute is a request, not a state, and is not here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// Neither the user nor the contact is subscribed to the other's presence. This includes a
    /// contact that is not in the roster at all (A.1, implementation note).
    #[default]
    None,
    /// The user is subscribed to the contact's presence, but not the other way round.
    To,
    /// The contact is subscribed to the user's presence, but not the other way round.
    From,
    /// The user and the contact are subscribed to each other's presence.
    Both,
}

impl Subscription {
    /// The attribute value: `none`, `to`, `from` or `both`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    /// Parses an attribute value. `remove` and anything unknown give `None`.
    pub fn from_attr(value: &str) -> Option<Self> {
        match value {
            "none" => Some(Subscription::None),
            "to" => Some(Subscription::To),
            "from" => Some(Subscription::From),
            "both" => Some(Subscription::Both),
            _ => None,
        }
    }

    /// Whether the user receives the contact's presence (`to` or `both`).
    pub const fn includes_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// Whether the contact receives the user's presence (`from` or `both`).
    pub const fn includes_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The full subscription state of one roster item: one of the nine states of RFC 6121 A.1, plus
/// the pre-approval flag of §3.4.
///
/// The fields are public so that storage can map them one to one. Combinations that are not
/// among the nine states are read as the nearest one: `pending_out` means nothing once the user
/// is subscribed to the contact (`to`, `both`), `pending_in` nothing once the contact is
/// subscribed to the user (`from`, `both`), and `pre_approved` nothing outside "None",
/// "None + Pending Out" and "To" (§3.4.2). [`outbound`] and [`inbound`] only ever return
/// states in that normal form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SubState {
    /// The roster `subscription` attribute.
    pub subscription: Subscription,
    /// The user asked to subscribe to the contact, who has not answered (`ask='subscribe'`).
    pub pending_out: bool,
    /// The contact asked to subscribe to the user, who has not answered. Not shown in the roster.
    pub pending_in: bool,
    /// The user pre-approved a subscription request from the contact (§3.4, `approved='true'`).
    pub pre_approved: bool,
}

impl SubState {
    /// "None": no subscription either way, nothing pending.
    pub const NONE: SubState = SubState::named(Row::None);
    /// "None + Pending Out": the user asked the contact.
    pub const NONE_PENDING_OUT: SubState = SubState::named(Row::NonePendingOut);
    /// "None + Pending In": the contact asked the user.
    pub const NONE_PENDING_IN: SubState = SubState::named(Row::NonePendingIn);
    /// "None + Pending Out+In": both asked, neither answered.
    pub const NONE_PENDING_OUT_IN: SubState = SubState::named(Row::NonePendingOutIn);
    /// "To": the user is subscribed to the contact.
    pub const TO: SubState = SubState::named(Row::To);
    /// "To + Pending In": the user is subscribed to the contact, and the contact asked the user.
    pub const TO_PENDING_IN: SubState = SubState::named(Row::ToPendingIn);
    /// "From": the contact is subscribed to the user.
    pub const FROM: SubState = SubState::named(Row::From);
    /// "From + Pending Out": the contact is subscribed to the user, and the user asked the contact.
    pub const FROM_PENDING_OUT: SubState = SubState::named(Row::FromPendingOut);
    /// "Both": subscribed both ways.
    pub const BOTH: SubState = SubState::named(Row::Both);

    /// This state with the pre-approval flag of §3.4 set. The flag is only kept by
    /// [`outbound`] and [`inbound`] in "None", "None + Pending Out" and "To".
    pub const fn pre_approved(self) -> SubState {
        SubState {
            pre_approved: true,
            ..self
        }
    }

    /// The roster `subscription` attribute value (A.1).
    pub const fn subscription_attr(&self) -> &'static str {
        self.subscription.as_str()
    }

    /// The roster `ask` attribute: `Some("subscribe")` while the user's own request is pending
    /// (A.1 states "None + Pending Out", "None + Pending Out+In", "From + Pending Out").
    pub const fn ask(&self) -> Option<&'static str> {
        if self.pending_out && !self.subscription.includes_to() {
            Some("subscribe")
        } else {
            None
        }
    }

    /// The roster `approved` attribute (§2.1.2.1): whether a pre-approval is in force.
    pub const fn approved(&self) -> bool {
        self.pre_approved && Row::of(*self).can_pre_approve()
    }

    /// Whether this is "None" with nothing pending and no pre-approval: the state of a contact
    /// that is not in the roster, so an item the user never added can be forgotten.
    pub const fn is_empty(&self) -> bool {
        matches!(Row::of(*self), Row::None) && !self.approved()
    }

    /// What a roster push shows of this state: `subscription`, `ask` and `approved`.
    const fn visible(&self) -> (Subscription, bool, bool) {
        (self.subscription, self.ask().is_some(), self.approved())
    }

    const fn named(row: Row) -> SubState {
        let (subscription, pending_out, pending_in) = match row {
            Row::None => (Subscription::None, false, false),
            Row::NonePendingOut => (Subscription::None, true, false),
            Row::NonePendingIn => (Subscription::None, false, true),
            Row::NonePendingOutIn => (Subscription::None, true, true),
            Row::To => (Subscription::To, false, false),
            Row::ToPendingIn => (Subscription::To, false, true),
            Row::From => (Subscription::From, false, false),
            Row::FromPendingOut => (Subscription::From, true, false),
            Row::Both => (Subscription::Both, false, false),
        };
        SubState {
            subscription,
            pending_out,
            pending_in,
            pre_approved: false,
        }
    }

    /// The state for a row of the tables, keeping a pre-approval only where §3.4.2 allows one.
    const fn from_row(row: Row, pre_approved: bool) -> SubState {
        SubState {
            pre_approved: pre_approved && row.can_pre_approve(),
            ..SubState::named(row)
        }
    }
}

impl fmt::Display for SubState {
    /// The RFC's name for the state, e.g. `None + Pending Out+In`, then ` (pre-approved)` if so.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Row::of(*self).name())?;
        if self.approved() {
            f.write_str(" (pre-approved)")?;
        }
        Ok(())
    }
}

/// A presence subscription stanza that one of the user's clients sends to the contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outbound {
    /// The user asks for the contact's presence (§3.1.2).
    Subscribe,
    /// The user approves the contact's request, or pre-approves one (§3.1.5, §3.4).
    Subscribed,
    /// The user stops receiving the contact's presence (§3.3.2).
    Unsubscribe,
    /// The user denies the contact's request, cancels the contact's subscription or cancels a
    /// pre-approval (§3.2.2).
    Unsubscribed,
}

impl Outbound {
    /// The presence `type` attribute value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outbound::Subscribe => "subscribe",
            Outbound::Subscribed => "subscribed",
            Outbound::Unsubscribe => "unsubscribe",
            Outbound::Unsubscribed => "unsubscribed",
        }
    }
}

/// A presence subscription stanza from the contact, arriving for the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Inbound {
    /// The contact asks for the user's presence (§3.1.3).
    Subscribe,
    /// The contact approves the user's request (§3.1.6).
    Subscribed,
    /// The contact stops receiving the user's presence (§3.3.3).
    Unsubscribe,
    /// The contact denies the user's request or cancels the user's subscription (§3.2.3).
    Unsubscribed,
}

impl Inbound {
    /// The presence `type` attribute value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Inbound::Subscribe => "subscribe",
            Inbound::Subscribed => "subscribed",
            Inbound::Unsubscribe => "unsubscribe",
            Inbound::Unsubscribed => "unsubscribed",
        }
    }
}

/// What the user sends, once routed, is what the contact's server receives.
impl From<Outbound> for Inbound {
    fn from(ev: Outbound) -> Inbound {
        match ev {
            Outbound::Subscribe => Inbound::Subscribe,
            Outbound::Subscribed => Inbound::Subscribed,
            Outbound::Unsubscribe => Inbound::Unsubscribe,
            Outbound::Unsubscribed => Inbound::Unsubscribed,
        }
    }
}

/// A presence stanza the user's server sends to the contact on the user's behalf, from the
/// user's bare JID to the contact's bare JID, without passing it through [`outbound`] (the
/// returned state already accounts for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reply {
    /// `<presence type='subscribed'/>` (§3.1.3 rule 2, §3.4.2, A.3.1 notes).
    Subscribed,
    /// `<presence type='unsubscribed'/>` (A.3.2 note).
    Unsubscribed,
}

impl Reply {
    /// The presence `type` attribute value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reply::Subscribed => "subscribed",
            Reply::Unsubscribed => "unsubscribed",
        }
    }
}

/// The contact's server receives an auto-reply like any other inbound stanza.
impl From<Reply> for Inbound {
    fn from(reply: Reply) -> Inbound {
        match reply {
            Reply::Subscribed => Inbound::Subscribed,
            Reply::Unsubscribed => Inbound::Unsubscribed,
        }
    }
}

/// The user's own presence, which the user's server must send to the contact from each of the
/// user's available resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendPresence {
    /// The user's current presence: the contact just gained a subscription (§3.1.5).
    Available,
    /// `type='unavailable'`: the contact lost (or never gets) a subscription (§3.2.2, §3.3.3).
    Unavailable,
}

/// What to do after an [`Outbound`] stanza from the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct OutboundResult {
    /// The state to store.
    pub state: SubState,
    /// Whether to route the stanza to the contact (the ROUTE? column of A.2). When the contact
    /// is local this means processing it with [`inbound`] on the contact's side (§3.1.2).
    pub route: bool,
    /// Whether to push the item to the user's interested resources: the `subscription`, `ask`
    /// or `approved` attribute changed, which includes creating the item.
    pub roster_push: bool,
    /// The user's presence to send to the contact: [`SendPresence::Unavailable`] goes *before*
    /// the routed `unsubscribed`, while the contact is still subscribed (§3.2.2);
    /// [`SendPresence::Available`] goes after the routed `subscribed` (§3.1.5).
    pub presence: Option<SendPresence>,
}

/// What to do after an [`Inbound`] stanza from the contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct InboundResult {
    /// The state to store. A state with only `pending_in` needs no roster item (A.1, state 3).
    pub state: SubState,
    /// Whether to deliver the stanza to the user's available resources (the DELIVER? column of
    /// A.3). For a `subscribe` with no resource available, keep it and deliver it when one
    /// becomes available (§3.1.3 rule 4).
    pub deliver: bool,
    /// Whether to push the item to the user's interested resources, after the delivery
    /// (§3.1.6, §3.2.3, §3.3.3): the `subscription`, `ask` or `approved` attribute changed.
    pub roster_push: bool,
    /// The reply the user's server sends to the contact on the user's behalf.
    pub auto_reply: Option<Reply>,
    /// The user's presence to send to the contact: available after a pre-approved request is
    /// approved (§3.4.2 with §3.1.5), unavailable once the contact unsubscribed (§3.3.3 step 3).
    pub presence: Option<SendPresence>,
    /// Whether to send a presence probe to the contact (§4.3.1): the user just became
    /// subscribed to the contact's presence.
    pub send_probe: bool,
}

/// Applies a presence subscription stanza that the user sends to the contact (RFC 6121 A.2,
/// §3.1.2, §3.1.5, §3.2.2, §3.3.2, §3.4.2).
pub fn outbound(state: SubState, ev: Outbound) -> OutboundResult {
    use Row::*;
    let row = Row::of(state);
    let approved = state.approved();
    // (ROUTE?, NEW STATE, pre-approval afterwards); the comments name the existing state.
    let (route, next, next_approved) = match ev {
        // A.2.1, Table 2: the server MUST route every outbound "subscribe", even a repeated
        // one (§3.1.2 asks servers to resend unanswered requests).
        Outbound::Subscribe => match row {
            None => (true, NonePendingOut, approved),
            NonePendingOut => (true, NonePendingOut, approved),
            NonePendingIn => (true, NonePendingOutIn, approved),
            NonePendingOutIn => (true, NonePendingOutIn, approved),
            To => (true, To, approved),
            ToPendingIn => (true, ToPendingIn, approved),
            From => (true, FromPendingOut, approved),
            FromPendingOut => (true, FromPendingOut, approved),
            Both => (true, Both, approved),
        },
        // A.2.2, Table 3: MUST route in every state.
        Outbound::Unsubscribe => match row {
            None => (true, None, approved),
            NonePendingOut => (true, None, approved),
            NonePendingIn => (true, NonePendingIn, approved),
            NonePendingOutIn => (true, NonePendingIn, approved),
            To => (true, None, approved),
            ToPendingIn => (true, NonePendingIn, approved),
            From => (true, From, approved),
            FromPendingOut => (true, From, approved),
            Both => (true, From, approved),
        },
        // A.2.3, Table 4 and §3.4.2: where there is no request to approve, "subscribed" is
        // a pre-approval and MUST NOT be routed; where the contact is already subscribed it
        // is silently ignored.
        Outbound::Subscribed => match row {
            None => (false, None, true),
            NonePendingOut => (false, NonePendingOut, true),
            NonePendingIn => (true, From, false),
            NonePendingOutIn => (true, FromPendingOut, false),
            To => (false, To, true),
            ToPendingIn => (true, Both, false),
            From => (false, From, false),
            FromPendingOut => (false, FromPendingOut, false),
            Both => (false, Both, false),
        },
        // A.2.4, Table 5 and §3.2.2: with nothing to deny or cancel, "unsubscribed" SHOULD
        // NOT be routed (MUST NOT when it cancels a pre-approval) and cancels any
        // pre-approval (note [1]).
        Outbound::Unsubscribed => match row {
            None => (false, None, false),
            NonePendingOut => (false, NonePendingOut, false),
            NonePendingIn => (true, None, false),
            NonePendingOutIn => (true, NonePendingOut, false),
            To => (false, To, false),
            ToPendingIn => (true, To, false),
            From => (true, None, false),
            FromPendingOut => (true, NonePendingOut, false),
            Both => (true, To, false),
        },
    };
    let new = SubState::from_row(next, next_approved);
    let presence = match (ev, route) {
        // §3.1.5: after approving, send the user's current presence to the contact.
        (Outbound::Subscribed, true) => Some(SendPresence::Available),
        // §3.2.2 step 3: whenever "unsubscribed" is routed, unavailable presence goes too.
        (Outbound::Unsubscribed, true) => Some(SendPresence::Unavailable),
        _ => Option::None,
    };
    OutboundResult {
        state: new,
        route,
        roster_push: state.visible() != new.visible(),
        presence,
    }
}

/// Applies a presence subscription stanza that arrives from the contact for the user (RFC 6121
/// A.3, §3.1.3, §3.1.6, §3.2.3, §3.3.3, §3.4.2).
pub fn inbound(state: SubState, ev: Inbound) -> InboundResult {
    use Row::*;
    let row = Row::of(state);
    let approved = state.approved();
    let mut auto_reply = Option::None;
    let mut presence = Option::None;
    let mut send_probe = false;
    // (DELIVER?, NEW STATE, pre-approval afterwards); the comments name the existing state.
    let (deliver, next, next_approved) = match ev {
        // §3.4.2: with a pre-approval (only possible in "None", "None + Pending Out" and
        // "To") the server MUST NOT deliver the request and MUST approve it on the user's
        // behalf, as an outbound "subscribed" would from the matching pending-in state (A.3.1
        // note [1] allows this, changing "None" to "From"). The pre-approval is used up.
        Inbound::Subscribe if approved => {
            auto_reply = Some(Reply::Subscribed);
            presence = Some(SendPresence::Available);
            let next = match row {
                NonePendingOut => FromPendingOut,
                To => Both,
                _ => From,
            };
            (false, next, false)
        }
        // A.3.1, Table 6: a repeated request SHOULD NOT be delivered; if the contact is
        // already subscribed the server auto-replies "subscribed" (note [2]; §3.1.3 rule 2).
        Inbound::Subscribe => {
            let (deliver, next) = match row {
                None => (true, NonePendingIn),
                NonePendingOut => (true, NonePendingOutIn),
                NonePendingIn => (false, NonePendingIn),
                NonePendingOutIn => (false, NonePendingOutIn),
                To => (true, ToPendingIn),
                ToPendingIn => (false, ToPendingIn),
                From => (false, From),
                FromPendingOut => (false, FromPendingOut),
                Both => (false, Both),
            };
            if row.includes_from() {
                auto_reply = Some(Reply::Subscribed);
            }
            (deliver, next, approved)
        }
        // A.3.2, Table 7: deliver and auto-reply "unsubscribed" exactly when the state
        // changes (note [1]); when the contact loses a subscription, send unavailable presence
        // (§3.3.3 step 3).
        Inbound::Unsubscribe => {
            let (deliver, next) = match row {
                None => (false, None),
                NonePendingOut => (false, NonePendingOut),
                NonePendingIn => (true, None),
                NonePendingOutIn => (true, NonePendingOut),
                To => (false, To),
                ToPendingIn => (true, To),
                From => (true, None),
                FromPendingOut => (true, NonePendingOut),
                Both => (true, To),
            };
            if deliver {
                auto_reply = Some(Reply::Unsubscribed);
            }
            if row.includes_from() {
                presence = Some(SendPresence::Unavailable);
            }
            (deliver, next, approved)
        }
        // A.3.3, Table 8: only an answer to the user's pending request changes anything.
        Inbound::Subscribed => {
            let (deliver, next) = match row {
                None => (false, None),
                NonePendingOut => (true, To),
                NonePendingIn => (false, NonePendingIn),
                NonePendingOutIn => (true, ToPendingIn),
                To => (false, To),
                ToPendingIn => (false, ToPendingIn),
                From => (false, From),
                FromPendingOut => (true, Both),
                Both => (false, Both),
            };
            // The contact's server sends its presence itself (§3.1.5); a probe (§4.3.1)
            // recovers it if that raced with or overtook the approval.
            send_probe = deliver;
            (deliver, next, approved)
        }
        // A.3.4, Table 9: a denial of the pending request or a cancellation of the user's
        // subscription.
        Inbound::Unsubscribed => {
            let (deliver, next) = match row {
                None => (false, None),
                NonePendingOut => (true, None),
                NonePendingIn => (false, NonePendingIn),
                NonePendingOutIn => (true, NonePendingIn),
                To => (true, None),
                ToPendingIn => (true, NonePendingIn),
                From => (false, From),
                FromPendingOut => (true, From),
                Both => (true, From),
            };
            (deliver, next, approved)
        }
    };
    let new = SubState::from_row(next, next_approved);
    InboundResult {
        state: new,
        deliver,
        roster_push: state.visible() != new.visible(),
        auto_reply,
        presence,
        send_probe,
    }
}

/// The nine states of RFC 6121 A.1, one per row of every table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Row {
    None,
    NonePendingOut,
    NonePendingIn,
    NonePendingOutIn,
    To,
    ToPendingIn,
    From,
    FromPendingOut,
    Both,
}

impl Row {
    /// The row for a state, reading combinations outside A.1 as described on [`SubState`].
    const fn of(state: SubState) -> Row {
        match (state.subscription, state.pending_out, state.pending_in) {
            (Subscription::None, false, false) => Row::None,
            (Subscription::None, true, false) => Row::NonePendingOut,
            (Subscription::None, false, true) => Row::NonePendingIn,
            (Subscription::None, true, true) => Row::NonePendingOutIn,
            (Subscription::To, _, false) => Row::To,
            (Subscription::To, _, true) => Row::ToPendingIn,
            (Subscription::From, false, _) => Row::From,
            (Subscription::From, true, _) => Row::FromPendingOut,
            (Subscription::Both, _, _) => Row::Both,
        }
    }

    /// The rows in which an outbound "subscribed" is a pre-approval (§3.4.2 step 3).
    const fn can_pre_approve(self) -> bool {
        matches!(self, Row::None | Row::NonePendingOut | Row::To)
    }

    /// Whether the contact is subscribed to the user's presence in this row.
    const fn includes_from(self) -> bool {
        matches!(self, Row::From | Row::FromPendingOut | Row::Both)
    }

    /// The RFC's name for the state (A.1).
    const fn name(self) -> &'static str {
        match self {
            Row::None => "None",
            Row::NonePendingOut => "None + Pending Out",
            Row::NonePendingIn => "None + Pending In",
            Row::NonePendingOutIn => "None + Pending Out+In",
            Row::To => "To",
            Row::ToPendingIn => "To + Pending In",
            Row::From => "From",
            Row::FromPendingOut => "From + Pending Out",
            Row::Both => "Both",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: SubState = SubState::NONE;
    const NONE_OUT: SubState = SubState::NONE_PENDING_OUT;
    const NONE_IN: SubState = SubState::NONE_PENDING_IN;
    const NONE_OUT_IN: SubState = SubState::NONE_PENDING_OUT_IN;
    const TO: SubState = SubState::TO;
    const TO_IN: SubState = SubState::TO_PENDING_IN;
    const FROM: SubState = SubState::FROM;
    const FROM_OUT: SubState = SubState::FROM_PENDING_OUT;
    const BOTH: SubState = SubState::BOTH;

    /// The nine A.1 states in the RFC's row order.
    const ALL: [SubState; 9] = [
        NONE,
        NONE_OUT,
        NONE_IN,
        NONE_OUT_IN,
        TO,
        TO_IN,
        FROM,
        FROM_OUT,
        BOTH,
    ];

    /// One row of an A.2 table: existing state, ROUTE?, new state, roster push, presence.
    type OutRow = (SubState, bool, SubState, bool, Option<SendPresence>);

    /// One row of an A.3 table: existing state, DELIVER?, new state, roster push, auto-reply.
    type InRow = (SubState, bool, SubState, bool, Option<Reply>);

    fn check_outbound(table: &str, ev: Outbound, rows: &[OutRow; 9]) {
        for (i, &(from, route, to, push, presence)) in rows.iter().enumerate() {
            assert_eq!(from, ALL[i], "{table}: rows must follow the RFC's order");
            let r = outbound(from, ev);
            assert_eq!(r.state, to, "{table}, row \"{from}\": new state");
            assert_eq!(r.route, route, "{table}, row \"{from}\": ROUTE?");
            assert_eq!(r.roster_push, push, "{table}, row \"{from}\": roster push");
            assert_eq!(r.presence, presence, "{table}, row \"{from}\": presence");
        }
    }

    fn check_inbound(table: &str, ev: Inbound, rows: &[InRow; 9]) {
        for (i, &(from, deliver, to, push, reply)) in rows.iter().enumerate() {
            assert_eq!(from, ALL[i], "{table}: rows must follow the RFC's order");
            let r = inbound(from, ev);
            assert_eq!(r.state, to, "{table}, row \"{from}\": new state");
            assert_eq!(r.deliver, deliver, "{table}, row \"{from}\": DELIVER?");
            assert_eq!(r.roster_push, push, "{table}, row \"{from}\": roster push");
            assert_eq!(r.auto_reply, reply, "{table}, row \"{from}\": auto-reply");
        }
    }

    const AVAILABLE: Option<SendPresence> = Some(SendPresence::Available);
    const UNAVAILABLE: Option<SendPresence> = Some(SendPresence::Unavailable);
    const SUBSCRIBED: Option<Reply> = Some(Reply::Subscribed);
    const UNSUBSCRIBED: Option<Reply> = Some(Reply::Unsubscribed);

    #[test]
    fn a_2_1_outbound_subscribe_is_always_routed_and_sets_pending_out() {
        // RFC 6121 A.2.1, Table 2; note [1]: "pending out" sets ask='subscribe' (a push).
        check_outbound(
            "A.2.1",
            Outbound::Subscribe,
            &[
                (NONE, true, NONE_OUT, true, None),            // "None": MUST [1]
                (NONE_OUT, true, NONE_OUT, false, None),       // "None + Pending Out": MUST
                (NONE_IN, true, NONE_OUT_IN, true, None),      // "None + Pending In": MUST [1]
                (NONE_OUT_IN, true, NONE_OUT_IN, false, None), // "None + Pending Out+In": MUST
                (TO, true, TO, false, None),                   // "To": MUST
                (TO_IN, true, TO_IN, false, None),             // "To + Pending In": MUST
                (FROM, true, FROM_OUT, true, None),            // "From": MUST [1]
                (FROM_OUT, true, FROM_OUT, false, None),       // "From + Pending Out": MUST
                (BOTH, true, BOTH, false, None),               // "Both": MUST
            ],
        );
    }

    #[test]
    fn a_2_2_outbound_unsubscribe_is_always_routed() {
        // RFC 6121 A.2.2, Table 3; §3.3.2: the push shows "none" or "from".
        check_outbound(
            "A.2.2",
            Outbound::Unsubscribe,
            &[
                (NONE, true, NONE, false, None),          // "None": MUST, no change
                (NONE_OUT, true, NONE, true, None),       // "None + Pending Out": MUST
                (NONE_IN, true, NONE_IN, false, None),    // "None + Pending In": MUST, no change
                (NONE_OUT_IN, true, NONE_IN, true, None), // "None + Pending Out+In": MUST
                (TO, true, NONE, true, None),             // "To": MUST
                (TO_IN, true, NONE_IN, true, None),       // "To + Pending In": MUST
                (FROM, true, FROM, false, None),          // "From": MUST, no change
                (FROM_OUT, true, FROM, true, None),       // "From + Pending Out": MUST
                (BOTH, true, FROM, true, None),           // "Both": MUST
            ],
        );
    }

    #[test]
    fn a_2_3_outbound_subscribed_approves_or_pre_approves() {
        // RFC 6121 A.2.3, Table 4 ("M.N." = MUST NOT route); §3.1.5 for the presence sent
        // after an approval; §3.4.2 steps 3-4 for the pushed pre-approvals.
        check_outbound(
            "A.2.3",
            Outbound::Subscribed,
            &[
                (NONE, false, NONE.pre_approved(), true, None), // "None": M.N., pre-approval
                (NONE_OUT, false, NONE_OUT.pre_approved(), true, None), // "None + Pending Out": M.N., pre-approval
                (NONE_IN, true, FROM, true, AVAILABLE),                 // "None + Pending In": MUST
                (NONE_OUT_IN, true, FROM_OUT, true, AVAILABLE), // "None + Pending Out+In": MUST
                (TO, false, TO.pre_approved(), true, None),     // "To": M.N., pre-approval
                (TO_IN, true, BOTH, true, AVAILABLE),           // "To + Pending In": MUST
                (FROM, false, FROM, false, None),               // "From": M.N., no change
                (FROM_OUT, false, FROM_OUT, false, None), // "From + Pending Out": M.N., no change
                (BOTH, false, BOTH, false, None),         // "Both": M.N., no change
            ],
        );
    }

    #[test]
    fn a_2_4_outbound_unsubscribed_denies_or_cancels() {
        // RFC 6121 A.2.4, Table 5 ("S.N." = SHOULD NOT route); §3.2.2 step 3: unavailable
        // presence goes with every routed "unsubscribed".
        check_outbound(
            "A.2.4",
            Outbound::Unsubscribed,
            &[
                (NONE, false, NONE, false, None), // "None": S.N., no change [1]
                (NONE_OUT, false, NONE_OUT, false, None), // "None + Pending Out": S.N., no change [1]
                (NONE_IN, true, NONE, false, UNAVAILABLE), // "None + Pending In": MUST
                (NONE_OUT_IN, true, NONE_OUT, false, UNAVAILABLE), // "None + Pending Out+In": MUST
                (TO, false, TO, false, None),             // "To": S.N., no change [1]
                (TO_IN, true, TO, false, UNAVAILABLE),    // "To + Pending In": MUST
                (FROM, true, NONE, true, UNAVAILABLE),    // "From": MUST
                (FROM_OUT, true, NONE_OUT, true, UNAVAILABLE), // "From + Pending Out": MUST
                (BOTH, true, TO, true, UNAVAILABLE),      // "Both": MUST
            ],
        );
    }

    #[test]
    fn a_3_1_inbound_subscribe_is_delivered_once_or_auto_approved() {
        // RFC 6121 A.3.1, Table 6 ("S.N." = SHOULD NOT deliver); note [2]: auto-reply
        // "subscribed" when the contact is already subscribed. No push: pending-in is not in
        // the roster, and the server MUST NOT create an item for it (A.1, state 3).
        check_inbound(
            "A.3.1",
            Inbound::Subscribe,
            &[
                (NONE, true, NONE_IN, false, None),             // "None": MUST [1]
                (NONE_OUT, true, NONE_OUT_IN, false, None),     // "None + Pending Out": MUST
                (NONE_IN, false, NONE_IN, false, None),         // "None + Pending In": S.N.
                (NONE_OUT_IN, false, NONE_OUT_IN, false, None), // "None + Pending Out+In": S.N.
                (TO, true, TO_IN, false, None),                 // "To": MUST
                (TO_IN, false, TO_IN, false, None),             // "To + Pending In": S.N.
                (FROM, false, FROM, false, SUBSCRIBED),         // "From": S.N. [2]
                (FROM_OUT, false, FROM_OUT, false, SUBSCRIBED), // "From + Pending Out": S.N. [2]
                (BOTH, false, BOTH, false, SUBSCRIBED),         // "Both": S.N. [2]
            ],
        );
        for s in ALL {
            let r = inbound(s, Inbound::Subscribe);
            assert_eq!(r.presence, None, "A.3.1, row \"{s}\": no presence");
            assert!(!r.send_probe, "A.3.1, row \"{s}\": no probe");
        }
    }

    #[test]
    fn a_3_2_inbound_unsubscribe_is_delivered_and_answered_when_it_changes_the_state() {
        // RFC 6121 A.3.2, Table 7; note [1]: auto-reply "unsubscribed" on the MUST rows.
        check_inbound(
            "A.3.2",
            Inbound::Unsubscribe,
            &[
                (NONE, false, NONE, false, None),         // "None": S.N., no change
                (NONE_OUT, false, NONE_OUT, false, None), // "None + Pending Out": S.N., no change
                (NONE_IN, true, NONE, false, UNSUBSCRIBED), // "None + Pending In": MUST [1]
                (NONE_OUT_IN, true, NONE_OUT, false, UNSUBSCRIBED), // "None + Pending Out+In": MUST [1]
                (TO, false, TO, false, None),                       // "To": S.N., no change
                (TO_IN, true, TO, false, UNSUBSCRIBED),             // "To + Pending In": MUST [1]
                (FROM, true, NONE, true, UNSUBSCRIBED),             // "From": MUST [1]
                (FROM_OUT, true, NONE_OUT, true, UNSUBSCRIBED), // "From + Pending Out": MUST [1]
                (BOTH, true, TO, true, UNSUBSCRIBED),           // "Both": MUST [1]
            ],
        );
        // §3.3.3 step 3: unavailable presence exactly where the contact had a subscription.
        for s in ALL {
            let r = inbound(s, Inbound::Unsubscribe);
            let expected = s
                .subscription
                .includes_from()
                .then_some(SendPresence::Unavailable);
            assert_eq!(r.presence, expected, "§3.3.3, row \"{s}\": presence");
            assert!(!r.send_probe, "A.3.2, row \"{s}\": no probe");
        }
    }

    #[test]
    fn a_3_3_inbound_subscribed_only_answers_a_pending_request() {
        // RFC 6121 A.3.3, Table 8; §3.1.6: deliver, then push "to" or "both".
        check_inbound(
            "A.3.3",
            Inbound::Subscribed,
            &[
                (NONE, false, NONE, false, None),       // "None": S.N., no change
                (NONE_OUT, true, TO, true, None),       // "None + Pending Out": MUST
                (NONE_IN, false, NONE_IN, false, None), // "None + Pending In": S.N., no change
                (NONE_OUT_IN, true, TO_IN, true, None), // "None + Pending Out+In": MUST
                (TO, false, TO, false, None),           // "To": S.N., no change
                (TO_IN, false, TO_IN, false, None),     // "To + Pending In": S.N., no change
                (FROM, false, FROM, false, None),       // "From": S.N., no change
                (FROM_OUT, true, BOTH, true, None),     // "From + Pending Out": MUST
                (BOTH, false, BOTH, false, None),       // "Both": S.N., no change
            ],
        );
        // §4.3.1: probe the contact exactly when the user became subscribed to it.
        for s in ALL {
            let r = inbound(s, Inbound::Subscribed);
            let gained_to = !s.subscription.includes_to() && r.state.subscription.includes_to();
            assert_eq!(r.send_probe, gained_to, "row \"{s}\": probe");
            assert_eq!(r.presence, None, "A.3.3, row \"{s}\": no presence");
        }
    }

    #[test]
    fn a_3_4_inbound_unsubscribed_denies_or_cancels_the_users_subscription() {
        // RFC 6121 A.3.4, Table 9; §3.2.3: deliver, then push "none" or "from".
        check_inbound(
            "A.3.4",
            Inbound::Unsubscribed,
            &[
                (NONE, false, NONE, false, None),         // "None": S.N., no change
                (NONE_OUT, true, NONE, true, None),       // "None + Pending Out": MUST
                (NONE_IN, false, NONE_IN, false, None),   // "None + Pending In": S.N., no change
                (NONE_OUT_IN, true, NONE_IN, true, None), // "None + Pending Out+In": MUST
                (TO, true, NONE, true, None),             // "To": MUST
                (TO_IN, true, NONE_IN, true, None),       // "To + Pending In": MUST
                (FROM, false, FROM, false, None),         // "From": S.N., no change
                (FROM_OUT, true, FROM, true, None),       // "From + Pending Out": MUST
                (BOTH, true, FROM, true, None),           // "Both": MUST
            ],
        );
        for s in ALL {
            let r = inbound(s, Inbound::Unsubscribed);
            assert_eq!(r.presence, None, "A.3.4, row \"{s}\": no presence");
            assert!(!r.send_probe, "A.3.4, row \"{s}\": no probe");
        }
    }

    #[test]
    fn a_1_states_show_in_the_roster_as_the_rfc_says() {
        // RFC 6121 A.1: (state, subscription attribute, ask) for the nine states.
        let expected = [
            (NONE, "none", None),
            (NONE_OUT, "none", Some("subscribe")),
            (NONE_IN, "none", None),
            (NONE_OUT_IN, "none", Some("subscribe")),
            (TO, "to", None),
            (TO_IN, "to", None),
            (FROM, "from", None),
            (FROM_OUT, "from", Some("subscribe")),
            (BOTH, "both", None),
        ];
        for (s, attr, ask) in expected {
            assert_eq!(s.subscription_attr(), attr, "\"{s}\"");
            assert_eq!(s.ask(), ask, "\"{s}\"");
            assert!(!s.approved(), "\"{s}\"");
            assert_eq!(s.is_empty(), s == NONE, "\"{s}\"");
        }
        assert!(
            !NONE.pre_approved().is_empty(),
            "a pre-approval keeps the item"
        );
        assert!(NONE.pre_approved().approved());
    }

    #[test]
    fn states_print_with_the_rfc_names() {
        let names: Vec<String> = ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "None",
                "None + Pending Out",
                "None + Pending In",
                "None + Pending Out+In",
                "To",
                "To + Pending In",
                "From",
                "From + Pending Out",
                "Both"
            ]
        );
        assert_eq!(TO.pre_approved().to_string(), "To (pre-approved)");
        // A pre-approval outside the three states that can hold one means nothing (§3.4.2).
        assert_eq!(BOTH.pre_approved().to_string(), "Both");
    }

    #[test]
    fn subscription_attribute_round_trips() {
        for sub in [
            Subscription::None,
            Subscription::To,
            Subscription::From,
            Subscription::Both,
        ] {
            assert_eq!(Subscription::from_attr(sub.as_str()), Some(sub));
            assert_eq!(sub.to_string(), sub.as_str());
        }
        // RFC 6121 §2.1.2.5: "remove" is a request in a roster set, not a state.
        assert_eq!(Subscription::from_attr("remove"), None);
        assert_eq!(Subscription::from_attr("Both"), None);
        assert_eq!(Subscription::default(), Subscription::None);
    }

    #[test]
    fn stanza_types_are_the_presence_type_values() {
        let out = [
            (Outbound::Subscribe, "subscribe"),
            (Outbound::Subscribed, "subscribed"),
            (Outbound::Unsubscribe, "unsubscribe"),
            (Outbound::Unsubscribed, "unsubscribed"),
        ];
        for (ev, ty) in out {
            assert_eq!(ev.as_str(), ty);
            assert_eq!(Inbound::from(ev).as_str(), ty, "arrives as the same type");
        }
        assert_eq!(Reply::Subscribed.as_str(), "subscribed");
        assert_eq!(Inbound::from(Reply::Subscribed), Inbound::Subscribed);
        assert_eq!(Reply::Unsubscribed.as_str(), "unsubscribed");
        assert_eq!(Inbound::from(Reply::Unsubscribed), Inbound::Unsubscribed);
    }

    #[test]
    fn pre_approval_of_an_unknown_contact_creates_the_item() {
        // RFC 6121 §3.4.2 step 4: a contact not yet in the roster ("None") gets an item with
        // approved='true', which is pushed; the stanza MUST NOT be routed.
        let r = outbound(NONE, Outbound::Subscribed);
        assert!(!r.route);
        assert!(r.roster_push);
        assert_eq!(r.presence, None);
        assert!(r.state.approved());
        assert_eq!(r.state.subscription_attr(), "none");
        assert!(!r.state.is_empty(), "the item must be kept");
        // A second pre-approval changes nothing, so pushes nothing.
        let again = outbound(r.state, Outbound::Subscribed);
        assert_eq!(again.state, r.state);
        assert!(!again.route && !again.roster_push);
    }

    #[test]
    fn pre_approved_requests_are_approved_by_the_server() {
        // RFC 6121 §3.4.2: with approved='true' the server MUST NOT deliver the "subscribe"
        // and MUST reply "subscribed"; the contact now has a subscription (A.3.1 note [1]), so
        // the user's presence follows (§3.1.5) and the roster changes.
        for (before, after) in [(NONE, FROM), (NONE_OUT, FROM_OUT), (TO, BOTH)] {
            let r = inbound(before.pre_approved(), Inbound::Subscribe);
            assert_eq!(r.state, after, "pre-approved \"{before}\"");
            assert!(!r.state.approved(), "the pre-approval is used up");
            assert!(!r.deliver, "pre-approved \"{before}\": not delivered");
            assert_eq!(r.auto_reply, Some(Reply::Subscribed));
            assert_eq!(r.presence, Some(SendPresence::Available));
            assert!(r.roster_push);
            assert!(!r.send_probe);
        }
    }

    #[test]
    fn pre_approval_survives_other_traffic_until_used_or_cancelled() {
        // The user pre-approves, then subscribes: still pre-approved with ask='subscribe'.
        let s = outbound(NONE, Outbound::Subscribed).state;
        let s = outbound(s, Outbound::Subscribe).state;
        assert_eq!(s, NONE_OUT.pre_approved());
        // The contact approves: "To", still pre-approved (§3.4.2 step 3 allows it in "To").
        let r = inbound(s, Inbound::Subscribed);
        assert_eq!(r.state, TO.pre_approved());
        assert!(r.send_probe);
        // The contact then asks: approved automatically, mutual subscription.
        let r = inbound(r.state, Inbound::Subscribe);
        assert_eq!(r.state, BOTH);
        assert_eq!(r.auto_reply, Some(Reply::Subscribed));
    }

    #[test]
    fn outbound_unsubscribed_cancels_a_pre_approval_without_routing() {
        // RFC 6121 §3.2.2 step 2 and A.2.4 note [1]: remove the pre-approval, MUST NOT route,
        // no unavailable presence; the push drops the 'approved' attribute (§3.4.2 note).
        for s in [NONE, NONE_OUT, TO] {
            let r = outbound(s.pre_approved(), Outbound::Unsubscribed);
            assert_eq!(r.state, s, "pre-approved \"{s}\"");
            assert!(!r.route, "pre-approved \"{s}\": not routed");
            assert!(r.roster_push, "pre-approved \"{s}\": 'approved' removed");
            assert_eq!(r.presence, None);
        }
        // Once cancelled, the contact's request is delivered again for the user to decide.
        let r = inbound(NONE, Inbound::Subscribe);
        assert!(r.deliver);
        assert_eq!(r.auto_reply, None);
    }

    #[test]
    fn unsubscribe_in_either_direction_keeps_a_pre_approval() {
        // The pre-approval concerns the contact's subscription to the user; the user's own
        // subscription to the contact going away does not touch it.
        assert_eq!(
            outbound(TO.pre_approved(), Outbound::Unsubscribe).state,
            NONE.pre_approved()
        );
        let r = inbound(TO.pre_approved(), Inbound::Unsubscribed);
        assert_eq!(r.state, NONE.pre_approved());
        assert!(r.deliver && r.roster_push);
    }

    #[test]
    fn states_outside_a_1_are_read_as_the_nearest_state() {
        // "To" with a stale ask: no ask shown, and a new "subscribe" changes nothing visible.
        let stale = SubState {
            pending_out: true,
            ..TO
        };
        assert_eq!(stale.ask(), None);
        let r = outbound(stale, Outbound::Subscribe);
        assert_eq!(r.state, TO);
        assert!(!r.roster_push);
        // A pre-approval with a subscription "from" means nothing (§3.4.2 step 1).
        let moot = FROM.pre_approved();
        assert!(!moot.approved());
        let r = inbound(moot, Inbound::Subscribe);
        assert_eq!(r.state, FROM);
        assert_eq!(r.auto_reply, Some(Reply::Subscribed));
    }

    #[test]
    fn every_result_is_in_normal_form() {
        let starts = ALL
            .into_iter()
            .chain([NONE, NONE_OUT, TO].map(SubState::pre_approved));
        for s in starts {
            for ev in [
                Outbound::Subscribe,
                Outbound::Subscribed,
                Outbound::Unsubscribe,
                Outbound::Unsubscribed,
            ] {
                let n = outbound(s, ev).state;
                assert!(
                    ALL.contains(&n)
                        || (n.approved()
                            && ALL.contains(&SubState {
                                pre_approved: false,
                                ..n
                            })),
                    "\"{s}\" + outbound {ev:?} gave {n:?}"
                );
                assert_eq!(n.pre_approved, n.approved(), "\"{s}\" + outbound {ev:?}");
            }
            for ev in [
                Inbound::Subscribe,
                Inbound::Subscribed,
                Inbound::Unsubscribe,
                Inbound::Unsubscribed,
            ] {
                let n = inbound(s, ev).state;
                assert!(
                    ALL.contains(&n)
                        || (n.approved()
                            && ALL.contains(&SubState {
                                pre_approved: false,
                                ..n
                            })),
                    "\"{s}\" + inbound {ev:?} gave {n:?}"
                );
                assert_eq!(n.pre_approved, n.approved(), "\"{s}\" + inbound {ev:?}");
            }
        }
    }

    #[test]
    fn sub_state_stays_small() {
        // Stored once per roster item; four bytes today.
        assert_eq!(std::mem::size_of::<SubState>(), 4);
    }

    /// Two accounts, each with the other in its roster, and an in-memory network between
    /// their servers: routed stanzas and auto-replies become the other side's inbound events.
    struct Pair {
        alice: SubState,
        bob: SubState,
        /// What each user's available resources were given, in order.
        delivered: Vec<(&'static str, Inbound)>,
    }

    impl Pair {
        fn new() -> Pair {
            Pair {
                alice: SubState::NONE,
                bob: SubState::NONE,
                delivered: Vec::new(),
            }
        }

        fn state(&mut self, who: &str) -> &mut SubState {
            if who == "alice" {
                &mut self.alice
            } else {
                &mut self.bob
            }
        }

        /// `who`'s client sends `ev` to the other; runs until the network is quiet.
        fn send(&mut self, who: &'static str, ev: Outbound) {
            let other = if who == "alice" { "bob" } else { "alice" };
            let r = outbound(*self.state(who), ev);
            *self.state(who) = r.state;
            let mut wire = Vec::new();
            if r.route {
                wire.push((other, Inbound::from(ev)));
            }
            while let Some((to, ev)) = wire.pop() {
                let back = if to == "alice" { "bob" } else { "alice" };
                let r = inbound(*self.state(to), ev);
                *self.state(to) = r.state;
                if r.deliver {
                    self.delivered.push((to, ev));
                }
                if let Some(reply) = r.auto_reply {
                    wire.push((back, Inbound::from(reply)));
                }
            }
        }
    }

    #[test]
    fn alice_and_bob_subscribe_to_each_other() {
        // RFC 6121 §3.1: alice asks, bob approves, bob asks back, alice approves.
        let mut net = Pair::new();
        net.send("alice", Outbound::Subscribe);
        assert_eq!((net.alice, net.bob), (NONE_OUT, NONE_IN));
        net.send("bob", Outbound::Subscribed);
        assert_eq!((net.alice, net.bob), (TO, FROM));
        net.send("bob", Outbound::Subscribe);
        assert_eq!((net.alice, net.bob), (TO_IN, FROM_OUT));
        net.send("alice", Outbound::Subscribed);
        assert_eq!((net.alice, net.bob), (BOTH, BOTH));
        assert_eq!(
            net.delivered,
            [
                ("bob", Inbound::Subscribe),
                ("alice", Inbound::Subscribed),
                ("alice", Inbound::Subscribe),
                ("bob", Inbound::Subscribed),
            ]
        );
        // A repeated request is answered by alice's server and never reaches alice.
        net.send("bob", Outbound::Subscribe);
        assert_eq!((net.alice, net.bob), (BOTH, BOTH));
        assert_eq!(net.delivered.len(), 4);
    }

    #[test]
    fn a_pre_approved_request_completes_without_asking_bob() {
        // RFC 6121 §3.4: bob pre-approves alice, alice's request is approved by bob's server.
        let mut net = Pair::new();
        net.send("bob", Outbound::Subscribed);
        assert_eq!((net.alice, net.bob), (NONE, NONE.pre_approved()));
        net.send("alice", Outbound::Subscribe);
        assert_eq!((net.alice, net.bob), (TO, FROM));
        assert_eq!(net.delivered, [("alice", Inbound::Subscribed)]);
    }

    #[test]
    fn alice_and_bob_undo_a_mutual_subscription() {
        // RFC 6121 §3.3 then §3.2: alice unsubscribes from bob, then cancels bob's
        // subscription to her; both sides end in "None".
        let mut net = Pair::new();
        net.alice = BOTH;
        net.bob = BOTH;
        net.send("alice", Outbound::Unsubscribe);
        // bob's server auto-replies "unsubscribed" (A.3.2 note [1]); alice is already "From",
        // where an inbound "unsubscribed" changes nothing (A.3.4) and is not delivered.
        assert_eq!((net.alice, net.bob), (FROM, TO));
        net.send("alice", Outbound::Unsubscribed);
        assert_eq!((net.alice, net.bob), (NONE, NONE));
        assert!(net.alice.is_empty() && net.bob.is_empty());
        assert_eq!(
            net.delivered,
            [
                ("bob", Inbound::Unsubscribe),
                ("bob", Inbound::Unsubscribed)
            ]
        );
    }
}
