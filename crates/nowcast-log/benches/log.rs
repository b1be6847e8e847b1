//! Throughput of `append_batch` and `LogReader::poll` for 200-byte records (16-byte key,
//! 184-byte value) on one partition, one thread each; median of several runs.
//!
//! `cargo bench -p nowcast-log --bench log [-- RECORDS RUNS]` (defaults: 1000000 5).

use std::hint::black_box;
use std::time::{Duration, Instant};

use nowcast_log::{Fsync, Log, LogConfig, RecordBatch};

const KEY: usize = 16;
const VALUE: usize = 184;
const BATCH: usize = 1000;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let records = args.first().copied().unwrap_or(1_000_000);
    let runs = args.get(1).copied().unwrap_or(5) as usize;

    let keys: Vec<[u8; KEY]> = (0..BATCH).map(|i| (i as u128).to_le_bytes()).collect();
    let values: Vec<Vec<u8>> = (0..BATCH).map(|i| vec![i as u8; VALUE]).collect();
    let batch: Vec<(&[u8], &[u8], i64)> = (0..BATCH)
        .map(|i| (&keys[i][..], &values[i][..], i as i64))
        .collect();

    let (mut append, mut single, mut read) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            fsync: Fsync::Never,
            ..LogConfig::with_partitions(1)
        };
        let log = Log::open(dir.path(), config).unwrap();

        let t = Instant::now();
        let mut written = 0;
        while written < records {
            let n = (records - written).min(BATCH as u64) as usize;
            log.append_batch(0, &batch[..n]).unwrap();
            written += n as u64;
        }
        append.push(t.elapsed());

        let mut reader = log.reader(0, 0).unwrap();
        let mut out = RecordBatch::with_capacity(BATCH, BATCH * (KEY + VALUE));
        let t = Instant::now();
        let mut seen = 0u64;
        let mut bytes = 0usize;
        while reader.poll(&mut out, BATCH).unwrap() > 0 {
            seen += out.len() as u64;
            bytes += out.iter().map(|r| r.value.len()).sum::<usize>();
        }
        read.push(t.elapsed());
        assert_eq!(seen, records);
        black_box(bytes);

        let n = records / 10;
        let t = Instant::now();
        for i in 0..n as usize {
            let (k, v, ts) = batch[i % BATCH];
            log.append(0, k, v, ts).unwrap();
        }
        single.push(t.elapsed() * 10);
    }

    println!(
        "{records} records of {} bytes (frame {} bytes), {runs} runs, median:",
        KEY + VALUE,
        KEY + VALUE + nowcast_log::FRAME_OVERHEAD
    );
    report("append_batch (1000/batch)", records, &mut append);
    report("poll (max 1000)", records, &mut read);
    report("append (one record/call)", records, &mut single);
}

fn report(name: &str, records: u64, times: &mut [Duration]) {
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    let rps = records as f64 / median;
    println!(
        "  {name:<28} {:>6.2} M records/s  {:>7.1} MB/s payload  {:>7.1} MB/s on disk   (runs: {})",
        rps / 1e6,
        rps * (KEY + VALUE) as f64 / 1e6,
        rps * (KEY + VALUE + nowcast_log::FRAME_OVERHEAD) as f64 / 1e6,
        times
            .iter()
            .map(|t| format!("{:.0}ms", t.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(" "),
    );
}
