//! `nowcast run` against a real Apache Kafka broker (started by `scripts/test.sh`, or given
//! with `NOWCAST_KAFKA`): exactly-once through SIGKILLs, scale-out with a partition handover,
//! dead letters with reasons, restore from the feature store, serving.

#[path = "kafka/harness.rs"]
mod harness;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::time::Duration;

use harness::{assert_same_state, broker, terminate, wait, Pipeline, Rec};
use nowcast_kafka::store::path as snapshot;
use rand::{Rng, SeedableRng};

/// A valid event as the generator writes it.
fn event(user: &str, txn: &str, ts: i64) -> Vec<u8> {
    format!(
        r#"{{"txn_id":"{txn}","user_id":"{user}","merchant_id":"m-1","amount":12.5,"country":"US","foreign":false,"channel":"pos","ts":{ts},"is_fraud":false}}"#
    )
    .into_bytes()
}

/// Appends broken records: malformed JSON, a missing key, and a valid event on a partition
/// its user does not hash to. Returns the expected dead-letter reasons.
fn produce_bad(p: &Pipeline) -> BTreeMap<String, usize> {
    let now = nowcast_pipeline::now_ms();
    let user = "u-wrong-partition";
    let home = nowcast_core::partition_for_key(user.as_bytes(), p.partitions as u32) as i32;
    let elsewhere = (home + 1) % p.partitions;
    let wrong = event(user, "t-wrong", now);
    p.produce_raw(&[
        (0, Some(b"x"), b"{not json"),
        (1, None, br#"{"txn_id":"t-nokey","amount":1.0,"ts":1}"#),
        (elsewhere, Some(user.as_bytes()), &wrong),
    ]);
    [("malformed", 1), ("missing_key", 1), ("wrong_partition", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Every valid input event has exactly one committed prediction, and nothing else does.
fn assert_exactly_once(p: &Pipeline, source: &[Rec], preds: &[Rec]) {
    assert_predicted(p, source, preds, true);
}

/// Every valid input event has a committed prediction (exactly one with `exactly_once`), and
/// nothing else does.
fn assert_predicted(p: &Pipeline, source: &[Rec], preds: &[Rec], exactly_once: bool) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in preds {
        let v = r.json();
        let id = v["event_id"].as_str().unwrap().to_string();
        assert_eq!(
            r.key.as_deref(),
            Some(v["entity"].as_str().unwrap().as_bytes()),
            "predictions are keyed by entity"
        );
        *counts.entry(id).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        !exactly_once || dups.is_empty(),
        "duplicated predictions, e.g. {dups:?}"
    );
    let mut expected = 0;
    let mut missing = Vec::new();
    for r in source {
        let v: serde_json::Value = match serde_json::from_slice(r.value.as_deref().unwrap()) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let (Some(id), Some(user)) = (v["txn_id"].as_str(), v["user_id"].as_str()) else {
            continue;
        };
        let home = nowcast_core::partition_for_key(user.as_bytes(), p.partitions as u32) as i32;
        if home != r.partition {
            continue;
        }
        expected += 1;
        if !counts.contains_key(id) {
            missing.push(id.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "{} events without a prediction, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(counts.len(), expected, "predictions only for valid events");
    if exactly_once {
        assert_eq!(preds.len(), expected, "one prediction per valid event");
    }
}

fn reasons(dead: &[Rec]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in dead {
        assert!(r.headers.contains_key("nowcast.detail"), "{r:?}");
        assert!(r.headers.contains_key("nowcast.source.offset"), "{r:?}");
        *out.entry(r.headers["nowcast.reason"].clone()).or_default() += 1;
    }
    out
}

fn max_event_time(source: &[Rec]) -> i64 {
    source
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(r.value.as_deref()?).ok())
        .filter_map(|v| v["ts"].as_i64())
        .max()
        .unwrap()
}

fn check_final(p: &Pipeline, expected_dead: &BTreeMap<String, usize>) {
    let k = p.kafka();
    let source = p.read_all(&p.source_topic());
    let preds = p.read_all(&k.predictions_topic);
    assert_exactly_once(p, &source, &preds);
    assert_eq!(&reasons(&p.read_all(&k.dead_letters_topic)), expected_dead);
    let (oracle, keys) = p.oracle();
    let stored = p.stored();
    let t = max_event_time(&source) + 1;
    assert_same_state(&oracle, &stored, &keys, t);
    assert_same_state(&oracle, &stored, &keys, t + 4 * 60_000);
}

fn stdout_report(child: &mut std::process::Child) -> serde_json::Value {
    let mut s = String::new();
    child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("report `{s}`: {e}"))
}

#[test]
fn exactly_once_through_three_sigkills_matches_the_oracle() {
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 4, "exactly-once");
    p.generate(200_000, 20_000, 11);
    let expected_dead = produce_bad(&p);
    let seed: u64 = rand::random();
    eprintln!("kill timing seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut killed_mid_run = 0;
    // Instance a's local store: the last kill waits until every partition has a snapshot, so
    // the final restart must start from them (a kill before the first snapshot is random).
    let store = p.store_dir("a");
    let snapshots = || (0..4).filter(|&i| snapshot(&store, i).exists()).count();
    for round in 0..3 {
        let mut child = p.spawn("a", &[]);
        std::thread::sleep(Duration::from_millis(rng.gen_range(1_500..4_000)));
        if round == 2 {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while snapshots() < 4 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no local snapshots in {}",
                    store.display()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let before = p.committed();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if before < 200_003 {
            killed_mid_run += 1;
        }
    }
    eprintln!("{killed_mid_run} of 3 kills landed before the input was fully committed");
    let (mut child, log) = p.spawn_logged("a", &[]);
    // The input may be all committed already: wait for the restore itself before stopping.
    assert!(
        harness::wait_owned(&[(&log, 4)], Duration::from_secs(60)),
        "partitions not restored"
    );
    p.wait_caught_up(Duration::from_secs(180));
    terminate(&child);
    assert!(wait(&mut child, Duration::from_secs(60)).success());
    let log = std::fs::read_to_string(log).unwrap();
    eprintln!("{log}");
    assert!(
        log.contains("from the local snapshot at changelog offset"),
        "restarts read the local store plus the changelog tail"
    );
    check_final(&p, &expected_dead);
}

#[test]
fn a_local_snapshot_of_a_deleted_and_recreated_feature_store_is_not_restored() {
    // Regression: after the topics were deleted and created again, an instance restored its
    // old local snapshot (its offset fell inside the new changelog's range) and served state
    // of events that were no longer in any topic.
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 2, "exactly-once");
    p.generate(4_000, 300, 21);
    let mut child = p.spawn("a", &[]);
    p.wait_caught_up(Duration::from_secs(120));
    terminate(&child);
    assert!(wait(&mut child, Duration::from_secs(60)).success());
    let store = p.store_dir("a");
    assert!(
        (0..2).all(|i| snapshot(&store, i).exists()),
        "a graceful stop writes local snapshots"
    );

    p.recreate_topics();
    // Another instance processes other events first, so the new changelog reaches past the
    // old snapshots' offsets (an old snapshot then looks like one of the new topic).
    p.generate(6_000, 300, 22);
    let mut other = p.spawn("b", &[]);
    p.wait_caught_up(Duration::from_secs(120));
    terminate(&other);
    assert!(wait(&mut other, Duration::from_secs(60)).success());
    // More events for `a`, which would apply them to the old state and write that back.
    p.generate(2_000, 300, 23);
    let (mut child, log) = p.spawn_logged("a", &[]);
    assert!(
        harness::wait_owned(&[(&log, 2)], Duration::from_secs(60)),
        "partitions not restored"
    );
    p.wait_caught_up(Duration::from_secs(120));
    terminate(&child);
    assert!(wait(&mut child, Duration::from_secs(60)).success());
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("another incarnation of topic"),
        "the old snapshots are refused: {log}"
    );
    check_final(&p, &BTreeMap::new());
}

#[test]
fn two_instances_share_partitions_and_a_stopped_one_hands_over() {
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 4, "exactly-once");
    let (mut a, log_a) = p.spawn_logged("a", &[]);
    let (mut c, log_b) = p.spawn_logged("b", &[]);
    // Input arrives once both members own partitions.
    assert!(
        harness::wait_owned(&[(&log_a, 1), (&log_b, 1)], Duration::from_secs(60)),
        "both members should own partitions"
    );
    p.generate(100_000, 10_000, 12);
    let expected_dead = produce_bad(&p);
    std::thread::sleep(Duration::from_millis(1_500));
    terminate(&a);
    assert!(wait(&mut a, Duration::from_secs(60)).success());
    let report_a = stdout_report(&mut a);
    p.wait_caught_up(Duration::from_secs(180));
    terminate(&c);
    assert!(wait(&mut c, Duration::from_secs(60)).success());
    let report_b = stdout_report(&mut c);
    let (na, nb) = (
        report_a["events_in"].as_u64().unwrap(),
        report_b["events_in"].as_u64().unwrap(),
    );
    eprintln!("instance a read {na} records, b {nb}");
    assert!(na > 0 && nb > 0, "both instances processed partitions");
    check_final(&p, &expected_dead);
    // A serving replica answers for every entity from the feature store.
    let addr = format!(
        "127.0.0.1:{}",
        20_000 + (std::process::id() % 20_000) as u16 + 1
    );
    let log = p.dir.path().join("serve.log");
    let mut replica = harness::Proc(
        std::process::Command::new(env!("CARGO_BIN_EXE_nowcast"))
            .args(["serve", "--config"])
            .arg(&p.spec_path)
            .args(["--bootstrap", &p.bootstrap, "--addr", &addr])
            .env("RUST_BACKTRACE", "0")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let stored = p.read_all(&p.kafka().features_topic).len();
    let applied = format!("{stored} feature-store records applied, 0 unreadable");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap().contains(&applied) {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica did not apply {stored} records"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (oracle, keys) = p.oracle();
    assert_served_like_oracle(&addr, &p, &oracle, &keys);
    // The replica is ready once it has read every partition to its end, and its metrics
    // show its own progress.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, v) = http_json(&addr, "GET", "/readyz", "");
        let metrics = http_get(&addr, "/metrics");
        let lags = samples(&metrics, "nowcast_kafka_consumer_lag_records");
        if status == 200
            && lags.len() == 4
            && lags.iter().all(|(_, l)| *l == 0.0)
            && sample(&metrics, "nowcast_replica_records_applied_total") == Some(stored as f64)
        {
            assert_eq!(v["kafka"]["mode"], "replica", "{v}");
            assert_eq!(v["kafka"]["partitions_followed"], 4, "{v}");
            assert_eq!(v["kafka"]["caught_up"], true, "{v}");
            assert_eq!(v["kafka"]["lag_records"], 0, "{v}");
            assert_eq!(sample(&metrics, "nowcast_replica_caught_up"), Some(1.0));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replica not ready: {status} {v}\n{lags:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(&replica);
    assert!(wait(&mut replica, Duration::from_secs(30)).success());
}

/// A member that failed while giving up partitions in a cooperative rebalance used to be
/// rebuilt as the same static member and get its old assignment back without a rebalance: the
/// partitions it was giving up then had no owner until the next rebalance (seen in the
/// exactly-once benchmark as a run that stopped halfway). The instance that owns every
/// partition fails the commit of its revocation when a second instance joins; both must then
/// own partitions, every event must be processed exactly once and the state must match the
/// oracle.
#[test]
fn member_failing_while_giving_up_partitions_leaves_none_unowned() {
    let Some(b) = broker() else { return };
    // librdkafka's consumer-group debug lines, which must reach the processor's stderr.
    let p = Pipeline::with_edit(&b, 4, "exactly-once", None, |t| {
        t.replace(
            "\"session.timeout.ms\" = 6000",
            "\"session.timeout.ms\" = 6000\n\"debug\" = \"cgrp\"",
        )
    });
    let fault = [("NOWCAST_FAULT_FAIL_REVOKE", "1".to_string())];
    let (mut a, log_a) = p.spawn_logged("a", &fault);
    assert!(
        harness::wait_owned(&[(&log_a, 4)], Duration::from_secs(60)),
        "a should own 4 partitions"
    );
    p.generate(40_000, 5_000, 21);
    p.wait_committed(10_000, Duration::from_secs(120));
    let (mut c, log_b) = p.spawn_logged("b", &[]);
    assert!(
        harness::wait_owned(&[(&log_b, 1)], Duration::from_secs(90)),
        "b never got a partition; {}",
        harness::log_summary(&log_a, 80, 5)
    );
    let text = std::fs::read_to_string(&log_a).unwrap_or_default();
    assert!(
        text.contains("fault injection: failing the commit of a revocation"),
        "{text}"
    );
    let text_b = std::fs::read_to_string(&log_b).unwrap_or_default();
    assert!(
        text_b.contains("nowcast: librdkafka consumer debug") && text_b.contains("JoinGroup"),
        "the debug property's lines should reach stderr:\n{text_b}"
    );
    // Events after the rebalance, on every partition; they start after the first batch
    // ended (the generator ends its events at the current time, 2 s after their start).
    std::thread::sleep(Duration::from_secs(3));
    p.generate(4_000, 5_000, 22);
    p.wait_caught_up(Duration::from_secs(120));
    terminate(&a);
    terminate(&c);
    assert!(wait(&mut a, Duration::from_secs(60)).success());
    assert!(wait(&mut c, Duration::from_secs(60)).success());
    check_final(&p, &BTreeMap::new());
}

#[test]
fn at_least_once_serves_features_equal_to_the_oracle() {
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 2, "at-least-once");
    // Two processing threads in this instance: two members of the group.
    let text = std::fs::read_to_string(&p.spec_path).unwrap();
    assert!(text.contains("threads = 1 "));
    std::fs::write(&p.spec_path, text.replace("threads = 1 ", "threads = 2 ")).unwrap();
    p.generate(20_000, 500, 13);
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let mut child = harness::Proc(
        std::process::Command::new(env!("CARGO_BIN_EXE_nowcast"))
            .args(["run", "--config"])
            .arg(&p.spec_path)
            .args(["--bootstrap", &p.bootstrap, "--addr", &addr])
            .env("RUST_BACKTRACE", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    p.wait_caught_up(Duration::from_secs(120));
    let (oracle, keys) = p.oracle();
    assert_served_like_oracle(&addr, &p, &oracle, &keys);
    // Latency from the event and from the record's timestamp, for every prediction.
    let metrics = http_get(&addr, "/metrics");
    for name in ["event_to_prediction", "ingest_to_prediction"] {
        let count = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("nowcast_{name}_seconds_count ")))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert_eq!(count, Some(20_000.0), "nowcast_{name}_seconds in {metrics}");
    }
    // The Kafka runtime's own metrics carry their descriptions.
    for help in [
        "# HELP nowcast_kafka_commits_total ",
        "# HELP nowcast_feature_store_records_total ",
    ] {
        assert!(metrics.contains(help), "{help} in {metrics}");
    }
    let unknown = http_get(&addr, "/v1/features/nobody-at-all");
    assert!(unknown.contains("unknown_entity"), "{unknown}");
    // POST /v1/predict scores a known entity on its live features plus request fields.
    let body = format!(r#"{{"entity":"{}","fields":{{"amount":120.5}}}}"#, keys[0]);
    let v: serde_json::Value =
        serde_json::from_str(&http_request(&addr, "POST", "/v1/predict", &body)).unwrap();
    assert_eq!(v["entity_known"], true, "{v}");
    let score = v["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score), "{v}");
    assert_eq!(v["features"]["amount"], 120.5, "{v}");
    terminate(&child);
    assert!(wait(&mut child, Duration::from_secs(60)).success());
    let source = p.read_all(&p.source_topic());
    let preds = p.read_all(&p.kafka().predictions_topic);
    // A graceful stop commits what was processed: no duplicates even at-least-once.
    assert_exactly_once(&p, &source, &preds);
}

/// An instance used to answer 404 `unknown_entity` for an entity of another instance's
/// partition (and `/v1/predict` scored it on empty windows), `/healthz` said ok while it owned
/// nothing, and `/metrics` showed no partitions, lag or state. Two instances of one group:
/// each answers `not_owned` naming the partition for the other's entities and the data for
/// its own; `/readyz` is 503 before the assignment and 200 after; owned partitions sum to the
/// partition count; lag drains to 0; the state gauges are set.
#[test]
fn instance_answers_not_owned_for_another_instances_entity_and_reports_readiness_and_lag() {
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 4, "exactly-once");
    let base = 20_000 + (std::process::id() % 20_000) as u16;
    let addrs = [
        format!("127.0.0.1:{}", base + 2),
        format!("127.0.0.1:{}", base + 3),
    ];
    let (mut a, log_a) = p.spawn_serving("a", &addrs[0]);
    let (mut c, log_b) = p.spawn_serving("b", &addrs[1]);
    // The group's first join waits for the broker's initial rebalance delay: not ready yet.
    let (status, v) = http_json(&addrs[0], "GET", "/readyz", "");
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["status"], "not_ready");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("owns no partitions yet"),
        "{v}"
    );
    let (status, v) = http_json(&addrs[0], "GET", "/healthz", "");
    assert_eq!(status, 200, "liveness stays 200: {v}");
    assert_eq!(v["kafka"]["mode"], "instance", "{v}");
    assert!(
        harness::wait_owned(&[(&log_a, 1), (&log_b, 1)], Duration::from_secs(60)),
        "both members should own partitions"
    );
    p.generate(4_000, 400, 31);
    p.wait_caught_up(Duration::from_secs(120));
    // Ready, and between them they own every partition.
    let mut owned_by = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        owned_by.clear();
        let mut ready = true;
        for (i, addr) in addrs.iter().enumerate() {
            let (status, v) = http_json(addr, "GET", "/readyz", "");
            ready &= status == 200;
            for part in v["kafka"]["partitions"].as_array().unwrap() {
                owned_by.insert(part.as_i64().unwrap() as u32, i);
            }
        }
        if ready && owned_by.len() == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not ready or not every partition owned: {owned_by:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (oracle, keys) = p.oracle();
    let (mut mine, mut theirs) = (0, 0);
    for key in keys.iter().take(40) {
        let part = nowcast_core::partition_for_key(key.as_bytes(), 4);
        let owner = owned_by[&part];
        let (status, v) = http_json(&addrs[owner], "GET", &format!("/v1/features/{key}"), "");
        assert_eq!(status, 200, "{key} from its owner: {v}");
        mine += 1;
        let (status, v) = http_json(&addrs[1 - owner], "GET", &format!("/v1/features/{key}"), "");
        assert_eq!(status, 404, "{key} from the other instance: {v}");
        assert_eq!(v["error"], "not_owned", "{v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("partition {part} "))
                && detail.contains("it owns partitions")
                && detail.contains("nowcast serve"),
            "{detail}"
        );
        // Never scored on empty windows as if it were a new entity.
        let body = format!(r#"{{"entity":"{key}","fields":{{"amount":10}}}}"#);
        let (status, v) = http_json(&addrs[1 - owner], "POST", "/v1/predict", &body);
        assert_eq!(
            (status, v["error"].as_str()),
            (404, Some("not_owned")),
            "{v}"
        );
        let (status, v) = http_json(&addrs[owner], "POST", "/v1/predict", &body);
        assert_eq!(
            (status, &v["entity_known"]),
            (200, &serde_json::json!(true)),
            "{v}"
        );
        let body = format!(r#"{{"entities":["{key}","nobody-at-all"]}}"#);
        let (status, v) = http_json(&addrs[1 - owner], "POST", "/v1/features", &body);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["results"][0]["error"]["error"], "not_owned", "{v}");
        theirs += 1;
    }
    assert!(mine > 0 && theirs > 0);
    assert_served_like_oracle(
        &addrs[owned_by[&0]],
        &p,
        &oracle[..],
        &[keys
            .iter()
            .find(|k| nowcast_core::partition_for_key(k.as_bytes(), 4) == 0)
            .unwrap()
            .clone()],
    );
    // Metrics: owned partitions sum to the count, lag drains to 0, state is counted.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let texts: Vec<String> = addrs.iter().map(|a| http_get(a, "/metrics")).collect();
        let owned: f64 = texts
            .iter()
            .map(|t| sample(t, "nowcast_kafka_partitions_owned").unwrap_or(0.0))
            .sum();
        let lags: Vec<(String, f64)> = texts
            .iter()
            .flat_map(|t| samples(t, "nowcast_kafka_consumer_lag_records"))
            .collect();
        let entities: f64 = texts
            .iter()
            .map(|t| sample(t, "nowcast_state_entities").unwrap_or(0.0))
            .sum();
        let lagging = lags.iter().filter(|(_, v)| *v > 0.0).count();
        if owned == 4.0 && lags.len() >= 4 && lagging == 0 && entities == keys.len() as f64 {
            for t in &texts {
                for name in [
                    "# HELP nowcast_kafka_partitions_owned ",
                    "# HELP nowcast_kafka_consumer_lag_records ",
                    "# HELP nowcast_kafka_rebalances_total ",
                    "# HELP nowcast_events_in_total Records read from the source",
                    "nowcast_kafka_rebalances_total{kind=\"assign\"} ",
                    "nowcast_kafka_broker_reachable 1",
                    "nowcast_freshness_seconds{source=",
                    "nowcast_state_bytes ",
                ] {
                    assert!(t.contains(name), "{name} in {t}");
                }
            }
            let (_, v) = http_json(&addrs[0], "GET", "/healthz", "");
            let k = &v["kafka"];
            assert_eq!(k["broker_reachable"], true, "{v}");
            assert_eq!(k["lag_records"], 0, "{v}");
            assert!(k["last_commit_age_s"].as_f64().unwrap() < 10.0, "{v}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "owned {owned}, lag {lags:?}, entities {entities} of {}",
            keys.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // b leaves: a takes every partition and stays ready.
    terminate(&c);
    assert!(wait(&mut c, Duration::from_secs(60)).success());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = http_json(&addrs[0], "GET", "/readyz", "");
        if status == 200 && v["kafka"]["partitions_owned"] == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(&a);
    assert!(wait(&mut a, Duration::from_secs(60)).success());
}

/// An instance of a group with more members than partitions owns nothing: it is not ready
/// (it used to say ok), and it answers `not_owned` saying so.
#[test]
fn instance_owning_no_partitions_is_not_ready() {
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 1, "at-least-once");
    let base = 20_000 + (std::process::id() % 20_000) as u16;
    let addrs = [
        format!("127.0.0.1:{}", base + 4),
        format!("127.0.0.1:{}", base + 5),
    ];
    let (mut a, log_a) = p.spawn_serving("a", &addrs[0]);
    assert!(harness::wait_owned(&[(&log_a, 1)], Duration::from_secs(60)));
    let (mut c, _) = p.spawn_serving("b", &addrs[1]);
    // Give b time to join and be given nothing.
    std::thread::sleep(Duration::from_secs(8));
    let (status, v) = http_json(&addrs[1], "GET", "/readyz", "");
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["kafka"]["partitions_owned"], 0, "{v}");
    let (status, v) = http_json(&addrs[1], "GET", "/v1/features/u-1", "");
    assert_eq!(status, 404, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("it owns no partitions now"),
        "{v}"
    );
    let (status, v) = http_json(&addrs[0], "GET", "/readyz", "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["kafka"]["partitions_owned"], 1, "{v}");
    for child in [&mut a, &mut c] {
        terminate(child);
        assert!(wait(child, Duration::from_secs(60)).success());
    }
}

#[test]
fn at_least_once_offsets_reach_the_end_after_partitions_move() {
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 4, "at-least-once");
    // Instance b joins while a is working through a backlog and more input arrives: the
    // partitions move in the middle of a run, while a's offset commits are in flight.
    p.generate(60_000, 20_000, 16);
    let (mut a, log_a) = p.spawn_logged("a", &[]);
    p.wait_committed(10_000, Duration::from_secs(60));
    let started = std::time::Instant::now();
    let (mut c, log_b) = p.spawn_logged("b", &[]);
    p.generate(60_000, 20_000, 17);
    let left = Duration::from_secs(60).saturating_sub(started.elapsed());
    assert!(
        harness::wait_owned(&[(&log_b, 1)], left),
        "b should take partitions over"
    );
    let caught_up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        p.wait_caught_up(Duration::from_secs(180))
    }));
    if let Err(e) = caught_up {
        for log in [&log_a, &log_b] {
            eprintln!("{}", harness::log_summary(log, 200, 1));
        }
        std::panic::resume_unwind(e);
    }
    for child in [&mut a, &mut c] {
        terminate(child);
        assert!(wait(child, Duration::from_secs(60)).success());
    }
    // The second batch's event times overlap the first's: some of it is late. Every other
    // event has a prediction.
    let late: HashSet<String> = p
        .read_all(&p.kafka().late_topic)
        .iter()
        .map(|r| r.json()["txn_id"].as_str().unwrap().to_string())
        .collect();
    let source: Vec<Rec> = p
        .read_all(&p.source_topic())
        .into_iter()
        .filter(|r| !late.contains(r.json()["txn_id"].as_str().unwrap()))
        .collect();
    let preds = p.read_all(&p.kafka().predictions_topic);
    eprintln!("{} late events, {} predictions", late.len(), preds.len());
    assert_predicted(&p, &source, &preds, false);
}

/// GET /v1/features for some entities equals the oracle evaluated at the response's `as_of`.
fn assert_served_like_oracle(
    addr: &str,
    p: &Pipeline,
    oracle: &[nowcast_window::Engine],
    keys: &[String],
) {
    for key in keys.iter().take(20) {
        let body = http_get(addr, &format!("/v1/features/{key}"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let as_of = v["as_of"].as_i64().unwrap();
        let part = nowcast_core::partition_for_key(key.as_bytes(), p.partitions as u32) as usize;
        let mut expected = Vec::new();
        assert!(oracle[part].evaluate(key, as_of, &mut expected));
        for (f, want) in p.spec.engine.features.iter().zip(&expected) {
            let got = &v["features"][&f.name]["value"];
            let want = serde_json::to_value(want).unwrap();
            // serde_json's default float parser may be off by one unit in the last place.
            let close =
                |a: &serde_json::Value, b: &serde_json::Value| match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0),
                    _ => a == b,
                };
            let same = match (got.as_array(), want.as_array()) {
                (Some(g), Some(w)) => {
                    g.len() == w.len() && g.iter().zip(w).all(|(a, b)| close(a, b))
                }
                _ => close(got, &want),
            };
            assert!(same, "{key} {}: served {got}, oracle {want}", f.name);
        }
    }
}

fn http_get(addr: &str, path: &str) -> String {
    http_request(addr, "GET", path, "")
}

fn http_request(addr: &str, method: &str, path: &str, body: &str) -> String {
    http_call(addr, method, path, body).1
}

/// The status code and the body as JSON.
fn http_json(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = http_call(addr, method, path, body);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
    (status, v)
}

/// The value of the sample `name` (with its labels, e.g. `x{a="b"}`) in Prometheus text.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Every sample of metric `name` (any labels) as (labels, value).
fn samples(metrics: &str, name: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (labels, v) = r.split_once("} ")?;
                    (labels.to_string(), v)
                }
                None => (String::new(), rest.strip_prefix(' ')?),
            };
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

fn http_call(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::Write;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match std::net::TcpStream::connect(addr) {
            Ok(mut s) => {
                write!(
                    s,
                    "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                let status = out
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
                return (status, body);
            }
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("{addr}: {e}"),
        }
    }
}

#[test]
fn unreachable_broker_is_retried_then_named_in_the_error() {
    // No broker needed: nothing listens on port 1.
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("pipeline.toml");
    let text = std::fs::read_to_string(harness::repo().join("examples/kafka/pipeline.toml"))
        .unwrap()
        .replace(
            "../../models",
            harness::repo().join("models").to_str().unwrap(),
        );
    std::fs::write(&spec, text).unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nowcast"))
        .args(["run", "--no-serve", "--config"])
        .arg(&spec)
        .args(["--bootstrap", "127.0.0.1:1", "--connect-timeout", "6s"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("retrying in"), "{err}");
    assert!(
        err.contains(
            "cannot read the metadata of topic `card-fraud.transactions` from Kafka at 127.0.0.1:1"
        ),
        "{err}"
    );
    assert!(err.contains("gave up after 6 s of retries"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_feature_store_that_is_not_compacted_is_refused_at_start() {
    // Regression: `run` started on a feature store with cleanup.policy=delete, whose
    // retention silently drops the state of idle entities from the changelog.
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 1, "at-least-once");
    p.set_topic_config(&p.kafka().features_topic, "cleanup.policy", "delete");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nowcast"))
        .args(["run", "--no-serve", "--config"])
        .arg(&p.spec_path)
        .args(["--bootstrap", &p.bootstrap])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the feature store `{}` has cleanup.policy=delete, not compact",
            p.kafka().features_topic
        )),
        "{err}"
    );
    assert!(err.contains("nowcast topics apply --config"), "{err}");
}

/// A broker of this test's own (so restarting it disturbs no other test), stopped on drop.
struct OwnBroker {
    run_dir: tempfile::TempDir,
    port: u16,
}

impl OwnBroker {
    fn script(&self, cmd: &str) -> std::process::Output {
        std::process::Command::new(harness::repo().join("scripts/kafka.sh"))
            .arg(cmd)
            .env("NOWCAST_KAFKA_RUN_DIR", self.run_dir.path().join("run"))
            .env("NOWCAST_KAFKA_PORT", self.port.to_string())
            .env(
                "NOWCAST_KAFKA_CONTROLLER_PORT",
                (self.port + 100).to_string(),
            )
            .env("NOWCAST_KAFKA_HEAP", "384m")
            .output()
            .unwrap()
    }

    /// A one-node broker of the test's own; `slot` tells apart those of one test process
    /// (they run at the same time on neighbouring ports).
    fn start(slot: u16) -> OwnBroker {
        let b = OwnBroker {
            run_dir: tempfile::tempdir().unwrap(),
            port: 19_500 + 2 * (std::process::id() % 50) as u16 + slot,
        };
        let out = b.script("start");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        b
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

/// While the broker was down, `/healthz` said ok, nothing said not ready, and a replica
/// printed ~5 `AllBrokersDown` lines a second. Now both an instance and a replica stay live
/// (200) but turn not ready naming the broker and report it once per 10 s; when a broker
/// comes back without the pipeline's topics, they stay not ready naming the missing topic.
#[test]
fn broker_outage_makes_instance_and_replica_not_ready_and_is_logged_once_per_interval() {
    if broker().is_none() {
        return;
    }
    let own = OwnBroker::start(2);
    let p = Pipeline::new(&own.bootstrap(), 2, "at-least-once");
    let base = 20_000 + (std::process::id() % 20_000) as u16;
    let (instance, replica) = (
        format!("127.0.0.1:{}", base + 6),
        format!("127.0.0.1:{}", base + 7),
    );
    let (mut a, log_a) = p.spawn_serving("a", &instance);
    let log_r = p.dir.path().join("serve.log");
    let mut r = harness::Proc(
        std::process::Command::new(env!("CARGO_BIN_EXE_nowcast"))
            .args(["serve", "--config"])
            .arg(&p.spec_path)
            .args(["--bootstrap", &p.bootstrap, "--addr", &replica])
            .env("RUST_BACKTRACE", "0")
            .stderr(std::fs::File::create(&log_r).unwrap())
            .spawn()
            .unwrap(),
    );
    let wait_ready = |addr: &str, ready: bool, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, v) = http_json(addr, "GET", "/readyz", "");
            if (status == 200) == ready {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {status} {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_ready(&instance, true, "instance ready");
    wait_ready(&replica, true, "replica ready");
    let out = own.script("stop");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped = std::time::Instant::now();
    for addr in [&instance, &replica] {
        let v = wait_ready(addr, false, "not ready without the broker");
        let reasons = v["reasons"].to_string();
        assert!(reasons.contains("cannot reach the Kafka broker"), "{v}");
        let (status, v) = http_json(addr, "GET", "/healthz", "");
        assert_eq!(status, 200, "liveness stays 200: {v}");
        assert_eq!(v["kafka"]["broker_reachable"], false, "{v}");
    }
    std::thread::sleep(Duration::from_secs(15).saturating_sub(stopped.elapsed()));
    let lines = |log: &std::path::Path, prefix: &str| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    };
    let replica_errors = lines(&log_r, "nowcast: replica:");
    assert!(
        replica_errors <= 3,
        "{replica_errors} error lines in 15 s:\n{}",
        std::fs::read_to_string(&log_r).unwrap_or_default()
    );
    assert!(lines(&log_a, "nowcast: consumer:") <= 3);
    // A broker back without the pipeline's topics (`start` makes a fresh cluster, as if
    // they had been deleted): reachable, and still not ready, naming the missing topic.
    let out = own.script("start");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for addr in [&instance, &replica] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, v) = http_json(addr, "GET", "/readyz", "");
            let reasons = v["reasons"].to_string();
            if v["kafka"]["broker_reachable"] == true && reasons.contains("does not exist") {
                assert_eq!(status, 503, "{v}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{status} {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for (child, log) in [(&mut a, &log_a), (&mut r, &log_r)] {
        terminate(child);
        let status = wait(child, Duration::from_secs(60));
        assert!(
            status.success(),
            "{status}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

#[test]
fn unwritable_local_snapshots_neither_stop_processing_nor_fail_the_stop() {
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 2, "exactly-once");
    // The local store of instance "a": a directory where each snapshot's temporary file goes
    // makes every snapshot write fail (as a full or read-only disk would, even for root).
    let store = p.store_dir("a");
    let blockers: Vec<_> = (0..2)
        .map(|q| snapshot(&store, q).with_extension("snap.tmp"))
        .collect();
    for d in &blockers {
        std::fs::create_dir_all(d).unwrap();
    }
    p.generate(20_000, 2_000, 31);
    let (mut child, log) = p.spawn_logged("a", &[]);
    p.wait_caught_up(Duration::from_secs(120));
    // Snapshots are due every second in tests: several have failed by now.
    std::thread::sleep(Duration::from_secs(3));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("local snapshot not written"),
        "{}",
        harness::log_summary(&log, 40, 5)
    );
    assert!(!snapshot(&store, 0).exists() && !snapshot(&store, 1).exists());
    // Once the disk takes writes again, the next interval writes them.
    for d in &blockers {
        std::fs::remove_dir(d).unwrap();
    }
    p.generate(5_000, 2_000, 32);
    p.wait_caught_up(Duration::from_secs(120));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(snapshot(&store, 0).exists() && snapshot(&store, 1).exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot after the disk recovered; {}",
            harness::log_summary(&log, 40, 5)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A stop whose final snapshot fails still commits and exits 0. (A periodic snapshot may
    // hold the temporary file for a moment: retry until the blocker is a directory.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::create_dir(&blockers[0]).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "cannot block snapshots again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let failures = |text: &str| text.matches("local snapshot not written").count();
    let before = failures(&std::fs::read_to_string(&log).unwrap());
    let kept = std::fs::read(snapshot(&store, 0)).unwrap();
    terminate(&child);
    let status = wait(&mut child, Duration::from_secs(60));
    assert!(
        status.success(),
        "graceful stop failed ({status}); {}",
        harness::log_summary(&log, 40, 5)
    );
    assert!(
        failures(&std::fs::read_to_string(&log).unwrap()) > before,
        "the final snapshot did not fail; {}",
        harness::log_summary(&log, 40, 5)
    );
    // The partition whose final snapshot failed keeps its older, consistent one.
    assert_eq!(std::fs::read(snapshot(&store, 0)).unwrap(), kept);
    check_final(&p, &BTreeMap::new());
}

#[test]
fn broker_restart_mid_run_loses_nothing() {
    // Runs wherever the other Kafka tests run; it starts a broker of its own.
    if broker().is_none() {
        return;
    }
    let (_own, p) = run_through_broker_restarts("exactly-once", 0);
    check_final(&p, &BTreeMap::new());
}

#[test]
fn broker_restart_mid_run_at_least_once_loses_nothing() {
    if broker().is_none() {
        return;
    }
    let (_own, p) = run_through_broker_restarts("at-least-once", 1);
    // Every event has a prediction (duplicates allowed), and nothing was dead-lettered.
    let source = p.read_all(&p.source_topic());
    let preds = p.read_all(&p.kafka().predictions_topic);
    assert_predicted(&p, &source, &preds, false);
    assert!(p.read_all(&p.kafka().dead_letters_topic).is_empty());
}

/// Runs a pipeline of `delivery` on a broker of its own (port `slot`, see
/// [`OwnBroker::start`]), restarts the broker while it processes (once, or
/// `NOWCAST_TEST_BROKER_RESTARTS` times: a soak for restarts that land inside a commit),
/// waits until every record is committed and stops the processor gracefully. A processor
/// that stops making progress gets its thread stacks and log printed.
fn run_through_broker_restarts(delivery: &str, slot: u16) -> (OwnBroker, Pipeline) {
    let restarts: i64 = std::env::var("NOWCAST_TEST_BROKER_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let events = 150_000 + 100_000 * (restarts - 1);
    let own = OwnBroker::start(slot);
    let p = Pipeline::new(&own.bootstrap(), 2, delivery);
    p.generate(events as u64, 10_000, 14);
    let (mut child, log) = p.spawn_logged("a", &[]);
    let caught_up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for i in 0..restarts {
            p.wait_committed(20_000 + 100_000 * i, Duration::from_secs(240));
            let at_restart = p.committed();
            let out = own.script("restart");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!(
                "{delivery}: broker restarted with {at_restart} of {events} records committed"
            );
        }
        p.wait_caught_up(Duration::from_secs(240))
    }));
    if let Err(e) = caught_up {
        let exited = child.try_wait();
        let stacks = match exited {
            Ok(None) => harness::dump_stacks(child.id(), &format!("broker-restart-{delivery}")),
            _ => String::new(),
        };
        eprintln!(
            "nowcast exited: {exited:?}; {stacks}; {}",
            harness::log_summary(&log, 80, 5)
        );
        std::panic::resume_unwind(e);
    }
    terminate(&child);
    let status = wait(&mut child, Duration::from_secs(60));
    assert!(
        status.success(),
        "graceful stop failed ({status}); {}",
        harness::log_summary(&log, 80, 5)
    );
    (own, p)
}

#[test]
fn commit_call_that_never_returns_rebuilds_the_member_exactly_once() {
    // librdkafka's send_offsets_to_transaction can wait forever after a broker restart (a CI
    // run stalled for good in it). The fault makes the first such call hang: the member must
    // abandon that producer, be rebuilt with a new one that fences it, and stay exactly-once
    // when the abandoned call finally returns.
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 2, "exactly-once");
    p.generate(40_000, 5_000, 23);
    let fault = [("NOWCAST_FAULT_STALL_OFFSETS", "1".to_string())];
    let (mut child, log) = p.spawn_logged("a", &fault);
    p.wait_caught_up(Duration::from_secs(180));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("adding offsets to the transaction stalls")
            && text.contains("adding offsets to the transaction did not return within 3 s")
            && text.contains("rebuilding its producer and consumer"),
        "{}",
        harness::log_summary(&log, 40, 5)
    );
    // Past the abandoned call's return: its late offsets must not move anything.
    std::thread::sleep(Duration::from_secs(20));
    p.generate(4_000, 5_000, 24);
    p.wait_caught_up(Duration::from_secs(120));
    terminate(&child);
    let status = wait(&mut child, Duration::from_secs(60));
    assert!(
        status.success(),
        "graceful stop failed ({status}); {}",
        harness::log_summary(&log, 40, 5)
    );
    check_final(&p, &BTreeMap::new());
}

#[test]
fn source_keyed_by_session_is_rekeyed_by_entity_exactly_once() {
    let Some(b) = broker() else { return };
    // 3 source partitions keyed by session; 4 entity partitions downstream.
    let p = Pipeline::with_repartition(&b, 4, "exactly-once", Some(3));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nowcast"))
        .args([
            "generate", "--events", "60000", "--users", "5000", "--seed", "15",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<&[u8]> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let sessions: Vec<String> = (0..lines.len()).map(|i| format!("s-{}", i % 977)).collect();
    let mut records: Vec<harness::RawRecord<'_>> = lines
        .iter()
        .zip(&sessions)
        .enumerate()
        .map(|(i, (l, s))| ((i % 3) as i32, Some(s.as_bytes()), *l))
        .collect();
    records.push((0, Some(b"s-x"), b"{not json"));
    p.produce_raw(&records);
    let mut child = p.spawn("a", &[]);
    std::thread::sleep(Duration::from_millis(2_500));
    child.kill().unwrap(); // SIGKILL mid-run: both stages must stay exactly-once
    child.wait().unwrap();
    let mut child = p.spawn("a", &[]);
    p.wait_caught_up(Duration::from_secs(180));
    terminate(&child);
    assert!(wait(&mut child, Duration::from_secs(60)).success());

    // Every decodable source record reached the repartition topic once, on its entity's
    // partition, keyed by the entity.
    let k = p.kafka();
    let rekeyed = p.read_all(&p.input_topic());
    let mut want: Vec<&[u8]> = lines.clone();
    let mut got: Vec<&[u8]> = rekeyed
        .iter()
        .map(|r| r.value.as_deref().unwrap())
        .collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got.len(), want.len(), "re-keyed once each");
    assert!(
        got == want,
        "the repartition topic holds exactly the valid source records"
    );
    for r in &rekeyed {
        let key = r.key.as_deref().unwrap();
        let user = r.json()["user_id"].as_str().unwrap().to_string();
        assert_eq!(key, user.as_bytes());
        assert_eq!(r.partition, nowcast_core::partition_for_key(key, 4) as i32);
    }
    // Re-keying interleaves the three source partitions, so some events arrive later than
    // the allowed lateness: each event has exactly one prediction or one late record.
    let late = p.read_all(&k.late_topic);
    for r in &late {
        // The watermark it was refused against, in headers, and its own event time.
        let watermark: i64 = r.headers["nowcast.watermark"].parse().unwrap();
        let time: i64 = r.headers["nowcast.event_time"].parse().unwrap();
        assert_eq!(time, r.json()["ts"].as_i64().unwrap(), "{r:?}");
        assert!(time < watermark, "{r:?}");
    }
    let id = |r: &Rec| r.json()["txn_id"].as_str().unwrap().to_string();
    let late_ids: std::collections::HashSet<String> = late.iter().map(id).collect();
    assert_eq!(late_ids.len(), late.len(), "late records are not repeated");
    let on_time: Vec<Rec> = rekeyed
        .iter()
        .filter(|r| !late_ids.contains(&id(r)))
        .cloned()
        .collect();
    eprintln!("{} on time, {} late", on_time.len(), late.len());
    let preds = p.read_all(&k.predictions_topic);
    assert_exactly_once(&p, &on_time, &preds);
    let dead = reasons(&p.read_all(&k.dead_letters_topic));
    assert_eq!(dead, BTreeMap::from([("malformed".to_string(), 1)]));
    let (oracle, keys) = p.oracle();
    let t = max_event_time(&rekeyed) + 1;
    assert_same_state(&oracle, &p.stored(), &keys, t);
}

#[test]
fn member_fenced_by_a_consumer_with_its_group_instance_id_rejoins_and_loses_nothing() {
    // A broker frozen for longer than the session timeout can, once it runs again, serve a
    // request of a member's earlier incarnation (held in its socket) after the new one joined
    // with the same group.instance.id: the new consumer is fenced (FENCED_INSTANCE_ID), a
    // fatal error after which librdkafka never rejoins. The member logged it and went on
    // polling: the instance sat at no partitions with the group empty, for good. Here a
    // consumer of the test's own takes the member's group.instance.id; the member must be
    // rebuilt, fence it back, and go on exactly-once.
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let Some(b) = broker() else { return };
    let p = Pipeline::new(&b, 2, "exactly-once");
    p.generate(10_000, 2_000, 41);
    let (mut child, log) = p.spawn_logged("a", &[]);
    p.wait_caught_up(Duration::from_secs(120));
    let k = p.kafka();
    let intruder: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &p.bootstrap)
        .set("group.id", &k.group)
        .set("group.instance.id", format!("{}-a-0", k.group))
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "6000")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    intruder.subscribe(&[&p.input_topic()]).unwrap();
    let fenced = |text: &str| text.contains("FencedInstanceId");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !fenced(&std::fs::read_to_string(&log).unwrap_or_default()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the member was not fenced; {}",
            harness::log_summary(&log, 40, 5)
        );
        let _ = intruder.poll(Duration::from_millis(100));
    }
    drop(intruder);
    p.generate(5_000, 2_000, 42);
    let caught_up = std::panic::catch_unwind(|| p.wait_caught_up(Duration::from_secs(60)));
    if let Err(e) = caught_up {
        eprintln!("{}", harness::log_summary(&log, 40, 5));
        std::panic::resume_unwind(e);
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("the consumer failed for good") && text.contains("rebuilding its producer"),
        "{}",
        harness::log_summary(&log, 40, 5)
    );
    terminate(&child);
    let status = wait(&mut child, Duration::from_secs(60));
    assert!(
        status.success(),
        "graceful stop failed ({status}); {}",
        harness::log_summary(&log, 40, 5)
    );
    check_final(&p, &BTreeMap::new());
}
