//! BER-TLV with one-byte tags, as the YubiKey OATH and management applets use them.
//!
//! Lengths take the short form (`00`-`7F`) or the long forms `81 xx` and `82 xx xx`. One quirk of
//! YKOATH is supported explicitly: in a PUT command the property tag `78` is followed by its one
//! value byte with **no length byte**. Parsers that must accept it name such "bare" tags.
//!
//! Values borrow from the input; nothing is copied, so secrets stay in the caller's zeroizing
//! buffer.

/// Why bytes could not be read as TLVs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlvError {
    /// The input ended inside a tag's length or value.
    #[error("TLV with tag {tag:02X} at offset {offset} is truncated: needs {needed} more bytes, {available} left")]
    Truncated {
        /// The tag being read.
        tag: u8,
        /// Offset of the tag in the input.
        offset: usize,
        /// Bytes the length promised (or the length field needs).
        needed: usize,
        /// Bytes actually left.
        available: usize,
    },
    /// A length form this codec does not accept (indefinite, or more than two length bytes).
    #[error("TLV with tag {tag:02X} at offset {offset} has an unsupported length byte {byte:02X}")]
    BadLength {
        /// The tag being read.
        tag: u8,
        /// Offset of the tag in the input.
        offset: usize,
        /// The first length byte.
        byte: u8,
    },
    /// A value too long to encode.
    #[error("TLV value of {len} bytes is longer than 65535")]
    TooLong {
        /// The value's length.
        len: usize,
    },
}

/// One TLV, borrowing its value from the parsed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The one-byte tag.
    pub tag: u8,
    /// The value bytes.
    pub value: &'a [u8],
}

/// An iterator over the TLVs of a byte string; yields an error once and then stops.
#[derive(Debug, Clone)]
pub struct TlvIter<'a, 'b> {
    bytes: &'a [u8],
    offset: usize,
    bare: &'b [u8],
    failed: bool,
}

impl<'a> Iterator for TlvIter<'a, '_> {
    type Item = Result<Tlv<'a>, TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.bytes.len() {
            return None;
        }
        let item = self.read();
        self.failed = item.is_err();
        Some(item)
    }
}

impl<'a> TlvIter<'a, '_> {
    fn read(&mut self) -> Result<Tlv<'a>, TlvError> {
        let start = self.offset;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let Some((&tag, rest)) = rest.split_first() else {
            // `next` only calls `read` with bytes left.
            return Err(TlvError::Truncated {
                tag: 0,
                offset: start,
                needed: 1,
                available: 0,
            });
        };
        let truncated = |needed, available| TlvError::Truncated {
            tag,
            offset: start,
            needed,
            available,
        };
        if self.bare.contains(&tag) {
            let Some(value) = rest.get(..1) else {
                return Err(truncated(1, 0));
            };
            self.offset = start + 2;
            return Ok(Tlv { tag, value });
        }
        let Some((&first, rest)) = rest.split_first() else {
            return Err(truncated(1, 0));
        };
        let (len, rest) = match first {
            0x00..=0x7F => (usize::from(first), rest),
            0x81 => match rest.split_first() {
                Some((&l, rest)) => (usize::from(l), rest),
                None => return Err(truncated(1, rest.len())),
            },
            0x82 => match rest.split_first_chunk::<2>() {
                Some((l, rest)) => (usize::from(u16::from_be_bytes(*l)), rest),
                None => return Err(truncated(2, rest.len())),
            },
            byte => {
                return Err(TlvError::BadLength {
                    tag,
                    offset: start,
                    byte,
                })
            }
        };
        let Some(value) = rest.get(..len) else {
            return Err(truncated(len, rest.len()));
        };
        self.offset = self.bytes.len() - rest.len() + len;
        Ok(Tlv { tag, value })
    }
}

/// Iterates over the TLVs in `bytes`.
pub fn iter(bytes: &[u8]) -> TlvIter<'_, 'static> {
    iter_with_bare(bytes, &[])
}

/// Iterates over the TLVs in `bytes`, reading the tags in `bare` as one value byte with no
/// length byte (the YKOATH PUT property tag).
pub fn iter_with_bare<'a, 'b>(bytes: &'a [u8], bare: &'b [u8]) -> TlvIter<'a, 'b> {
    TlvIter {
        bytes,
        offset: 0,
        bare,
        failed: false,
    }
}

/// Parses all TLVs in `bytes`.
pub fn parse(bytes: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    iter(bytes).collect()
}

/// Parses all TLVs in `bytes`, with `bare` tags as in [`iter_with_bare`].
pub fn parse_with_bare<'a>(bytes: &'a [u8], bare: &[u8]) -> Result<Vec<Tlv<'a>>, TlvError> {
    iter_with_bare(bytes, bare).collect()
}

/// Appends `tag`, the shortest length encoding of `value`, and `value` to `out`.
pub fn write(out: &mut Vec<u8>, tag: u8, value: &[u8]) -> Result<(), TlvError> {
    let len = value.len();
    out.push(tag);
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        0x100..=0xFFFF => {
            out.push(0x82);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => return Err(TlvError::TooLong { len }),
    }
    out.extend_from_slice(value);
    Ok(())
}

/// Appends a bare tag: the tag and its single value byte, with no length byte.
pub fn write_bare(out: &mut Vec<u8>, tag: u8, value: u8) {
    out.extend_from_slice(&[tag, value]);
}

/// The value of the first TLV with `tag`, if any.
pub fn find<'a>(tlvs: &[Tlv<'a>], tag: u8) -> Option<&'a [u8]> {
    tlvs.iter().find(|t| t.tag == tag).map(|t| t.value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_three_length_forms() {
        let mut b = vec![0x71, 0x02, b'a', b'b', 0x73, 0x81, 0x80];
        b.extend(std::iter::repeat_n(1u8, 0x80));
        b.extend([0x75, 0x82, 0x01, 0x00]);
        b.extend(std::iter::repeat_n(2u8, 0x100));
        let t = parse(&b).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[0],
            Tlv {
                tag: 0x71,
                value: b"ab"
            }
        );
        assert_eq!(t[1].value.len(), 0x80);
        assert_eq!(t[2].value.len(), 0x100);
        assert_eq!(find(&t, 0x75).map(<[u8]>::len), Some(256));
    }

    #[test]
    fn reads_the_bare_property_tag() {
        // PUT: name "x", key, property 02 (touch) with no length byte, IMF.
        let b = [
            0x71, 1, b'x', 0x73, 3, 0x21, 6, 0xAA, 0x78, 0x02, 0x7A, 4, 0, 0, 0, 5,
        ];
        let t = parse_with_bare(&b, &[0x78]).unwrap();
        assert_eq!(
            t[2],
            Tlv {
                tag: 0x78,
                value: &[0x02]
            }
        );
        assert_eq!(t[3].value, &[0, 0, 0, 5]);
        // Read without the bare rule, `78 02` swallows `7A 04` and the rest no longer parses.
        assert!(matches!(
            parse(&b),
            Err(TlvError::Truncated { offset: 14, .. })
        ));
    }

    #[test]
    fn names_truncation_and_bad_lengths() {
        assert_eq!(
            parse(&[0x71, 5, 1, 2]),
            Err(TlvError::Truncated {
                tag: 0x71,
                offset: 0,
                needed: 5,
                available: 2
            })
        );
        assert!(matches!(parse(&[0x71]), Err(TlvError::Truncated { .. })));
        assert!(matches!(
            parse(&[0x71, 0x82, 1]),
            Err(TlvError::Truncated { .. })
        ));
        assert_eq!(
            parse(&[0x71, 0, 0x72, 0x80]),
            Err(TlvError::BadLength {
                tag: 0x72,
                offset: 2,
                byte: 0x80
            })
        );
        assert!(matches!(
            parse_with_bare(&[0x78], &[0x78]),
            Err(TlvError::Truncated { tag: 0x78, .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trips(items in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..300)), 0..8)) {
            let mut b = Vec::new();
            for (tag, value) in &items {
                write(&mut b, *tag, value).unwrap();
            }
            let parsed = parse(&b).unwrap();
            prop_assert_eq!(parsed.len(), items.len());
            for (t, (tag, value)) in parsed.iter().zip(&items) {
                prop_assert_eq!(t.tag, *tag);
                prop_assert_eq!(t.value, value.as_slice());
            }
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), bare in any::<u8>()) {
            let _ = parse(&bytes);
            let _ = parse_with_bare(&bytes, &[bare]);
        }
    }
}
