//! Readers following the tail while other threads append: no partial records, no gaps, order
//! kept, across segment rolls.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use common::*;
use nowcast_log::{Fsync, Log, LogConfig, RecordBatch};
use rand::{Rng, SeedableRng};

const N: u64 = 20_000;

#[test]
fn readers_follow_a_single_appender_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        fsync: Fsync::Never,
        ..small(1, 16 * 1024)
    };
    let log = Arc::new(Log::open(dir.path(), config).unwrap());
    let writer = {
        let log = log.clone();
        thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            while log.end_offset(0) < N {
                let n = rng.gen_range(1..=50).min(N - log.end_offset(0));
                if n == 1 {
                    let o = log.end_offset(0);
                    log.append(0, &key_for(0, o), &value_for(0, o), ts_for(o))
                        .unwrap();
                } else {
                    append_n(&log, 0, n).unwrap();
                }
                if rng.gen_bool(0.1) {
                    thread::yield_now();
                }
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|i| {
            let log = log.clone();
            thread::spawn(move || {
                // The second reader starts wherever the writer is at the time.
                let from = if i == 0 { 0 } else { log.end_offset(0) };
                let mut reader = log.reader(0, from).unwrap();
                let mut batch = RecordBatch::new();
                let mut next = from;
                let mut empty_polls = 0u64;
                while next < N {
                    let n = reader.poll(&mut batch, 64).unwrap();
                    if n == 0 {
                        empty_polls += 1;
                        thread::yield_now();
                    }
                    for r in batch.iter() {
                        assert_eq!(r.offset, next, "gap or reorder");
                        let owned = (r.offset, r.timestamp, r.key.to_vec(), r.value.to_vec());
                        check_record(0, &owned);
                        next += 1;
                    }
                    assert_eq!(reader.position(), next);
                }
                empty_polls
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert!(segment_files(dir.path(), 0).len() > 50);
}

#[test]
fn concurrent_appenders_get_distinct_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small(1, 8 * 1024)).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (log, done) = (log.clone(), done.clone());
        thread::spawn(move || {
            let mut reader = log.reader(0, 0).unwrap();
            let mut batch = RecordBatch::new();
            let mut seen = Vec::new();
            let mut last_seq: HashMap<u8, u32> = HashMap::new();
            loop {
                let finished = done.load(Ordering::Acquire);
                while reader.poll(&mut batch, 100).unwrap() > 0 {
                    for r in batch.iter() {
                        assert_eq!(r.offset, seen.len() as u64);
                        let (thread_id, seq) = (
                            r.key[0],
                            u32::from_le_bytes(r.key[1..5].try_into().unwrap()),
                        );
                        assert_eq!(r.value, seq.to_le_bytes().repeat(seq as usize % 20));
                        if let Some(prev) = last_seq.insert(thread_id, seq) {
                            assert!(seq > prev, "per-thread order kept");
                        }
                        seen.push((thread_id, seq));
                    }
                }
                if finished {
                    return seen;
                }
                thread::yield_now();
            }
        })
    };
    let appenders: Vec<_> = (0..4u8)
        .map(|t| {
            let log = log.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                for seq in 0..2000u32 {
                    let mut key = vec![t];
                    key.extend_from_slice(&seq.to_le_bytes());
                    let value = seq.to_le_bytes().repeat(seq as usize % 20);
                    got.push((log.append(0, &key, &value, 0).unwrap(), (t, seq)));
                }
                got
            })
        })
        .collect();
    let mut by_offset: Vec<(u64, (u8, u32))> = appenders
        .into_iter()
        .flat_map(|a| a.join().unwrap())
        .collect();
    done.store(true, Ordering::Release);
    let seen = reader.join().unwrap();
    by_offset.sort();
    assert_eq!(by_offset.len(), 8000);
    for (i, (offset, id)) in by_offset.iter().enumerate() {
        assert_eq!(*offset, i as u64);
        assert_eq!(seen[i], *id);
    }
}
