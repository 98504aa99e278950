//! Hit-ratio simulator: replays key traces through eviction policies and prints a table.
//!
//! Run: `cargo run --release --example hit_ratio -- [options] [trace ...]`
//!
//! A trace is `zipf:ALPHA` (1,000,000 requests over 100,000 keys from a seeded generator), a `.xz` file (one
//! big-endian `i32` key id per request; decompressed once with the `xz` tool into `.cache/traces/`), or an
//! already decompressed file. Without traces: the four traces of `/work/shared/traces/` and Zipf 0.8, 1.0,
//! 1.2. Options: `--caps 1,5,10` (percent of the distinct keys), `--policies locmem,wtinylfu,lru,adaptive,opt`.
//!
//! The replay rule is the README's: each request is a `get`; on a miss, a `set` of that key. Hit ratio is
//! hits over all requests, cold start included. The adaptive policy is driven exactly as the table drives it
//! (slab slots reused after removal, `victim()` before inserting into a full cache, `on_remove` after).
//!
//! Real traces: the `cache2k` project, © `headissue GmbH`, `Jens Wilke`, licence `CC BY 4.0`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use django_rustcache::store::{AdaptivePolicy, Tuning};

const NIL: u32 = u32::MAX;
const TRACE_DIR: &str = "/work/shared/traces";

// -- traces ----------------------------------------------------------------------------------------------

struct Trace {
    name: String,
    /// Dense key ids, 0..distinct.
    keys: Vec<u32>,
    distinct: usize,
}

fn densify(name: String, raw: impl Iterator<Item = i64>) -> Trace {
    let mut ids: HashMap<i64, u32> = HashMap::new();
    let keys: Vec<u32> = raw
        .map(|k| {
            let next = ids.len() as u32;
            *ids.entry(k).or_insert(next)
        })
        .collect();
    Trace {
        name,
        keys,
        distinct: ids.len(),
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn zipf(alpha: f64, requests: usize, keys: usize, seed: u64) -> Trace {
    let mut cdf = Vec::with_capacity(keys);
    let mut total = 0.0;
    for rank in 1..=keys {
        total += 1.0 / (rank as f64).powf(alpha);
        cdf.push(total);
    }
    let mut state = seed;
    let raw = (0..requests).map(|_| {
        let u = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64 * total;
        cdf.partition_point(|&c| c < u).min(keys - 1) as i64
    });
    densify(format!("Zipf α={alpha}"), raw)
}

fn load_file(path: &Path) -> Result<Trace, String> {
    let stem = path.file_name().and_then(|n| n.to_str()).unwrap_or("trace").to_owned();
    let raw_path: PathBuf = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("xz")) {
        let cache = PathBuf::from(".cache/traces").join(stem.trim_end_matches(".xz"));
        if !cache.exists() {
            std::fs::create_dir_all(".cache/traces").map_err(|e| e.to_string())?;
            let out = Command::new("xz")
                .arg("-dc")
                .arg(path)
                .output()
                .map_err(|e| format!("xz: {e}"))?;
            if !out.status.success() {
                return Err(format!("xz failed on {}", path.display()));
            }
            std::fs::write(&cache, &out.stdout).map_err(|e| e.to_string())?;
        }
        cache
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&raw_path).map_err(|e| format!("{}: {e}", raw_path.display()))?;
    let name = stem.trim_end_matches(".xz").trim_end_matches(".trace").to_owned();
    let raw = bytes
        .chunks_exact(4)
        .map(|c| i64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])));
    Ok(densify(name, raw))
}

// -- policies --------------------------------------------------------------------------------------------

/// Exact LRU, or the `LocMemCache` cull (when full before inserting, drop len/3 from the LRU end).
fn lru(trace: &Trace, capacity: usize, locmem: bool) -> usize {
    let n = trace.distinct;
    let mut prev = vec![NIL; n];
    let mut next = vec![NIL; n];
    let mut present = vec![false; n];
    let (mut head, mut tail, mut len, mut hits) = (NIL, NIL, 0usize, 0usize);
    macro_rules! unlink {
        ($k:expr) => {{
            let k = $k as usize;
            let (p, x) = (prev[k], next[k]);
            if p == NIL {
                head = x
            } else {
                next[p as usize] = x
            }
            if x == NIL {
                tail = p
            } else {
                prev[x as usize] = p
            }
        }};
    }
    macro_rules! push_front {
        ($k:expr) => {{
            let k = $k;
            prev[k as usize] = NIL;
            next[k as usize] = head;
            if head == NIL {
                tail = k
            } else {
                prev[head as usize] = k
            }
            head = k;
        }};
    }
    for &k in &trace.keys {
        if present[k as usize] {
            hits += 1;
            if head != k {
                unlink!(k);
                push_front!(k);
            }
            continue;
        }
        if len >= capacity {
            let count = if locmem { len / 3 } else { 1 };
            for _ in 0..count {
                let t = tail;
                unlink!(t);
                present[t as usize] = false;
                len -= 1;
            }
        }
        push_front!(k);
        present[k as usize] = true;
        len += 1;
    }
    hits
}

fn hash_of(key: u32) -> u64 {
    let mut s = u64::from(key) ^ 0x5851_f42d_4c95_7f2d;
    splitmix64(&mut s)
}

/// The adaptive policy (or, with `adapt` off, the same W-TinyLFU with a fixed 1 % window), driven as
/// the table drives it.
fn adaptive(trace: &Trace, capacity: usize, adapt: bool) -> (usize, usize) {
    let mut tuning = tuning_from_env();
    if !adapt {
        tuning.adapt = false;
        tuning.initial_window = 0.01;
    }
    let mut policy = AdaptivePolicy::with_tuning(capacity, tuning);
    let mut slot_of = vec![NIL; trace.distinct];
    let mut key_of: Vec<u32> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let (mut len, mut hits) = (0usize, 0usize);
    for &k in &trace.keys {
        let hash = hash_of(k);
        let slot = slot_of[k as usize];
        if slot != NIL {
            hits += 1;
            policy.on_hit(slot, hash);
            continue;
        }
        policy.on_miss(hash);
        if len >= capacity {
            let Some(v) = policy.victim() else {
                panic!("no victim in a full cache");
            };
            let victim_key = key_of[v as usize];
            assert_eq!(slot_of[victim_key as usize], v, "victim is not a live slot");
            slot_of[victim_key as usize] = NIL;
            policy.on_remove(v);
            free.push(v);
            len -= 1;
        }
        let slot = free.pop().unwrap_or_else(|| {
            key_of.push(NIL);
            (key_of.len() - 1) as u32
        });
        key_of[slot as usize] = k;
        slot_of[k as usize] = slot;
        policy.on_insert(slot, hash);
        len += 1;
    }
    (hits, policy.window_max())
}

/// Tuning overrides for experiments: `TUNE_INITIAL_WINDOW=0.01 TUNE_GHOST=0.1 ...` (see `Tuning`).
fn tuning_from_env() -> Tuning {
    let mut t = Tuning::default();
    let get = |name: &str| {
        std::env::var(format!("TUNE_{name}"))
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
    };
    if let Some(v) = get("INITIAL_WINDOW") {
        t.initial_window = v;
    }
    if let Some(v) = get("MAX_WINDOW") {
        t.max_window = v;
    }
    if let Some(v) = get("PROTECTED_SHARE") {
        t.protected_share = v;
    }
    if let Some(v) = get("ADAPT") {
        t.adapt = v != 0.0;
    }
    if let Some(v) = get("GHOST") {
        t.ghost = v;
    }
    if let Some(v) = get("SKETCH_PERIOD") {
        t.sketch_period = v;
    }
    t
}

/// Bélády's optimum with bypass.
fn opt(trace: &Trace, capacity: usize) -> usize {
    let n = trace.keys.len();
    let mut next_use = vec![0usize; n];
    let mut last = vec![usize::MAX; trace.distinct];
    for i in (0..n).rev() {
        let k = trace.keys[i] as usize;
        // Never used again: "infinitely" far, distinct per key.
        next_use[i] = if last[k] == usize::MAX { usize::MAX - k } else { last[k] };
        last[k] = i;
    }
    let mut cached: BTreeSet<(usize, u32)> = BTreeSet::new();
    let mut when = vec![usize::MAX; trace.distinct]; // next use of a cached key, MAX if absent
    let mut hits = 0;
    for (i, &k) in trace.keys.iter().enumerate() {
        let nu = next_use[i];
        if when[k as usize] != usize::MAX {
            hits += 1;
            cached.remove(&(when[k as usize], k));
            cached.insert((nu, k));
            when[k as usize] = nu;
            continue;
        }
        if cached.len() >= capacity {
            let Some(&(far, fk)) = cached.last() else { continue };
            if nu >= far {
                continue; // bypass
            }
            cached.remove(&(far, fk));
            when[fk as usize] = usize::MAX;
        }
        if capacity > 0 {
            cached.insert((nu, k));
            when[k as usize] = nu;
        }
    }
    hits
}

// -- main ------------------------------------------------------------------------------------------------

fn main() {
    let mut caps = vec![1.0, 5.0, 10.0];
    let mut policies: Vec<String> = ["locmem", "wtinylfu", "lru", "adaptive", "opt"]
        .map(String::from)
        .to_vec();
    let mut specs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--caps" => {
                caps = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .collect();
            }
            "--policies" => {
                policies = args.next().unwrap_or_default().split(',').map(String::from).collect();
            }
            _ => specs.push(a),
        }
    }
    if specs.is_empty() {
        for t in ["orm-busy", "orm-night", "web07", "web12"] {
            specs.push(format!("{TRACE_DIR}/{t}.trace.xz"));
        }
        for a in ["0.8", "1.0", "1.2"] {
            specs.push(format!("zipf:{a}"));
        }
    }
    print!("| trace | capacity |");
    for p in &policies {
        print!(" {p} |");
    }
    println!(" window | time (s) |");
    print!("|---|---|");
    for _ in &policies {
        print!("---:|");
    }
    println!("---:|---:|");
    for spec in &specs {
        let trace = if let Some(a) = spec.strip_prefix("zipf:") {
            zipf(a.parse().unwrap_or(1.0), 1_000_000, 100_000, 0x00c0_ffee)
        } else {
            match load_file(Path::new(spec)) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{spec}: {e}");
                    continue;
                }
            }
        };
        for &pct in &caps {
            let capacity = ((trace.distinct as f64 * pct / 100.0).round() as usize).max(1);
            let total = trace.keys.len() as f64;
            print!("| {} | {pct} % ({capacity}) |", trace.name);
            let mut window = 0;
            let start = Instant::now();
            for p in &policies {
                let hits = match p.as_str() {
                    "lru" => lru(&trace, capacity, false),
                    "locmem" => lru(&trace, capacity, true),
                    "wtinylfu" => adaptive(&trace, capacity, false).0,
                    "adaptive" => {
                        let (h, w) = adaptive(&trace, capacity, true);
                        window = w;
                        h
                    }
                    "opt" => opt(&trace, capacity),
                    other => {
                        eprintln!("unknown policy {other}");
                        0
                    }
                };
                print!(" {:.2} |", 100.0 * hits as f64 / total);
            }
            println!(" {window} | {:.1} |", start.elapsed().as_secs_f64());
        }
    }
}
