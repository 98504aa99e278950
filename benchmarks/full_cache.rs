//! The store alone (no Python) on full caches: ns per `set` of a new key (each evicts one entry) and per
//! `get` hit, for each eviction policy, in batches taken round-robin so that the policies share the
//! machine's state; medians over the rounds, and each policy's ratio to `"lru"`. It isolates the store's
//! share of `bench.py`'s "On full caches" table, without the interpreter's.
//!
//! Run: `cargo run --release --example full_cache -- [entries] [rounds] [lru|adaptive]`
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use django_rustcache::store::{Eviction, Limits, Now, Record, Store, Ttl};

/// Calls per timed batch.
const BATCH: usize = 20_000;
const VALUE: &[u8] = b"hello world 1234";

struct Case {
    name: &'static str,
    /// Written with new keys: every set evicts.
    evicting: Store<()>,
    /// Only read: a full cache whose every read hits.
    reading: Store<()>,
    set_ns: Vec<f64>,
    get_ns: Vec<f64>,
}

fn key(prefix: &str, n: u64) -> Vec<u8> {
    format!("{prefix}:{n}").into_bytes()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let entries: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(31);
    let only = args.next();
    assert!(entries > 0 && rounds > 0, "entries and rounds must be positive");
    assert!(
        only.as_deref().is_none_or(|o| o == "lru" || o == "adaptive"),
        "unknown policy {only:?}: lru or adaptive"
    );
    let now = Now::at_secs(1.0);
    let ttl = Ttl::Seconds(3600.0);
    // With CULL_FREQUENCY = MAX_ENTRIES a cull of a full cache removes one entry, as "adaptive" does.
    let limits = Limits {
        max_entries: entries as i64,
        cull_frequency: entries as i64,
        max_bytes: None,
    };
    let full_keys: Vec<Vec<u8>> = (0..entries).map(|n| key("full", n)).collect();
    let fill = |store: &Store<()>| {
        for k in &full_keys {
            store.with(|t| t.set(Record::new(k, 1, VALUE), ttl, &limits, &now)).ok();
        }
    };
    let mut cases: Vec<Case> = [("lru", Eviction::Lru), ("adaptive", Eviction::Adaptive)]
        .into_iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
        .map(|(name, eviction)| {
            let case = Case {
                name,
                evicting: Store::with_eviction(eviction),
                reading: Store::with_eviction(eviction),
                set_ns: Vec::new(),
                get_ns: Vec::new(),
            };
            fill(&case.evicting);
            fill(&case.reading);
            case
        })
        .collect();
    // Reads walk the keys in a scrambled order, so a batch's keys are spread over the whole cache.
    let stride = 7_919; // prime: coprime with any entry count it does not divide
    let mut next_key = 0u64;
    let mut next_read = 0u64;
    for round in 0..rounds {
        for i in 0..cases.len() {
            let n = cases.len();
            let case = &mut cases[(i + round) % n];
            // Untimed: keys no store has seen, and their records.
            let records: Vec<Record> = (next_key..next_key + BATCH as u64)
                .map(|n| Record::new(&key("new", n), 1, VALUE))
                .collect();
            next_key += BATCH as u64;
            let start = Instant::now();
            for record in records {
                black_box(case.evicting.with(|t| t.set(record, ttl, &limits, &now))).ok();
            }
            case.set_ns.push(start.elapsed().as_nanos() as f64 / BATCH as f64);

            let reads: Vec<&[u8]> = (0..BATCH as u64)
                .map(|i| full_keys[((next_read + i) * stride % entries) as usize].as_slice())
                .collect();
            next_read += BATCH as u64;
            let mut hits = 0;
            let start = Instant::now();
            for k in reads {
                hits += usize::from(black_box(case.reading.with(|t| t.get(k, &now).is_some())));
            }
            case.get_ns.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
            assert_eq!(hits, BATCH, "{}: every read of the full cache hits", case.name);
        }
    }
    let medians: Vec<(&str, f64, f64)> = cases
        .into_iter()
        .map(|case| (case.name, median(case.set_ns), median(case.get_ns)))
        .collect();
    // Ratios to "lru" only when it ran.
    let lru = medians
        .iter()
        .find(|(name, ..)| *name == "lru")
        .map(|&(_, set, get)| (set, get));
    for (name, set, get) in medians {
        let (set_ratio, get_ratio) = lru.map_or((String::new(), String::new()), |(lru_set, lru_get)| {
            (format!(" ({:.2}x)", set / lru_set), format!(" ({:.2}x)", get / lru_get))
        });
        println!("{name:>9}: set of a new key {set:6.1} ns{set_ratio}   get hit {get:5.1} ns{get_ratio}");
    }
}
