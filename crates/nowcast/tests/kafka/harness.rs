//! A pipeline on a real broker for the Kafka tests: a spec with unique topics and group, its
//! topics, producing input, running `nowcast run` processes, reading topics back
//! `read_committed`, and an oracle computed from the source topic.
#![allow(dead_code)] // shared by several test crates, each using a part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nowcast_pipeline::decode::{Decoded, Decoder};
use nowcast_spec::PipelineSpec;
use nowcast_window::{Engine, FeatureValue};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// `nowcast validate --config spec`: the exit code and stdout + stderr.
pub fn validate(spec: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nowcast"))
        .env("RUST_BACKTRACE", "0")
        .args(["validate", "--config"])
        .arg(spec)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `NOWCAST_KAFKA`, or `None` (skip) — a failure when `NOWCAST_REQUIRE_KAFKA` is set.
pub fn broker() -> Option<String> {
    match std::env::var("NOWCAST_KAFKA") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var_os("NOWCAST_REQUIRE_KAFKA").is_none(),
                "NOWCAST_REQUIRE_KAFKA is set but NOWCAST_KAFKA is not"
            );
            eprintln!("skipped: no broker (run scripts/test.sh, or set NOWCAST_KAFKA)");
            None
        }
    }
}

/// `NOWCAST_REGISTRY` (a Confluent-compatible API), or `None` (skip) — a failure when
/// `NOWCAST_REQUIRE_REGISTRY` is set.
pub fn registry() -> Option<String> {
    match std::env::var("NOWCAST_REGISTRY") {
        Ok(r) if !r.is_empty() => Some(r),
        _ => {
            assert!(
                std::env::var_os("NOWCAST_REQUIRE_REGISTRY").is_none(),
                "NOWCAST_REQUIRE_REGISTRY is set but NOWCAST_REGISTRY is not"
            );
            eprintln!("skipped: no schema registry (run scripts/test.sh, or set NOWCAST_REGISTRY)");
            None
        }
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

impl Rec {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.value.as_deref().unwrap_or(b"null")).unwrap()
    }
}

/// `(partition, key, value)` produced as is.
pub type RawRecord<'a> = (i32, Option<&'a [u8]>, &'a [u8]);

pub struct Pipeline {
    pub bootstrap: String,
    /// Partitions of the source topic (differs from `partitions` when re-keyed).
    pub source_partitions: i32,
    pub dir: tempfile::TempDir,
    pub spec_path: PathBuf,
    pub spec: PipelineSpec,
    pub partitions: i32,
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

impl Pipeline {
    /// The Kafka example pipeline with unique names, `delivery`, and short timeouts so that
    /// a killed member's partitions and transactions are released quickly.
    pub fn new(bootstrap: &str, partitions: i32, delivery: &str) -> Pipeline {
        Pipeline::with_repartition(bootstrap, partitions, delivery, None)
    }

    /// With `Some(n)`, the source topic has `n` partitions and is not keyed by the entity
    /// (`repartition = true`): nowcast re-keys it into its repartition topic.
    pub fn with_repartition(
        bootstrap: &str,
        partitions: i32,
        delivery: &str,
        source_partitions: Option<i32>,
    ) -> Pipeline {
        Pipeline::with_edit(bootstrap, partitions, delivery, source_partitions, |t| t)
    }

    /// [`with_repartition`](Pipeline::with_repartition), with the spec text passed through
    /// `edit` before it is written.
    pub fn with_edit(
        bootstrap: &str,
        partitions: i32,
        delivery: &str,
        source_partitions: Option<i32>,
        edit: impl FnOnce(String) -> String,
    ) -> Pipeline {
        let id = unique();
        let dir = tempfile::tempdir().unwrap();
        let example = std::fs::read_to_string(repo().join("examples/kafka/pipeline.toml")).unwrap();
        let models = repo().join("models");
        let text = example
            .replace("card-fraud.", &format!("{id}."))
            .replace("name = \"card-fraud\"", &format!("name = \"{id}\""))
            .replace("\"nowcast-card-fraud\"", &format!("\"{id}\""))
            .replace("../../models", models.to_str().unwrap())
            .replace(
                "delivery = \"exactly-once\"",
                &format!("delivery = \"{delivery}\""),
            )
            .replace("partitions = 4 ", &format!("partitions = {partitions} "))
            .replace(
                "\"session.timeout.ms\" = 10000",
                "\"session.timeout.ms\" = 6000",
            )
            .replace("../../data/kafka", "data")
            .replace("snapshot_interval = \"60s\"", "snapshot_interval = \"1s\"")
            .replace(
                "key_field = \"user_id\"",
                if source_partitions.is_some() {
                    "repartition = true\nkey_field = \"user_id\""
                } else {
                    "key_field = \"user_id\""
                },
            )
            + "\n[kafka.producer]\n\"transaction.timeout.ms\" = 10000\n";
        let spec_path = dir.path().join("pipeline.toml");
        std::fs::write(&spec_path, edit(text)).unwrap();
        let spec = nowcast_spec::read_spec(&spec_path).unwrap();
        let p = Pipeline {
            bootstrap: bootstrap.to_string(),
            source_partitions: source_partitions.unwrap_or(partitions),
            dir,
            spec_path,
            spec,
            partitions,
        };
        p.create_topics();
        p
    }

    /// The local state store directory of instance `instance` (`data_dir` is `data` next to
    /// the spec).
    pub fn store_dir(&self, instance: &str) -> PathBuf {
        self.dir
            .path()
            .join("data/kafka")
            .join(&self.kafka().group)
            .join(instance)
    }

    pub fn kafka(&self) -> &nowcast_spec::KafkaSpec {
        self.spec.kafka.as_ref().unwrap()
    }

    pub fn source_topic(&self) -> String {
        self.spec.sources[0].topic.clone()
    }

    /// What the processing members consume: the repartition topic, else the source.
    pub fn input_topic(&self) -> String {
        let s = &self.spec.sources[0];
        s.repartition_topic
            .clone()
            .unwrap_or_else(|| s.topic.clone())
    }

    /// An admin client of the test's broker.
    fn admin(&self) -> AdminClient<DefaultClientContext> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap()
    }

    /// Every topic of the pipeline.
    fn topic_names(&self) -> Vec<String> {
        let k = self.kafka();
        let mut names = vec![
            self.source_topic(),
            k.features_topic.clone(),
            k.predictions_topic.clone(),
            k.dead_letters_topic.clone(),
            k.late_topic.clone(),
        ];
        names.extend(self.spec.sources[0].repartition_topic.clone());
        names
    }

    /// Deletes every topic of the pipeline and creates them again (new topic ids, offsets
    /// from 0), as an operator re-creating the feature store would.
    pub fn recreate_topics(&self) {
        let admin = self.admin();
        let names = self.topic_names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        for r in block_on(admin.delete_topics(&refs, &AdminOptions::new())).unwrap() {
            r.unwrap();
        }
        // Deletion completes in the background: create again once the names are free.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.create_topics())) {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => std::panic::resume_unwind(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Sets one config of `topic` (through the legacy AlterConfigs: its other dynamic configs
    /// go back to their defaults).
    pub fn set_topic_config(&self, topic: &str, key: &str, value: &str) {
        let admin = self.admin();
        let change =
            rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(topic))
                .set(key, value);
        for r in block_on(admin.alter_configs(&[change], &AdminOptions::new())).unwrap() {
            r.unwrap();
        }
    }

    fn create_topics(&self) {
        let admin = self.admin();
        let k = self.kafka();
        let names = self.topic_names();
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| {
                let parts = if *n == self.source_topic() {
                    self.source_partitions
                } else {
                    self.partitions
                };
                let t = NewTopic::new(n, parts, TopicReplication::Fixed(1));
                if *n == k.features_topic {
                    t.set("cleanup.policy", "compact")
                } else {
                    t
                }
            })
            .collect();
        let results = block_on(admin.create_topics(&topics, &AdminOptions::new())).unwrap();
        for r in results {
            r.unwrap();
        }
        // Creation returns before every broker's metadata cache knows the topics.
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in &names {
            loop {
                let md = c.fetch_metadata(Some(n), Duration::from_secs(5)).unwrap();
                let t = &md.topics()[0];
                if t.error().is_none() && !t.partitions().is_empty() {
                    break;
                }
                assert!(Instant::now() < deadline, "topic {n} did not appear");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// `nowcast generate --kafka`: `events` events of `users` users, seeded.
    pub fn generate(&self, events: u64, users: u64, seed: u64) {
        let out = Command::new(env!("CARGO_BIN_EXE_nowcast"))
            .args(["generate", "--events", &events.to_string()])
            .args(["--users", &users.to_string(), "--seed", &seed.to_string()])
            .args(["--rate", "2000", "--kafka"])
            .arg(&self.spec_path)
            .args(["--bootstrap", &self.bootstrap])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Produces raw records to the source topic at explicit partitions.
    pub fn produce_raw(&self, records: &[RawRecord<'_>]) {
        use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
        let p: ThreadedProducer<_> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        let topic = self.source_topic();
        for (part, key, value) in records {
            let mut r = BaseRecord::<[u8], [u8]>::to(&topic)
                .partition(*part)
                .payload(*value);
            if let Some(k) = key {
                r = r.key(*k);
            }
            p.send(r).map_err(|(e, _)| e).unwrap();
        }
        p.flush(Duration::from_secs(30)).unwrap();
    }

    /// Starts `nowcast run` as instance `instance`; stderr goes to a file in the temp dir.
    pub fn spawn(&self, instance: &str, env: &[(&str, String)]) -> Proc {
        self.spawn_logged(instance, env).0
    }

    /// [`spawn`](Pipeline::spawn), also returning the stderr log's path.
    pub fn spawn_logged(&self, instance: &str, env: &[(&str, String)]) -> (Proc, PathBuf) {
        let log = self
            .dir
            .path()
            .join(format!("run-{instance}-{}.log", unique()));
        let mut c = Command::new(env!("CARGO_BIN_EXE_nowcast"));
        c.args(["run", "--config"])
            .arg(&self.spec_path)
            .args(["--bootstrap", &self.bootstrap, "--instance", instance])
            .arg("--no-serve")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            c.env(k, v);
        }
        (Proc(c.spawn().unwrap()), log)
    }

    /// Starts `nowcast run` as instance `instance` serving HTTP on `addr`; stderr goes to a
    /// file in the temp dir, whose path is returned too.
    pub fn spawn_serving(&self, instance: &str, addr: &str) -> (Proc, PathBuf) {
        let log = self
            .dir
            .path()
            .join(format!("run-{instance}-{}.log", unique()));
        let child = Command::new(env!("CARGO_BIN_EXE_nowcast"))
            .args(["run", "--config"])
            .arg(&self.spec_path)
            .args(["--bootstrap", &self.bootstrap, "--instance", instance])
            .args(["--addr", addr])
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (Proc(child), log)
    }

    /// Every committed record of `topic`, in partition then offset order. Also asserts that
    /// no transaction is left open: the read_committed end of every partition is its high
    /// watermark.
    pub fn read_all(&self, topic: &str) -> Vec<Rec> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("{}-check", unique()))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        let n = self.partitions_of(topic);
        let mut tpl = TopicPartitionList::new();
        let mut highs = BTreeMap::new();
        for p in 0..n {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
            let (low, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            highs.insert(p, (low, high));
        }
        c.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let mut done: std::collections::BTreeSet<i32> = highs
            .iter()
            .filter(|(_, (low, high))| high <= low)
            .map(|(p, _)| *p)
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while done.len() < n as usize {
            assert!(
                Instant::now() < deadline,
                "reading {topic} timed out (an open transaction?): partitions done {done:?}, ends {highs:?}"
            );
            match c.poll(Duration::from_millis(200)) {
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    let pos = c.position().unwrap();
                    let at = pos
                        .find_partition(topic, p)
                        .and_then(|e| e.offset().to_raw())
                        .unwrap_or(-1);
                    if at >= highs[&p].1 {
                        done.insert(p);
                    }
                }
                Some(Err(e)) => panic!("{e}"),
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|x| {
                                    (
                                        x.key.to_string(),
                                        String::from_utf8_lossy(x.value.unwrap_or(b"")).into(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Rec {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        headers,
                    });
                }
                None => {}
            }
        }
        out.sort_by_key(|r| (r.partition, r.offset));
        out
    }

    /// The engines an uninterrupted run computes: every source record, per partition in
    /// offset order, decoded and applied (the same decode the processor uses).
    pub fn oracle(&self) -> (Vec<Engine>, Vec<String>) {
        let registry = nowcast_pipeline::formats::registry_client(&self.spec).unwrap();
        let decoder = Decoder::new(&self.spec, 0, registry).expect("the source's decoder");
        let mut engines: Vec<Engine> = (0..self.partitions)
            .map(|_| Engine::new(self.spec.engine.clone()).unwrap())
            .collect();
        let mut d = Decoded::default();
        let now = nowcast_pipeline::now_ms();
        let mut keys = std::collections::BTreeSet::new();
        for r in self.read_all(&self.input_topic()) {
            let Ok(()) = decoder.decode(r.value.as_deref().unwrap_or(b""), now, &mut d) else {
                continue;
            };
            let home =
                nowcast_core::partition_for_key(d.key.as_bytes(), self.partitions as u32) as i32;
            if home != r.partition {
                continue;
            }
            let _ = engines[r.partition as usize].apply(&d.key, 0, d.time, &d.inputs, None);
            keys.insert(d.key.clone());
        }
        (engines, keys.into_iter().collect())
    }

    /// The engines an uninterrupted run computes from `records` — `(partition, JSON event)`
    /// in the order they were produced — read as JSON whatever the source's format: the
    /// oracle for binary sources, whose events the test also writes as JSON.
    pub fn oracle_of_json(&self, records: &[(i32, Vec<u8>)]) -> (Vec<Engine>, Vec<String>) {
        let mut spec = self.spec.clone();
        spec.sources[0].format = nowcast_spec::SourceFormat::Json;
        let decoder = Decoder::new(&spec, 0, None).expect("a JSON decoder");
        let mut engines: Vec<Engine> = (0..self.partitions)
            .map(|_| Engine::new(self.spec.engine.clone()).unwrap())
            .collect();
        let mut d = Decoded::default();
        let now = nowcast_pipeline::now_ms();
        let mut keys = std::collections::BTreeSet::new();
        for (partition, value) in records {
            decoder
                .decode(value, now, &mut d)
                .expect("oracle events are valid");
            let home = nowcast_core::partition_for_key(d.key.as_bytes(), self.partitions as u32);
            assert_eq!(
                home as i32, *partition,
                "oracle events sit on their home partition"
            );
            let _ = engines[home as usize].apply(&d.key, 0, d.time, &d.inputs, None);
            keys.insert(d.key.clone());
        }
        (engines, keys.into_iter().collect())
    }

    fn partitions_of(&self, topic: &str) -> i32 {
        if *topic == self.source_topic() {
            self.source_partitions
        } else {
            self.partitions
        }
    }

    /// (group, topic) pairs whose committed offsets show the pipeline's progress.
    fn stages(&self) -> Vec<(String, String)> {
        let k = self.kafka();
        let mut out = vec![(k.group.clone(), self.input_topic())];
        if self.spec.sources[0].repartition_topic.is_some() {
            out.push((format!("{}-repartition", k.group), self.source_topic()));
        }
        out
    }

    /// Records `group` has not committed yet on `topic`, and the committed total.
    fn lag(&self, group: &str, topic: &str) -> (i64, i64) {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let n = self.partitions_of(topic);
        let mut tpl = TopicPartitionList::new();
        for p in 0..n {
            tpl.add_partition(topic, p);
        }
        // A fresh broker may still be loading the group coordinator: retry a while.
        let mut attempt = 0;
        let committed = loop {
            match c.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
                Ok(c) => break c,
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    eprintln!("committed offsets of {group}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("committed offsets of {group}: {e}"),
            }
        };
        let (mut behind, mut total) = (0, 0);
        for p in 0..n {
            let (_, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            let at = committed
                .find_partition(topic, p)
                .and_then(|e| e.offset().to_raw())
                .unwrap_or(0)
                .max(0);
            // Transaction markers occupy offsets too: past the last committed record the
            // group is caught up even below the high watermark.
            if high > at && self.committed_data_after(topic, p, at) {
                behind += high - at;
            }
            total += at;
        }
        (behind, total)
    }

    /// Whether a read_committed reader finds a record at or after `offset`.
    fn committed_data_after(&self, topic: &str, partition: i32, offset: i64) -> bool {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("{}-peek", unique()))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .unwrap();
        c.assign(&tpl).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(_)) => return true,
                Some(Err(KafkaError::PartitionEOF(_))) => return false,
                _ => {}
            }
        }
        true
    }

    /// Waits until every stage's committed offsets reach the end of its input.
    pub fn wait_caught_up(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            // The re-keying stage first: the processing stage's end moves until it is done.
            let behind: i64 = self
                .stages()
                .iter()
                .rev()
                .map(|(g, t)| self.lag(g, t).0)
                .sum();
            if behind == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the pipeline is still {behind} records behind after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the processing group has committed at least `n` records.
    pub fn wait_committed(&self, n: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.committed() < n {
            assert!(
                Instant::now() < deadline,
                "no progress: {n} records not committed in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Records committed by the processing group so far (sum over partitions).
    pub fn committed(&self) -> i64 {
        let (g, t) = &self.stages()[0];
        self.lag(g, t).1
    }

    /// The engines as the feature-store topic holds them.
    pub fn stored(&self) -> Vec<Engine> {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("{}-store", unique()))
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        (0..self.partitions)
            .map(|p| {
                nowcast_kafka::restore::restore(
                    &reader,
                    &self.kafka().features_topic,
                    "",
                    p,
                    self.spec.engine.clone(),
                    None,
                )
                .unwrap()
                .0
            })
            .collect()
    }
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
pub struct Proc(pub Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Asserts both sets of engines hold the same entities with the same features at `t`.
pub fn assert_same_state(expected: &[Engine], actual: &[Engine], keys: &[String], t: i64) {
    let (mut a, mut b) = (Vec::<FeatureValue>::new(), Vec::<FeatureValue>::new());
    let total: usize = expected.iter().map(Engine::entities).sum();
    assert_eq!(
        total,
        actual.iter().map(Engine::entities).sum::<usize>(),
        "entity count"
    );
    let n = expected.len() as u32;
    for key in keys {
        let p = nowcast_core::partition_for_key(key.as_bytes(), n) as usize;
        let known = expected[p].evaluate(key, t, &mut a);
        assert_eq!(known, actual[p].evaluate(key, t, &mut b), "{key} known");
        assert_eq!(a, b, "features of {key} at {t}");
    }
}

/// Waits for `child` to exit (up to `timeout`), killing it on timeout.
pub fn wait(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nowcast run did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The end of a `nowcast run` log for a failure message: its last `events` lines other than
/// the once-a-second status lines (which would hide everything else) and librdkafka's own
/// lines, then the last 12 of librdkafka's warnings and errors, then its last `status`
/// status lines. The whole log is copied to the temp dir as `nowcast-failed-<file name>`
/// (the test's own dir is deleted when it fails).
pub fn log_summary(log: &Path, events: usize, status: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let kept = std::env::temp_dir().join(format!(
        "nowcast-failed-{}",
        log.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::write(&kept, &text);
    let (st, ev): (Vec<&str>, Vec<&str>) = text
        .lines()
        .filter(|l| !l.starts_with("nowcast: librdkafka "))
        .partition(|l| l.contains(" ev/s | "));
    let client: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("nowcast: librdkafka "))
        // "nowcast: librdkafka <client> <level> <facility>: <message>"
        .filter(|l| matches!(l.split_whitespace().nth(3), Some("warning" | "error")))
        .collect();
    let tail = |v: &[&str], n: usize| v[v.len().saturating_sub(n)..].join("\n");
    format!(
        "{} (kept as {}): without status lines it ends with:\n{}\nits last librdkafka warnings and errors:\n{}\nits last status lines:\n{}",
        log.display(),
        kept.display(),
        tail(&ev, events),
        tail(&client, 12),
        tail(&st, status)
    )
}

/// Every thread's stack of the (stuck) process `pid`, through `gdb` if the machine has it,
/// written next to the kept logs; returns where, or why not. For a processor that stopped
/// making progress without an error: the stacks say what its threads wait on.
pub fn dump_stacks(pid: u32, name: &str) -> String {
    let out = std::process::Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let path = std::env::temp_dir().join(format!("nowcast-failed-{name}-stacks.txt"));
            let _ = std::fs::write(&path, &o.stdout);
            format!(
                "thread stacks in {}; the processing threads:\n{}",
                path.display(),
                processing_stacks(&String::from_utf8_lossy(&o.stdout))
            )
        }
        Ok(o) => format!(
            "no thread stacks (gdb: {})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("no thread stacks (gdb: {e})"),
    }
}

/// The stacks of nowcast's processing threads (`nowcast-kafka-N`, `nowcast-rekey-N`) and of
/// calls they run on threads of their own, out of gdb's `thread apply all bt`: each thread's
/// header and its first frames, function names only, so a failure's own output says where a
/// stuck member waits (the full dump stays in the file).
fn processing_stacks(gdb: &str) -> String {
    let mut out = String::new();
    for block in gdb.split("\nThread ").skip(1) {
        let mut lines = block.lines();
        let header = lines.next().unwrap_or_default();
        if !["\"nowcast-kafka", "\"nowcast-rekey", "\"nowcast-txn"]
            .iter()
            .any(|n| header.contains(n))
        {
            continue;
        }
        out.push_str("Thread ");
        out.push_str(header);
        out.push('\n');
        for frame in lines.filter(|l| l.starts_with('#')).take(14) {
            // "#3  0x... in name (args...) at file:line" -> "#3 name"
            let mut words = frame.split_whitespace();
            let num = words.next().unwrap_or_default();
            let name = words
                .find(|w| !w.starts_with("0x") && *w != "in")
                .unwrap_or_default();
            out.push_str(&format!("  {num} {name}\n"));
        }
    }
    out
}

/// Partitions an instance owns according to its log (assigned minus revoked lines of
/// nowcast's own; librdkafka's debug lines speak of revoked partitions too).
pub fn owned(log: &Path) -> i64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let own = text
        .lines()
        .filter(|l| !l.starts_with("nowcast: librdkafka "));
    own.map(|l| l.contains(" assigned;") as i64 - l.contains(" revoked") as i64)
        .sum()
}

/// Waits until the instance of every `(log, n)` owns at least `n` partitions; false if
/// `timeout` passes first.
pub fn wait_owned(logs: &[(&Path, i64)], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while logs.iter().any(|(log, n)| owned(log) < *n) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// SIGTERM: a graceful stop.
pub fn terminate(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Waits for an admin future (rdkafka's own thread completes it).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
