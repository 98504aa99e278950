//! The shared store alone: semantics, recency, limits, a full map, locks, counters, and other
//! processes (this test binary re-run as a child, killed with SIGKILL).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::{Limits, StoreError, Timestamp};

const INT: u8 = 0;
const BYTES: u8 = 1;
const T0: f64 = 1_700_000_000.0;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs_f64(T0 + secs as f64)
}

fn temp_location() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rustcache-shared-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn open_at(dir: &std::path::Path, map_size: usize) -> Arc<SharedStore> {
    store_for(dir, OpenOptions { map_size }).unwrap()
}

fn open() -> Arc<SharedStore> {
    open_at(&temp_location(), 64 << 20)
}

fn limits(max_entries: i64) -> Limits {
    Limits {
        max_entries,
        cull_frequency: 3,
        max_bytes: None,
    }
}

fn get(s: &SharedStore, key: &str, now: Timestamp) -> Option<Vec<u8>> {
    s.get(key.as_bytes(), now, |_, d| d.to_vec()).unwrap()
}

fn set(s: &SharedStore, key: &str, value: &str, l: &Limits, now: Timestamp) {
    s.set(key.as_bytes(), BYTES, value.as_bytes(), Some(Timestamp::NEVER), l, now)
        .unwrap();
}

#[test]
fn set_get_delete_add_touch() {
    let s = open();
    let l = limits(300);
    assert_eq!(get(&s, "a", at(0)), None);
    set(&s, "a", "1", &l, at(0));
    assert_eq!(get(&s, "a", at(0)).as_deref(), Some(&b"1"[..]));
    assert!(!s.add(b"a", BYTES, b"2", Some(Timestamp::NEVER), &l, at(0)).unwrap());
    assert!(s.add(b"b", BYTES, b"2", Some(at(10)), &l, at(0)).unwrap());
    assert_eq!(s.deadline(b"b", at(0)).unwrap(), Some(at(10)));
    assert_eq!(get(&s, "b", at(10)), None, "a deadline equal to now has passed");
    assert!(s.add(b"b", BYTES, b"3", Some(Timestamp::NEVER), &l, at(10)).unwrap());
    assert!(s.touch(b"b", Some(at(20)), at(10)).unwrap());
    assert_eq!(s.deadline(b"b", at(10)).unwrap(), Some(at(20)));
    assert!(s.touch(b"b", None, at(10)).unwrap(), "dead-on-arrival touch removes");
    assert!(!s.contains(b"b", at(10)).unwrap());
    assert!(s.delete(b"a", at(0)).unwrap());
    assert!(!s.delete(b"a", at(0)).unwrap());
    s.set(b"c", BYTES, b"x", None, &l, at(0)).unwrap();
    assert!(!s.contains(b"c", at(0)).unwrap(), "dead on arrival is not stored");
    assert_eq!(s.check_invariants().unwrap(), Ok(()));
}

#[test]
fn incr_keeps_deadline_and_refuses_what_it_cannot_add() {
    let s = open();
    let l = limits(300);
    s.set(b"n", INT, &5i64.to_le_bytes(), Some(at(100)), &l, at(0)).unwrap();
    assert_eq!(s.incr(b"n", INT, 3, at(1)).unwrap(), 8);
    assert_eq!(s.incr(b"n", INT, -10, at(1)).unwrap(), -2);
    assert_eq!(s.deadline(b"n", at(1)).unwrap(), Some(at(100)));
    assert_eq!(
        s.incr(b"missing", INT, 1, at(1)),
        Err(SharedError::Store(StoreError::NotFound))
    );
    s.set(b"max", INT, &i64::MAX.to_le_bytes(), Some(Timestamp::NEVER), &l, at(0))
        .unwrap();
    assert_eq!(
        s.incr(b"max", INT, 1, at(1)),
        Err(SharedError::Store(StoreError::Overflow))
    );
    set(&s, "text", "x", &l, at(0));
    assert_eq!(
        s.incr(b"text", INT, 1, at(1)),
        Err(SharedError::Store(StoreError::NotAnInteger))
    );
    let v = s.get_for_update(b"text", at(1)).unwrap().unwrap();
    assert!(s.replace_if(b"text", &v, BYTES, b"y", &l, at(1)).unwrap());
    assert!(
        !s.replace_if(b"text", &v, BYTES, b"z", &l, at(1)).unwrap(),
        "stale expectation"
    );
    assert_eq!(get(&s, "text", at(1)).as_deref(), Some(&b"y"[..]));
}

/// Django's `LocMemCacheTests.test_lru_get`, `test_lru_set` and `test_lru_incr`.
#[test]
fn lru_is_locmems_within_a_process() {
    let s = open();
    let l = limits(9);
    for key in 0..6 {
        set(&s, &key.to_string(), "v", &l, at(0));
    }
    for key in 0..6 {
        assert!(get(&s, &key.to_string(), at(0)).is_some());
    }
    for key in 6..9 {
        set(&s, &key.to_string(), "v", &l, at(0));
    }
    for key in 0..6 {
        assert!(get(&s, &key.to_string(), at(0)).is_some());
    }
    set(&s, "9", "v", &l, at(0));
    for key in 0..6 {
        assert!(get(&s, &key.to_string(), at(0)).is_some(), "{key} was read last");
    }
    for key in 6..9 {
        assert!(get(&s, &key.to_string(), at(0)).is_none(), "{key} was culled");
    }
    assert!(get(&s, "9", at(0)).is_some());

    let s = open();
    for key in 0..9 {
        s.set(
            key.to_string().as_bytes(),
            INT,
            &0i64.to_le_bytes(),
            Some(Timestamp::NEVER),
            &l,
            at(0),
        )
        .unwrap();
    }
    for key in 0..6 {
        s.incr(key.to_string().as_bytes(), INT, 1, at(0)).unwrap();
    }
    set(&s, "9", "v", &l, at(0));
    for key in 0..6 {
        assert!(s.contains(key.to_string().as_bytes(), at(0)).unwrap());
    }
    for key in 6..9 {
        assert!(!s.contains(key.to_string().as_bytes(), at(0)).unwrap());
    }
    assert_eq!(s.check_invariants().unwrap(), Ok(()));
}

/// `LocMemCache._cull`: `len // CULL_FREQUENCY` oldest entries, all for 0, expired ones first.
#[test]
fn cull_arithmetic_and_expired_first() {
    let s = open();
    let l = limits(30);
    for key in 0..30 {
        set(&s, &format!("k{key}"), "v", &l, at(0));
    }
    assert_eq!(s.snapshot().unwrap().entries, 30);
    set(&s, "new", "v", &l, at(0));
    assert_eq!(s.snapshot().unwrap().entries, 21, "30 - 10 + 1");
    assert!(get(&s, "k0", at(0)).is_none() && get(&s, "k10", at(0)).is_some());
    let all = Limits { cull_frequency: 0, ..l };
    for key in 0..30 {
        set(&s, &format!("m{key}"), "v", &all, at(0));
    }
    assert!(s.snapshot().unwrap().entries <= 30);

    let s = open();
    for key in 0..10 {
        s.set(format!("e{key}").as_bytes(), BYTES, b"v", Some(at(5)), &l, at(0))
            .unwrap();
    }
    for key in 10..30 {
        set(&s, &format!("e{key}"), "v", &l, at(0));
    }
    set(&s, "new", "v", &l, at(6));
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.entries, 21, "only the ten expired ones went");
    assert_eq!(snap.counters.evictions, 0);
    assert_eq!(snap.counters.expirations, 10);
}

#[test]
fn byte_budget_evicts_lru_and_refuses_what_never_fits() {
    let s = open();
    let l = Limits {
        max_entries: 1000,
        cull_frequency: 3,
        max_bytes: Some(10 * charge(2, 100)),
    };
    let value = [7u8; 100];
    for key in 0..20 {
        s.set(
            format!("{key:02}").as_bytes(),
            BYTES,
            &value,
            Some(Timestamp::NEVER),
            &l,
            at(0),
        )
        .unwrap();
    }
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.entries, 10);
    assert!(snap.bytes <= 10 * charge(2, 100));
    assert!(s.contains(b"19", at(0)).unwrap() && !s.contains(b"09", at(0)).unwrap());
    let huge = vec![0u8; 20 * 100];
    let refused = s.set(b"19", BYTES, &huge, Some(Timestamp::NEVER), &l, at(0));
    assert!(matches!(refused, Err(SharedError::Store(StoreError::TooLarge { .. }))));
    assert!(
        !s.contains(b"19", at(0)).unwrap(),
        "a refused set removes the old value"
    );
    let never = Some(Timestamp::NEVER);
    let items = vec![
        (b"a".to_vec(), BYTES, vec![1], never),
        (b"b".to_vec(), BYTES, huge.clone(), never),
    ];
    assert_eq!(s.set_many(&items, &l, at(0)).unwrap(), vec![1]);
    assert_eq!(s.check_invariants().unwrap(), Ok(()));
}

/// A map much smaller than the data: every `set` succeeds (older entries make room), and a value
/// larger than the whole map is refused as too large, never an LMDB error.
#[test]
fn full_map_culls_and_retries() {
    let s = open_at(&temp_location(), 1 << 20);
    let l = limits(1_000_000);
    let value = vec![1u8; 10_000];
    for key in 0..500 {
        s.set(
            format!("k{key}").as_bytes(),
            BYTES,
            &value,
            Some(Timestamp::NEVER),
            &l,
            at(0),
        )
        .unwrap();
        assert!(s.contains(format!("k{key}").as_bytes(), at(0)).unwrap());
    }
    let snap = s.snapshot().unwrap();
    assert!(snap.entries < 100, "{} entries of 10 kB in a 1 MiB map", snap.entries);
    assert!(snap.counters.evictions > 400);
    let huge = vec![0u8; 2 << 20];
    let refused = s.set(b"huge", BYTES, &huge, Some(Timestamp::NEVER), &l, at(0));
    assert!(
        matches!(refused, Err(SharedError::Store(StoreError::TooLarge { .. }))),
        "{refused:?}"
    );
    set(&s, "after", "v", &l, at(0));
    assert!(get(&s, "after", at(0)).is_some());
    assert_eq!(s.check_invariants().unwrap(), Ok(()));
}

#[test]
fn long_keys_work_and_never_mix() {
    let s = open();
    let l = limits(300);
    let a = "a".repeat(700);
    let b = format!("{}b", "a".repeat(699));
    set(&s, &a, "A", &l, at(0));
    set(&s, &b, "B", &l, at(0));
    assert_eq!(get(&s, &a, at(0)).as_deref(), Some(&b"A"[..]));
    assert_eq!(get(&s, &b, at(0)).as_deref(), Some(&b"B"[..]));
    let keys = s.live_keys(b"aaa", at(0)).unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&a.clone().into_bytes()));
}

#[test]
fn locks_are_pinned_apart_from_entries() {
    let s = open();
    let l = limits(1);
    assert!(s.lock_add(b"L", BYTES, b"t1", Some(at(10)), at(0)).unwrap());
    assert!(!s.lock_add(b"L", BYTES, b"t2", Some(at(10)), at(1)).unwrap());
    for key in 0..10 {
        set(&s, &format!("k{key}"), "v", &l, at(1));
    }
    assert_eq!(get(&s, "L", at(1)).as_deref(), Some(&b"t1"[..]), "never culled");
    assert!(s.contains(b"L", at(1)).unwrap());
    assert!(!s.delete_if_equal(b"L", BYTES, b"t2", at(1)).unwrap());
    assert!(
        s.lock_add(b"L", BYTES, b"t2", Some(at(20)), at(10)).unwrap(),
        "free at its timeout"
    );
    assert!(s.touch(b"L", Some(at(30)), at(11)).unwrap());
    assert_eq!(s.deadline(b"L", at(25)).unwrap(), Some(at(30)));
    assert!(s.delete_if_equal(b"L", BYTES, b"t2", at(12)).unwrap());
    assert!(!s.contains(b"L", at(12)).unwrap());
    assert!(s.lock_add(b"L", BYTES, b"t3", Some(Timestamp::NEVER), at(12)).unwrap());
    assert!(s.live_keys(b"L", at(12)).unwrap().contains(&b"L".to_vec()));
    s.clear(at(12)).unwrap();
    assert!(!s.contains(b"L", at(12)).unwrap(), "clear() frees locks");
    assert_eq!(s.check_invariants().unwrap(), Ok(()));
}

#[test]
fn counters_add_up() {
    let s = open();
    let l = limits(300);
    set(&s, "a", "1", &l, at(0));
    get(&s, "a", at(0));
    get(&s, "a", at(0));
    get(&s, "zz", at(0));
    let snap = s.snapshot().unwrap();
    assert_eq!(
        (snap.counters.hits, snap.counters.misses, snap.counters.sets),
        (2, 1, 1)
    );
    s.delete(b"a", at(0)).unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!((snap.counters.hits, snap.counters.deletes, snap.entries), (2, 1, 0));
    s.set(b"e", BYTES, b"v", Some(at(1)), &l, at(0)).unwrap();
    assert!(get(&s, "e", at(2)).is_none());
    set(&s, "f", "v", &l, at(2));
    let snap = s.snapshot().unwrap();
    assert_eq!(
        (snap.counters.expirations, snap.entries),
        (1, 1),
        "a writer reclaimed what a read met"
    );
}

#[test]
fn expired_entries_are_swept_by_writers() {
    let s = open();
    let l = limits(10_000);
    for key in 0..100 {
        s.set(format!("e{key:03}").as_bytes(), BYTES, b"v", Some(at(1)), &l, at(0))
            .unwrap();
    }
    for key in 0..40 {
        set(&s, &format!("z{key}"), "v", &l, at(5));
    }
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.entries, 40, "every expired entry reclaimed by 40 writes");
    assert_eq!(s.check_invariants().unwrap(), Ok(()));
}

#[test]
fn a_foreign_file_is_refused() {
    let dir = temp_location();
    std::fs::write(dir.join("data.mdb"), vec![0x5a; 64 * 1024]).unwrap();
    let err = store_for(&dir, OpenOptions { map_size: 1 << 20 }).err().unwrap();
    assert!(matches!(err, SharedError::Foreign(_) | SharedError::Lmdb(_)), "{err:?}");
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
}

// -- other processes ------------------------------------------------------------------------------

const CHILD: &str = "RUSTCACHE_SHARED_TEST_CHILD";

/// Run as a child process (`CHILD` set): open the LOCATION, then read or write it forever.
#[test]
fn child_process_helper() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let (mode, dir) = spec.split_once(':').unwrap();
    let s = open_at(std::path::Path::new(dir), 64 << 20);
    let l = limits(1_000_000);
    let value = vec![3u8; 3000];
    let mut i = 0u64;
    loop {
        i += 1;
        if mode == "read" {
            let _ = s.get(b"k1", at(0), |_, d| d.len());
        } else {
            let key = format!("k{}", i % 500);
            s.set(key.as_bytes(), BYTES, &value, Some(Timestamp::NEVER), &l, at(0))
                .unwrap();
        }
        if i == 1 {
            println!("ready");
        }
    }
}

fn spawn_child(mode: &str, dir: &std::path::Path) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "shared::tests::child_process_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, format!("{mode}:{}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("ready") {
        let n = std::io::Read::read(&mut out, &mut buf).unwrap();
        assert!(n > 0, "child exited early");
        seen.extend_from_slice(&buf[..n]);
    }
    child
}

#[test]
fn writers_killed_mid_write_leave_a_consistent_store() {
    let dir = temp_location();
    let s = open_at(&dir, 64 << 20);
    let l = limits(1_000_000);
    set(&s, "k1", "v", &l, at(0));
    for round in 0..6 {
        let mut child = spawn_child("write", &dir);
        std::thread::sleep(Duration::from_millis(20 + 7 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        let started = std::time::Instant::now();
        set(&s, "after", "v", &l, at(0));
        assert!(started.elapsed() < Duration::from_secs(1), "the writer lock was freed");
        assert_eq!(s.check_invariants().unwrap(), Ok(()));
    }
}

#[test]
fn stale_readers_are_cleared() {
    let dir = temp_location();
    let s = open_at(&dir, 64 << 20);
    set(&s, "k1", "v", &limits(300), at(0));
    let before = s.readers_in_use();
    let mut child = spawn_child("read", &dir);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(s.readers_in_use() > before, "the dead child's slot is still taken");
    assert!(s.clear_stale_readers() >= 1);
}

#[test]
fn another_process_sees_writes_at_once() {
    let dir = temp_location();
    let s = open_at(&dir, 64 << 20);
    let mut child = spawn_child("write", &dir);
    let started = std::time::Instant::now();
    while s.get(b"k7", at(0), |_, d| d.len()).unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s.check_invariants().unwrap(), Ok(()));
}
