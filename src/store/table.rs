//! The single-threaded heart of a store: hash map, slab of entries, recency order, expiry
//! bookkeeping, limits and counters. `&mut self` everywhere; `store.rs` wraps it in a lock.
//!
//! Invariants kept by every method:
//! - `map[key] == slot` exactly when `slots[slot]` holds the entry for `key`, and every occupied slot
//!   is linked once in `order`;
//! - `bytes` is the sum of `entry.bytes` over occupied slots, `with_deadline` the number of occupied
//!   slots whose entry has a deadline;
//! - nothing is dropped here: removed values go to `sink`, which the store empties after unlocking,
//!   so no payload destructor (a Python decref, say) ever runs under the lock.

use std::collections::HashMap;
use std::sync::Arc;

use ahash::RandomState;

use super::adaptive::AdaptivePolicy;
use super::clock::{Now, Timestamp, Ttl};
use super::entry::{entry_bytes, Entry, Value, Weigh};
use super::errors::StoreError;
use super::limits::Limits;
use super::lru::LruList;
use super::stats::{Counters, Snapshot};

/// Slots examined for expired entries on each write: a full pass over `n` slots takes `n / 4`
/// writes, so a cache whose writes go to other keys reclaims everything that has expired within a
/// bounded number of writes, without a background thread.
const SWEEP_STEP: usize = 4;

/// A full scan for expired entries when room is needed runs at most once per `len / RECLAIM_EVERY`
/// writes, so a cache kept at its byte budget with every entry expiring pays O(1) per write, not
/// O(entries).
const RECLAIM_EVERY: usize = 8;

/// What an operation removed or wants said, handed out of the lock to be dropped and logged.
#[derive(Debug)]
pub struct Sink<P> {
    pub(crate) garbage: Vec<Value<P>>,
    /// Live entries removed by culls or the byte budget in this operation.
    pub evicted: usize,
    /// A value refused because it alone exceeds the byte budget.
    pub refused: Option<StoreError>,
}

impl<P> Default for Sink<P> {
    fn default() -> Self {
        Self {
            garbage: Vec::new(),
            evicted: 0,
            refused: None,
        }
    }
}

/// Which entries leave first when a full cache needs room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// `LocMemCache`'s: least recently used first, culled in batches of `len / CULL_FREQUENCY`.
    Lru,
    /// Frequency-aware and scan-resistant (W-TinyLFU with a window that adapts between recency and
    /// frequency): one entry at a time, so the cache holds exactly `MAX_ENTRIES`.
    Adaptive,
}

/// Why an entry leaves the table, for the counters.
#[derive(Clone, Copy)]
enum Removal {
    Deleted,
    Expired,
    Evicted,
    Replaced,
}

#[derive(Debug)]
pub struct Table<P> {
    map: HashMap<Arc<[u8]>, u32, RandomState>,
    slots: Vec<Option<Entry<P>>>,
    free: Vec<u32>,
    order: LruList,
    /// Present for `Eviction::Adaptive`; it then chooses the victims of `MAX_ENTRIES` (the byte
    /// budget still evicts in recency order).
    adaptive: Option<Box<AdaptivePolicy>>,
    bytes: usize,
    with_deadline: usize,
    /// No entry expires before this: a lower bound on every deadline set since the last full scan,
    /// which lets most calls to `reclaim_expired` return at once.
    earliest_deadline: Timestamp,
    writes_since_reclaim: usize,
    sweep_cursor: usize,
    next_cas: u64,
    counters: Counters,
    pub(crate) sink: Sink<P>,
}

impl<P> Default for Table<P> {
    fn default() -> Self {
        Self {
            // A fresh random seed per table (ahash's runtime RNG): keys often come from request data,
            // and a fixed seed would let a client craft colliding keys.
            map: HashMap::with_hasher(RandomState::new()),
            slots: Vec::new(),
            free: Vec::new(),
            order: LruList::default(),
            adaptive: None,
            bytes: 0,
            with_deadline: 0,
            earliest_deadline: Timestamp::NEVER,
            writes_since_reclaim: 0,
            sweep_cursor: 0,
            next_cas: 1,
            counters: Counters::default(),
            sink: Sink::default(),
        }
    }
}

impl<P: Weigh> Table<P> {
    pub fn with_eviction(eviction: Eviction) -> Self {
        let adaptive = match eviction {
            Eviction::Lru => None,
            Eviction::Adaptive => Some(Box::new(AdaptivePolicy::new(Limits::default().max_entries as usize))),
        };
        Self {
            adaptive,
            ..Self::default()
        }
    }

    pub fn eviction(&self) -> Eviction {
        if self.adaptive.is_some() {
            Eviction::Adaptive
        } else {
            Eviction::Lru
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counters: self.counters,
            entries: self.len(),
            bytes: self.bytes,
        }
    }

    fn entry(&self, slot: u32) -> Option<&Entry<P>> {
        self.slots.get(slot as usize)?.as_ref()
    }

    fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry<P>> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// `value` with the bytes its entry is charged, or `TooLarge` if that alone exceeds the byte
    /// budget; the refused value goes to the sink (dropped after the lock), the table is unchanged.
    fn within_budget(&mut self, key: &[u8], value: Value<P>, limits: &Limits) -> Result<(Value<P>, usize), StoreError> {
        let bytes = entry_bytes(key, &value);
        match limits.max_bytes {
            Some(max_bytes) if bytes > max_bytes => {
                let err = StoreError::TooLarge {
                    entry_bytes: bytes,
                    max_bytes,
                };
                self.sink.garbage.push(value);
                self.sink.refused = Some(err.clone());
                Err(err)
            }
            _ => Ok((value, bytes)),
        }
    }

    fn take_cas(&mut self) -> u64 {
        let cas = self.next_cas;
        self.next_cas += 1;
        cas
    }

    /// The slot of `key` if it holds a live entry; an expired one met on the way is removed.
    fn find_live(&mut self, key: &[u8], now: &Now) -> Option<u32> {
        let slot = *self.map.get(key)?;
        let entry = self.entry(slot)?;
        if entry.has_deadline() && entry.is_expired(now.get()) {
            self.remove_slot(slot, Removal::Expired);
            return None;
        }
        Some(slot)
    }

    fn remove_slot(&mut self, slot: u32, why: Removal) {
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.map.remove(&entry.key);
        self.order.unlink(slot);
        if let Some(policy) = self.adaptive.as_deref_mut() {
            policy.on_remove(slot);
        }
        self.free.push(slot);
        self.bytes -= entry.bytes;
        if entry.has_deadline() {
            self.with_deadline -= 1;
        }
        match why {
            Removal::Deleted => self.counters.deletes += 1,
            Removal::Expired => self.counters.expirations += 1,
            Removal::Evicted => {
                self.counters.evictions += 1;
                self.sink.evicted += 1;
            }
            Removal::Replaced => {}
        }
        self.sink.garbage.push(entry.value);
    }

    /// Read a live entry and mark it most recently used (`LocMemCache.get`).
    pub fn get(&mut self, key: &[u8], now: &Now) -> Option<&Value<P>> {
        let Some(slot) = self.find_live(key, now) else {
            self.counters.misses += 1;
            if let Some(policy) = self.adaptive.as_deref_mut() {
                policy.on_miss(self.map.hasher().hash_one(key));
            }
            return None;
        };
        self.counters.hits += 1;
        self.touch_order(slot);
        self.entry(slot).map(|e| &e.value)
    }

    /// Mark the entry in `slot` most recently used (and, for the adaptive policy, used once more).
    fn touch_order(&mut self, slot: u32) {
        self.order.move_to_front(slot);
        if let Some(policy) = self.adaptive.as_deref_mut() {
            policy.on_hit_slot(slot);
        }
    }

    /// Read a live entry with its change counter, for a compare-and-swap update. Counts as neither
    /// hit nor miss, and leaves the recency order alone: the update that follows moves it.
    pub fn get_for_update(&mut self, key: &[u8], now: &Now) -> Option<(&Value<P>, u64)> {
        let slot = self.find_live(key, now)?;
        self.entry(slot).map(|e| (&e.value, e.cas))
    }

    /// Whether a live entry exists. Leaves the recency order alone (`LocMemCache.has_key`).
    pub fn contains(&mut self, key: &[u8], now: &Now) -> bool {
        self.find_live(key, now).is_some()
    }

    /// The deadline of a live entry (`Timestamp::NEVER` for none).
    pub fn deadline(&mut self, key: &[u8], now: &Now) -> Option<Timestamp> {
        let slot = self.find_live(key, now)?;
        self.entry(slot).map(|e| e.expires_at)
    }

    /// Store `value` under `key` (`LocMemCache.set`): cull first if the cache is full, then write and
    /// mark most recently used. A dead-on-arrival `ttl` removes the key instead.
    pub fn set(&mut self, key: &[u8], value: Value<P>, ttl: Ttl, limits: &Limits, now: &Now) -> Result<(), StoreError> {
        let (value, bytes) = self.within_budget(key, value, limits)?;
        if self.adaptive.is_some() {
            if !self.map.contains_key(key) {
                self.evict_one_at_a_time(limits, now);
            }
        } else if limits.is_full(self.len()) {
            self.cull(limits, now);
        }
        self.counters.sets += 1;
        match ttl.deadline(now) {
            None => {
                if let Some(&slot) = self.map.get(key) {
                    self.remove_slot(slot, Removal::Replaced);
                }
                self.sink.garbage.push(value);
            }
            Some(deadline) => {
                let slot = self.upsert(key, value, deadline, bytes);
                if let Some(max_bytes) = limits.max_bytes {
                    self.enforce_byte_budget(max_bytes, slot, now);
                }
            }
        }
        self.sweep_some(now);
        Ok(())
    }

    /// Store `value` only if no live entry holds `key` (`LocMemCache.add`). A failed add leaves the
    /// recency order alone.
    pub fn add(
        &mut self,
        key: &[u8],
        value: Value<P>,
        ttl: Ttl,
        limits: &Limits,
        now: &Now,
    ) -> Result<bool, StoreError> {
        if self.find_live(key, now).is_some() {
            self.sink.garbage.push(value);
            return Ok(false);
        }
        self.set(key, value, ttl, limits, now).map(|()| true)
    }

    /// Write a new entry or overwrite the existing one, and make it most recently used.
    fn upsert(&mut self, key: &[u8], value: Value<P>, deadline: Timestamp, bytes: usize) -> u32 {
        let cas = self.take_cas();
        let has_deadline = deadline != Timestamp::NEVER;
        self.earliest_deadline = self.earliest_deadline.min(deadline);
        self.writes_since_reclaim += 1;
        if let Some(&slot) = self.map.get(key) {
            if let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
                let old_value = std::mem::replace(&mut entry.value, value);
                let old_bytes = std::mem::replace(&mut entry.bytes, bytes);
                let deadline_before = entry.has_deadline();
                entry.expires_at = deadline;
                entry.cas = cas;
                self.bytes = self.bytes - old_bytes + bytes;
                if deadline_before != has_deadline {
                    if has_deadline {
                        self.with_deadline += 1;
                    } else {
                        self.with_deadline -= 1;
                    }
                }
                self.sink.garbage.push(old_value);
                self.touch_order(slot);
                return slot;
            }
        }
        let key: Arc<[u8]> = Arc::from(key);
        let entry = Entry {
            key: Arc::clone(&key),
            value,
            expires_at: deadline,
            cas,
            bytes,
        };
        let slot = if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(entry);
            slot
        } else {
            self.slots.push(Some(entry));
            (self.slots.len() - 1) as u32
        };
        if let Some(policy) = self.adaptive.as_deref_mut() {
            policy.on_insert(slot, self.map.hasher().hash_one(&*key));
        }
        self.map.insert(key, slot);
        self.order.push_front(slot);
        self.bytes += bytes;
        if has_deadline {
            self.with_deadline += 1;
        }
        slot
    }

    /// Make room in a full cache: expired entries go first; if the cache is still full, remove
    /// `LocMemCache`'s count of least recently used entries.
    fn cull(&mut self, limits: &Limits, now: &Now) {
        self.reclaim_expired(now);
        if !limits.is_full(self.len()) {
            return;
        }
        let count = limits.cull_count(self.len());
        for _ in 0..count {
            let Some(slot) = self.order.back() else { break };
            self.remove_slot(slot, Removal::Evicted);
        }
    }

    /// Make room for one new entry under the adaptive policy: expired entries first, then the
    /// policy's victims until fewer than `MAX_ENTRIES` (at least one) remain.
    fn evict_one_at_a_time(&mut self, limits: &Limits, now: &Now) {
        let capacity = usize::try_from(limits.max_entries.max(1)).unwrap_or(usize::MAX);
        if let Some(policy) = self.adaptive.as_deref_mut() {
            policy.set_capacity(capacity);
        }
        if self.len() < capacity {
            return;
        }
        self.reclaim_expired_amortised(now);
        while self.len() >= capacity {
            let victim = self
                .adaptive
                .as_deref_mut()
                .and_then(AdaptivePolicy::victim)
                .or_else(|| self.order.back());
            let Some(slot) = victim else { break };
            self.remove_slot(slot, Removal::Evicted);
        }
    }

    /// Evict least recently used entries until the byte budget holds, sparing `keep` (the entry just
    /// written, which fits on its own).
    fn enforce_byte_budget(&mut self, max_bytes: usize, keep: u32, now: &Now) {
        if self.bytes <= max_bytes {
            return;
        }
        self.reclaim_expired_amortised(now);
        while self.bytes > max_bytes {
            let Some(slot) = self.order.back() else { break };
            if slot == keep {
                break;
            }
            self.remove_slot(slot, Removal::Evicted);
        }
    }

    /// Remove every expired entry. O(slots), but skipped while nothing can have expired yet; called
    /// when a cull is due, which is amortised over the writes that filled the room.
    fn reclaim_expired(&mut self, now: &Now) {
        if self.with_deadline == 0 {
            return;
        }
        let at = now.get();
        if at < self.earliest_deadline {
            return;
        }
        let mut earliest = Timestamp::NEVER;
        for slot in 0..self.slots.len() {
            let Some(entry) = self.slots[slot].as_ref() else {
                continue;
            };
            if entry.is_expired(at) {
                self.remove_slot(slot as u32, Removal::Expired);
            } else {
                earliest = earliest.min(entry.expires_at);
            }
        }
        self.earliest_deadline = earliest;
        self.writes_since_reclaim = 0;
    }

    /// `reclaim_expired`, at most once per `len / RECLAIM_EVERY` writes: for evictions that happen
    /// on every write (the byte budget).
    fn reclaim_expired_amortised(&mut self, now: &Now) {
        if self.writes_since_reclaim >= self.len() / RECLAIM_EVERY {
            self.reclaim_expired(now);
        }
    }

    /// Look at a few slots past the sweep cursor and reclaim those that have expired.
    fn sweep_some(&mut self, now: &Now) {
        if self.with_deadline == 0 || self.slots.is_empty() {
            return;
        }
        let at = now.get();
        for _ in 0..SWEEP_STEP {
            if self.sweep_cursor >= self.slots.len() {
                self.sweep_cursor = 0;
            }
            let slot = self.sweep_cursor;
            self.sweep_cursor += 1;
            if self.slots[slot].as_ref().is_some_and(|e| e.is_expired(at)) {
                self.remove_slot(slot as u32, Removal::Expired);
            }
        }
    }

    /// Give a live entry a new deadline (`LocMemCache.touch`); a dead-on-arrival `ttl` removes it.
    /// Leaves the recency order alone.
    pub fn touch(&mut self, key: &[u8], ttl: Ttl, now: &Now) -> bool {
        let Some(slot) = self.find_live(key, now) else {
            return false;
        };
        match ttl.deadline(now) {
            None => self.remove_slot(slot, Removal::Expired),
            Some(deadline) => {
                self.earliest_deadline = self.earliest_deadline.min(deadline);
                let mut delta: isize = 0;
                if let Some(entry) = self.entry_mut(slot) {
                    let had = entry.has_deadline();
                    entry.expires_at = deadline;
                    delta = isize::from(entry.has_deadline()) - isize::from(had);
                }
                self.with_deadline = self.with_deadline.saturating_add_signed(delta);
            }
        }
        true
    }

    /// Remove a live entry; whether there was one.
    pub fn delete(&mut self, key: &[u8], now: &Now) -> bool {
        match self.find_live(key, now) {
            Some(slot) => {
                self.remove_slot(slot, Removal::Deleted);
                true
            }
            None => false,
        }
    }

    /// Add `delta` to a native integer in one step, keeping its deadline and making it most
    /// recently used (`LocMemCache.incr`). The value is unchanged on every error.
    pub fn incr(&mut self, key: &[u8], delta: i64, now: &Now) -> Result<i64, StoreError> {
        let slot = self.find_live(key, now).ok_or(StoreError::NotFound)?;
        let cas = self.take_cas();
        let entry = self.entry_mut(slot).ok_or(StoreError::NotFound)?;
        let Value::Int(current) = entry.value else {
            return Err(StoreError::NotAnInteger);
        };
        let next = current.checked_add(delta).ok_or(StoreError::Overflow)?;
        entry.value = Value::Int(next);
        entry.cas = cas;
        self.touch_order(slot);
        Ok(next)
    }

    /// Replace the value of a live entry if it has not changed since `get_for_update` returned
    /// `cas`, keeping its deadline and making it most recently used. `Ok(false)` if it changed or
    /// went away.
    pub fn replace_if(
        &mut self,
        key: &[u8],
        cas: u64,
        value: Value<P>,
        limits: &Limits,
        now: &Now,
    ) -> Result<bool, StoreError> {
        let Some(slot) = self.find_live(key, now) else {
            self.sink.garbage.push(value);
            return Ok(false);
        };
        let (value, bytes) = self.within_budget(key, value, limits)?;
        let new_cas = self.take_cas();
        let Some(entry) = self.entry_mut(slot).filter(|e| e.cas == cas) else {
            self.sink.garbage.push(value);
            return Ok(false);
        };
        let old_value = std::mem::replace(&mut entry.value, value);
        let old_bytes = std::mem::replace(&mut entry.bytes, bytes);
        entry.cas = new_cas;
        self.bytes = self.bytes - old_bytes + bytes;
        self.sink.garbage.push(old_value);
        self.touch_order(slot);
        if let Some(max_bytes) = limits.max_bytes {
            self.enforce_byte_budget(max_bytes, slot, now);
        }
        Ok(true)
    }

    /// Remove everything. Counters survive a clear.
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        if let Some(policy) = self.adaptive.as_deref_mut() {
            policy.clear();
        }
        self.free.clear();
        self.bytes = 0;
        self.with_deadline = 0;
        self.earliest_deadline = Timestamp::NEVER;
        self.writes_since_reclaim = 0;
        self.sweep_cursor = 0;
        let slots = std::mem::take(&mut self.slots);
        self.sink.garbage.extend(slots.into_iter().flatten().map(|e| e.value));
    }

    /// Keys of live entries that start with `prefix`, in no particular order.
    pub fn live_keys(&self, prefix: &[u8], now: &Now) -> Vec<Arc<[u8]>> {
        let at = now.get();
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.key.starts_with(prefix) && !(e.has_deadline() && e.is_expired(at)))
            .map(|e| Arc::clone(&e.key))
            .collect()
    }

    /// Remove a live entry only if `matches` accepts its value (an atomic compare-and-delete, for
    /// lock release); whether it was removed.
    pub fn delete_if(&mut self, key: &[u8], now: &Now, matches: impl FnOnce(&Value<P>) -> bool) -> bool {
        let Some(slot) = self.find_live(key, now) else {
            return false;
        };
        if !self.entry(slot).is_some_and(|e| matches(&e.value)) {
            return false;
        }
        self.remove_slot(slot, Removal::Deleted);
        true
    }

    /// The hash of `key` under this table's seed (for tests that show seeds differ per process).
    pub fn hash_of(&self, key: &[u8]) -> u64 {
        self.map.hasher().hash_one(key)
    }

    /// Check every invariant listed at the top of this file; for tests and debugging.
    pub fn check_invariants(&self) -> Result<(), String> {
        let occupied = self.slots.iter().flatten().count();
        if occupied != self.map.len() {
            return Err(format!("{occupied} occupied slots but {} map entries", self.map.len()));
        }
        let mut bytes = 0;
        let mut with_deadline = 0;
        for (slot, entry) in self.slots.iter().enumerate() {
            let Some(entry) = entry else { continue };
            if self.map.get(&entry.key) != Some(&(slot as u32)) {
                return Err(format!("slot {slot} is not where the map points"));
            }
            if entry.bytes != entry_bytes(&entry.key, &entry.value) {
                return Err(format!("slot {slot} is charged {} bytes", entry.bytes));
            }
            bytes += entry.bytes;
            with_deadline += usize::from(entry.has_deadline());
        }
        if bytes != self.bytes || with_deadline != self.with_deadline {
            return Err(format!(
                "bytes {} (actual {bytes}), with_deadline {} (actual {with_deadline})",
                self.bytes, self.with_deadline
            ));
        }
        let linked = self.order.len_from_head();
        if linked != occupied {
            return Err(format!("{linked} slots linked in recency order, {occupied} occupied"));
        }
        Ok(())
    }
}
