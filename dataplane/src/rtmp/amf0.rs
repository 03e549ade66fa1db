//! A bounded AMF0 walker that vets command and data message bodies before `rml_amf0`
//! parses them.
//!
//! `rml_amf0` 0.3 recurses once per nesting level with no limit (a few kilobytes of nested
//! objects overflow the stack and abort the process), and `rml_rtmp` indexes the parsed
//! values without checking their count (`drain(..3)` for commands, `data[0]` and `remove(1)`
//! for `@setDataFrame`). This walker accepts a strict subset of what `rml_amf0` accepts, so
//! that whenever it says yes, `rml_amf0` parses the same number of top-level values, and
//! reports that number.
//!
//! Spec: Adobe "Action Message Format – AMF 0" (2007) §2. Markers `rml_amf0` rejects (date,
//! long string, reference, typed object, XML, AVM+) are rejected here too.

/// Deepest nesting of objects and arrays accepted. Encoders send flat `onMetaData` objects
/// and `connect` objects with one level of nesting at most.
pub(crate) const MAX_DEPTH: usize = 16;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;

/// What the walk found at the top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary<'a> {
    /// Top-level values, counted the way `rml_amf0::deserialize` counts them: it stops at
    /// the end of input or at a top-level object-end marker.
    pub(crate) values: usize,
    /// The first value, when it is a string (a command or data handler name).
    pub(crate) first_string: Option<&'a [u8]>,
}

/// Walks an AMF0 value sequence.
///
/// # Errors
/// A reason when a value is truncated, nested deeper than [`MAX_DEPTH`], or uses a marker
/// `rml_amf0` does not read.
pub(crate) fn skim(data: &[u8]) -> Result<Summary<'_>, &'static str> {
    let mut w = Walker { data, pos: 0 };
    let mut summary = Summary {
        values: 0,
        first_string: None,
    };
    while let Some(marker) = w.marker() {
        if marker == OBJECT_END {
            break;
        }
        if marker == STRING {
            let s = w.string()?;
            if summary.values == 0 {
                summary.first_string = Some(s);
            }
        } else {
            w.value(marker, 0)?;
        }
        summary.values += 1;
    }
    Ok(summary)
}

struct Walker<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Walker<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or("truncated AMF0 value")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next marker, or `None` at the end of input.
    fn marker(&mut self) -> Option<u8> {
        let m = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(m)
    }

    fn u16(&mut self) -> Result<usize, &'static str> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u16()?;
        self.take(n)
    }

    /// One value after its marker; `depth` is the nesting level the value sits at.
    fn value(&mut self, marker: u8, depth: usize) -> Result<(), &'static str> {
        match marker {
            NUMBER => self.take(8).map(drop),
            BOOLEAN => self.take(1).map(drop),
            STRING => self.string().map(drop),
            NULL | UNDEFINED => Ok(()),
            OBJECT => self.object(depth + 1),
            ECMA_ARRAY => {
                // rml_amf0 ignores the count and reads an object up to its end marker.
                self.u32()?;
                self.object(depth + 1)
            }
            STRICT_ARRAY => {
                let depth = nested(depth)?;
                let count = self.u32()?;
                // Like rml_amf0: the count is an upper bound; the end of input or an
                // object-end marker (consumed) ends the array early. Every element uses at
                // least one byte, so the loop is bounded by the input, not by `count`.
                for _ in 0..count {
                    match self.marker() {
                        None | Some(OBJECT_END) => break,
                        Some(m) => self.value(m, depth)?,
                    }
                }
                Ok(())
            }
            OBJECT_END => Err("object-end marker where a value belongs"),
            _ => Err("AMF0 marker not supported"),
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), &'static str> {
        if depth > MAX_DEPTH {
            return Err("AMF0 values nested too deep");
        }
        loop {
            let label_len = self.u16()?;
            if label_len == 0 {
                return match self.take(1)?[0] {
                    OBJECT_END => Ok(()),
                    _ => Err("empty AMF0 property name"),
                };
            }
            self.take(label_len)?;
            match self.marker() {
                None => return Err("truncated AMF0 object"),
                Some(m) => self.value(m, depth)?,
            }
        }
    }
}

fn nested(depth: usize) -> Result<usize, &'static str> {
    let depth = depth + 1;
    if depth > MAX_DEPTH {
        return Err("AMF0 values nested too deep");
    }
    Ok(depth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::rml_amf0::{self, Amf0Value};
    use std::collections::HashMap;

    fn encode(values: Vec<Amf0Value>) -> Vec<u8> {
        rml_amf0::serialize(&values).expect("serialize")
    }

    #[test]
    fn counts_like_rml_amf0() {
        let mut obj = HashMap::new();
        obj.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
        obj.insert(
            "nested".to_string(),
            Amf0Value::StrictArray(vec![Amf0Value::Number(1.0), Amf0Value::Null]),
        );
        let values = vec![
            Amf0Value::Utf8String("connect".into()),
            Amf0Value::Number(1.0),
            Amf0Value::Object(obj),
            Amf0Value::Boolean(true),
            Amf0Value::Undefined,
        ];
        let bytes = encode(values.clone());
        let s = skim(&bytes).unwrap();
        assert_eq!(s.values, values.len());
        assert_eq!(s.first_string, Some(&b"connect"[..]));
        assert_eq!(rml_amf0::deserialize(&mut &bytes[..]).unwrap(), values);
    }

    #[test]
    fn stops_at_a_top_level_object_end_like_rml_amf0() {
        let mut bytes = encode(vec![Amf0Value::Utf8String("x".into())]);
        bytes.push(OBJECT_END);
        bytes.extend(encode(vec![Amf0Value::Null, Amf0Value::Null]));
        assert_eq!(skim(&bytes).unwrap().values, 1);
        assert_eq!(rml_amf0::deserialize(&mut &bytes[..]).unwrap().len(), 1);
    }

    #[test]
    fn strict_array_count_is_only_an_upper_bound() {
        // count u32::MAX with two elements, then the end of input: bounded by the input.
        let bytes = [STRICT_ARRAY, 0xFF, 0xFF, 0xFF, 0xFF, NULL, NULL];
        assert_eq!(skim(&bytes).unwrap().values, 1);
        assert_eq!(rml_amf0::deserialize(&mut &bytes[..]).unwrap().len(), 1);
    }

    #[test]
    fn rejects_deep_nesting_before_rml_amf0_recurses() {
        // Each level is a one-property object: `03 00 01 'a'` then the value.
        let mut deep = Vec::new();
        for _ in 0..=MAX_DEPTH {
            deep.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        deep.push(NULL);
        assert_eq!(skim(&deep), Err("AMF0 values nested too deep"));
        let mut arrays = Vec::new();
        for _ in 0..=MAX_DEPTH {
            arrays.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1]);
        }
        assert_eq!(skim(&arrays), Err("AMF0 values nested too deep"));
        // Nesting at the limit is fine.
        let mut ok = Vec::new();
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        ok.push(NULL);
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(&[0, 0, OBJECT_END]);
        }
        assert_eq!(skim(&ok).unwrap().values, 1);
    }

    #[test]
    fn rejects_truncation_and_unknown_markers() {
        assert!(skim(&[NUMBER, 0, 0]).is_err());
        assert!(skim(&[STRING, 0, 5, b'a']).is_err());
        assert!(skim(&[OBJECT, 0, 1, b'a']).is_err());
        assert!(skim(&[OBJECT, 0, 0, NULL]).is_err());
        assert!(skim(&[0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err()); // date
        assert!(skim(&[0x0C, 0, 0, 0, 0]).is_err()); // long string
        assert_eq!(skim(&[]).unwrap().values, 0);
    }

    proptest::proptest! {
        /// Whatever the walker accepts, rml_amf0 parses to the same number of values.
        #[test]
        fn agrees_with_rml_amf0(data in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::Just(0u8), proptest::prelude::Just(2u8),
                proptest::prelude::Just(3u8), proptest::prelude::Just(5u8),
                proptest::prelude::Just(8u8), proptest::prelude::Just(9u8),
                proptest::prelude::Just(10u8), proptest::prelude::any::<u8>(),
            ],
            0..64,
        )) {
            if let Ok(s) = skim(&data) {
                let parsed = rml_amf0::deserialize(&mut &data[..]);
                // rml_amf0 may still refuse invalid UTF-8, which the walker does not check.
                if let Ok(values) = parsed {
                    proptest::prop_assert_eq!(values.len(), s.values);
                }
            }
        }
    }
}
