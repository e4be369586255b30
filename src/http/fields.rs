//! The one reader of the reader endpoints' JSON bodies (a position, a
//! goodbye, a ticket, a poll): the body must be one JSON object, and each
//! endpoint reads the fields it knows by kind. Unknown fields are ignored,
//! so clients can add some without breaking. Pure: unit-tested here, and
//! the position parser built on it is property-tested.

use serde_json::{Map, Value};

/// A body that is one JSON object.
pub struct Fields(Map<String, Value>);

/// A field of the wrong kind (a number where a string belongs, say).
#[derive(Debug, PartialEq, Eq)]
pub struct WrongKind;

impl Fields {
    /// `None` unless the body is one JSON object.
    pub fn parse(body: &[u8]) -> Option<Fields> {
        serde_json::from_slice(body).ok().map(Fields)
    }

    /// The field as it came, if it came.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A string field; absent or `null` is `None`.
    pub fn text(&self, key: &str) -> Result<Option<&str>, WrongKind> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_str().map(Some).ok_or(WrongKind),
        }
    }

    /// A whole-number field; absent or `null` is `None`.
    pub fn whole(&self, key: &str) -> Result<Option<u64>, WrongKind> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or(WrongKind),
        }
    }

    /// A `true`/`false` field; absent or `null` is `None`.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, WrongKind> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_bool().map(Some).ok_or(WrongKind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_by_kind_and_only_an_object_is_a_body() {
        let fields =
            Fields::parse(br#"{"t":"x","n":3,"b":true,"z":null,"s":"3"}"#).expect("an object");
        assert_eq!(fields.text("t"), Ok(Some("x")));
        assert_eq!(fields.text("z"), Ok(None));
        assert_eq!(fields.text("missing"), Ok(None));
        assert_eq!(fields.text("n"), Err(WrongKind));
        assert_eq!(fields.whole("n"), Ok(Some(3)));
        assert_eq!(fields.whole("s"), Err(WrongKind));
        assert_eq!(fields.flag("b"), Ok(Some(true)));
        assert_eq!(fields.flag("t"), Err(WrongKind));
        for body in [&b"[]"[..], b"\"x\"", b"3", b"", b"{", b"null"] {
            assert!(Fields::parse(body).is_none(), "{body:?}");
        }
    }
}
