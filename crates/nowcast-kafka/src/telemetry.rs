//! Descriptions (Prometheus `# HELP` lines) of the metrics the Kafka runtime records.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Registers a description for every metric of this crate (call once, after the recorder
/// is installed).
pub fn describe() {
    describe_counter!(
        "nowcast_kafka_commits_total",
        "Commits completed: transactions (exactly-once) or closed epochs of produced records (at-least-once)."
    );
    describe_histogram!(
        "nowcast_kafka_commit_seconds",
        Unit::Seconds,
        "Time of one commit: the changelog of changed entities, the outputs and the offsets."
    );
    describe_counter!(
        "nowcast_kafka_commit_failures_total",
        "At-least-once offset commits the group coordinator refused (the next commit sends them again)."
    );
    describe_counter!(
        "nowcast_kafka_member_restarts_total",
        "Processing threads rebuilt (new producer and consumer, state restored) after a recoverable error."
    );
    describe_counter!(
        "nowcast_kafka_abandoned_calls_total",
        "Transaction calls that did not return within their deadline; their producer was abandoned and the member rebuilt (or, with too many still stuck, the instance stopped)."
    );
    describe_counter!(
        "nowcast_kafka_repartitioned_total",
        "Source records re-keyed by entity into the repartition topic."
    );
    describe_histogram!(
        "nowcast_kafka_restore_seconds",
        Unit::Seconds,
        "Time to restore one assigned partition's state from the local snapshot and the changelog."
    );
    describe_histogram!(
        "nowcast_kafka_snapshot_seconds",
        Unit::Seconds,
        "Time of one local-store snapshot, from its start to the file on disk."
    );
    describe_counter!(
        "nowcast_kafka_snapshot_bytes_total",
        Unit::Bytes,
        "Bytes of local-store snapshots written."
    );
    describe_counter!(
        "nowcast_kafka_snapshot_failures_total",
        "Local-store snapshots that could not begin or be written (processing goes on; a restart reads more of the changelog)."
    );
    describe_counter!(
        "nowcast_feature_store_records_total",
        "Records written to the feature-store topic: one per entity changed in a commit."
    );
    describe_counter!(
        "nowcast_replica_bad_records_total",
        "Feature-store records a serving replica could not read (skipped)."
    );
    describe_gauge!(
        "nowcast_kafka_partitions_owned",
        "Partitions of the input topic this instance owns (state restored); summed over the group's instances, the partition count."
    );
    describe_gauge!(
        "nowcast_kafka_consumer_lag_records",
        "Records from this process's position to the end (last stable offset) of a partition, by topic and partition, measured once a second; 0 for a partition this instance no longer owns."
    );
    describe_counter!(
        "nowcast_kafka_rebalances_total",
        "Rebalance callbacks that moved partitions into (kind=assign) or out of (kind=revoke) this instance's processing members."
    );
    describe_gauge!(
        "nowcast_kafka_broker_reachable",
        "1 when the last metadata request (once a second) was answered, else 0."
    );
    describe_gauge!(
        "nowcast_kafka_last_commit_age_seconds",
        Unit::Seconds,
        "Time since a processing member last completed a commit interval (committed, or had nothing to commit)."
    );
    describe_counter!(
        "nowcast_replica_records_applied_total",
        "Feature-store records a serving replica has applied to its state."
    );
    describe_gauge!(
        "nowcast_replica_partitions_followed",
        "Feature-store partitions a serving replica follows (all of them)."
    );
    describe_gauge!(
        "nowcast_replica_caught_up",
        "1 once a serving replica has read every feature-store partition to its end, else 0."
    );
}
