//! Property tests: random operation sequences run on a [`Table`] and on a deliberately simple model
//! (a map of live entries, their deadlines, and a `Vec` for recency), with a clock the test moves.
//! After every step the answers, the counters, the set of live keys and the table's own invariants
//! must agree.
//!
//! The model only holds live entries: the table may keep expired ones until it meets them, but
//! nothing observable may depend on that (culls and the byte budget reclaim expired entries before
//! they evict live ones). Expiration counters do depend on when an expired entry is met, so they are
//! not compared.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::tests::{TableExt, V};
use super::*;

const SEC: u64 = 1_000_000_000;
const START: u64 = 1_700_000_000 * SEC;
const KEYS: [&[u8]; 6] = [b"a", b"b", b"c", b"d", b"e", b"a-longer-key"];

#[derive(Debug, Clone)]
enum Op {
    Set(usize, V, Ttl),
    Add(usize, V, Ttl),
    Get(usize),
    Contains(usize),
    Deadline(usize),
    Delete(usize),
    Incr(usize, i64),
    Touch(usize, Ttl),
    /// `get_for_update`, then (maybe) an interleaved `set` of the same key, then `replace_if`.
    Cas(usize, V, Option<(V, Ttl)>),
    Clear,
    /// Move the clock forward by this many milliseconds.
    Advance(u64),
}

#[derive(Debug, Clone)]
struct ModelEntry {
    value: V,
    /// Seconds since the epoch, as the store computes them; infinity for never.
    deadline: f64,
}

#[derive(Debug, Default)]
struct Model {
    entries: HashMap<Vec<u8>, ModelEntry>,
    /// Most recently used first.
    recency: Vec<Vec<u8>>,
    now: u64,
    counters: Counters,
    /// Live entries evicted by the current operation.
    evicted: usize,
}

impl Model {
    fn bytes_of(key: &[u8], e: &ModelEntry) -> usize {
        e.value.bytes(key)
    }

    fn live_bytes(&self) -> usize {
        self.entries.iter().map(|(k, e)| Self::bytes_of(k, e)).sum()
    }

    /// `None` when the timeout means "dead on arrival".
    fn deadline(&self, ttl: Ttl) -> Option<f64> {
        let deadline = match ttl {
            Ttl::Forever => return Some(f64::INFINITY),
            Ttl::Seconds(s) if s <= 0.0 => return None,
            // `time.time() + timeout` in float seconds, as LocMemCache (and so the store) computes it.
            Ttl::Seconds(s) => self.secs() + s,
            Ttl::At(at) => at,
        };
        (deadline > self.secs()).then_some(deadline)
    }

    /// The model's clock (kept in whole nanoseconds, so advancing it is exact) as `time.time()`.
    fn secs(&self) -> f64 {
        self.now as f64 / 1e9
    }

    fn expire(&mut self) {
        let now = self.secs();
        self.entries.retain(|_, e| e.deadline > now);
        let entries = &self.entries;
        self.recency.retain(|k| entries.contains_key(k));
    }

    fn mark_used(&mut self, key: &[u8]) {
        self.recency.retain(|k| k != key);
        self.recency.insert(0, key.to_vec());
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        self.recency.retain(|k| k != key);
        self.entries.remove(key).is_some()
    }

    fn evict_back(&mut self) -> Option<Vec<u8>> {
        let key = self.recency.pop()?;
        self.entries.remove(&key);
        self.counters.evictions += 1;
        self.evicted += 1;
        Some(key)
    }

    fn enforce_budget(&mut self, limits: &Limits, keep: &[u8]) {
        let Some(max) = limits.max_bytes else { return };
        while self.live_bytes() > max {
            if self.recency.last().map(Vec::as_slice) == Some(keep) {
                break;
            }
            if self.evict_back().is_none() {
                break;
            }
        }
    }

    fn set(&mut self, key: &[u8], value: V, ttl: Ttl, limits: &Limits) -> Result<(), StoreError> {
        let bytes = value.bytes(key);
        if let Some(max_bytes) = limits.max_bytes {
            if bytes > max_bytes {
                // Refused: the old value goes too, so no reader sees what the writer replaced.
                self.remove(key);
                self.counters.refused += 1;
                return Err(StoreError::TooLarge {
                    entry_bytes: bytes,
                    max_bytes,
                });
            }
        }
        if limits.is_full(self.entries.len()) {
            for _ in 0..limits.cull_count(self.entries.len()) {
                self.evict_back();
            }
        }
        self.counters.sets += 1;
        match self.deadline(ttl) {
            None => {
                self.remove(key);
            }
            Some(deadline) => {
                self.entries.insert(key.to_vec(), ModelEntry { value, deadline });
                self.mark_used(key);
                self.enforce_budget(limits, key);
            }
        }
        Ok(())
    }

    fn get(&mut self, key: &[u8]) -> Option<V> {
        let Some(value) = self.entries.get(key).map(|e| e.value.clone()) else {
            self.counters.misses += 1;
            return None;
        };
        self.counters.hits += 1;
        self.mark_used(key);
        Some(value)
    }

    fn incr(&mut self, key: &[u8], delta: i64) -> Result<i64, StoreError> {
        let entry = self.entries.get_mut(key).ok_or(StoreError::NotFound)?;
        let V::Int(n) = entry.value else {
            return Err(StoreError::NotAnInteger);
        };
        let next = n.checked_add(delta).ok_or(StoreError::Overflow)?;
        entry.value = V::Int(next);
        self.mark_used(key);
        Ok(next)
    }

    fn touch(&mut self, key: &[u8], ttl: Ttl) -> bool {
        if !self.entries.contains_key(key) {
            return false;
        }
        match self.deadline(ttl) {
            None => {
                self.remove(key);
            }
            Some(deadline) => {
                if let Some(e) = self.entries.get_mut(key) {
                    e.deadline = deadline;
                }
            }
        }
        true
    }

    /// `replace_if` after `get_for_update`; `changed` says whether the entry was rewritten between.
    fn replace_if(&mut self, key: &[u8], value: V, changed: bool, limits: &Limits) -> Result<bool, StoreError> {
        if !self.entries.contains_key(key) {
            return Ok(false);
        }
        let bytes = value.bytes(key);
        if let Some(max_bytes) = limits.max_bytes {
            if bytes > max_bytes {
                self.counters.refused += 1;
                return Err(StoreError::TooLarge {
                    entry_bytes: bytes,
                    max_bytes,
                });
            }
        }
        if changed {
            return Ok(false);
        }
        if let Some(e) = self.entries.get_mut(key) {
            e.value = value;
        }
        self.mark_used(key);
        self.enforce_budget(limits, key);
        Ok(true)
    }
}

fn now(model: &Model) -> Now {
    Now::at_secs(model.secs())
}

/// Run one operation on both sides and compare the answers.
fn step(t: &mut Table<String>, m: &mut Model, op: Op, limits: &Limits) {
    let at = now(m);
    m.evicted = 0;
    match op {
        Op::Set(k, v, ttl) => {
            let key = KEYS[k];
            assert_eq!(t.put(key, v.clone(), ttl, limits, &at), m.set(key, v, ttl, limits));
        }
        Op::Add(k, v, ttl) => {
            let key = KEYS[k];
            let expected = if m.entries.contains_key(key) {
                Ok(false)
            } else {
                m.set(key, v.clone(), ttl, limits).map(|()| true)
            };
            assert_eq!(t.put_new(key, v, ttl, limits, &at), expected);
        }
        Op::Get(k) => assert_eq!(t.get_v(KEYS[k], &at), m.get(KEYS[k])),
        Op::Contains(k) => assert_eq!(t.contains(KEYS[k], &at), m.entries.contains_key(KEYS[k])),
        Op::Deadline(k) => assert_eq!(
            t.deadline(KEYS[k], &at).map(Timestamp::as_secs_f64),
            m.entries.get(KEYS[k]).map(|e| e.deadline)
        ),
        Op::Delete(k) => {
            let expected = m.remove(KEYS[k]);
            m.counters.deletes += u64::from(expected);
            assert_eq!(t.delete(KEYS[k], &at), expected);
        }
        Op::Incr(k, delta) => assert_eq!(t.incr(KEYS[k], delta, &at), m.incr(KEYS[k], delta)),
        Op::Touch(k, ttl) => assert_eq!(t.touch(KEYS[k], ttl, &at), m.touch(KEYS[k], ttl)),
        Op::Cas(k, v, between) => cas(t, m, KEYS[k], v, between, limits),
        Op::Clear => {
            t.clear();
            m.entries.clear();
            m.recency.clear();
        }
        Op::Advance(ms) => {
            m.now += ms * 1_000_000;
            m.expire();
        }
    }
    let sink = std::mem::take(&mut t.sink);
    assert_eq!(sink.evicted, m.evicted, "entries evicted by this operation");
}

fn cas(t: &mut Table<String>, m: &mut Model, key: &[u8], v: V, between: Option<(V, Ttl)>, limits: &Limits) {
    let at = now(m);
    let read = t
        .get_for_update(key, &at)
        .map(|(record, attachment)| V::of(record, attachment));
    assert_eq!(read.as_ref(), m.entries.get(key).map(|e| &e.value), "get_for_update");
    let Some(read) = read else { return };
    let mut changed = false;
    if let Some((other, ttl)) = between {
        let result = t.put(key, other.clone(), ttl, limits, &at);
        // The swap compares values: a write of the value that was read changes nothing it can see.
        changed = result.is_ok() && other != read;
        assert_eq!(result, m.set(key, other, ttl, limits), "interleaved set");
    }
    assert_eq!(
        t.replace_if(v.item(key), limits, &at, |r, a| V::of(r, a) == read),
        m.replace_if(key, v, changed, limits),
        "replace_if"
    );
}

/// The state both sides must agree on after every step.
fn check_state(t: &Table<String>, m: &Model, limits: &Limits) {
    t.check_invariants().expect("table invariants");
    let live: HashSet<Vec<u8>> = t.live_keys(b"", &now(m)).iter().map(|k| k.to_vec()).collect();
    let expected: HashSet<Vec<u8>> = m.entries.keys().cloned().collect();
    assert_eq!(live, expected, "live keys");
    let snap = t.snapshot();
    let c = snap.counters;
    let mc = m.counters;
    assert_eq!(
        (c.hits, c.misses, c.sets, c.deletes, c.evictions),
        (mc.hits, mc.misses, mc.sets, mc.deletes, mc.evictions),
        "counters: hits, misses, sets, deletes, evictions"
    );
    assert!(snap.entries >= m.entries.len(), "entries held include every live one");
    assert!(snap.bytes >= m.live_bytes());
    if let Some(max_bytes) = limits.max_bytes {
        assert!(
            snap.bytes <= max_bytes,
            "{} bytes over a budget of {max_bytes}",
            snap.bytes
        );
    }
    assert_eq!(m.recency.len(), m.entries.len(), "model recency is consistent");
}

fn ttl() -> impl Strategy<Value = Ttl> {
    // Quarter seconds from -1 s to 3 s (zero and negatives included), and forever. The clock moves in
    // quarter seconds too, so deadlines often fall exactly on "now".
    prop_oneof![
        1 => Just(Ttl::Forever),
        4 => (-4i32..=12).prop_map(|q| Ttl::Seconds(f64::from(q) * 0.25)),
    ]
}

fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        3 => (-5i64..5).prop_map(V::Int),
        1 => prop_oneof![Just(i64::MAX - 1), Just(i64::MIN + 1)].prop_map(V::Int),
        3 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(V::Data),
        2 => "[a-z]{0,40}".prop_map(V::Text),
    ]
}

fn key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), value(), ttl()).prop_map(|(k, v, t)| Op::Set(k, v, t)),
        3 => (key(), value(), ttl()).prop_map(|(k, v, t)| Op::Add(k, v, t)),
        5 => key().prop_map(Op::Get),
        2 => key().prop_map(Op::Contains),
        1 => key().prop_map(Op::Deadline),
        2 => key().prop_map(Op::Delete),
        3 => (key(), prop_oneof![-3i64..=3, Just(i64::MAX), Just(i64::MIN)]).prop_map(|(k, d)| Op::Incr(k, d)),
        2 => (key(), ttl()).prop_map(|(k, t)| Op::Touch(k, t)),
        2 => (key(), value(), proptest::option::of((value(), ttl()))).prop_map(|(k, v, b)| Op::Cas(k, v, b)),
        1 => Just(Op::Clear),
        3 => prop_oneof![Just(0u64), Just(250), Just(500), Just(1000), Just(3000)].prop_map(Op::Advance),
    ]
}

fn limits() -> impl Strategy<Value = Limits> {
    let max_entries = prop_oneof![Just(-1i64), 0i64..=10, Just(1_000)];
    let cull_frequency = -1i64..=4;
    // One entry costs 65 to 140 bytes: budgets from "refuse everything" to "a few entries".
    let max_bytes = proptest::option::of(40usize..=400);
    (max_entries, cull_frequency, max_bytes).prop_map(|(max_entries, cull_frequency, max_bytes)| Limits {
        max_entries,
        cull_frequency,
        max_bytes,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn table_agrees_with_the_model(limits in limits(), ops in proptest::collection::vec(op(), 1..150)) {
        let mut table = Table::<String>::default();
        let mut model = Model { now: START, ..Model::default() };
        for op in ops {
            step(&mut table, &mut model, op, &limits);
            check_state(&table, &model, &limits);
        }
    }

    /// With no limits at all, nothing is ever evicted, whatever the operations.
    #[test]
    fn nothing_is_evicted_without_limits(ops in proptest::collection::vec(op(), 1..150)) {
        let limits = Limits { max_entries: i64::MAX, cull_frequency: 3, max_bytes: None };
        let mut table = Table::<String>::default();
        let mut model = Model { now: START, ..Model::default() };
        for op in ops {
            step(&mut table, &mut model, op, &limits);
            check_state(&table, &model, &limits);
        }
        prop_assert_eq!(table.snapshot().counters.evictions, 0);
    }
}

/// Apply `op` to an adaptive table alone (its victims differ from the model's by design).
fn apply(t: &mut Table<String>, now: &mut u64, op: Op, limits: &Limits) {
    let at = Now::at_secs(*now as f64 / 1e9);
    match op {
        Op::Set(k, v, ttl) => drop(t.put(KEYS[k], v, ttl, limits, &at)),
        Op::Add(k, v, ttl) => drop(t.put_new(KEYS[k], v, ttl, limits, &at)),
        Op::Get(k) => drop(t.get(KEYS[k], &at)),
        Op::Contains(k) => drop(t.contains(KEYS[k], &at)),
        Op::Deadline(k) => drop(t.deadline(KEYS[k], &at)),
        Op::Delete(k) => drop(t.delete(KEYS[k], &at)),
        Op::Incr(k, delta) => drop(t.incr(KEYS[k], delta, &at)),
        Op::Touch(k, ttl) => drop(t.touch(KEYS[k], ttl, &at)),
        Op::Cas(k, v, _) => drop(t.replace_if(v.item(KEYS[k]), limits, &at, |_, _| true)),
        Op::Clear => t.clear(),
        Op::Advance(ms) => *now += ms * 1_000_000,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The adaptive policy under every operation: its lists, the index and the byte count stay
    /// consistent, and neither limit is ever exceeded after a write.
    #[test]
    fn adaptive_table_keeps_its_invariants_and_limits(
        limits in limits(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut table = Table::<String>::with_eviction(Eviction::Adaptive);
        let mut now = START;
        for op in ops {
            let write = matches!(op, Op::Set(..) | Op::Add(..));
            apply(&mut table, &mut now, op, &limits);
            table.check_invariants().map_err(TestCaseError::fail)?;
            if let Some(max_bytes) = limits.max_bytes {
                prop_assert!(table.snapshot().bytes <= max_bytes);
            }
            if write && limits.max_entries >= 1 {
                prop_assert!(table.len() as i64 <= limits.max_entries);
            }
        }
    }
}
