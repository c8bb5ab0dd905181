//! The set of known keys and the type each holds, read off the [`Settings`] type itself.
//!
//! serde hands every struct's field list to the deserializer (`deserialize_struct(name, FIELDS,
//! …)`), so a deserializer that records what it is asked for learns every section, every key and
//! every leaf type without a hand-kept table that could drift from the structs. The merged
//! configuration is then walked against that tree before the real deserialization, which lets
//! every error name the full dotted key (`c2s.bogus`), not just the field.

use std::collections::BTreeMap;

use config::{Map, Value, ValueKind};
use serde::de::value::{BorrowedStrDeserializer, Error as DeError, SeqDeserializer};
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, Visitor};

use crate::load::ConfigError;
use crate::Settings;

/// What a leaf key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `true` or `false`.
    Bool,
    /// A string (also paths).
    Str,
    /// A list of strings.
    StrList,
    /// A whole number from 0 to `max`.
    UInt {
        /// Largest accepted value.
        max: u64,
    },
    /// A number, with or without a fractional part (`telemetry.sample_ratio`).
    Float,
}

/// A section (table of keys) or a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A value.
    Leaf(Kind),
    /// A table of named children.
    Section(BTreeMap<&'static str, Node>),
}

impl Node {
    /// The node at `path` (already split into segments), if there is one.
    pub(crate) fn lookup<'a, I>(&self, path: I) -> Option<&Node>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut node = self;
        for segment in path {
            match node {
                Node::Section(children) => node = children.get(segment)?,
                Node::Leaf(_) => return None,
            }
        }
        Some(node)
    }

    /// Every leaf key, dotted, in order.
    #[cfg(test)]
    pub(crate) fn leaf_keys(&self) -> Vec<(String, Kind)> {
        fn walk(node: &Node, prefix: &str, out: &mut Vec<(String, Kind)>) {
            match node {
                Node::Leaf(kind) => out.push((prefix.to_owned(), *kind)),
                Node::Section(children) => {
                    for (name, child) in children {
                        walk(child, &join(prefix, name), out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(self, "", &mut out);
        out
    }
}

/// The key tree of [`Settings`].
///
/// Fails only if `Settings` gains a field of a type the probe does not know, which the tests
/// catch; callers report it as an error rather than panicking.
pub(crate) fn settings_schema() -> Result<Node, String> {
    let mut root = None;
    Settings::deserialize(Probe { out: &mut root })
        .map_err(|e| format!("cannot describe the settings: {e}"))?;
    root.ok_or_else(|| "cannot describe the settings: nothing recorded".to_owned())
}

/// Checks `table` (the merged file and environment) against `schema`: no unknown keys, and each
/// value of the type its key holds. Keys are visited in sorted order so the error reported for a
/// file with several problems is always the same one.
pub(crate) fn check_table(
    table: &Map<String, Value>,
    schema: &Node,
    prefix: &str,
) -> Result<(), ConfigError> {
    let Node::Section(children) = schema else {
        return Err(ConfigError::InvalidValue {
            key: prefix.to_owned(),
            reason: "is not a section".into(),
        });
    };
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort();
    for name in keys {
        let key = join(prefix, name);
        let Some(value) = table.get(name.as_str()) else {
            continue;
        };
        match children.get(name.as_str()) {
            None => return Err(ConfigError::UnknownKey { key }),
            Some(child @ Node::Section(_)) => match &value.kind {
                ValueKind::Table(sub) => check_table(sub, child, &key)?,
                other => {
                    return Err(ConfigError::InvalidValue {
                        reason: format!("expected a section ([{key}]), found {}", describe(other)),
                        key,
                    })
                }
            },
            Some(Node::Leaf(kind)) => check_leaf(&value.kind, *kind)
                .map_err(|reason| ConfigError::InvalidValue { key, reason })?,
        }
    }
    Ok(())
}

/// Checks one value against the type of its key. Stricter than the `config` crate's own
/// conversions on purpose: TOML is typed, so `max_depth = "32"` or `require_starttls = 1` is a
/// mistake worth reporting rather than guessing at.
fn check_leaf(value: &ValueKind, kind: Kind) -> Result<(), String> {
    let ok = match (kind, value) {
        (Kind::Bool, ValueKind::Boolean(_)) | (Kind::Str, ValueKind::String(_)) => true,
        (Kind::StrList, ValueKind::Array(items)) => {
            if let Some(bad) = items
                .iter()
                .find(|v| !matches!(v.kind, ValueKind::String(_)))
            {
                return Err(format!(
                    "expected a list of strings, found an element that is {}",
                    describe(&bad.kind)
                ));
            }
            true
        }
        (Kind::UInt { max }, ValueKind::I64(n)) => return check_uint(i128::from(*n), max),
        (Kind::UInt { max }, ValueKind::I128(n)) => return check_uint(*n, max),
        (Kind::UInt { max }, ValueKind::U64(n)) => return check_uint(i128::from(*n), max),
        (Kind::Float, ValueKind::Float(n)) => n.is_finite(),
        (Kind::Float, ValueKind::I64(_) | ValueKind::U64(_)) => true,
        (Kind::UInt { max }, ValueKind::U128(n)) => {
            return check_uint(i128::try_from(*n).unwrap_or(i128::MAX), max);
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {}, found {}",
            expected(kind),
            describe(value)
        ))
    }
}

fn check_uint(n: i128, max: u64) -> Result<(), String> {
    if n < 0 {
        Err(format!(
            "expected a whole number from 0 to {max}, found {n}"
        ))
    } else if n > i128::from(max) {
        Err(format!(
            "{n} is too large; the largest accepted value is {max}"
        ))
    } else {
        Ok(())
    }
}

/// "expected …" wording for a kind.
pub(crate) fn expected(kind: Kind) -> String {
    match kind {
        Kind::Bool => "true or false".into(),
        Kind::Str => "a string".into(),
        Kind::StrList => "a list of strings".into(),
        Kind::UInt { max } => format!("a whole number from 0 to {max}"),
        Kind::Float => "a number".into(),
    }
}

/// What a value is, for error messages.
fn describe(value: &ValueKind) -> String {
    match value {
        ValueKind::Nil => "nothing".into(),
        ValueKind::Boolean(b) => format!("the boolean {b}"),
        ValueKind::I64(n) => format!("the number {n}"),
        ValueKind::I128(n) => format!("the number {n}"),
        ValueKind::U64(n) => format!("the number {n}"),
        ValueKind::U128(n) => format!("the number {n}"),
        ValueKind::Float(n) => format!("the number {n}"),
        ValueKind::String(s) => format!("the string {s:?}"),
        ValueKind::Table(_) => "a section".into(),
        ValueKind::Array(_) => "a list".into(),
    }
}

/// `prefix.name`, or `name` at the root.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A deserializer that produces placeholder values and records, into `out`, the shape it was
/// asked for.
struct Probe<'a> {
    out: &'a mut Option<Node>,
}

impl Probe<'_> {
    fn leaf(self, kind: Kind) {
        *self.out = Some(Node::Leaf(kind));
    }
}

macro_rules! probe_uint {
    ($($method:ident => $ty:ty),* $(,)?) => {$(
        fn $method<V>(self, visitor: V) -> Result<V::Value, DeError>
        where
            V: Visitor<'de>,
        {
            self.leaf(Kind::UInt { max: u64::from(<$ty>::MAX) });
            visitor.visit_u64(0)
        }
    )*};
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = DeError;

    fn deserialize_any<V>(self, _visitor: V) -> Result<V::Value, DeError>
    where
        V: Visitor<'de>,
    {
        Err(de::Error::custom(
            "a settings field has a type the key schema does not support",
        ))
    }

    fn deserialize_bool<V>(self, visitor: V) -> Result<V::Value, DeError>
    where
        V: Visitor<'de>,
    {
        self.leaf(Kind::Bool);
        visitor.visit_bool(false)
    }

    probe_uint!(deserialize_u8 => u8, deserialize_u16 => u16, deserialize_u32 => u32, deserialize_u64 => u64);

    fn deserialize_f64<V>(self, visitor: V) -> Result<V::Value, DeError>
    where
        V: Visitor<'de>,
    {
        self.leaf(Kind::Float);
        visitor.visit_f64(0.0)
    }

    fn deserialize_str<V>(self, visitor: V) -> Result<V::Value, DeError>
    where
        V: Visitor<'de>,
    {
        self.leaf(Kind::Str);
        visitor.visit_str("")
    }

    fn deserialize_string<V>(self, visitor: V) -> Result<V::Value, DeError>
    where
        V: Visitor<'de>,
    {
        self.leaf(Kind::Str);
        visitor.visit_str("")
    }

    fn deserialize_seq<V>(self, visitor: V) -> Result<V::Value, DeError>
    where
        V: Visitor<'de>,
    {
        // The only lists in the settings are lists of strings (`server.domains`); an empty one
        // is enough to satisfy the visitor.
        self.leaf(Kind::StrList);
        visitor.visit_seq(SeqDeserializer::<_, DeError>::new(
            std::iter::empty::<String>(),
        ))
    }

    fn deserialize_struct<V>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError>
    where
        V: Visitor<'de>,
    {
        let mut children = BTreeMap::new();
        let value = visitor.visit_map(Fields {
            fields,
            next: 0,
            children: &mut children,
        })?;
        *self.out = Some(Node::Section(children));
        Ok(value)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u128 f32 char bytes byte_buf option unit unit_struct
        newtype_struct tuple tuple_struct map enum identifier ignored_any
    }
}

/// Feeds a struct visitor each of its own field names, probing each value.
struct Fields<'a> {
    fields: &'static [&'static str],
    next: usize,
    children: &'a mut BTreeMap<&'static str, Node>,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = DeError;

    fn next_key_seed<K>(&mut self, seed: K) -> Result<Option<K::Value>, DeError>
    where
        K: DeserializeSeed<'de>,
    {
        match self.fields.get(self.next) {
            Some(name) => seed
                .deserialize(BorrowedStrDeserializer::<DeError>::new(name))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<S>(&mut self, seed: S) -> Result<S::Value, DeError>
    where
        S: DeserializeSeed<'de>,
    {
        let name = self
            .fields
            .get(self.next)
            .copied()
            .ok_or_else(|| de::Error::custom("value without a key"))?;
        self.next += 1;
        let mut child = None;
        let value = seed.deserialize(Probe { out: &mut child })?;
        let child =
            child.ok_or_else(|| de::Error::custom(format!("field `{name}` recorded nothing")))?;
        self.children.insert(name, child);
        Ok(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use super::*;

    #[test]
    fn schema_lists_every_key_with_its_type() {
        let schema = settings_schema().unwrap();
        let keys = schema.leaf_keys();
        let find = |k: &str| keys.iter().find(|(key, _)| key == k).map(|(_, kind)| *kind);
        assert_eq!(
            find("version"),
            Some(Kind::UInt {
                max: u64::from(u32::MAX)
            })
        );
        assert_eq!(find("server.domains"), Some(Kind::StrList));
        assert_eq!(find("c2s.require_starttls"), Some(Kind::Bool));
        assert_eq!(
            find("c2s.read_rate_bytes_per_sec"),
            Some(Kind::UInt {
                max: u64::from(u32::MAX)
            })
        );
        assert_eq!(
            find("limits.max_stanza_bytes"),
            Some(Kind::UInt { max: u64::MAX })
        );
        assert_eq!(find("storage.path"), Some(Kind::Str));
        assert_eq!(find("log.format"), Some(Kind::Str));
        assert_eq!(find("c2s.bogus"), None);
        assert_eq!(find("storage.redis.url"), Some(Kind::Str));
        assert_eq!(
            find("storage.redis.command_timeout_ms"),
            Some(Kind::UInt { max: u64::MAX })
        );
        // 1 + domains + 9 c2s + 2 tls + 3 storage + 6 storage.redis + 7 limits + 4 timeouts
        // + 2 auth + 2 log + 11 cluster + 4 cluster.tls + 1 admin + 6 telemetry.
        assert_eq!(find("cluster.members"), Some(Kind::StrList));
        assert_eq!(find("cluster.node_id"), Some(Kind::UInt { max: u64::MAX }));
        assert_eq!(find("telemetry.sample_ratio"), Some(Kind::Float));
        assert_eq!(keys.len(), 59, "{keys:?}");
    }

    #[test]
    fn lookup_walks_sections() {
        let schema = settings_schema().unwrap();
        assert!(matches!(schema.lookup(["c2s"]), Some(Node::Section(_))));
        assert_eq!(
            schema.lookup(["auth", "allow_plain"]),
            Some(&Node::Leaf(Kind::Bool))
        );
        assert_eq!(schema.lookup(["auth", "allow_plain", "deeper"]), None);
        assert_eq!(schema.lookup(["nope"]), None);
    }

    #[test]
    fn leaf_types_are_checked() {
        assert!(check_leaf(&ValueKind::Boolean(true), Kind::Bool).is_ok());
        assert!(check_leaf(&ValueKind::I64(1), Kind::Bool).is_err());
        assert!(check_leaf(&ValueKind::String("32".into()), Kind::UInt { max: 10 }).is_err());
        assert!(check_leaf(&ValueKind::I64(10), Kind::UInt { max: 10 }).is_ok());
        let err = check_leaf(&ValueKind::I64(11), Kind::UInt { max: 10 }).unwrap_err();
        assert!(err.contains("too large"), "{err}");
        let err = check_leaf(&ValueKind::I64(-1), Kind::UInt { max: 10 }).unwrap_err();
        assert!(err.contains("-1"), "{err}");
        let list = ValueKind::Array(vec![Value::new(None, "a"), Value::new(None, 3_i64)]);
        assert!(check_leaf(&list, Kind::StrList).is_err());
    }
}
