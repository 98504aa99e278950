//! `get` hits on the store alone (no Python): a store of 10,000 entries read in a scrambled order. Prints the
//! median ns per hit over the rounds. Everything but the rounds is done once, so the instructions of a run
//! of two rounds less those of a run of one are exactly one round's (`counters_cost.py`).
//!
//! Run: `cargo run --release --example store_get -- [gets per round] [rounds] [lru|adaptive]`
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use django_rustcache::store::{Eviction, Limits, Now, Record, Store, Ttl};

const ENTRIES: u64 = 10_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let gets: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let eviction = match args.next().as_deref() {
        None | Some("lru") => Eviction::Lru,
        Some("adaptive") => Eviction::Adaptive,
        Some(other) => panic!("unknown policy {other:?}: lru or adaptive"),
    };
    assert!(gets > 0 && rounds > 0, "gets per round and rounds must be positive");
    let now = Now::at_secs(1.0);
    let limits = Limits {
        max_entries: i64::MAX,
        ..Limits::default()
    };
    let store = Store::<()>::with_eviction(eviction);
    let keys: Vec<Vec<u8>> = (0..ENTRIES).map(|n| format!("key:{n}").into_bytes()).collect();
    for k in &keys {
        store
            .with(|t| {
                t.set(
                    Record::new(k, 1, b"hello world 1234"),
                    Ttl::Seconds(3600.0),
                    &limits,
                    &now,
                )
            })
            .ok();
    }
    // A prime stride: every key in turn, spread over the whole store.
    let order: Vec<&[u8]> = (0..gets)
        .map(|i| keys[(i * 7_919 % ENTRIES) as usize].as_slice())
        .collect();
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut hits = 0u64;
        let start = Instant::now();
        for &k in &order {
            hits += u64::from(black_box(store.with(|t| t.get(k, &now).is_some())));
        }
        let elapsed = start.elapsed().as_nanos() as f64;
        assert_eq!(hits, gets, "every get hits");
        samples.push(elapsed / gets as f64);
    }
    samples.sort_by(f64::total_cmp);
    println!("ns per get hit: {:.2}", samples[samples.len() / 2]);
}
