//! Torn tails are truncated on open; corruption anywhere else is an error naming file and byte.

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use common::*;
use nowcast_log::{Fsync, Log, LogConfig, LogError, RecordBatch};

fn never(partitions: u32, segment_bytes: u64) -> LogConfig {
    LogConfig {
        fsync: Fsync::Never,
        ..small(partitions, segment_bytes)
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

fn set_len(p: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn append_bytes(p: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(p)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn overwrite(p: &Path, at: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(p).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
}

/// Fixed-size records so byte positions are predictable: 20 + 4 + 76 = 100 bytes each.
fn append_fixed(log: &Log, n: u64) {
    for _ in 0..n {
        let o = log.end_offset(0);
        log.append(0, format!("{o:04}").as_bytes(), &[o as u8; 76], o as i64)
            .unwrap();
    }
}

fn check_fixed(got: &[Owned], from: u64) {
    for (i, (o, ts, k, v)) in got.iter().enumerate() {
        assert_eq!(*o, from + i as u64);
        assert_eq!(
            (*ts, k.as_slice(), v.as_slice()),
            (*o as i64, format!("{o:04}").as_bytes(), &[*o as u8; 76][..])
        );
    }
}

#[test]
fn torn_tail_with_garbage_recovers_to_last_complete_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), never(1, 1 << 20)).unwrap();
        append_fixed(&log, 100);
    }
    let seg = &segment_files(dir.path(), 0)[0];
    assert_eq!(file_len(seg), 16 + 100 * 100);
    set_len(seg, 16 + 99 * 100 + 37); // cut the last record mid-frame
    append_bytes(seg, b"\x13\x00\x00\x00garbage garbage garbage");
    let torn = file_len(seg) - (16 + 99 * 100);

    let log = Log::open(dir.path(), never(1, 1 << 20)).unwrap();
    assert_eq!(log.recovered_bytes(), torn);
    assert_eq!(log.end_offset(0), 99);
    assert_eq!(file_len(seg), 16 + 99 * 100);
    check_fixed(&read_all(&mut log.reader(0, 0).unwrap()).unwrap(), 0);
    append_fixed(&log, 5);
    let got = read_all(&mut log.reader(0, 90).unwrap()).unwrap();
    assert_eq!(got.len(), 14);
    check_fixed(&got, 90);
    drop(log);
    assert_eq!(
        Log::open(dir.path(), never(1, 1 << 20))
            .unwrap()
            .recovered_bytes(),
        0
    );
}

#[test]
fn zeroed_tail_and_torn_length_field_are_truncated() {
    for tail in [vec![0u8; 4096], vec![0x50u8, 0x00]] {
        let dir = tempfile::tempdir().unwrap();
        append_fixed(&Log::open(dir.path(), never(1, 1 << 20)).unwrap(), 10);
        let seg = &segment_files(dir.path(), 0)[0];
        append_bytes(seg, &tail);
        let log = Log::open(dir.path(), never(1, 1 << 20)).unwrap();
        assert_eq!(
            (log.recovered_bytes(), log.end_offset(0)),
            (tail.len() as u64, 10)
        );
    }
}

#[test]
fn unflushed_tail_after_a_flush_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let config = small(1, 1 << 20);
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        append_fixed(&log, 50);
        log.flush().unwrap();
        append_fixed(&log, 50);
    }
    let seg = &segment_files(dir.path(), 0)[0];
    set_len(seg, 16 + 80 * 100 + 3);
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!((log.recovered_bytes(), log.end_offset(0)), (3, 80));
}

#[test]
fn corruption_below_the_flushed_point_fails_open_with_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let config = small(1, 1 << 20);
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        append_fixed(&log, 50);
        log.flush().unwrap();
    }
    let seg = &segment_files(dir.path(), 0)[0];
    let pos = 16 + 20 * 100;
    overwrite(seg, pos + 30, b"X");
    let err = Log::open(dir.path(), config.clone()).unwrap_err();
    match &err {
        LogError::Corrupt { path, position, .. } => {
            assert_eq!((path, *position), (seg, pos));
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&seg.display().to_string()) && msg.contains(&format!("byte {pos}")),
        "{msg}"
    );
    // The file was not touched.
    assert_eq!(file_len(seg), 16 + 50 * 100);
    // Truncation below the flushed point is also refused.
    set_len(seg, 16 + 40 * 100);
    assert!(matches!(
        Log::open(dir.path(), config).unwrap_err(),
        LogError::Corrupt { .. }
    ));
}

#[test]
fn corrupt_record_in_a_sealed_segment_is_a_reader_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = never(1, 16 + 10 * 100 + 50); // ten records per segment
    append_fixed(&Log::open(dir.path(), config.clone()).unwrap(), 35);
    let segs = segment_files(dir.path(), 0);
    assert_eq!(segs.len(), 4);
    let pos = 16 + 4 * 100; // offset 14 in the second segment
    overwrite(&segs[1], pos + 8, &[0xff]); // timestamp byte: CRC mismatch
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!((log.recovered_bytes(), log.end_offset(0)), (0, 35));

    let mut reader = log.reader(0, 0).unwrap();
    let mut batch = RecordBatch::new();
    let mut seen = 0;
    let err = loop {
        match reader.poll(&mut batch, 3) {
            Ok(n) => {
                assert!(
                    n > 0,
                    "reader must not report caught-up at a corrupt record"
                );
                seen += n;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(seen, 14, "records before the corrupt one are returned");
    assert_eq!(reader.position(), 14);
    match &err {
        LogError::Corrupt {
            path,
            position,
            reason,
        } => {
            assert_eq!((path, *position), (&segs[1], pos));
            assert!(reason.contains("CRC"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // The error is sticky, and starting a reader past the bad record in that segment fails
    // (building the segment's index verifies it) while later segments read fine.
    assert!(reader.poll(&mut batch, 3).is_err());
    assert!(matches!(
        log.reader(0, 15).unwrap_err(),
        LogError::Corrupt { .. }
    ));
    assert_eq!(read_all(&mut log.reader(0, 20).unwrap()).unwrap().len(), 15);
}

#[test]
fn corruption_while_open_is_a_reader_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), never(1, 1 << 20)).unwrap();
    append_fixed(&log, 10);
    let seg = &segment_files(dir.path(), 0)[0];
    overwrite(seg, 16 + 5 * 100, &[0xff, 0xff, 0xff, 0x7f]); // absurd length
    let err = read_all(&mut log.reader(0, 0).unwrap()).unwrap_err();
    assert!(
        matches!(err, LogError::Corrupt { position: 516, .. }),
        "{err}"
    );
}

#[test]
fn torn_segment_header_after_a_roll_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let config = never(1, 16 + 10 * 100 + 50);
    append_fixed(&Log::open(dir.path(), config.clone()).unwrap(), 10);
    // A crash right after creating the next segment leaves a short file.
    let next = dir.path().join("p00000").join(format!("{:020}.log", 10));
    std::fs::write(&next, b"NCL").unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!((log.recovered_bytes(), log.end_offset(0)), (3, 10));
    append_fixed(&log, 15);
    check_fixed(&read_all(&mut log.reader(0, 0).unwrap()).unwrap(), 0);
}

#[test]
fn zeroed_header_of_an_unflushed_segment_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let config = never(1, 16 + 10 * 100 + 50);
    append_fixed(&Log::open(dir.path(), config.clone()).unwrap(), 12);
    let segs = segment_files(dir.path(), 0);
    // The header and the two records of the new segment were lost (read back as zeros).
    overwrite(&segs[1], 6, &[0u8; 16 + 200 - 6]);
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!((log.recovered_bytes(), log.end_offset(0)), (216, 10));
    append_fixed(&log, 5);
    check_fixed(&read_all(&mut log.reader(0, 0).unwrap()).unwrap(), 0);
}

#[test]
fn wrong_segment_header_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    append_fixed(&Log::open(dir.path(), never(1, 1 << 20)).unwrap(), 3);
    let seg = &segment_files(dir.path(), 0)[0];
    overwrite(seg, 8, &[7]);
    let err = Log::open(dir.path(), never(1, 1 << 20)).unwrap_err();
    assert!(err.to_string().contains("base offset"), "{err}");
}

#[test]
fn missing_meta_json_is_not_silently_recreated() {
    let dir = tempfile::tempdir().unwrap();
    drop(Log::open(dir.path(), LogConfig::with_partitions(3)).unwrap());
    std::fs::remove_file(dir.path().join("meta.json")).unwrap();
    let err = Log::open(dir.path(), LogConfig::with_partitions(3)).unwrap_err();
    assert!(matches!(err, LogError::BadMetadata { .. }), "{err}");
}

#[test]
fn segment_rolled_after_the_last_flush_that_lost_its_tail_is_cut_and_later_ones_dropped() {
    // Rolling does not fsync (the next flush does), so after a machine crash a segment that is
    // not the newest may have lost its end. Every segment after the durable point is checked.
    let dir = tempfile::tempdir().unwrap();
    let config = small(1, 16 + 10 * 100 + 50); // ten records per segment
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        append_fixed(&log, 15);
        log.flush().unwrap(); // durable: segment 10, 5 records
        append_fixed(&log, 20); // segment 10 fills up, segments 20 and 30 follow
    }
    let segs = segment_files(dir.path(), 0);
    assert_eq!(segs.len(), 4);
    let newest = file_len(&segs[3]);
    set_len(&segs[2], 16 + 4 * 100 + 3); // offsets 24.. of segment 20 never reached the disk
    let log = Log::open(dir.path(), config.clone()).unwrap();
    assert_eq!(log.end_offset(0), 24);
    assert_eq!(log.recovered_bytes(), 3 + newest);
    assert_eq!(segment_files(dir.path(), 0).len(), 3);
    let mut reader = log.reader(0, 0).unwrap();
    check_fixed(&read_all(&mut reader).unwrap(), 0);
    // Appends continue from there, into the cut segment.
    append_fixed(&log, 3);
    log.flush().unwrap();
    drop(log);
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!((log.end_offset(0), log.recovered_bytes()), (27, 0));
    let mut reader = log.reader(0, 0).unwrap();
    let got = read_all(&mut reader).unwrap();
    assert_eq!(got.len(), 27);
    check_fixed(&got, 0);
}

#[test]
fn segment_flushed_then_cut_below_its_durable_point_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = small(1, 16 + 10 * 100 + 50);
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        append_fixed(&log, 15);
        log.flush().unwrap(); // durable: segment 10, 5 records
        append_fixed(&log, 10);
    }
    let segs = segment_files(dir.path(), 0);
    set_len(&segs[1], 16 + 3 * 100);
    assert!(matches!(
        Log::open(dir.path(), config).unwrap_err(),
        LogError::Corrupt { .. }
    ));
}
