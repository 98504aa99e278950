//! Writes on the host-shared store alone (no Python): `incr` and `set` on a small store, then again
//! after a batch of entries was added and deleted (which leaves LMDB's free list as long as the pages
//! those entries took). Prints ns per write for each phase.
//!
//! Run: `cargo run --release --example shared_writes -- [writes per phase] [churned entries]`
#![allow(clippy::print_stdout)]

use std::time::Instant;

use django_rustcache::shared::{store_for, OpenOptions, SharedStore};
use django_rustcache::store::{system_time, Limits, Timestamp, INT};

/// Any kind but `INT`: the store keeps the bytes as they are.
const BYTES: u8 = 3;

fn phase(label: &str, store: &SharedStore, writes: u64, limits: &Limits) {
    let start = Instant::now();
    for i in 0..writes {
        store
            .incr(b"counter", INT, 1, system_time())
            .expect("incr of the counter");
        let key = format!("set:{}", i % 100);
        store
            .set(
                key.as_bytes(),
                BYTES,
                b"hello",
                Some(Timestamp::NEVER),
                limits,
                system_time(),
            )
            .expect("set");
    }
    let per = start.elapsed().as_nanos() as f64 / (2 * writes) as f64;
    println!("{label}: {per:.0} ns per write (incr and set alternating)");
}

/// The last phase, apart: `valgrind --tool=callgrind --toggle-collect=shared_writes::last_phase` counts it alone.
#[inline(never)]
fn last_phase(label: &str, store: &SharedStore, writes: u64, limits: &Limits) {
    phase(label, store, writes, limits);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let writes: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let churned: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let dir = std::env::temp_dir().join(format!("shared-writes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let store = store_for(&dir, OpenOptions { map_size: 1 << 30 }).expect("the store opens");
    let limits = Limits {
        max_entries: i64::MAX,
        ..Limits::default()
    };
    store
        .set(
            b"counter",
            INT,
            &0_i64.to_le_bytes(),
            Some(Timestamp::NEVER),
            &limits,
            system_time(),
        )
        .expect("the counter");
    phase("small store", &store, writes, &limits);
    for i in 0..churned {
        let key = format!("churn:{i}");
        store
            .set(
                key.as_bytes(),
                BYTES,
                &[b'x'; 100],
                Some(Timestamp::NEVER),
                &limits,
                system_time(),
            )
            .expect("churn set");
    }
    phase(&format!("{churned} more entries"), &store, writes, &limits);
    let keys: Vec<Vec<u8>> = (0..churned).map(|i| format!("churn:{i}").into_bytes()).collect();
    for chunk in keys.chunks(100) {
        store.delete_many(chunk, system_time()).expect("churn delete");
    }
    phase("after deleting them", &store, writes, &limits);
    phase("after deleting them, again", &store, writes, &limits);
    last_phase("after deleting them, a third time", &store, writes, &limits);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
