//! The request bodies every sim sends: a WRITE, a READ, a DELETE, and the VALUE answer.

use dsm_wire::Body;

pub fn write(key: &str, value: &str) -> Body {
    Body::Write {
        key: key.into(),
        value: value.into(),
    }
}

pub fn read(key: &str) -> Body {
    Body::Read { key: key.into() }
}

pub fn value(v: &str) -> Body {
    Body::Value {
        value: v.as_bytes().to_vec(),
    }
}

pub fn delete(key: &str) -> Body {
    Body::Delete {
        key: key.into(),
        expected: None,
    }
}
