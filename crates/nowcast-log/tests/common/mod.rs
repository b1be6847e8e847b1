//! Helpers shared by the integration tests: deterministic record contents and read-all.
#![allow(dead_code)]

use nowcast_log::{Log, LogConfig, LogError, LogReader, RecordBatch};

/// An owned record: (offset, timestamp, key, value).
pub type Owned = (u64, i64, Vec<u8>, Vec<u8>);

/// Key of the record at `offset` of `partition`.
pub fn key_for(partition: u32, offset: u64) -> Vec<u8> {
    format!("p{partition}-k{offset}").into_bytes()
}

/// Value of the record at `offset` of `partition`: 0..300 bytes derived from the offset.
pub fn value_for(partition: u32, offset: u64) -> Vec<u8> {
    let len = (offset.wrapping_mul(7919) % 300) as usize;
    (0..len)
        .map(|i| (i as u64 ^ offset ^ u64::from(partition)) as u8)
        .collect()
}

/// Timestamp of the record at `offset`.
pub fn ts_for(offset: u64) -> i64 {
    1_700_000_000_000 + offset as i64 * 3
}

/// Appends `n` deterministic records to `partition`.
pub fn append_n(log: &Log, partition: u32, n: u64) -> Result<(), LogError> {
    let start = log.end_offset(partition);
    let owned: Vec<(Vec<u8>, Vec<u8>, i64)> = (start..start + n)
        .map(|o| (key_for(partition, o), value_for(partition, o), ts_for(o)))
        .collect();
    let refs: Vec<(&[u8], &[u8], i64)> = owned
        .iter()
        .map(|(k, v, t)| (k.as_slice(), v.as_slice(), *t))
        .collect();
    let first = log.append_batch(partition, &refs)?;
    assert_eq!(first, start);
    Ok(())
}

/// Checks that `r` is the deterministic record of `partition` at its offset.
pub fn check_record(partition: u32, r: &Owned) {
    let (offset, ts, key, value) = r;
    assert_eq!(*ts, ts_for(*offset), "timestamp at offset {offset}");
    assert_eq!(key, &key_for(partition, *offset), "key at offset {offset}");
    assert_eq!(
        value,
        &value_for(partition, *offset),
        "value at offset {offset}"
    );
}

/// Polls `reader` until it is caught up.
pub fn read_all(reader: &mut LogReader) -> Result<Vec<Owned>, LogError> {
    let mut out = Vec::new();
    let mut batch = RecordBatch::new();
    while reader.poll(&mut batch, 37)? > 0 {
        out.extend(
            batch
                .iter()
                .map(|r| (r.offset, r.timestamp, r.key.to_vec(), r.value.to_vec())),
        );
    }
    Ok(out)
}

/// A config with small segments so tests roll often.
pub fn small(partitions: u32, segment_bytes: u64) -> LogConfig {
    LogConfig {
        partitions,
        segment_bytes,
        ..LogConfig::default()
    }
}

/// Segment files of partition `p`, sorted.
pub fn segment_files(dir: &std::path::Path, p: u32) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join(format!("p{p:05}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}
