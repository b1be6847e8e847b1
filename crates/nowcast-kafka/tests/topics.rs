//! `nowcast topics plan|apply` against the real broker (`NOWCAST_KAFKA`), with a fresh set of
//! topic names per test. What the broker reports is read back with plain rdkafka calls, not
//! with the code under test.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nowcast_kafka::topics::{self, Admin, Change, TopicPlan};
use nowcast_kafka::KafkaError;
use nowcast_spec::{parse_spec, PipelineSpec};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

/// Names of one test's topics; deleted from `cleanup`'s broker when dropped, pass or fail.
struct Names {
    cleanup: Option<String>,
    source: String,
    features: String,
    predictions: String,
    dead_letters: String,
    late: String,
}

impl Names {
    fn new(cleanup: Option<&str>) -> Names {
        let p = common::unique("topics");
        Names {
            cleanup: cleanup.map(str::to_string),
            source: format!("{p}.tx"),
            features: format!("{p}.features"),
            predictions: format!("{p}.predictions"),
            dead_letters: format!("{p}.dead-letters"),
            late: format!("{p}.late"),
        }
    }

    fn all(&self) -> [&str; 5] {
        [
            &self.source,
            &self.features,
            &self.predictions,
            &self.dead_letters,
            &self.late,
        ]
    }
}

fn spec(n: &Names, bootstrap: &str, partitions: u32, retention: &str) -> PipelineSpec {
    let text = format!(
        r#"
[pipeline]
name = "t"
[[sources]]
name = "tx"
topic = "{source}"
key_field = "user"
time_field = "ts"
fields = {{ user = "string", ts = "any", amount = "number" }}
[[features]]
name = "n_1h"
source = "tx"
aggregation = "count"
window = "1h"
[model]
name = "m"
type = "logistic"
weights = [0.5, 1.0]
request_fields = ["amount"]
inputs = ["amount", "n_1h"]
[kafka]
bootstrap = "{bootstrap}"
partitions = {partitions}
replication_factor = 1
retention = "{retention}"
[kafka.topics]
features = "{features}"
predictions = "{predictions}"
dead_letters = "{dead_letters}"
late = "{late}"
"#,
        source = n.source,
        features = n.features,
        predictions = n.predictions,
        dead_letters = n.dead_letters,
        late = n.late,
    );
    parse_spec(&text, "topics-test.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn admin_for(spec: &PipelineSpec, bootstrap: &str) -> Admin {
    Admin::connect(spec.kafka.as_ref().unwrap(), bootstrap, "topics-test.toml").unwrap()
}

fn raw_admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// A minimal executor for the test's own rdkafka calls (rdkafka's polling thread completes
/// admin futures; we only need to wait for them).
fn wait<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(Instant::now() < deadline, "rdkafka call did not finish");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

fn opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .operation_timeout(Some(Duration::from_secs(10)))
}

/// Partition count and the named configs of `topic`, read with plain rdkafka calls.
fn broker_view(bootstrap: &str, topic: &str) -> (usize, BTreeMap<String, String>) {
    let admin = raw_admin(bootstrap);
    let md = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .unwrap_or_else(|| panic!("topic {topic} does not exist"));
    let partitions = t.partitions().len();
    let r = wait(admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &opts()))
        .unwrap()
        .remove(0)
        .unwrap();
    let configs = ["cleanup.policy", "retention.ms", "min.insync.replicas"]
        .iter()
        .filter_map(|k| {
            r.get(k)
                .and_then(|e| e.value.clone())
                .map(|v| (k.to_string(), v))
        })
        .collect();
    (partitions, configs)
}

fn segment_ms(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Option<String> {
    wait(admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &opts()))
        .unwrap()
        .remove(0)
        .unwrap()
        .get("segment.ms")
        .and_then(|e| e.value.clone())
}

impl Drop for Names {
    fn drop(&mut self) {
        if let Some(bootstrap) = &self.cleanup {
            let admin = raw_admin(bootstrap);
            let _ = wait(admin.delete_topics(&self.all(), &opts()));
        }
    }
}

fn lines(changes: &[Change]) -> Vec<String> {
    changes.iter().map(|c| c.to_string()).collect()
}

#[test]
fn plan_lists_creations_apply_creates_them_as_declared_then_all_is_up_to_date() {
    let Some(bootstrap) = common::broker() else {
        return;
    };
    let n = Names::new(Some(&bootstrap));
    let spec = spec(&n, &bootstrap, 3, "2h");
    let plan = TopicPlan::new(&spec, "topics-test.toml").unwrap();
    let admin = admin_for(&spec, &bootstrap);

    let changes = topics::plan(&admin, &plan).unwrap();
    let l = lines(&changes);
    assert_eq!(
        l,
        [
            format!(
                "+ create topic {} (partitions 3, rf 1, cleanup.policy=delete, \
                 min.insync.replicas=1, retention.ms=7200000)",
                n.source
            ),
            format!(
                "+ create topic {} (partitions 3, rf 1, cleanup.policy=compact, \
                 min.insync.replicas=1)",
                n.features
            ),
            format!(
                "+ create topic {} (partitions 3, rf 1, cleanup.policy=delete, \
                 min.insync.replicas=1)",
                n.predictions
            ),
            format!(
                "+ create topic {} (partitions 3, rf 1, cleanup.policy=delete, \
                 min.insync.replicas=1)",
                n.dead_letters
            ),
            format!(
                "+ create topic {} (partitions 3, rf 1, cleanup.policy=delete, \
                 min.insync.replicas=1)",
                n.late
            ),
        ]
    );

    topics::apply(&admin, &plan, &changes).unwrap();

    let (p, c) = broker_view(&bootstrap, &n.source);
    assert_eq!(p, 3);
    assert_eq!(c["cleanup.policy"], "delete");
    assert_eq!(c["retention.ms"], "7200000");
    assert_eq!(c["min.insync.replicas"], "1");
    let (p, c) = broker_view(&bootstrap, &n.features);
    assert_eq!(p, 3, "co-partitioned with the source");
    assert_eq!(c["cleanup.policy"], "compact");
    assert_eq!(c["min.insync.replicas"], "1");
    for t in [&n.predictions, &n.dead_letters, &n.late] {
        let (p, c) = broker_view(&bootstrap, t);
        assert_eq!(p, 3, "{t}");
        assert_eq!(c["cleanup.policy"], "delete", "{t}");
        assert_eq!(c["min.insync.replicas"], "1", "{t}");
    }

    let again = topics::plan(&admin, &plan).unwrap();
    assert_eq!(
        lines(&again),
        n.all()
            .iter()
            .map(|t| format!("= {t} up to date"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn changed_retention_is_planned_as_an_alteration_and_applied() {
    let Some(bootstrap) = common::broker() else {
        return;
    };
    let n = Names::new(Some(&bootstrap));
    let first = spec(&n, &bootstrap, 2, "1h");
    let plan = TopicPlan::new(&first, "topics-test.toml").unwrap();
    let admin = admin_for(&first, &bootstrap);
    let changes = topics::plan(&admin, &plan).unwrap();
    topics::apply(&admin, &plan, &changes).unwrap();
    // A foreign override on the source survives the alteration (AlterConfigs replaces the
    // whole override set; apply must carry it over).
    let raw = raw_admin(&bootstrap);
    let set = rdkafka::admin::AlterConfig::new(ResourceSpecifier::Topic(&n.source))
        .set("cleanup.policy", "delete")
        .set("min.insync.replicas", "1")
        .set("retention.ms", "3600000")
        .set("segment.ms", "600000");
    wait(raw.alter_configs(&[set], &opts()))
        .unwrap()
        .remove(0)
        .unwrap();
    // Config changes reach the broker's metadata asynchronously: plan once it shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    while segment_ms(&raw, &n.source).as_deref() != Some("600000") {
        assert!(
            Instant::now() < deadline,
            "segment.ms override never showed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let second = spec(&n, &bootstrap, 2, "48h");
    let plan = TopicPlan::new(&second, "topics-test.toml").unwrap();
    let changes = topics::plan(&admin, &plan).unwrap();
    let l = lines(&changes);
    assert_eq!(
        l[0],
        format!("~ alter {} retention.ms 3600000 -> 172800000", n.source)
    );
    assert!(l[1..].iter().all(|l| l.ends_with("up to date")), "{l:?}");

    topics::apply(&admin, &plan, &changes).unwrap();
    let (_, c) = broker_view(&bootstrap, &n.source);
    assert_eq!(c["retention.ms"], "172800000");
    assert_eq!(
        segment_ms(&raw, &n.source).as_deref(),
        Some("600000"),
        "foreign override kept"
    );
    assert!(topics::plan(&admin, &plan)
        .unwrap()
        .iter()
        .all(|c| matches!(c, Change::UpToDate(_))));
}

#[test]
fn a_features_topic_with_another_partition_count_is_a_co_partitioning_error() {
    let Some(bootstrap) = common::broker() else {
        return;
    };
    let n = Names::new(Some(&bootstrap));
    let raw = raw_admin(&bootstrap);
    let pre =
        NewTopic::new(&n.features, 5, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    wait(raw.create_topics(&[pre], &opts()))
        .unwrap()
        .remove(0)
        .unwrap();

    let spec = spec(&n, &bootstrap, 2, "48h");
    let plan = TopicPlan::new(&spec, "topics-test.toml").unwrap();
    let admin = admin_for(&spec, &bootstrap);
    // Metadata of a just-created topic propagates asynchronously.
    let deadline = Instant::now() + Duration::from_secs(10);
    let changes = loop {
        let c = topics::plan(&admin, &plan).unwrap();
        if topics::has_errors(&c) || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(topics::has_errors(&changes), "{:?}", lines(&changes));
    let e = lines(&changes)
        .into_iter()
        .find(|l| l.starts_with("x error:"))
        .unwrap();
    for part in [
        format!("features topic `{}` has 5 partitions", n.features),
        format!("`{}` (2) will be created with 2", n.source),
        "co-partitioned".to_string(),
        "moves keys".to_string(),
        "topics-test.toml".to_string(),
        format!(
            "delete topic `{}` so `nowcast topics apply` recreates it with 2",
            n.features
        ),
    ] {
        assert!(e.contains(&part), "missing `{part}` in: {e}");
    }
    let err = topics::apply(&admin, &plan, &changes).unwrap_err();
    assert!(matches!(err, KafkaError::Topics(_)), "{err}");
    assert!(err.to_string().contains("nothing changed"), "{err}");
    let md = raw
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert!(
        !md.topics().iter().any(|t| t.name() == n.source),
        "apply with errors created nothing"
    );
}

#[test]
fn an_unreachable_broker_is_reported_within_the_timeout() {
    // Needs no broker: port 1 refuses.
    let n = Names::new(None);
    let spec = spec(&n, "127.0.0.1:1", 2, "48h");
    let plan = TopicPlan::new(&spec, "topics-test.toml").unwrap();
    let admin = admin_for(&spec, "127.0.0.1:1").with_timeout(Duration::from_secs(3));
    let start = Instant::now();
    let err = topics::plan(&admin, &plan).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, KafkaError::Unreachable(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(msg.contains("topics-test.toml"), "{msg}");
    assert!(took < Duration::from_secs(6), "took {took:?}");

    // The default deadline is about 10 s.
    let admin = admin_for(&spec, "127.0.0.1:1");
    let start = Instant::now();
    let err = topics::plan(&admin, &plan).unwrap_err();
    assert!(matches!(err, KafkaError::Unreachable(_)), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
}
