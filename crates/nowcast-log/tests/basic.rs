//! Appending and reading: round trips, partitions, reopening, segment rolling, retention.

mod common;

use common::*;
use nowcast_log::{ErrorKind, Log, LogConfig, LogError, RecordBatch};

#[test]
fn round_trip_single_and_batch_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::with_partitions(1)).unwrap();
    assert_eq!(log.append(0, b"a", b"first", 10).unwrap(), 0);
    assert_eq!(log.append(0, b"", b"", -5).unwrap(), 1);
    let first = log
        .append_batch(0, &[(b"b", b"x", 1), (b"c", b"yy", 2)])
        .unwrap();
    assert_eq!(first, 2);
    assert_eq!(log.append_batch(0, &[]).unwrap(), 4);
    assert_eq!(log.end_offset(0), 4);

    let got = read_all(&mut log.reader(0, 0).unwrap()).unwrap();
    let want: Vec<Owned> = vec![
        (0, 10, b"a".to_vec(), b"first".to_vec()),
        (1, -5, vec![], vec![]),
        (2, 1, b"b".to_vec(), b"x".to_vec()),
        (3, 2, b"c".to_vec(), b"yy".to_vec()),
    ];
    assert_eq!(got, want);
    assert_eq!(read_all(&mut log.reader(0, 2).unwrap()).unwrap(), want[2..]);
}

#[test]
fn many_partitions_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::with_partitions(16)).unwrap();
    for p in 0..16 {
        append_n(&log, p, u64::from(p) * 10).unwrap();
    }
    for p in 0..16 {
        assert_eq!(log.end_offset(p), u64::from(p) * 10);
        let got = read_all(&mut log.reader(p, 0).unwrap()).unwrap();
        assert_eq!(got.len() as u64, u64::from(p) * 10);
        got.iter().for_each(|r| check_record(p, r));
    }
}

#[test]
fn append_keyed_uses_the_kafka_partitioner() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::with_partitions(6)).unwrap();
    for i in 0..100 {
        let key = format!("user-{i}");
        let (p, _) = log.append_keyed(key.as_bytes(), b"v", i).unwrap();
        assert_eq!(p, nowcast_core::partition_for_key(key.as_bytes(), 6));
    }
    let total: u64 = (0..6).map(|p| log.end_offset(p)).sum();
    assert_eq!(total, 100);
}

#[test]
fn reopen_continues_offsets() {
    let dir = tempfile::tempdir().unwrap();
    for round in 1..=3u64 {
        let log = Log::open(dir.path(), small(2, 4096)).unwrap();
        assert_eq!(log.recovered_bytes(), 0);
        assert_eq!(log.end_offset(0), (round - 1) * 50);
        append_n(&log, 0, 50).unwrap();
        append_n(&log, 1, 1).unwrap();
        log.flush().unwrap();
    }
    let log = Log::open(dir.path(), small(2, 4096)).unwrap();
    assert_eq!((log.end_offset(0), log.end_offset(1)), (150, 3));
    let got = read_all(&mut log.reader(0, 0).unwrap()).unwrap();
    assert_eq!(got.len(), 150);
    got.iter().for_each(|r| check_record(0, r));
}

#[test]
fn partition_count_mismatch_names_both_counts() {
    let dir = tempfile::tempdir().unwrap();
    drop(Log::open(dir.path(), LogConfig::with_partitions(4)).unwrap());
    let err = Log::open(dir.path(), LogConfig::with_partitions(8)).unwrap_err();
    assert!(matches!(
        err,
        LogError::PartitionCountMismatch {
            existing: 4,
            requested: 8,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("has 4 partitions") && msg.contains("partitions = 8"),
        "{msg}"
    );
    assert_eq!(err.kind(), ErrorKind::Fatal);
}

/// Two writers on one directory would append at the same offsets and lose records.
#[test]
fn second_open_of_an_open_log_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::with_partitions(2)).unwrap();
    let Err(err) = Log::open(dir.path(), LogConfig::with_partitions(2)) else {
        panic!("a second open of an open log must fail");
    };
    let pid = std::process::id();
    assert!(
        matches!(&err, LogError::Locked { pid: Some(p), .. } if *p == pid),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().display().to_string())
            && msg.contains(&format!("pid {pid}"))
            && msg.contains("stop that process"),
        "{msg}"
    );
    log.append(0, b"k", b"v", 1).unwrap();
    drop(log);
    let reopened = Log::open(dir.path(), LogConfig::with_partitions(2)).unwrap();
    assert_eq!(reopened.end_offset(0), 1);
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::with_partitions(2)).unwrap();
    append_n(&log, 0, 3).unwrap();
    let e = log.append(2, b"k", b"v", 0).unwrap_err();
    assert!(matches!(
        e,
        LogError::NoSuchPartition {
            partition: 2,
            partitions: 2
        }
    ));
    assert!(matches!(
        log.reader(0, 4).unwrap_err(),
        LogError::OffsetOutOfRange {
            offset: 4,
            start: 0,
            end: 3,
            ..
        }
    ));
    let big = vec![0u8; nowcast_log::MAX_RECORD_BYTES + 1];
    let e = log.append(0, b"", &big, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(log.end_offset(0), 3);
    let e = Log::open(dir.path(), LogConfig::with_partitions(0)).unwrap_err();
    assert!(e.to_string().contains("partitions"), "{e}");
}

#[test]
fn reader_at_end_waits_for_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::with_partitions(1)).unwrap();
    append_n(&log, 0, 5).unwrap();
    let mut r = log.reader(0, 5).unwrap();
    let mut batch = RecordBatch::new();
    assert_eq!(r.poll(&mut batch, 10).unwrap(), 0);
    append_n(&log, 0, 2).unwrap();
    assert_eq!(r.poll(&mut batch, 1).unwrap(), 1);
    assert_eq!(batch.get(0).unwrap().offset, 5);
    assert_eq!(r.poll(&mut batch, 10).unwrap(), 1);
    assert_eq!(r.position(), 7);
    assert_eq!(r.poll(&mut batch, 10).unwrap(), 0);
    assert!(batch.is_empty());
}

#[test]
fn segments_roll_and_readers_cross_boundaries_from_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 200 * 1024; // several sparse-index entries per segment
    {
        let log = Log::open(dir.path(), small(1, seg)).unwrap();
        for _ in 0..40 {
            append_n(&log, 0, 97).unwrap();
        }
        for i in 0..200 {
            let o = log.end_offset(0);
            log.append(0, &key_for(0, o), &value_for(0, o), ts_for(o))
                .unwrap();
            assert_eq!(log.end_offset(0), o + 1, "append {i}");
        }
    }
    let files = segment_files(dir.path(), 0);
    assert!(files.len() >= 4, "expected rolling, got {files:?}");
    for f in &files {
        assert!(std::fs::metadata(f).unwrap().len() <= seg);
    }
    // Reopened: older segments have lazily built indexes.
    let log = Log::open(dir.path(), small(1, seg)).unwrap();
    let end = log.end_offset(0);
    assert_eq!(end, 40 * 97 + 200);
    for from in [0, 1, 500, 1234, 2001, end / 2, end - 1, end] {
        let got = read_all(&mut log.reader(0, from).unwrap()).unwrap();
        assert_eq!(got.len() as u64, end - from, "from {from}");
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.0, from + i as u64);
            check_record(0, r);
        }
    }
}

#[test]
fn a_record_larger_than_a_segment_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small(1, 1024)).unwrap();
    log.append(0, b"a", &[1u8; 10], 0).unwrap();
    log.append(0, b"b", &[2u8; 5000], 0).unwrap();
    log.append(0, b"c", &[3u8; 10], 0).unwrap();
    assert_eq!(segment_files(dir.path(), 0).len(), 3);
    let got = read_all(&mut log.reader(0, 0).unwrap()).unwrap();
    assert_eq!(
        got.iter().map(|r| r.3.len()).collect::<Vec<_>>(),
        [10, 5000, 10]
    );
}

#[test]
fn retention_deletes_whole_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small(1, 4096)).unwrap();
    append_n(&log, 0, 300).unwrap();
    let before = segment_files(dir.path(), 0).len();
    let mut early = log.reader(0, 0).unwrap();
    assert_eq!(log.delete_segments_before(0, 0).unwrap(), 0);
    let deleted = log.delete_segments_before(0, 150).unwrap();
    assert!(deleted > 0);
    assert_eq!(segment_files(dir.path(), 0).len(), before - deleted);
    let start = log.start_offset(0);
    assert!(start > 0 && start <= 150, "start {start}");
    assert!(matches!(
        log.reader(0, start - 1).unwrap_err(),
        LogError::OffsetOutOfRange { .. }
    ));
    let got = read_all(&mut log.reader(0, start).unwrap()).unwrap();
    assert_eq!(got.len() as u64, 300 - start);
    // A reader opened before the deletion finishes the segment it has open, then learns
    // that the following records are gone.
    let mut batch = RecordBatch::new();
    let mut read = 0;
    let err = loop {
        match early.poll(&mut batch, 1000) {
            Ok(n) => read += n,
            Err(e) => break e,
        }
    };
    assert!(read > 0);
    assert!(
        matches!(err, LogError::OffsetOutOfRange { offset, start: s, .. } if offset == read as u64 && s == start),
        "{err}"
    );
    // Deleting everything keeps the active segment and the offsets.
    log.delete_segments_before(0, u64::MAX).unwrap();
    assert_eq!(segment_files(dir.path(), 0).len(), 1);
    drop(log);
    let log = Log::open(dir.path(), small(1, 4096)).unwrap();
    assert_eq!(log.end_offset(0), 300);
    assert_eq!(log.append(0, b"k", b"v", 0).unwrap(), 300);
}

#[test]
fn log_is_send_sync_and_reader_is_send() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Log>();
    send::<nowcast_log::LogReader>();
    send::<RecordBatch>();
}

#[test]
fn flush_without_new_appends_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::with_partitions(2)).unwrap();
    let recovery = dir.path().join("recovery.json");
    append_n(&log, 0, 3).unwrap();
    log.flush().unwrap();
    std::fs::remove_file(&recovery).unwrap();
    log.flush().unwrap();
    assert!(!recovery.exists());
    append_n(&log, 1, 1).unwrap();
    log.flush().unwrap();
    assert!(recovery.exists());
}
