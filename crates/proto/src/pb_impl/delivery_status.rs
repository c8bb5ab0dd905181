//! [`Delivery`] ⇄ [`v1::DeliveryStatus`].

use crate::v1::DeliveryStatus;
use crate::{v1, Delivery, Malformed};

impl From<Delivery> for v1::DeliveryStatus {
    fn from(d: Delivery) -> Self {
        match d {
            Delivery::Delivered => Self::Delivered,
            Delivery::Invalid => Self::Invalid,
            Delivery::QueueFull => Self::QueueFull,
            Delivery::RecipientGone => Self::RecipientGone,
        }
    }
}

impl TryFrom<v1::DeliveryStatus> for Delivery {
    type Error = Malformed;

    fn try_from(s: v1::DeliveryStatus) -> Result<Self, Malformed> {
        match s {
            DeliveryStatus::Delivered => Ok(Self::Delivered),
            DeliveryStatus::Invalid => Ok(Self::Invalid),
            DeliveryStatus::QueueFull => Ok(Self::QueueFull),
            DeliveryStatus::RecipientGone => Ok(Self::RecipientGone),
            // Proto3 decodes a missing field as 0: a report without an outcome says nothing.
            DeliveryStatus::Unspecified => Err(Malformed::UnknownEnum {
                field: "status",
                value: s as i32,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Delivery; 4] = [
        Delivery::Delivered,
        Delivery::Invalid,
        Delivery::QueueFull,
        Delivery::RecipientGone,
    ];

    #[test]
    fn every_delivery_round_trips() {
        for d in ALL {
            assert_eq!(Delivery::try_from(v1::DeliveryStatus::from(d)), Ok(d));
        }
    }

    #[test]
    fn wire_values_are_the_ones_in_router_proto() {
        let wire: Vec<i32> = ALL
            .into_iter()
            .map(|d| v1::DeliveryStatus::from(d) as i32)
            .collect();
        assert_eq!(wire, [1, 4, 3, 2]);
    }

    #[test]
    fn unspecified_is_refused() {
        assert_eq!(
            Delivery::try_from(v1::DeliveryStatus::Unspecified).map_err(|e| e.to_string()),
            Err("`status` has unknown value 0".to_owned())
        );
    }
}
