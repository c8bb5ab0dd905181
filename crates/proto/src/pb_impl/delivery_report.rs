//! `(seq, Delivery)` ⇄ [`v1::DeliveryReport`].

use crate::{v1, Delivery, Malformed};

impl v1::DeliveryReport {
    /// The report answering envelope `seq` with outcome `delivery`.
    pub fn new(seq: u64, delivery: Delivery) -> Self {
        Self {
            seq,
            status: v1::DeliveryStatus::from(delivery) as i32,
        }
    }

    /// The outcome this report carries. A status this node does not know (a newer peer, or a
    /// report without one) is [`Malformed::UnknownEnum`], never a panic.
    pub fn delivery(&self) -> Result<Delivery, Malformed> {
        let unknown = Malformed::UnknownEnum {
            field: "status",
            value: self.status,
        };
        let status = v1::DeliveryStatus::try_from(self.status).map_err(|_| unknown)?;
        Delivery::try_from(status)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn a_report_round_trips_through_the_wire() {
        let report = v1::DeliveryReport::new(42, Delivery::QueueFull);
        let decoded = v1::DeliveryReport::decode(report.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.seq, 42);
        assert_eq!(decoded.delivery(), Ok(Delivery::QueueFull));
    }

    #[test]
    fn an_unknown_status_is_refused_with_its_value() {
        let report = v1::DeliveryReport { seq: 7, status: 99 };
        assert_eq!(
            report.delivery().map_err(|e| e.to_string()),
            Err("`status` has unknown value 99".to_owned())
        );
    }

    #[test]
    fn a_report_without_a_status_is_refused() {
        let decoded = v1::DeliveryReport::decode(&[0x08, 0x05][..]).unwrap();
        assert_eq!(decoded.seq, 5);
        assert_eq!(
            decoded.delivery(),
            Err(Malformed::UnknownEnum {
                field: "status",
                value: 0
            })
        );
    }
}
