//! Fault test: a child process appends with `Fsync::OnFlush` and reports each completed
//! flush; the parent kills it at a random moment, reopens the log and checks that everything
//! flushed before the kill is there and every record reads back intact. Several rounds, so
//! each child also starts from a log its predecessor left mid-write.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use nowcast_log::{Log, LogConfig};
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "NOWCAST_LOG_CRASH_CHILD_DIR";
const PARTITIONS: u32 = 3;

fn config() -> LogConfig {
    small(PARTITIONS, 64 * 1024)
}

/// The child side: only does something when re-executed by `killed_writer_keeps_flushed_records`.
#[test]
fn crash_child() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child_main(Path::new(&dir));
    }
}

fn child_main(dir: &Path) -> ! {
    let log = Log::open(dir, config()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "OPENED {}", log.recovered_bytes()).unwrap();
    out.flush().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(std::process::id()));
    loop {
        for p in 0..PARTITIONS {
            if rng.gen_bool(0.2) {
                let o = log.end_offset(p);
                log.append(p, &key_for(p, o), &value_for(p, o), ts_for(o))
                    .unwrap();
            } else {
                append_n(&log, p, rng.gen_range(1..300)).unwrap();
            }
        }
        if rng.gen_bool(0.2) {
            let ends: Vec<u64> = (0..PARTITIONS).map(|p| log.end_offset(p)).collect();
            log.flush().unwrap();
            let ends: Vec<String> = ends.iter().map(u64::to_string).collect();
            // The parent stops reading when it kills this child: a broken pipe ends the child.
            if writeln!(out, "FLUSHED {}", ends.join(" "))
                .and_then(|()| out.flush())
                .is_err()
            {
                std::process::exit(0);
            }
        }
    }
}

/// Simulates a machine crash on top of the kill: each partition's last segment loses a random
/// part of whatever was written after the durable point recorded by the last flush.
fn lose_unsynced_tails(dir: &Path, rng: &mut impl Rng) {
    let recovery: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("recovery.json")).unwrap()).unwrap();
    for p in 0..PARTITIONS {
        let seg = segment_files(dir, p).pop().unwrap();
        let base: u64 = seg.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let point = &recovery["partitions"][p as usize];
        let durable = if point["segment"].as_u64() == Some(base) {
            point["bytes"].as_u64().unwrap()
        } else {
            0
        };
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(rng.gen_range(durable..=len)).unwrap();
        f.set_len(len).unwrap(); // the lost part reads back as zeros
    }
}

#[test]
fn killed_writer_keeps_flushed_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut flushed = vec![0u64; PARTITIONS as usize];
    for round in 0..5 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let wanted_flushes = rng.gen_range(2..12);
        let mut flushes = 0;
        for line in lines {
            let line = line.unwrap();
            if let Some(ends) = line.strip_prefix("FLUSHED ") {
                let ends: Vec<u64> = ends.split(' ').map(|e| e.parse().unwrap()).collect();
                for (f, e) in flushed.iter_mut().zip(ends) {
                    assert!(e >= *f);
                    *f = e;
                }
                flushes += 1;
                if flushes == wanted_flushes {
                    break;
                }
            }
        }
        assert_eq!(
            flushes, wanted_flushes,
            "child exited early in round {round}"
        );
        // Let it get into the middle of some appends, then kill it.
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..20_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        if round % 2 == 1 {
            lose_unsynced_tails(dir.path(), &mut rng);
        }

        let log = Log::open(dir.path(), config()).unwrap();
        let ends: Vec<u64> = (0..PARTITIONS).map(|p| log.end_offset(p)).collect();
        eprintln!(
            "round {round}: flushed {flushed:?}, after kill {ends:?}, truncated {} bytes",
            log.recovered_bytes()
        );
        for p in 0..PARTITIONS {
            let end = log.end_offset(p);
            assert!(
                end >= flushed[p as usize],
                "round {round} partition {p}: end {end} < flushed {}",
                flushed[p as usize]
            );
            let got = read_all(&mut log.reader(p, 0).unwrap()).unwrap();
            assert_eq!(got.len() as u64, end);
            for (i, r) in got.iter().enumerate() {
                assert_eq!(r.0, i as u64);
                check_record(p, r);
            }
        }
    }
}
