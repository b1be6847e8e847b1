//! Property test against an in-memory model: random appends, batches, flushes, reopens,
//! simulated crashes (torn tails), retention and reader positions must read back exactly
//! what the model holds.

mod common;

use std::path::Path;

use common::{segment_files, small};
use nowcast_log::{Fsync, Log, LogConfig, LogReader, RecordBatch};
use proptest::prelude::*;

const PARTITIONS: u32 = 3;

#[derive(Debug, Clone)]
enum Op {
    Append {
        p: u32,
        size: usize,
    },
    Batch {
        p: u32,
        n: usize,
        size: usize,
    },
    Flush,
    Reopen,
    /// Drop the log, cut the last segment of `p` somewhere after its flushed point, reopen.
    Crash {
        p: u32,
        cut: f64,
    },
    ReadFrom {
        p: u32,
        at: f64,
    },
    PollLive {
        p: u32,
        max: usize,
    },
    Retain {
        p: u32,
        at: f64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PARTITIONS;
    prop_oneof![
        6 => (p.clone(), 0..300usize).prop_map(|(p, size)| Op::Append { p, size }),
        6 => (p.clone(), 0..40usize, 0..120usize).prop_map(|(p, n, size)| Op::Batch { p, n, size }),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => (p.clone(), 0.0..1.0).prop_map(|(p, cut)| Op::Crash { p, cut }),
        3 => (p.clone(), 0.0..=1.0).prop_map(|(p, at)| Op::ReadFrom { p, at }),
        4 => (p.clone(), 1..50usize).prop_map(|(p, max)| Op::PollLive { p, max }),
        1 => (p, 0.0..=1.0).prop_map(|(p, at)| Op::Retain { p, at }),
    ]
}

type Rec = (Vec<u8>, Vec<u8>, i64);

struct Model {
    /// All records ever appended (and not lost to a simulated crash), by offset.
    records: Vec<Vec<Rec>>,
    counter: u64,
}

impl Model {
    fn record(&mut self, size: usize) -> Rec {
        self.counter += 1;
        let c = self.counter;
        (
            c.to_le_bytes()[..(c % 9) as usize].to_vec(),
            vec![(c % 251) as u8; size],
            c as i64 * 1000 - 5000,
        )
    }
}

fn check_read(
    reader: &mut LogReader,
    batch: &mut RecordBatch,
    max: usize,
    want: &[Rec],
    from: u64,
) -> u64 {
    let n = reader.poll(batch, max).unwrap();
    assert_eq!(n, max.min(want.len().saturating_sub(from as usize)));
    for (i, r) in batch.iter().enumerate() {
        let o = from + i as u64;
        let (k, v, t) = &want[o as usize];
        assert_eq!(
            (r.offset, r.key, r.value, r.timestamp),
            (o, k.as_slice(), v.as_slice(), *t)
        );
    }
    from + n as u64
}

/// Durable byte length of the last segment of `p` according to `recovery.json`.
fn durable_bytes(dir: &Path, p: u32, base: u64) -> u64 {
    let Ok(text) = std::fs::read(dir.join("recovery.json")) else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let point = &v["partitions"][p as usize];
    if point["segment"].as_u64() == Some(base) {
        point["bytes"].as_u64().unwrap()
    } else {
        0
    }
}

fn run(config: LogConfig, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Some(Log::open(dir.path(), config.clone()).unwrap());
    let mut model = Model {
        records: vec![Vec::new(); PARTITIONS as usize],
        counter: 0,
    };
    let mut live: Vec<Option<LogReader>> = (0..PARTITIONS).map(|_| None).collect();
    let mut batch = RecordBatch::new();
    for op in ops {
        let l = log.as_ref().unwrap();
        match op {
            Op::Append { p, size } => {
                let (k, v, t) = model.record(size);
                let o = l.append(p, &k, &v, t).unwrap();
                assert_eq!(o, model.records[p as usize].len() as u64);
                model.records[p as usize].push((k, v, t));
            }
            Op::Batch { p, n, size } => {
                let recs: Vec<Rec> = (0..n).map(|i| model.record(size + i)).collect();
                let refs: Vec<_> = recs.iter().map(|(k, v, t)| (&k[..], &v[..], *t)).collect();
                let first = l.append_batch(p, &refs).unwrap();
                assert_eq!(first, model.records[p as usize].len() as u64);
                model.records[p as usize].extend(recs);
            }
            Op::Flush => l.flush().unwrap(),
            Op::Reopen | Op::Crash { .. } => {
                drop(log.take());
                let mut expected_recovered = 0;
                if let Op::Crash { p, cut } = op {
                    let seg = segment_files(dir.path(), p).pop().unwrap();
                    let name = seg.file_stem().unwrap().to_str().unwrap();
                    let base: u64 = name.parse().unwrap();
                    let len = std::fs::metadata(&seg).unwrap().len();
                    let durable = durable_bytes(dir.path(), p, base);
                    let cut_at = durable + ((len - durable) as f64 * cut) as u64;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&seg)
                        .unwrap()
                        .set_len(cut_at)
                        .unwrap();
                    // Complete frames below the cut survive.
                    let recs = &mut model.records[p as usize];
                    let mut end = 16u64;
                    let mut keep = base as usize;
                    while keep < recs.len() {
                        let (k, v, _) = &recs[keep];
                        let f = 20 + (k.len() + v.len()) as u64;
                        if end + f > cut_at {
                            break;
                        }
                        end += f;
                        keep += 1;
                    }
                    recs.truncate(keep);
                    expected_recovered = if cut_at < 16 { cut_at } else { cut_at - end };
                }
                let reopened = Log::open(dir.path(), config.clone()).unwrap();
                assert_eq!(reopened.recovered_bytes(), expected_recovered);
                for (p, r) in live.iter_mut().enumerate() {
                    if let Some(old) = r.take() {
                        let len = model.records[p].len() as u64;
                        let start = reopened.start_offset(p as u32);
                        *r = Some(
                            reopened
                                .reader(p as u32, old.position().clamp(start, len))
                                .unwrap(),
                        );
                    }
                }
                log = Some(reopened);
            }
            Op::ReadFrom { p, at } => {
                let want = &model.records[p as usize];
                let start = l.start_offset(p);
                let end = want.len() as u64;
                assert_eq!(l.end_offset(p), end);
                let from = start + ((end - start) as f64 * at) as u64;
                let mut reader = l.reader(p, from).unwrap();
                let mut pos = from;
                loop {
                    let next = check_read(&mut reader, &mut batch, 64, want, pos);
                    if next == pos {
                        break;
                    }
                    pos = next;
                }
                assert_eq!(pos, end);
            }
            Op::PollLive { p, max } => {
                let reader = match &mut live[p as usize] {
                    Some(r) => r,
                    slot => slot.insert(l.reader(p, l.start_offset(p)).unwrap()),
                };
                let from = reader.position();
                check_read(reader, &mut batch, max, &model.records[p as usize], from);
            }
            Op::Retain { p, at } => {
                let end = l.end_offset(p);
                let before = (end as f64 * at) as u64;
                l.delete_segments_before(p, before).unwrap();
                let start = l.start_offset(p);
                assert!(start <= before.max(l.start_offset(p)) && start <= end);
                if let Some(r) = &live[p as usize] {
                    if r.position() < start {
                        live[p as usize] = Some(l.reader(p, start).unwrap());
                    }
                }
            }
        }
    }
}

proptest! {
    // 48 cases by default; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(
        segment_bytes in prop_oneof![Just(1024u64), Just(4096), Just(1 << 20)],
        on_flush in any::<bool>(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let config = LogConfig {
            fsync: if on_flush { Fsync::OnFlush } else { Fsync::Never },
            ..small(PARTITIONS, segment_bytes)
        };
        run(config, ops);
    }
}
