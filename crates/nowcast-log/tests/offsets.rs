//! OffsetStore: atomic commit and load of consumer-group offsets.

use std::collections::BTreeMap;

use nowcast_log::{LogError, OffsetStore};

#[test]
fn commit_then_load_round_trips_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path(), "scorer-v2").unwrap();
    assert_eq!(store.load().unwrap(), BTreeMap::new());
    store.commit(&BTreeMap::from([(0, 10), (1, 20)])).unwrap();
    store
        .commit(&BTreeMap::from([(1, 25), (7, u64::MAX)]))
        .unwrap();
    let reopened = OffsetStore::open(dir.path(), "scorer-v2").unwrap();
    assert_eq!(
        reopened.load().unwrap(),
        BTreeMap::from([(1, 25), (7, u64::MAX)])
    );
    assert_eq!(store.path(), dir.path().join("offsets/scorer-v2.json"));
    // Groups are independent.
    assert!(OffsetStore::open(dir.path(), "other")
        .unwrap()
        .load()
        .unwrap()
        .is_empty());
}

#[test]
fn an_interrupted_commit_leaves_the_previous_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path(), "g").unwrap();
    store.commit(&BTreeMap::from([(0, 5)])).unwrap();
    // A crash mid-commit leaves at most a half-written temporary file next to the real one.
    std::fs::write(
        dir.path().join("offsets/g.json.12345.tmp"),
        b"{\"group\":\"g\",\"offs",
    )
    .unwrap();
    assert_eq!(store.load().unwrap(), BTreeMap::from([(0, 5)]));
    store.commit(&BTreeMap::from([(0, 6)])).unwrap();
    assert_eq!(store.load().unwrap(), BTreeMap::from([(0, 6)]));
    let names: Vec<_> = std::fs::read_dir(dir.path().join("offsets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains(&std::process::id().to_string())),
        "{names:?}"
    );
}

#[test]
fn concurrent_commits_never_leave_a_torn_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(OffsetStore::open(dir.path(), "g").unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    store
                        .commit(&BTreeMap::from([(0, t * 1000 + i), (1, i)]))
                        .unwrap();
                    let loaded = store.load().unwrap();
                    assert_eq!(loaded.len(), 2);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
}

#[test]
fn bad_group_names_and_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
        assert!(
            matches!(
                OffsetStore::open(dir.path(), bad).unwrap_err(),
                LogError::InvalidGroup { .. }
            ),
            "{bad:?}"
        );
    }
    let store = OffsetStore::open(dir.path(), "g").unwrap();
    std::fs::write(store.path(), b"not json").unwrap();
    let err = store.load().unwrap_err();
    assert!(
        matches!(err, LogError::BadMetadata { .. }) && err.to_string().contains("g.json"),
        "{err}"
    );
}
