//! The single-threaded heart of a store: hash index, slab of entries, recency order, expiry
//! bookkeeping, limits and counters. `&mut self` everywhere; `store.rs` wraps it in a lock.
//!
//! Invariants kept by every method:
//! - `index` files `slot` under its key's hash exactly when `slots[slot]` holds the entry for that
//!   key, and every occupied slot whose record is not pinned is linked once in `order` (under
//!   `Adaptive`, in the policy's lists, which keep the slot's index tag); a pinned one (a held lock)
//!   is linked nowhere, so no cull or eviction ever picks it;
//! - `bytes` is the sum of `entry_bytes` (plus the attachment's weight) over occupied slots,
//!   `with_deadline` the number of occupied slots whose entry has a deadline;
//! - `attachments[slot]` is set exactly when `slots[slot]`'s record is marked attached;
//! - nothing is freed here: removed records go to `sink`, which the store empties after unlocking,
//!   so freeing them (a million at once, after `clear`) never holds the lock.

use ahash::RandomState;

use super::adaptive::AdaptivePolicy;
use super::clock::{Now, Timestamp, Ttl};
use super::entry::{entry_bytes, Entry};
use super::errors::StoreError;
use super::index::{tag_of, Index};
use super::limits::Limits;
use super::lru::LruList;
use super::record::{Attachment, Item, Record};
use super::sink::Sink;
use super::stats::{count, Counters, Snapshot};

/// Slots examined for expired entries on each write: a full pass over `n` slots takes `n / 4`
/// writes, so a cache whose writes go to other keys reclaims everything that has expired within a
/// bounded number of writes, without a background thread.
const SWEEP_STEP: usize = 4;

/// A full scan for expired entries when room is needed runs at most once per `len / RECLAIM_EVERY`
/// writes, so a cache kept at its byte budget with every entry expiring pays O(1) per write, not
/// O(entries).
const RECLAIM_EVERY: usize = 8;

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
pub struct Table<A> {
    index: Index,
    /// A fresh random seed per table (ahash's runtime RNG): keys often come from request data, and a
    /// fixed seed would let a client craft colliding keys.
    hasher: RandomState,
    slots: Vec<Option<Entry>>,
    /// By slot, for the entries whose record is marked attached; as long as the highest such slot, so
    /// a cache that attaches nothing pays nothing for it.
    attachments: Vec<Option<Attachment<A>>>,
    free: Vec<u32>,
    /// The recency order of `Eviction::Lru` (unused under `Adaptive`, whose policy keeps its own).
    order: LruList,
    /// Present for `Eviction::Adaptive`; it then chooses every victim, of `MAX_ENTRIES` and of the
    /// byte budget.
    adaptive: Option<Box<AdaptivePolicy>>,
    bytes: usize,
    with_deadline: usize,
    /// No entry expires before this: a lower bound on every deadline set since the last full scan,
    /// which lets most calls to `reclaim_expired` return at once.
    earliest_deadline: Timestamp,
    writes_since_reclaim: usize,
    sweep_cursor: usize,
    counters: Counters,
    pub(crate) sink: Sink<A>,
}

impl<A> Default for Table<A> {
    fn default() -> Self {
        Self {
            index: Index::default(),
            hasher: RandomState::new(),
            slots: Vec::new(),
            attachments: Vec::new(),
            free: Vec::new(),
            order: LruList::default(),
            adaptive: None,
            bytes: 0,
            with_deadline: 0,
            earliest_deadline: Timestamp::NEVER,
            writes_since_reclaim: 0,
            sweep_cursor: 0,
            counters: Counters::default(),
            sink: Sink::default(),
        }
    }
}

impl<A> Table<A> {
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
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counters: self.counters,
            entries: self.len(),
            bytes: self.bytes,
        }
    }

    fn entry(&self, slot: u32) -> Option<&Entry> {
        self.slots.get(slot as usize)?.as_ref()
    }

    fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// The hash of `key` under this table's seed.
    pub fn hash_of(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The slot holding `key` (live or not), given its hash.
    fn lookup(&self, key: &[u8], hash: u64) -> Option<u32> {
        let slots = &self.slots;
        self.index.find(tag_of(hash), |slot| {
            slots
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|e| e.record.key() == key)
        })
    }

    /// The bytes `item`'s entry is charged, or `TooLarge` if that alone exceeds the byte budget; a
    /// refused item goes to the sink (dropped after the lock) and is counted. With `replaces`, the
    /// key's old value is removed too (as memcached does), so nobody reads a value its writer believes
    /// replaced; without, the table is unchanged.
    fn within_budget(
        &mut self,
        item: Item<A>,
        limits: &Limits,
        replaces: bool,
    ) -> Result<(Item<A>, usize), StoreError> {
        let bytes = item.bytes();
        match limits.max_bytes {
            Some(max_bytes) if bytes > max_bytes => {
                let err = StoreError::TooLarge {
                    entry_bytes: bytes,
                    max_bytes,
                };
                if replaces {
                    let key = item.record.key();
                    if let Some(slot) = self.lookup(key, self.hash_of(key)) {
                        self.remove_slot(slot, Removal::Replaced);
                        self.sink.refused_removed_old = true;
                    }
                }
                count(&mut self.counters.refused);
                self.discard(item);
                self.sink.refused = Some(err.clone());
                Err(err)
            }
            _ => Ok((item, bytes)),
        }
    }

    /// Hand an item that will not be stored to the sink.
    fn discard(&mut self, item: Item<A>) {
        self.sink.garbage.push(item.record);
        if let Some(attachment) = item.attachment {
            self.sink.objects.push(attachment.object);
        }
    }

    /// Store `record` in `slot`'s entry with `attachment` (the entry's old attachment must be gone).
    fn attach(&mut self, slot: u32, record: &mut Record, attachment: Option<Attachment<A>>) {
        record.set_attached(attachment.is_some());
        if let Some(attachment) = attachment {
            let i = slot as usize;
            if self.attachments.len() <= i {
                self.attachments.resize_with(i + 1, || None);
            }
            self.attachments[i] = Some(attachment);
        }
    }

    /// Take `slot`'s attachment, if its record is marked `attached`, to the sink; the weight it had.
    fn detach(&mut self, slot: u32, attached: bool) -> usize {
        if !attached {
            return 0;
        }
        match self.attachments.get_mut(slot as usize).and_then(Option::take) {
            Some(attachment) => {
                self.sink.objects.push(attachment.object);
                attachment.weight
            }
            None => 0,
        }
    }

    /// `slot`'s record and attachment.
    fn read(&self, slot: u32) -> Option<(&Record, Option<&A>)> {
        let record = &self.entry(slot)?.record;
        let attachment = if record.is_attached() {
            self.attachments
                .get(slot as usize)
                .and_then(Option::as_ref)
                .map(|a| &a.object)
        } else {
            None
        };
        Some((record, attachment))
    }

    /// The slot of `key` if it holds a live entry; an expired one met on the way is removed.
    fn find_live(&mut self, key: &[u8], hash: u64, now: &Now) -> Option<u32> {
        let slot = self.lookup(key, hash)?;
        let entry = self.entry(slot)?;
        if entry.has_deadline() && entry.is_expired(now.get()) {
            self.remove_slot(slot, Removal::Expired);
            return None;
        }
        Some(slot)
    }

    fn find_live_key(&mut self, key: &[u8], now: &Now) -> Option<u32> {
        self.find_live(key, self.hash_of(key), now)
    }

    fn remove_slot(&mut self, slot: u32, why: Removal) {
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        let linked = !entry.record.is_pinned();
        // The adaptive policy keeps each slot's tag: a victim's key need not be hashed again.
        let tag = match self
            .adaptive
            .as_deref()
            .filter(|_| linked)
            .and_then(|policy| policy.tag(slot))
        {
            Some(tag) => tag,
            None => tag_of(self.hasher.hash_one(entry.record.key())),
        };
        let unfiled = self.index.remove(tag, slot);
        debug_assert!(unfiled, "slot {slot} was not filed under its tag");
        if linked {
            match self.adaptive.as_deref_mut() {
                Some(policy) => policy.on_remove(slot),
                None => self.order.unlink(slot),
            }
        }
        self.free.push(slot);
        self.bytes -= entry_bytes(&entry.record) + self.detach(slot, entry.record.is_attached());
        if entry.has_deadline() {
            self.with_deadline -= 1;
        }
        match why {
            Removal::Deleted => count(&mut self.counters.deletes),
            Removal::Expired => count(&mut self.counters.expirations),
            Removal::Evicted => {
                count(&mut self.counters.evictions);
                self.sink.evicted += 1;
            }
            Removal::Replaced => {}
        }
        self.sink.garbage.push(entry.record);
    }

    /// Read a live entry and mark it most recently used (`LocMemCache.get`).
    pub fn get(&mut self, key: &[u8], now: &Now) -> Option<(&Record, Option<&A>)> {
        let hash = self.hash_of(key);
        let Some(slot) = self.find_live(key, hash, now) else {
            count(&mut self.counters.misses);
            if let Some(policy) = self.adaptive.as_deref_mut() {
                policy.on_miss(hash);
            }
            return None;
        };
        count(&mut self.counters.hits);
        self.touch_order(slot);
        self.read(slot)
    }

    /// Mark the entry in `slot` most recently used (and, for the adaptive policy, used once more); a
    /// pinned entry has no place in the order.
    fn touch_order(&mut self, slot: u32) {
        if self.entry(slot).is_some_and(|e| e.record.is_pinned()) {
            return;
        }
        match self.adaptive.as_deref_mut() {
            Some(policy) => policy.on_hit_slot(slot),
            None => self.order.move_to_front(slot),
        }
    }

    /// Read a live entry for a compare-and-swap update (`replace_if`). Counts as neither hit nor
    /// miss, and leaves the recency order alone: the update that follows moves it.
    pub fn get_for_update(&mut self, key: &[u8], now: &Now) -> Option<(&Record, Option<&A>)> {
        let slot = self.find_live_key(key, now)?;
        self.read(slot)
    }

    /// Whether a live entry exists. Leaves the recency order alone (`LocMemCache.has_key`).
    pub fn contains(&mut self, key: &[u8], now: &Now) -> bool {
        self.find_live_key(key, now).is_some()
    }

    /// The deadline of a live entry (`Timestamp::NEVER` for none).
    pub fn deadline(&mut self, key: &[u8], now: &Now) -> Option<Timestamp> {
        let slot = self.find_live_key(key, now)?;
        self.entry(slot).map(|e| e.expires_at)
    }

    /// Store `item` under its record's key (`LocMemCache.set`): cull first if the cache is full, then
    /// write and mark most recently used. A dead-on-arrival `ttl` removes the key instead, and so
    /// does a value refused for the byte budget (`TooLarge`).
    pub fn set(&mut self, item: impl Into<Item<A>>, ttl: Ttl, limits: &Limits, now: &Now) -> Result<(), StoreError> {
        let (item, bytes) = self.within_budget(item.into(), limits, true)?;
        let hash = self.hash_of(item.record.key());
        let mut existing = self.lookup(item.record.key(), hash);
        if self.adaptive.is_some() {
            if existing.is_none() {
                self.evict_one_at_a_time(limits, now);
            }
        } else if limits.is_full(self.len()) {
            self.cull(limits, now);
            // The cull may have taken the key's own entry.
            existing = self.lookup(item.record.key(), hash);
        }
        count(&mut self.counters.sets);
        match ttl.deadline(now) {
            None => {
                if let Some(slot) = existing {
                    self.remove_slot(slot, Removal::Replaced);
                }
                self.discard(item);
            }
            Some(deadline) => {
                let slot = self.upsert(item, existing, hash, deadline, bytes);
                if let Some(max_bytes) = limits.max_bytes {
                    self.enforce_byte_budget(max_bytes, slot, now);
                }
            }
        }
        self.sweep_some(now);
        Ok(())
    }

    /// Store `item` only if no live entry holds its key (`LocMemCache.add`). A failed add leaves the
    /// recency order alone.
    pub fn add(&mut self, item: impl Into<Item<A>>, ttl: Ttl, limits: &Limits, now: &Now) -> Result<bool, StoreError> {
        let item = item.into();
        if self.find_live_key(item.record.key(), now).is_some() {
            self.discard(item);
            return Ok(false);
        }
        self.set(item, ttl, limits, now).map(|()| true)
    }

    /// Write a new entry or overwrite the one in `existing` (the slot holding the record's key, if
    /// any), and make it most recently used.
    fn upsert(&mut self, item: Item<A>, existing: Option<u32>, hash: u64, deadline: Timestamp, bytes: usize) -> u32 {
        self.writes_since_reclaim += 1;
        let pinned = item.record.is_pinned();
        if let Some(slot) = existing {
            match self.entry(slot).map(|e| e.record.is_pinned()) {
                Some(was_pinned) if was_pinned == pinned => {
                    self.set_deadline(slot, deadline);
                    self.replace_value(slot, item, bytes);
                    return slot;
                }
                // A lock's entry overwritten by a plain value, or the reverse: it joins or leaves the
                // eviction order, as a new entry.
                Some(_) => self.remove_slot(slot, Removal::Replaced),
                None => {}
            }
        }
        self.earliest_deadline = self.earliest_deadline.min(deadline);
        let Item { mut record, attachment } = item;
        let slot = self.free.last().copied().unwrap_or(self.slots.len() as u32);
        self.attach(slot, &mut record, attachment);
        let entry = Entry {
            record,
            expires_at: deadline,
        };
        let slot = if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(entry);
            slot
        } else {
            self.slots.push(Some(entry));
            (self.slots.len() - 1) as u32
        };
        if !pinned {
            match self.adaptive.as_deref_mut() {
                Some(policy) => policy.on_insert(slot, hash),
                None => self.order.push_front(slot),
            }
        }
        self.index.insert(tag_of(hash), slot);
        self.bytes += bytes;
        if deadline != Timestamp::NEVER {
            self.with_deadline += 1;
        }
        slot
    }

    /// Give the entry in `slot` a new deadline, keeping `with_deadline` and the earliest-deadline
    /// bound true.
    fn set_deadline(&mut self, slot: u32, deadline: Timestamp) {
        self.earliest_deadline = self.earliest_deadline.min(deadline);
        let Some(entry) = self.entry_mut(slot) else {
            return;
        };
        let had = entry.has_deadline();
        entry.expires_at = deadline;
        match (had, entry.has_deadline()) {
            (false, true) => self.with_deadline += 1,
            (true, false) => self.with_deadline -= 1,
            _ => {}
        }
    }

    /// Put `item` (charged `bytes`) in place of the value of the entry in `slot`, keeping its
    /// deadline, and make it most recently used; the old record and attachment go to the sink.
    fn replace_value(&mut self, slot: u32, item: Item<A>, bytes: usize) {
        let Item { mut record, attachment } = item;
        let (was_attached, pinned) = self
            .entry(slot)
            .map_or((false, false), |e| (e.record.is_attached(), e.record.is_pinned()));
        if pinned {
            // The entry keeps its place outside the eviction order (a compare-and-swap on a held lock's
            // entry, say); `upsert` re-files an entry whose pin changes.
            record.pin();
        }
        let detached = self.detach(slot, was_attached);
        self.attach(slot, &mut record, attachment);
        if let Some(entry) = self.entry_mut(slot) {
            let old = std::mem::replace(&mut entry.record, record);
            self.bytes = self.bytes - (entry_bytes(&old) + detached) + bytes;
            self.sink.garbage.push(old);
        }
        self.touch_order(slot);
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
            let Some(slot) = self.adaptive.as_deref_mut().and_then(AdaptivePolicy::victim) else {
                break;
            };
            self.remove_slot(slot, Removal::Evicted);
        }
    }

    /// Evict least recently used entries (under `Adaptive`, the policy's coldest) until the byte
    /// budget holds, sparing `keep` (the entry just written, which fits on its own).
    fn enforce_byte_budget(&mut self, max_bytes: usize, keep: u32, now: &Now) {
        if self.bytes <= max_bytes {
            return;
        }
        self.reclaim_expired_amortised(now);
        while self.bytes > max_bytes {
            let victim = match self.adaptive.as_deref_mut() {
                Some(policy) => policy.budget_victim(keep),
                None => self.order.back().filter(|&slot| slot != keep),
            };
            let Some(slot) = victim else { break };
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
        let Some(slot) = self.find_live_key(key, now) else {
            return false;
        };
        match ttl.deadline(now) {
            None => self.remove_slot(slot, Removal::Expired),
            Some(deadline) => self.set_deadline(slot, deadline),
        }
        true
    }

    /// Remove a live entry; whether there was one.
    pub fn delete(&mut self, key: &[u8], now: &Now) -> bool {
        match self.find_live_key(key, now) {
            Some(slot) => {
                self.remove_slot(slot, Removal::Deleted);
                true
            }
            None => false,
        }
    }

    /// Add `delta` to a native integer in place, keeping its deadline and making it most recently
    /// used (`LocMemCache.incr`). The value is unchanged on every error.
    pub fn incr(&mut self, key: &[u8], delta: i64, now: &Now) -> Result<i64, StoreError> {
        let slot = self.find_live_key(key, now).ok_or(StoreError::NotFound)?;
        let entry = self.entry_mut(slot).ok_or(StoreError::NotFound)?;
        let current = entry.record.as_int().ok_or(StoreError::NotAnInteger)?;
        let next = current.checked_add(delta).ok_or(StoreError::Overflow)?;
        entry.record.set_int(next);
        self.touch_order(slot);
        Ok(next)
    }

    /// Replace the value of a live entry if `unchanged` says it still holds what `get_for_update`
    /// read, keeping its deadline and making it most recently used. `Ok(false)` if it changed or went
    /// away.
    pub fn replace_if(
        &mut self,
        item: impl Into<Item<A>>,
        limits: &Limits,
        now: &Now,
        unchanged: impl FnOnce(&Record, Option<&A>) -> bool,
    ) -> Result<bool, StoreError> {
        let item = item.into();
        let Some(slot) = self.find_live_key(item.record.key(), now) else {
            self.discard(item);
            return Ok(false);
        };
        let (item, bytes) = self.within_budget(item, limits, false)?;
        if !self
            .read(slot)
            .is_some_and(|(record, attachment)| unchanged(record, attachment))
        {
            self.discard(item);
            return Ok(false);
        }
        self.replace_value(slot, item, bytes);
        if let Some(max_bytes) = limits.max_bytes {
            self.enforce_byte_budget(max_bytes, slot, now);
        }
        Ok(true)
    }

    /// Remove everything. Counters survive a clear.
    pub fn clear(&mut self) {
        self.index.clear();
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
        self.sink.garbage.extend(slots.into_iter().flatten().map(|e| e.record));
        let attachments = std::mem::take(&mut self.attachments);
        self.sink
            .objects
            .extend(attachments.into_iter().flatten().map(|a| a.object));
    }

    /// Keys of live entries that start with `prefix`, in no particular order.
    pub fn live_keys(&self, prefix: &[u8], now: &Now) -> Vec<Box<[u8]>> {
        let at = now.get();
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.record.key().starts_with(prefix) && !(e.has_deadline() && e.is_expired(at)))
            .map(|e| e.record.key().into())
            .collect()
    }

    /// Remove a live entry only if `matches` accepts it (an atomic compare-and-delete, for lock
    /// release); whether it was removed.
    pub fn delete_if(&mut self, key: &[u8], now: &Now, matches: impl FnOnce(&Record, Option<&A>) -> bool) -> bool {
        let Some(slot) = self.find_live_key(key, now) else {
            return false;
        };
        if !self
            .read(slot)
            .is_some_and(|(record, attachment)| matches(record, attachment))
        {
            return false;
        }
        self.remove_slot(slot, Removal::Deleted);
        true
    }

    /// Check every invariant listed at the top of this file; for tests and debugging.
    pub fn check_invariants(&self) -> Result<(), String> {
        let occupied = self.slots.iter().flatten().count();
        if occupied != self.index.len() {
            return Err(format!("{occupied} occupied slots but {} indexed", self.index.len()));
        }
        let mut bytes = 0;
        let mut with_deadline = 0;
        let mut attached = 0;
        for (slot, entry) in self.slots.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let key = entry.record.key();
            if self.lookup(key, self.hash_of(key)) != Some(slot as u32) {
                return Err(format!("slot {slot} is not where the index points"));
            }
            bytes += entry_bytes(&entry.record);
            if entry.record.is_attached() {
                attached += 1;
                match self.attachments.get(slot).and_then(Option::as_ref) {
                    Some(attachment) => bytes += attachment.weight,
                    None => return Err(format!("slot {slot} is marked attached but has no attachment")),
                }
            }
            with_deadline += usize::from(entry.has_deadline());
        }
        for (tag, slot) in self.index.iter() {
            let filed = self.entry(slot).map(|e| tag_of(self.hash_of(e.record.key())));
            if filed != Some(tag) {
                return Err(format!("the index files slot {slot} under a stale hash"));
            }
        }
        let attachments = self.attachments.iter().flatten().count();
        if attached != attachments {
            return Err(format!("{attached} records attached, {attachments} attachments"));
        }
        if bytes != self.bytes || with_deadline != self.with_deadline {
            return Err(format!(
                "bytes {} (actual {bytes}), with_deadline {} (actual {with_deadline})",
                self.bytes, self.with_deadline
            ));
        }
        let pinned = self.slots.iter().flatten().filter(|e| e.record.is_pinned()).count();
        let linked = match self.adaptive.as_deref() {
            Some(policy) => {
                policy.check_invariants()?;
                for (slot, entry) in self.slots.iter().enumerate() {
                    let Some(entry) = entry.as_ref().filter(|e| !e.record.is_pinned()) else {
                        continue;
                    };
                    if policy.tag(slot as u32) != Some(tag_of(self.hash_of(entry.record.key()))) {
                        return Err(format!("the policy keeps a stale tag for slot {slot}"));
                    }
                }
                policy.len()
            }
            None => self.order.len_from_head(),
        };
        if linked + pinned != occupied {
            return Err(format!(
                "{linked} slots in the eviction order, {pinned} pinned, {occupied} occupied"
            ));
        }
        Ok(())
    }
}
