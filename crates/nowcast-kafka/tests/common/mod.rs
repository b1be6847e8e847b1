//! Shared by the integration tests against a real broker.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

/// The broker to test against: `NOWCAST_KAFKA`. Without it the test is skipped (returns
/// `None`) — unless `NOWCAST_REQUIRE_KAFKA` is set, as `scripts/test.sh` does, which makes a
/// missing broker a failure.
pub fn broker() -> Option<String> {
    match std::env::var("NOWCAST_KAFKA") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var_os("NOWCAST_REQUIRE_KAFKA").is_none(),
                "NOWCAST_REQUIRE_KAFKA is set but NOWCAST_KAFKA is not: start a broker \
                 (scripts/kafka.sh start) or run scripts/test.sh"
            );
            eprintln!("skipped: no broker (run scripts/test.sh, or set NOWCAST_KAFKA)");
            None
        }
    }
}

/// A name no other test (or earlier run) uses: `prefix-<pid>-<nanos>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
