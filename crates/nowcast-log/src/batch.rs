//! [`RecordBatch`], the reusable buffer a [`LogReader`](crate::LogReader) fills, and
//! [`RecordRef`], one record borrowed from it.

/// One record in a [`RecordBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Position in the partition (consecutive from 0).
    pub offset: u64,
    /// Timestamp given to `append`.
    pub timestamp: i64,
    /// Record key.
    pub key: &'a [u8],
    /// Record value.
    pub value: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    timestamp: i64,
    start: usize,
    key_len: usize,
    value_len: usize,
}

/// A reusable batch of records: one byte buffer plus a table of entries, so filling it
/// allocates nothing once it has grown to its working size.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use nowcast_log::{Log, LogConfig, RecordBatch};
/// let log = Log::open(dir.path(), LogConfig::with_partitions(1))?;
/// log.append(0, b"k", b"v", 7)?;
/// let mut reader = log.reader(0, 0)?;
/// let mut batch = RecordBatch::new();
/// assert_eq!(reader.poll(&mut batch, 100)?, 1);
/// let r = batch.iter().next().unwrap();
/// assert_eq!((r.offset, r.timestamp, r.key, r.value), (0, 7, &b"k"[..], &b"v"[..]));
/// # Ok::<(), nowcast_log::LogError>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct RecordBatch {
    data: Vec<u8>,
    entries: Vec<Entry>,
}

impl RecordBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `records` records totalling `bytes` key and value bytes.
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        RecordBatch {
            data: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(records),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no records.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes all records, keeping the allocations.
    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }

    /// The `i`-th record.
    pub fn get(&self, i: usize) -> Option<RecordRef<'_>> {
        self.entries.get(i).map(|e| self.record(e))
    }

    /// The records in offset order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            batch: self,
            entries: self.entries.iter(),
        }
    }

    fn record(&self, e: &Entry) -> RecordRef<'_> {
        let key_end = e.start + e.key_len;
        RecordRef {
            offset: e.offset,
            timestamp: e.timestamp,
            key: &self.data[e.start..key_end],
            value: &self.data[key_end..key_end + e.value_len],
        }
    }

    pub(crate) fn push(&mut self, offset: u64, timestamp: i64, key: &[u8], value: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.entries.push(Entry {
            offset,
            timestamp,
            start,
            key_len: key.len(),
            value_len: value.len(),
        });
    }
}

impl<'a> IntoIterator for &'a RecordBatch {
    type Item = RecordRef<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the records of a [`RecordBatch`].
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    batch: &'a RecordBatch,
    entries: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        self.entries.next().map(|e| self.batch.record(e))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}
