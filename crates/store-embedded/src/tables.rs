//! The redb tables and the encodings of what goes in them (see the crate's `# Layout`).

use corvid_sasl::StoredCredentials;
use corvid_storage::{StoreError, StoreResult};
use redb::TableDefinition;

/// The on-disk layout this build reads and writes, kept in [`META`] under [`FORMAT_KEY`].
pub(crate) const FORMAT: u64 = 1;
/// The [`META`] key holding the layout version.
pub(crate) const FORMAT_KEY: &str = "format";

/// `name → u64`: facts about the database itself (the layout version).
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `bare JID → version byte ‖ JSON of StoredCredentials`.
pub(crate) const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
/// `(user, store name) → document`.
pub(crate) const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
/// `(user, store name, key) → value`.
pub(crate) const MAP: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("map");
/// `(user, store name, id) → item`.
pub(crate) const ARCHIVE: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("archive");
/// `(user, store name) → number of items` in [`ARCHIVE`]; absent means zero.
pub(crate) const ARCHIVE_COUNT: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("archive_count");
/// `store name → last id handed out` in that archive store, for all users together.
pub(crate) const ARCHIVE_SEQ: TableDefinition<&str, u64> = TableDefinition::new("archive_seq");

/// Version byte in front of an [`ACCOUNTS`] value: JSON of `StoredCredentials`.
const CREDENTIALS_V1: u8 = 1;

/// The smallest string greater than `s` in byte order (`s` followed by NUL).
///
/// Every key whose first tuple element is `s` sorts before `(successor(s), "", ...)` and at or
/// after `(s, "", ...)`, which turns "every row of this user" (or "every entry of this user in
/// this store") into one exact range.
pub(crate) fn successor(s: &str) -> String {
    let mut next = String::with_capacity(s.len() + 1);
    next.push_str(s);
    next.push('\0');
    next
}

/// Encodes credentials for [`ACCOUNTS`].
pub(crate) fn encode_credentials(creds: &StoredCredentials) -> StoreResult<Vec<u8>> {
    let mut out = vec![CREDENTIALS_V1];
    serde_json::to_writer(&mut out, creds)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode credentials: {e}")))?;
    Ok(out)
}

/// Decodes an [`ACCOUNTS`] value of `jid`.
pub(crate) fn decode_credentials(jid: &str, bytes: &[u8]) -> StoreResult<StoredCredentials> {
    match bytes.split_first() {
        Some((&CREDENTIALS_V1, json)) => serde_json::from_slice(json)
            .map_err(|e| StoreError::Corrupt(format!("credentials of {jid} do not decode: {e}"))),
        Some((version, _)) => Err(StoreError::Corrupt(format!(
            "credentials of {jid} have unknown format version {version}"
        ))),
        None => Err(StoreError::Corrupt(format!(
            "credentials of {jid} are empty"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use corvid_sasl::ScramKeys;

    use super::*;

    fn creds() -> StoredCredentials {
        let keys = ScramKeys {
            salt: vec![1, 2],
            iterations: 4096,
            stored_key: vec![3; 20],
            server_key: vec![4; 20],
        };
        StoredCredentials {
            sha1: keys.clone(),
            sha256: keys,
        }
    }

    #[test]
    fn credentials_round_trip_with_version_byte() {
        let bytes = encode_credentials(&creds()).unwrap();
        assert_eq!(bytes[0], CREDENTIALS_V1);
        assert_eq!(decode_credentials("a@b", &bytes).unwrap(), creds());
    }

    #[test]
    fn credentials_with_unknown_version_or_garbage_are_corrupt() {
        let mut bytes = encode_credentials(&creds()).unwrap();
        bytes[0] = 9;
        assert_eq!(
            decode_credentials("a@b", &bytes),
            Err(StoreError::Corrupt(
                "credentials of a@b have unknown format version 9".into()
            ))
        );
        assert!(matches!(
            decode_credentials("a@b", &[CREDENTIALS_V1, b'{']),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            decode_credentials("a@b", &[]),
            Err(StoreError::Corrupt("credentials of a@b are empty".into()))
        );
    }

    #[test]
    fn successor_bounds_exactly_the_keys_with_that_prefix_element() {
        let user = "al@x";
        let next = successor(user);
        assert!(user < next.as_str());
        // Longer users that start with the same bytes are outside the range.
        for other in ["al@x.y", "al@x\u{1}", "al@xa", "al@y"] {
            assert!(
                other >= next.as_str(),
                "{other:?} must sort after the range"
            );
        }
        assert!("al@w" < user);
    }
}
