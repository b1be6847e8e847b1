//! Byte layout of segment headers and record frames (see the crate docs for the table).
//!
//! Pure functions over byte slices: no I/O, so the format can be tested in isolation.

/// First bytes of every segment file.
pub const MAGIC: [u8; 4] = *b"NCLG";
/// Version of the segment format written by this crate.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header: magic, version, base offset.
pub const HEADER_LEN: usize = 16;
/// Bytes a frame adds around key and value: length, CRC, timestamp, key length.
pub const FRAME_OVERHEAD: usize = 20;
/// Largest key + value accepted by `append` (64 MiB).
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of a frame covered by the length field but not key/value: CRC, timestamp, key length.
const BODY_FIXED: usize = 16;
const MAX_BODY: usize = BODY_FIXED + MAX_RECORD_BYTES;

/// The 16-byte header that starts every segment.
pub fn encode_header(base_offset: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&base_offset.to_le_bytes());
    h
}

/// Checks a segment header against the base offset taken from the file name.
pub fn check_header(h: &[u8], base_offset: u64) -> Result<(), String> {
    if h.len() < HEADER_LEN {
        return Err(format!(
            "header is {} bytes, expected {HEADER_LEN}",
            h.len()
        ));
    }
    if h[0..4] != MAGIC {
        return Err(format!("bad magic {:?}, expected {:?}", &h[0..4], MAGIC));
    }
    let version = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(format!("unsupported segment format version {version}"));
    }
    let base = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    if base != base_offset {
        return Err(format!(
            "header says base offset {base} but the file name says {base_offset}"
        ));
    }
    Ok(())
}

/// Size of the frame for a record with these key and value lengths.
pub fn frame_len(key_len: usize, value_len: usize) -> usize {
    FRAME_OVERHEAD + key_len + value_len
}

/// Appends one frame to `buf`. The caller has checked `key.len() + value.len()` against
/// [`MAX_RECORD_BYTES`].
pub fn encode_frame(buf: &mut Vec<u8>, key: &[u8], value: &[u8], timestamp: i64) {
    debug_assert!(key.len() + value.len() <= MAX_RECORD_BYTES);
    let body_len = (BODY_FIXED + key.len() + value.len()) as u32;
    buf.reserve(4 + body_len as usize);
    buf.extend_from_slice(&body_len.to_le_bytes());
    let crc_at = buf.len();
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&timestamp.to_le_bytes());
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(value);
    let crc = crc32fast::hash(&buf[crc_at + 4..]);
    buf[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The fixed fields of a verified frame; key and value are sliced out with [`FrameInfo::split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Total frame size in bytes, including the length field.
    pub len: usize,
    /// Record timestamp.
    pub timestamp: i64,
    /// Key length in bytes.
    pub key_len: usize,
}

impl FrameInfo {
    /// Key and value of the frame whose bytes (starting at the length field) are `frame`.
    pub fn split<'a>(&self, frame: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        frame[FRAME_OVERHEAD..self.len].split_at(self.key_len)
    }
}

/// Result of looking at the bytes where a frame should start.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete frame whose CRC matches.
    Frame(FrameInfo),
    /// The frame needs `need` bytes in total; only part of it is in the buffer.
    Incomplete {
        /// Bytes needed from the frame start (4 while the length itself is missing).
        need: usize,
    },
    /// The bytes cannot be a valid frame.
    Invalid(String),
}

/// Reads the length field only and returns the total frame size, or why it is invalid.
/// `None` when fewer than 4 bytes are available.
pub fn peek_len(buf: &[u8]) -> Option<Result<usize, String>> {
    let len = u32::from_le_bytes(buf.get(0..4)?.try_into().expect("4 bytes")) as usize;
    if !(BODY_FIXED..=MAX_BODY).contains(&len) {
        return Some(Err(format!("frame length {len} out of range")));
    }
    Some(Ok(4 + len))
}

/// Decodes and verifies the frame at the start of `buf`.
pub fn parse_frame(buf: &[u8]) -> Parsed {
    let total = match peek_len(buf) {
        None => return Parsed::Incomplete { need: 4 },
        Some(Err(e)) => return Parsed::Invalid(e),
        Some(Ok(total)) => total,
    };
    if buf.len() < total {
        return Parsed::Incomplete { need: total };
    }
    let frame = &buf[..total];
    let stored = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
    let actual = crc32fast::hash(&frame[8..]);
    if stored != actual {
        return Parsed::Invalid(format!(
            "CRC mismatch (stored {stored:#010x}, computed {actual:#010x})"
        ));
    }
    let timestamp = i64::from_le_bytes(frame[8..16].try_into().expect("8 bytes"));
    let key_len = u32::from_le_bytes(frame[16..20].try_into().expect("4 bytes")) as usize;
    if key_len > total - FRAME_OVERHEAD {
        return Parsed::Invalid(format!("key length {key_len} exceeds the frame"));
    }
    Parsed::Frame(FrameInfo {
        len: total,
        timestamp,
        key_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, b"key", b"value", -7);
        assert_eq!(buf.len(), frame_len(3, 5));
        let Parsed::Frame(f) = parse_frame(&buf) else {
            panic!("expected a frame")
        };
        assert_eq!((f.len, f.timestamp), (buf.len(), -7));
        assert_eq!(f.split(&buf), (&b"key"[..], &b"value"[..]));
    }

    #[test]
    fn every_prefix_is_incomplete_and_every_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, b"k", b"some value", 42);
        for cut in 0..buf.len() {
            assert!(matches!(
                parse_frame(&buf[..cut]),
                Parsed::Incomplete { .. }
            ));
        }
        for byte in 4..buf.len() {
            let mut bad = buf.clone();
            bad[byte] ^= 0x10;
            assert!(
                matches!(parse_frame(&bad), Parsed::Invalid(_)),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn zero_length_is_invalid() {
        assert!(matches!(parse_frame(&[0u8; 32]), Parsed::Invalid(_)));
    }

    #[test]
    fn header_checks_magic_version_and_base() {
        let h = encode_header(99);
        assert!(check_header(&h, 99).is_ok());
        assert!(check_header(&h, 98).unwrap_err().contains("98"));
        assert!(check_header(&h[..10], 99).is_err());
        let mut bad = h;
        bad[0] = b'X';
        assert!(check_header(&bad, 99).unwrap_err().contains("magic"));
    }
}
