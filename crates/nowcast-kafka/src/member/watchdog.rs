//! A backstop for a member the group has lost without librdkafka saying so.
//!
//! A consumer that is not in its group and does not rejoin leaves its partitions to nobody:
//! the instance sits at 0 partitions, processing nothing, for good. Every way into that state
//! found so far ends the member with an error (a fatal consumer error, see `poll_loop`), but a
//! client that stops rejoining without one would look the same. So a member that has owned no
//! partition for [`UNASSIGNED_BOUND`] asks the group coordinator who the group's members are
//! (every [`CHECK_EVERY`] after that), and is rebuilt if its own member id is not among them.
//! A member the group lists is left alone however long it waits (more members than
//! partitions, a rebalance waiting for a slow member): it is in the group, and rebuilding it
//! would only start another rebalance. A coordinator that does not answer proves nothing
//! either: nothing is done until it does. Nor is anything done for a member without an id yet
//! (its JoinGroup is pending: the broker holds it until the rebalance completes, which a slow
//! restore in another member can stretch past the bound) or for a group that is not settled
//! (`Stable` or `CompletingRebalance` with members; a describe error looks like an empty group).

use std::ffi::CStr;

use super::*;

/// How long a member may own no partition before the group is asked whether it is a member.
pub(super) const UNASSIGNED_BOUND: Duration = Duration::from_secs(30);
/// How often the group is asked after that.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(15);
/// Timeout of the group description.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Watches one member incarnation (see the module docs).
pub(super) struct Watchdog {
    /// Since when the member has owned no partition (None: it owns some).
    unassigned_since: Option<Instant>,
    /// The last time the group was asked.
    checked_at: Option<Instant>,
}

impl Default for Watchdog {
    fn default() -> Self {
        // A new member starts without partitions: the bound counts from its subscription.
        Watchdog {
            unassigned_since: Some(Instant::now()),
            checked_at: None,
        }
    }
}

impl Watchdog {
    /// Called once per poll round with whether the member owns no partition now. An error
    /// rebuilds the member.
    pub(super) fn check(
        &mut self,
        group: &str,
        consumer: &BaseConsumer<MemberCtx>,
        unassigned: bool,
    ) -> Result<(), KafkaError> {
        if !unassigned {
            self.unassigned_since = None;
            self.checked_at = None;
            return Ok(());
        }
        let since = *self.unassigned_since.get_or_insert_with(Instant::now);
        if since.elapsed() < UNASSIGNED_BOUND
            || self.checked_at.is_some_and(|t| t.elapsed() < CHECK_EVERY)
        {
            return Ok(());
        }
        self.checked_at = Some(Instant::now());
        // No member id yet: the JoinGroup is still pending (the broker holds a joining
        // member's request until the rebalance completes, which a slow restore elsewhere can
        // stretch): waiting, not lost.
        let Some(me) = member_id(consumer).filter(|id| !id.is_empty()) else {
            return Ok(());
        };
        let Ok(list) = consumer.fetch_group_list(Some(group), DESCRIBE_TIMEOUT) else {
            return Ok(());
        };
        let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
            return Ok(());
        };
        // Only a settled group with members that lacks this one says it is out: a group in
        // a rebalance, or one the coordinator could not describe (an error comes back as an
        // empty state with no members), says nothing.
        let settled = matches!(info.state(), "Stable" | "CompletingRebalance");
        let listed = info.members().iter().any(|m| m.id() == me);
        if listed || !settled || info.members().is_empty() {
            return Ok(());
        }
        metrics::counter!("nowcast_kafka_member_watchdog_total").increment(1);
        Err(KafkaError::Unreachable(format!(
            "no partitions for {} s, and group `{group}` ({}, {} members) does not list this \
             member (member id {me}): its consumer is not in the group and is not rejoining \
             (watchdog)",
            since.elapsed().as_secs(),
            info.state(),
            info.members().len(),
        )))
    }
}

/// The member id the group coordinator gave this consumer, if it has one (rdkafka has no
/// accessor for it).
fn member_id(consumer: &BaseConsumer<MemberCtx>) -> Option<String> {
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the live handle of `consumer`; `rd_kafka_memberid` returns a copy (or
    // null) that the caller frees with `rd_kafka_mem_free`, done here after copying it.
    let id = unsafe {
        let ptr = rdkafka::bindings::rd_kafka_memberid(rk);
        if ptr.is_null() {
            return None;
        }
        let id = CStr::from_ptr(ptr).to_string_lossy().into_owned();
        rdkafka::bindings::rd_kafka_mem_free(rk, ptr.cast());
        id
    };
    Some(id).filter(|id| !id.is_empty())
}
