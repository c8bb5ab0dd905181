//! Key names (see the crate's `# Layout` and `docs/storage.md`).
//!
//! Every key of one user starts with `{prefix}:{<user>}` or `{prefix}:acct:{<user>}`, so the
//! user is the Redis Cluster hash tag of all of them. `<user>` is the bare JID as it displays
//! (normalized once when it was parsed). A localpart may hold `}` but never `:` (RFC 7622
//! §3.3.1) and a domainpart holds no `}`, so the user ends at the first `}:` and no two
//! (user, store name) pairs share a key, whatever the store name holds.

use corvid_jid::BareJid;

/// The key names of one store (one prefix).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// What a key in a user's key set holds, recovered from its name (for export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DataKey {
    /// A key-value document of this store name.
    Kv(String),
    /// A map (hash) of this store name.
    Map(String),
    /// The items (hash) of this archive store name.
    Archive(String),
    /// The id index (sorted set) of this archive store name.
    ArchiveIndex(String),
}

impl Keys {
    /// Keys under `prefix` (validated by the settings: non-empty, no spaces or braces).
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// `{prefix}:format`: the layout version, a decimal string.
    pub(crate) fn format(&self) -> String {
        format!("{}:format", self.prefix)
    }

    /// `{prefix}:accounts`: set of every account's bare JID.
    pub(crate) fn accounts(&self) -> String {
        format!("{}:accounts", self.prefix)
    }

    /// `{prefix}:acct:{<user>}`: the account's credentials.
    pub(crate) fn account(&self, user: &BareJid) -> String {
        format!("{}:acct:{{{}}}", self.prefix, tag(user))
    }

    /// `{prefix}:{<user>}:`: the start of every data key of the user.
    pub(crate) fn user_prefix(&self, user: &BareJid) -> String {
        format!("{}:{{{}}}:", self.prefix, tag(user))
    }

    /// `{prefix}:{<user>}:keys`: set of the names of every data key the user has.
    pub(crate) fn user_keys(&self, user: &BareJid) -> String {
        format!("{}keys", self.user_prefix(user))
    }

    /// `{prefix}:{<user>}:kv:<store>`: a key-value document (string).
    pub(crate) fn kv(&self, user: &BareJid, store: &str) -> String {
        format!("{}kv:{store}", self.user_prefix(user))
    }

    /// `{prefix}:{<user>}:map:<store>`: a map (hash).
    pub(crate) fn map(&self, user: &BareJid, store: &str) -> String {
        format!("{}map:{store}", self.user_prefix(user))
    }

    /// `{prefix}:{<user>}:arc:<store>`: archive items (hash, decimal id → item).
    pub(crate) fn archive(&self, user: &BareJid, store: &str) -> String {
        format!("{}arc:{store}", self.user_prefix(user))
    }

    /// `{prefix}:{<user>}:arcidx:<store>`: archive ids (sorted set, member and score the id).
    pub(crate) fn archive_index(&self, user: &BareJid, store: &str) -> String {
        format!("{}arcidx:{store}", self.user_prefix(user))
    }

    /// `{prefix}:seq:<store>`: the last archive id handed out in that store, for all users.
    pub(crate) fn archive_seq(&self, store: &str) -> String {
        format!("{}:seq:{store}", self.prefix)
    }

    /// What the data key `key` of `user` holds; `None` for a name this layout does not make.
    pub(crate) fn classify(&self, user: &BareJid, key: &str) -> Option<DataKey> {
        let rest = key.strip_prefix(&self.user_prefix(user))?;
        if let Some(name) = rest.strip_prefix("kv:") {
            Some(DataKey::Kv(name.to_owned()))
        } else if let Some(name) = rest.strip_prefix("map:") {
            Some(DataKey::Map(name.to_owned()))
        } else if let Some(name) = rest.strip_prefix("arc:") {
            Some(DataKey::Archive(name.to_owned()))
        } else {
            rest.strip_prefix("arcidx:")
                .map(|name| DataKey::ArchiveIndex(name.to_owned()))
        }
    }
}

/// The user as written inside the braces.
fn tag(user: &BareJid) -> String {
    user.to_string()
}

/// The Redis Cluster hash tag of `key`: what lies between its first `{` and the next `}`.
#[cfg(test)]
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let len = key[open + 1..].find('}')?;
    Some(&key[open + 1..open + 1 + len]).filter(|t| !t.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use super::*;

    fn jid(s: &str) -> BareJid {
        s.parse().unwrap()
    }

    #[test]
    fn every_key_of_a_user_has_the_same_hash_tag() {
        let keys = Keys::new("corvid");
        for user in [
            "alice@example.org",
            "a}b{c@example.org",
            "example.org",
            "x@[::1]",
        ] {
            let user = jid(user);
            let all = [
                keys.account(&user),
                keys.user_keys(&user),
                keys.kv(&user, "vcard"),
                keys.map(&user, "roster"),
                keys.archive(&user, "offline"),
                keys.archive_index(&user, "offline"),
            ];
            let first = hash_tag(&all[0]).unwrap();
            for key in &all {
                assert_eq!(hash_tag(key), Some(first), "{key}");
            }
        }
    }

    #[test]
    fn key_names_are_as_documented() {
        let keys = Keys::new("c");
        let alice = jid("alice@example.org");
        assert_eq!(keys.account(&alice), "c:acct:{alice@example.org}");
        assert_eq!(keys.kv(&alice, "vcard"), "c:{alice@example.org}:kv:vcard");
        assert_eq!(keys.map(&alice, "r"), "c:{alice@example.org}:map:r");
        assert_eq!(keys.archive(&alice, "o"), "c:{alice@example.org}:arc:o");
        assert_eq!(
            keys.archive_index(&alice, "o"),
            "c:{alice@example.org}:arcidx:o"
        );
        assert_eq!(keys.user_keys(&alice), "c:{alice@example.org}:keys");
        assert_eq!(keys.archive_seq("o"), "c:seq:o");
        assert_eq!(keys.accounts(), "c:accounts");
        assert_eq!(keys.format(), "c:format");
    }

    #[test]
    fn the_user_ends_at_the_first_brace_colon() {
        // Localparts may hold `}` but not `:`, so store names cannot extend a user.
        assert!("d}:kv:s@x".parse::<BareJid>().is_err());
        let keys = Keys::new("c");
        let odd = jid("a}b@example.org");
        let key = keys.kv(&odd, "s}:kv:t");
        assert_eq!(key.find("}:"), Some("c:{a}b@example.org".len()));
        assert_eq!(
            keys.classify(&odd, &key),
            Some(DataKey::Kv("s}:kv:t".into()))
        );
    }

    #[test]
    fn classify_recovers_store_names_and_ignores_other_users() {
        let keys = Keys::new("c");
        let alice = jid("alice@example.org");
        assert_eq!(
            keys.classify(&alice, &keys.kv(&alice, "kv:odd name")),
            Some(DataKey::Kv("kv:odd name".into()))
        );
        assert_eq!(
            keys.classify(&alice, &keys.map(&alice, "")),
            Some(DataKey::Map(String::new()))
        );
        assert_eq!(
            keys.classify(&alice, &keys.archive(&alice, "o")),
            Some(DataKey::Archive("o".into()))
        );
        assert_eq!(
            keys.classify(&alice, &keys.archive_index(&alice, "o")),
            Some(DataKey::ArchiveIndex("o".into()))
        );
        let bob = jid("bob@example.org");
        assert_eq!(keys.classify(&alice, &keys.kv(&bob, "v")), None);
        assert_eq!(keys.classify(&alice, &keys.user_keys(&alice)), None);
    }
}
