//! XEP-0202 entity time: the server's time, in UTC.
//!
//! ```text
//!  iq get <time xmlns='urn:xmpp:time'/> to the server ──▶ <time><tzo>+00:00</tzo><utc>…Z</utc></time>
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use corvid_core::{IqHandler, IqOutcome, IqTarget, Module, Registrar, Services, Spec};
use corvid_stanza::{Condition, Stanza, StanzaError};
use corvid_xml::Element;
use time::macros::format_description;
use time::OffsetDateTime;
use tracing::warn;

/// The entity time namespace (XEP-0202 §3).
pub const NS: &str = "urn:xmpp:time";

/// The module.
#[derive(Default)]
pub struct EntityTime;

impl Module for EntityTime {
    fn name(&self) -> &'static str {
        "time"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "XEP-0202",
            version: "2.0",
            status: "complete",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        r.iq(IqTarget::Server, false, "time", NS, self);
        r.feature(NS);
    }
}

#[async_trait]
impl IqHandler for EntityTime {
    async fn handle(&self, _: &Services, _: &Stanza) -> IqOutcome {
        match answer(OffsetDateTime::now_utc()) {
            Some(el) => Ok(Some(el)),
            None => {
                warn!(what = "time-format-failed");
                Err(StanzaError::new(Condition::InternalServerError))
            }
        }
    }
}

/// XEP-0202 §3: `<tzo/>` is the offset from UTC (ours is zero) and `<utc/>` the time in UTC
/// in the DateTime profile of XEP-0082, here with milliseconds. `None` only if the clock reads
/// a year the profile cannot write.
pub fn answer(now: OffsetDateTime) -> Option<Element> {
    let utc = now
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .ok()?;
    Some(
        Element::new("time", NS)
            .with_child(Element::new("tzo", NS).with_text("+00:00"))
            .with_child(Element::new("utc", NS).with_text(utc)),
    )
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_answer_is_utc_with_a_zero_offset() {
        // XEP-0202 §3 example: <tzo>-06:00</tzo><utc>2006-12-19T17:58:35Z</utc>, here in UTC.
        let el = answer(datetime!(2006-12-19 11:58:35.25 -6)).unwrap();
        assert_eq!(
            el.child("tzo", NS).map(Element::text).as_deref(),
            Some("+00:00")
        );
        assert_eq!(
            el.child("utc", NS).map(Element::text).as_deref(),
            Some("2006-12-19T17:58:35.250Z")
        );
    }
}
