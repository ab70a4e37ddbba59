//! Reading fields of a JSON object without copying; every helper is None unless the value has exactly the
//! type the Python parser requires, so a frame it cannot prove equal is declined.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::book::{is_decimal, Level};

/// The members of a JSON object, in order; a handful each, so a scan beats hashing. Like Python's `json`, the
/// last of repeated names wins.
pub struct Fields<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'a> Fields<'a> {
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(key, _)| *key == name).map(|(_, value)| *value)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(16);
                while let Some(member) = map.next_entry()? {
                    members.push(member); // a name with escapes fails to borrow: declined
                }
                Ok(Fields(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// `[[price, size], ...]` of decimal text, read straight into levels.
struct Levels(Vec<Level>);

impl<'de> Deserialize<'de> for Levels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Levels;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of [price, size] decimal strings")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut levels = Vec::with_capacity(seq.size_hint().unwrap_or(64));
                while let Some((price, size)) = seq.next_element::<(&str, &str)>()? {
                    levels.push(Level::new(price, size).ok_or_else(|| serde::de::Error::custom("not decimal text"))?);
                }
                Ok(Levels(levels))
            }
        }
        deserializer.deserialize_seq(Pairs)
    }
}

const NS_PER_MS: i64 = 1_000_000;

/// The fields of a JSON object; None for anything else (or a JSON error anywhere in the text).
pub fn object(text: &str) -> Option<Fields<'_>> {
    serde_json::from_str(text).ok()
}

pub fn nested<'a>(fields: &Fields<'a>, name: &str) -> Option<Fields<'a>> {
    object(fields.get(name)?.get())
}

/// A string without escapes (borrowed): an escaped one is left to Python, which decodes it.
pub fn text<'a>(fields: &Fields<'a>, name: &str) -> Option<&'a str> {
    serde_json::from_str(fields.get(name)?.get()).ok()
}

pub fn integer(fields: &Fields, name: &str) -> Option<i64> {
    serde_json::from_str(fields.get(name)?.get()).ok()
}

/// Absent or null is None; anything but an integer declines.
pub fn optional_integer(fields: &Fields, name: &str) -> Option<Option<i64>> {
    match fields.get(name) {
        None => Some(None),
        Some(raw) => serde_json::from_str(raw.get()).ok(),
    }
}

pub fn millis_as_ns(fields: &Fields, name: &str) -> Option<i64> {
    integer(fields, name)?.checked_mul(NS_PER_MS)
}

pub fn boolean(fields: &Fields, name: &str) -> Option<bool> {
    serde_json::from_str(fields.get(name)?.get()).ok()
}

pub fn decimal<'a>(fields: &Fields<'a>, name: &str) -> Option<&'a str> {
    text(fields, name).filter(|value| is_decimal(value))
}

/// An array of `[price, size]` pairs of decimal text.
pub fn levels(fields: &Fields, name: &str) -> Option<Vec<Level>> {
    serde_json::from_str::<Levels>(fields.get(name)?.get()).ok().map(|levels| levels.0)
}

pub fn ascii_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_another_type_decline() {
        let fields =
            object(r#"{"i": 5, "f": 5.0, "s": "5", "e": "\u0035", "n": null, "b": true, "l": [["1", "2"]]}"#).unwrap();
        assert_eq!((integer(&fields, "i"), integer(&fields, "f"), integer(&fields, "s")), (Some(5), None, None));
        assert_eq!((text(&fields, "s"), text(&fields, "e"), text(&fields, "i")), (Some("5"), None, None));
        assert_eq!(optional_integer(&fields, "n"), Some(None));
        assert_eq!(optional_integer(&fields, "missing"), Some(None));
        assert_eq!(optional_integer(&fields, "b"), None);
        assert_eq!(boolean(&fields, "b"), Some(true));
        assert_eq!(levels(&fields, "l").unwrap().len(), 1);
        assert!(levels(&fields, "s").is_none());
    }

    #[test]
    fn levels_are_exactly_pairs_of_decimal_text() {
        for bad in [
            r#"{"l": [["1"]]}"#,
            r#"{"l": [["1", "2", "3"]]}"#,
            r#"{"l": [["1", 2]]}"#,
            r#"{"l": [["1e2", "2"]]}"#,
            r#"{"l": "12"}"#,
            r#"{"l": {"1": "2"}}"#,
        ] {
            assert!(levels(&object(bad).unwrap(), "l").is_none(), "{bad}");
        }
        assert_eq!(levels(&object(r#"{"l": []}"#).unwrap(), "l"), Some(vec![]));
    }

    #[test]
    fn the_last_of_repeated_names_wins() {
        let fields = object(r#"{"u": 1, "s": "x", "u": 2}"#).unwrap();
        assert_eq!((integer(&fields, "u"), fields.contains_key("s"), fields.contains_key("v")), (Some(2), true, false));
        assert!(object("[1]").is_none() && object(r#"{"a": 1} x"#).is_none());
    }

    #[test]
    fn milliseconds_that_overflow_as_nanoseconds_decline() {
        let fields = object(r#"{"ok": 9223372036854, "big": 9223372036855}"#).unwrap();
        assert_eq!(millis_as_ns(&fields, "ok"), Some(9_223_372_036_854_000_000));
        assert_eq!(millis_as_ns(&fields, "big"), None);
    }
}
