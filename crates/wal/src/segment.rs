//! The on-storage layout of one WAL segment, as pure encode and decode functions.
//!
//! ```text
//! header   8 bytes  b"HGWAL\0" + format version (u16 LE, currently 1)
//! entry*   u32 LE payload length | u32 LE CRC-32 of payload | payload
//! footer   8 bytes  b"HGWALEND" | u32 LE entry count | u32 LE CRC-32 of the count
//! ```

use bytes::{BufMut, Bytes, BytesMut};

const MAGIC: &[u8; 6] = b"HGWAL\0";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 8;
const FOOTER_MAGIC: &[u8; 8] = b"HGWALEND";
const FOOTER_LEN: usize = 16;
const ENTRY_HEADER_LEN: usize = 8;

/// Encodes entries as one segment.
pub fn encode_segment(entries: &[Bytes]) -> Bytes {
    let payload: usize = entries.iter().map(|e| e.len() + ENTRY_HEADER_LEN).sum();
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload + FOOTER_LEN);
    out.put_slice(MAGIC);
    out.put_u16_le(VERSION);
    for entry in entries {
        // Entries are bounded by the ingest body limit, far below 4 GiB.
        out.put_u32_le(entry.len() as u32);
        out.put_u32_le(crc32fast::hash(entry));
        out.put_slice(entry);
    }
    let count = (entries.len() as u32).to_le_bytes();
    out.put_slice(FOOTER_MAGIC);
    out.put_slice(&count);
    out.put_u32_le(crc32fast::hash(&count));
    out.freeze()
}

/// Damage found while decoding a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// Byte offset where the damage starts.
    pub offset: usize,
    /// What is wrong there.
    pub reason: String,
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

/// The result of decoding a segment: every complete entry before the first damage, and the
/// damage if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedSegment {
    /// Entries whose length and checksum are intact, in order.
    pub entries: Vec<Bytes>,
    /// The first damage found, if the segment is not whole.
    pub corruption: Option<Corruption>,
}

/// Decodes a segment, keeping every complete entry before the first damage.
pub fn decode_segment(data: &Bytes) -> DecodedSegment {
    let mut entries = Vec::new();
    let damaged =
        |entries, offset, reason: String| DecodedSegment { entries, corruption: Some(Corruption { offset, reason }) };
    if data.len() < HEADER_LEN || &data[..6] != MAGIC {
        return damaged(entries, 0, "missing segment header".into());
    }
    let version = u16::from_le_bytes([data[6], data[7]]);
    if version != VERSION {
        return damaged(entries, 6, format!("unknown format version {version}"));
    }
    let mut pos = HEADER_LEN;
    loop {
        let rest = &data[pos..];
        if rest.len() >= FOOTER_LEN && &rest[..8] == FOOTER_MAGIC {
            let count = [rest[8], rest[9], rest[10], rest[11]];
            let crc = u32::from_le_bytes([rest[12], rest[13], rest[14], rest[15]]);
            let expected = u32::from_le_bytes(count) as usize;
            if crc != crc32fast::hash(&count) {
                return damaged(entries, pos, "footer checksum mismatch".into());
            }
            if expected != entries.len() {
                let reason = format!("footer counts {expected} entries but {} were read", entries.len());
                return damaged(entries, pos, reason);
            }
            if rest.len() != FOOTER_LEN {
                return damaged(entries, pos + FOOTER_LEN, "bytes after the footer".into());
            }
            return DecodedSegment { entries, corruption: None };
        }
        if rest.len() < ENTRY_HEADER_LEN {
            let reason = if rest.is_empty() { "segment ends without a footer" } else { "truncated entry header" };
            return damaged(entries, pos, reason.into());
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let start = pos + ENTRY_HEADER_LEN;
        let Some(end) = start.checked_add(len).filter(|end| *end <= data.len()) else {
            return damaged(entries, pos, format!("entry of {len} bytes runs past the end"));
        };
        let payload = data.slice(start..end);
        if crc32fast::hash(&payload) != crc {
            return damaged(entries, pos, "entry checksum mismatch".into());
        }
        entries.push(payload);
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entries(v: &[&[u8]]) -> Vec<Bytes> {
        v.iter().map(|e| Bytes::copy_from_slice(e)).collect()
    }

    #[test]
    fn round_trips() {
        let input = entries(&[b"one", b"", b"three"]);
        let decoded = decode_segment(&encode_segment(&input));
        assert_eq!(decoded, DecodedSegment { entries: input, corruption: None });
    }

    #[test]
    fn truncation_at_an_entry_boundary_is_detected() {
        let input = entries(&[b"one", b"two"]);
        let encoded = encode_segment(&input);
        // Cut exactly after the first entry: 8 header + 8 + 3.
        let cut = encoded.slice(..HEADER_LEN + ENTRY_HEADER_LEN + 3);
        let decoded = decode_segment(&cut);
        assert_eq!(decoded.entries, entries(&[b"one"]));
        assert!(decoded.corruption.is_some());
    }

    #[test]
    fn a_flipped_byte_keeps_earlier_entries() {
        let input = entries(&[b"one", b"two", b"three"]);
        let mut raw = encode_segment(&input).to_vec();
        // Damage the payload of the second entry.
        let second = HEADER_LEN + ENTRY_HEADER_LEN + 3 + ENTRY_HEADER_LEN;
        raw[second] ^= 0xff;
        let decoded = decode_segment(&Bytes::from(raw));
        assert_eq!(decoded.entries, entries(&[b"one"]));
        let corruption = decoded.corruption.expect("damage reported");
        assert!(corruption.reason.contains("checksum"), "{corruption}");
    }

    proptest! {
        #[test]
        fn any_prefix_decodes_to_a_prefix_of_the_entries(
            input in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
            cut in 0usize..400,
        ) {
            let input: Vec<Bytes> = input.into_iter().map(Bytes::from).collect();
            let encoded = encode_segment(&input);
            let cut = cut.min(encoded.len());
            let decoded = decode_segment(&encoded.slice(..cut));
            prop_assert!(decoded.entries.len() <= input.len());
            prop_assert_eq!(&decoded.entries[..], &input[..decoded.entries.len()]);
            prop_assert_eq!(decoded.corruption.is_none(), cut == encoded.len());
        }

        #[test]
        fn any_single_byte_flip_is_detected_or_harmless(
            input in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..6),
            at in any::<proptest::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let input: Vec<Bytes> = input.into_iter().map(Bytes::from).collect();
            let mut raw = encode_segment(&input).to_vec();
            let i = at.index(raw.len());
            raw[i] ^= mask;
            let decoded = decode_segment(&Bytes::from(raw));
            // Never returns an entry that was not written.
            prop_assert_eq!(&decoded.entries[..], &input[..decoded.entries.len()]);
            prop_assert!(decoded.corruption.is_some());
        }
    }
}
