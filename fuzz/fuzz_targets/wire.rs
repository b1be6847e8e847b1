//! The Confluent wire format: `split` (magic byte, schema id) and `read_message_indexes`
//! (Protobuf message-index list) on arbitrary bytes, plus the varint readers they use.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nowcast_core::RejectReason;
use nowcast_schema::wire::{
    read_message_indexes, read_varint, read_zigzag, split, write_message_indexes, write_varint,
    write_zigzag,
};

fuzz_target!(|data: &[u8]| {
    // split: Ok exactly when the record starts with 0 and has the 4-byte id.
    match split(data) {
        Ok((h, rest)) => {
            assert!(data.len() >= 5 && data[0] == 0);
            assert_eq!(
                h.schema_id,
                u32::from_be_bytes([data[1], data[2], data[3], data[4]])
            );
            assert_eq!(rest, &data[5..]);
            let mut buf = rest;
            check_indexes(&mut buf);
        }
        Err(e) => {
            assert_eq!(e.reason, RejectReason::BadFraming);
            assert!(data.len() < 5 || data[0] != 0);
        }
    }

    // The index list straight from the start, too (more of the input reaches it).
    let mut buf = data;
    check_indexes(&mut buf);

    // Varints: what is read re-encodes to at most as many bytes and reads back the same.
    let mut buf = data;
    if let Some(v) = read_varint(&mut buf) {
        let used = data.len() - buf.len();
        assert!((1..=10).contains(&used));
        let mut out = Vec::new();
        write_varint(&mut out, v);
        assert!(out.len() <= used);
        assert_eq!(read_varint(&mut &out[..]), Some(v));
    }
    let mut buf = data;
    if let Some(v) = read_zigzag(&mut buf) {
        let mut out = Vec::new();
        write_zigzag(&mut out, v);
        assert_eq!(read_zigzag(&mut &out[..]), Some(v));
    }
});

fn check_indexes(buf: &mut &[u8]) {
    let before = buf.len();
    let mut out = vec![usize::MAX; 3]; // cleared by the reader
    match read_message_indexes(buf, &mut out) {
        Ok(()) => {
            assert!(!out.is_empty() && out.len() <= 64, "{} indexes", out.len());
            assert!(buf.len() < before);
            // Round trip.
            let mut enc = Vec::new();
            write_message_indexes(&mut enc, &out);
            let mut back = Vec::new();
            let mut b = &enc[..];
            read_message_indexes(&mut b, &mut back).expect("re-encoded indexes read");
            assert!(b.is_empty());
            assert_eq!(back, out);
        }
        Err(e) => assert_eq!(e.reason, RejectReason::BadMessageIndex),
    }
}
