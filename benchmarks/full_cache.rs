//! The store alone (no Python) on a full cache: ns per `set` of a new key and per `get` hit, for each
//! eviction policy, timed in the same run and round-robin, so the ratios can be compared with the
//! backend's (`bench.py`, "On full caches") without the interpreter's share.
//!
//! Run: `cargo run --release --example full_cache -- [entries] [rounds]`
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use django_rustcache::store::{Eviction, Limits, Now, Record, Store, Timestamp, Ttl};

const BATCH: usize = 20_000;

struct Case {
    name: &'static str,
    store: Store<()>,
    limits: Limits,
    next: u64,
    set_ns: Vec<f64>,
    get_ns: Vec<f64>,
}

fn key(prefix: &str, n: u64) -> Vec<u8> {
    format!("{prefix}:{n}").into_bytes()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let entries: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(31);
    let only = args.next();
    let now = Now::at(Timestamp::from_nanos(1_000_000_000));
    let ttl = Ttl::Seconds(3600.0);
    let full = Limits {
        max_entries: entries as i64,
        cull_frequency: entries as i64,
        max_bytes: None,
    };
    let mut cases: Vec<Case> = [("lru", Eviction::Lru), ("adaptive", Eviction::Adaptive)]
        .into_iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
        .map(|(name, eviction)| {
            let store = Store::with_eviction(eviction);
            for n in 0..entries as u64 {
                let k = key("full", n);
                store
                    .with(|t| t.set(Record::new(&k, 1, b"hello world 1234"), ttl, &full, &now))
                    .ok();
            }
            Case {
                name,
                store,
                limits: full,
                next: 0,
                set_ns: Vec::new(),
                get_ns: Vec::new(),
            }
        })
        .collect();
    for round in 0..rounds {
        for i in 0..cases.len() {
            let n = cases.len();
            let case = &mut cases[(i + round) % n];
            // Fresh keys every batch: every set evicts.
            let batch: Vec<Vec<u8>> = (0..BATCH as u64).map(|n| key("new", case.next + n)).collect();
            case.next += BATCH as u64;
            let records: Vec<Record> = batch.iter().map(|k| Record::new(k, 1, b"hello world 1234")).collect();
            let start = Instant::now();
            for record in records {
                black_box(case.store.with(|t| t.set(record, ttl, &case.limits, &now))).ok();
            }
            let elapsed = start.elapsed().as_nanos() as f64;
            case.set_ns.push(elapsed / BATCH as f64);
            // Hits: the newest entries (the last batch is still cached under both policies).
            let start = Instant::now();
            for k in batch.iter().rev().take(entries / 2) {
                black_box(case.store.with(|t| t.get(k, &now).is_some()));
            }
            case.get_ns
                .push(start.elapsed().as_nanos() as f64 / (entries / 2) as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut lru_set, mut lru_get) = (cases[0].set_ns.clone(), cases[0].get_ns.clone());
    let (lru_set, lru_get) = (median(&mut lru_set), median(&mut lru_get));
    for case in &mut cases {
        let (s, g) = (median(&mut case.set_ns), median(&mut case.get_ns));
        println!(
            "{:>9}: set new key {s:7.1} ns ({:.2}x)   get hit {g:6.1} ns ({:.2}x)",
            case.name,
            s / lru_set,
            g / lru_get
        );
    }
}
