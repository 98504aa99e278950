//! One write transaction: the replay of a process's reads, `LocMemCache`'s `_set` and `_cull`,
//! the byte budget, and the expiry sweep.

use std::collections::HashSet;

use heed::RwTxn;

use super::env::{Db, Dbs};
use super::errors::SharedError;
use super::layout::{charge, db_key, encode_entry, seq_key, Entry, State, STATE_KEY};
use super::store::Pending;
use crate::store::{Limits, StoreError, Timestamp};

/// Entries examined for expiry on each write, past a cursor that walks the whole store.
const SWEEP_PER_WRITE: usize = 4;

/// Why an entry leaves the store (which counter it bumps).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Removal {
    Deleted,
    Evicted,
    Expired,
    Replaced,
}

/// What a write transaction needs to know of an entry it found.
#[derive(Clone, Copy)]
pub(super) struct Found {
    pub(super) deadline: Timestamp,
    pub(super) seq: u64,
    pub(super) kind: u8,
    pub(super) charge: usize,
}

/// A write that failed: because the map grew elsewhere (adopt it and retry), or for good.
pub(super) enum WriteError {
    Resized,
    Failed(SharedError),
}

impl WriteError {
    pub(super) fn into_shared(self) -> SharedError {
        match self {
            Self::Resized => SharedError::Lmdb("the map was resized by another process".into()),
            Self::Failed(err) => err,
        }
    }
}

impl From<heed::Error> for WriteError {
    fn from(err: heed::Error) -> Self {
        match err {
            heed::Error::Mdb(heed::MdbError::MapResized) => Self::Resized,
            other => Self::Failed(other.into()),
        }
    }
}

impl From<SharedError> for WriteError {
    fn from(err: SharedError) -> Self {
        Self::Failed(err)
    }
}

/// One write transaction and the state it updates.
pub(super) struct Writer<'e> {
    pub(super) txn: RwTxn<'e>,
    pub(super) dbs: Dbs,
    pub(super) state: State,
    now: Timestamp,
    /// The largest entry this map can take (half of it).
    largest: usize,
}

impl<'e> Writer<'e> {
    pub(super) fn begin(txn: RwTxn<'e>, dbs: Dbs, now: Timestamp, map_size: usize) -> Result<Self, WriteError> {
        let state = dbs
            .meta
            .get(&txn, STATE_KEY)?
            .and_then(State::parse)
            .unwrap_or_default();
        Ok(Self {
            txn,
            dbs,
            state,
            now,
            largest: map_size / 2,
        })
    }

    pub(super) fn commit(self) -> Result<(), WriteError> {
        let Self {
            mut txn, dbs, state, ..
        } = self;
        dbs.meta.put(&mut txn, STATE_KEY, &state.encode())?;
        txn.commit()?;
        Ok(())
    }

    pub(super) fn len(&self) -> Result<u64, SharedError> {
        Ok(self.dbs.entries.len(&self.txn)?)
    }

    /// Replay what this process's reads did: counts, expired entries met, and recency (each key
    /// made most recently used in the order of its last read).
    pub(super) fn replay(&mut self, pending: &Pending) -> Result<(), SharedError> {
        self.state.hits += pending.hits;
        self.state.misses += pending.misses;
        for dbkey in &pending.expired {
            if let Some(found) = self.found(dbkey)? {
                if found.deadline.has_passed(self.now) {
                    self.remove(dbkey, found, Removal::Expired)?;
                }
            }
        }
        let mut seen = HashSet::with_capacity(pending.touched.len());
        let mut last_reads: Vec<&[u8]> = pending
            .touched
            .iter()
            .rev()
            .filter(|k| seen.insert(k.as_slice()))
            .map(Vec::as_slice)
            .collect();
        last_reads.reverse();
        for dbkey in last_reads {
            self.make_recent(dbkey)?;
        }
        Ok(())
    }

    /// The entry stored under `dbkey`, whatever its key and deadline.
    pub(super) fn found(&self, dbkey: &[u8]) -> Result<Option<Found>, SharedError> {
        let raw = self.dbs.entries.get(&self.txn, dbkey)?;
        Ok(raw.and_then(|raw| {
            let entry = Entry::parse(raw)?;
            let key_len = entry.long_key.map_or(dbkey.len(), <[u8]>::len);
            Some(Found {
                deadline: entry.deadline,
                seq: entry.seq,
                kind: entry.kind,
                charge: entry.charge(key_len),
            })
        }))
    }

    /// The live entry of `key`; an expired one met is removed, an entry of another long key that
    /// shares the stored key is treated as absent.
    pub(super) fn live(&mut self, key: &[u8]) -> Result<Option<Found>, SharedError> {
        let dbkey = db_key(key);
        let raw = self.dbs.entries.get(&self.txn, &dbkey)?;
        let Some(raw) = raw else { return Ok(None) };
        let Some(entry) = Entry::parse(raw) else {
            // Never written by this layout: drop it.
            self.dbs.entries.delete(&mut self.txn, &dbkey)?;
            return Ok(None);
        };
        let found = Found {
            deadline: entry.deadline,
            seq: entry.seq,
            kind: entry.kind,
            charge: entry.charge(key.len()),
        };
        if !entry.is_of(key) {
            return Ok(None);
        }
        if entry.is_expired(self.now) {
            self.remove(&dbkey, found, Removal::Expired)?;
            return Ok(None);
        }
        Ok(Some(found))
    }

    /// The value bytes of `key`'s entry, copied.
    pub(super) fn data(&self, key: &[u8]) -> Result<Option<Vec<u8>>, SharedError> {
        let raw = self.dbs.entries.get(&self.txn, &db_key(key))?;
        Ok(raw
            .and_then(Entry::parse)
            .filter(|e| e.is_of(key))
            .map(|e| e.data.to_vec()))
    }

    pub(super) fn value_is(&mut self, key: &[u8], kind: u8, data: &[u8]) -> Result<bool, SharedError> {
        let db = if self.live(key)?.is_some() {
            self.dbs.entries
        } else if self.live_lock(key)?.is_some() {
            self.dbs.locks
        } else {
            return Ok(false);
        };
        let raw = db.get(&self.txn, &db_key(key))?;
        Ok(raw
            .and_then(Entry::parse)
            .is_some_and(|e| e.is_of(key) && e.kind == kind && e.data == data))
    }

    pub(super) fn remove(&mut self, dbkey: &[u8], found: Found, why: Removal) -> Result<(), SharedError> {
        self.dbs.entries.delete(&mut self.txn, dbkey)?;
        self.dbs.order.delete(&mut self.txn, &seq_key(found.seq))?;
        self.state.bytes = self.state.bytes.saturating_sub(found.charge as u64);
        match why {
            Removal::Deleted => self.state.deletes += 1,
            Removal::Evicted => self.state.evictions += 1,
            Removal::Expired => self.state.expirations += 1,
            Removal::Replaced => {}
        }
        Ok(())
    }

    /// Remove the live entry of `key`; whether there was one (an expired one is reclaimed).
    pub(super) fn remove_key(&mut self, key: &[u8], why: Removal) -> Result<bool, SharedError> {
        if let Some(found) = self.live(key)? {
            self.remove(&db_key(key), found, why)?;
            return Ok(true);
        }
        if self.live_lock(key)?.is_some() {
            self.dbs.locks.delete(&mut self.txn, &db_key(key))?;
            self.state.deletes += u64::from(why == Removal::Deleted);
            return Ok(true);
        }
        Ok(false)
    }

    /// Write an entry (replacing `old`, the entry found under its key) as most recently used.
    pub(super) fn put(
        &mut self,
        key: &[u8],
        deadline: Timestamp,
        kind: u8,
        data: &[u8],
        old: Option<Found>,
    ) -> Result<(), SharedError> {
        let dbkey = db_key(key);
        if let Some(old) = old {
            self.dbs.order.delete(&mut self.txn, &seq_key(old.seq))?;
            self.state.bytes = self.state.bytes.saturating_sub(old.charge as u64);
        }
        self.state.seq += 1;
        let seq = self.state.seq;
        self.dbs
            .entries
            .put(&mut self.txn, &dbkey, &encode_entry(key, deadline, seq, kind, data))?;
        self.dbs.order.put(&mut self.txn, &seq_key(seq), &dbkey)?;
        self.state.bytes += charge(key.len(), data.len()) as u64;
        Ok(())
    }

    /// Make the entry under `dbkey` most recently used (a replayed read).
    pub(super) fn make_recent(&mut self, dbkey: &[u8]) -> Result<(), SharedError> {
        let Some(raw) = self.dbs.entries.get(&self.txn, dbkey)? else {
            return Ok(());
        };
        let Some(entry) = Entry::parse(raw) else { return Ok(()) };
        if entry.is_expired(self.now) {
            return Ok(());
        }
        let old_seq = entry.seq;
        let mut updated = raw.to_vec();
        self.state.seq += 1;
        let seq = self.state.seq;
        updated[8..16].copy_from_slice(&seq.to_le_bytes());
        self.dbs.order.delete(&mut self.txn, &seq_key(old_seq))?;
        self.dbs.entries.put(&mut self.txn, dbkey, &updated)?;
        self.dbs.order.put(&mut self.txn, &seq_key(seq), dbkey)?;
        Ok(())
    }

    pub(super) fn set_deadline(&mut self, db: Db, dbkey: &[u8], deadline: Timestamp) -> Result<(), SharedError> {
        let Some(raw) = db.get(&self.txn, dbkey)? else {
            return Ok(());
        };
        let mut updated = raw.to_vec();
        if updated.len() < 8 {
            return Ok(());
        }
        updated[0..8].copy_from_slice(&deadline.as_secs_f64().to_le_bytes());
        db.put(&mut self.txn, dbkey, &updated)?;
        Ok(())
    }

    /// The live lock entry of `key`; an expired one met is removed.
    pub(super) fn live_lock(&mut self, key: &[u8]) -> Result<Option<Timestamp>, SharedError> {
        let dbkey = db_key(key);
        let Some(entry) = self.dbs.locks.get(&self.txn, &dbkey)?.and_then(Entry::parse) else {
            return Ok(None);
        };
        if !entry.is_of(key) {
            return Ok(None);
        }
        if entry.is_expired(self.now) {
            self.dbs.locks.delete(&mut self.txn, &dbkey)?;
            self.state.expirations += 1;
            return Ok(None);
        }
        Ok(Some(entry.deadline))
    }

    /// `LocMemCache._set` with our byte budget. A value larger than the budget is refused (the
    /// refusal returned, the transaction still to commit: the old value is removed).
    pub(super) fn set(
        &mut self,
        key: &[u8],
        kind: u8,
        data: &[u8],
        deadline: Option<Timestamp>,
        limits: &Limits,
    ) -> Result<Option<StoreError>, SharedError> {
        let bytes = charge(key.len(), data.len());
        // Over the byte budget, or over half the map (which, with the pages a write needs beside
        // it, can never hold it): refused before evicting anything for it.
        let cap = limits.max_bytes.map_or(self.largest, |max| max.min(self.largest));
        if let Some(max_bytes) = (bytes > cap).then_some(cap) {
            self.remove_key(key, Removal::Replaced)?;
            self.state.refused += 1;
            return Ok(Some(StoreError::TooLarge {
                entry_bytes: bytes,
                max_bytes,
            }));
        }
        if limits.is_full(self.len()? as usize) {
            self.cull(limits)?;
        }
        self.state.sets += 1;
        let existing = self.live(key)?;
        let dbkey = db_key(key);
        // An ordinary set of a lock's key replaces the lock.
        self.dbs.locks.delete(&mut self.txn, &dbkey)?;
        // A long key whose stored key holds another long key's entry: that one goes.
        if existing.is_none() {
            if let Some(other) = self.found(&dbkey)? {
                self.remove(&dbkey, other, Removal::Replaced)?;
            }
        }
        match deadline {
            None => {
                if let Some(found) = existing {
                    self.remove(&dbkey, found, Removal::Replaced)?;
                }
            }
            Some(deadline) => {
                self.put(key, deadline, kind, data, existing)?;
                if let Some(max_bytes) = limits.max_bytes {
                    self.enforce_byte_budget(max_bytes as u64, &dbkey)?;
                }
            }
        }
        Ok(None)
    }

    /// Make room in a full cache: expired entries go first; if it is still full, remove
    /// `LocMemCache`'s count of least recently used entries.
    pub(super) fn cull(&mut self, limits: &Limits) -> Result<(), SharedError> {
        self.reclaim_expired()?;
        let len = self.len()? as usize;
        if !limits.is_full(len) {
            return Ok(());
        }
        self.evict_oldest(limits.cull_count(len), None)?;
        Ok(())
    }

    /// Evict up to `count` least recently used entries, sparing `keep`; how many went.
    pub(super) fn evict_oldest(&mut self, count: usize, keep: Option<&[u8]>) -> Result<usize, SharedError> {
        let mut victims = Vec::with_capacity(count.min(4096));
        for item in self.dbs.order.iter(&self.txn)? {
            if victims.len() >= count {
                break;
            }
            let (_, dbkey) = item?;
            if keep != Some(dbkey) {
                victims.push(dbkey.to_vec());
            }
        }
        let mut evicted = 0;
        for dbkey in victims {
            if let Some(found) = self.found(&dbkey)? {
                self.remove(&dbkey, found, Removal::Evicted)?;
                evicted += 1;
            }
        }
        Ok(evicted)
    }

    /// Evict least recently used entries until the byte budget holds, sparing `keep` (the entry just
    /// written, which fits on its own).
    pub(super) fn enforce_byte_budget(&mut self, max_bytes: u64, keep: &[u8]) -> Result<(), SharedError> {
        if self.state.bytes <= max_bytes {
            return Ok(());
        }
        self.reclaim_expired()?;
        while self.state.bytes > max_bytes {
            if self.evict_oldest(1, Some(keep))? == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Remove every expired entry (a full pass; run when room is needed).
    pub(super) fn reclaim_expired(&mut self) -> Result<(), SharedError> {
        let now = self.now;
        let mut expired = Vec::new();
        for item in self.dbs.entries.iter(&self.txn)? {
            let (dbkey, raw) = item?;
            if let Some(entry) = Entry::parse(raw).filter(|e| e.is_expired(now)) {
                let key_len = entry.long_key.map_or(dbkey.len(), <[u8]>::len);
                let found = Found {
                    deadline: entry.deadline,
                    seq: entry.seq,
                    kind: entry.kind,
                    charge: entry.charge(key_len),
                };
                expired.push((dbkey.to_vec(), found));
            }
        }
        for (dbkey, found) in expired {
            self.remove(&dbkey, found, Removal::Expired)?;
        }
        Ok(())
    }

    /// Look at a few entries past `cursor` and reclaim the expired ones; the cursor walks the whole
    /// store, so every expired entry is reclaimed within `len / SWEEP_PER_WRITE` writes.
    pub(super) fn sweep_some(&mut self, cursor: &mut Vec<u8>) -> Result<(), SharedError> {
        let now = self.now;
        let mut seen = Vec::with_capacity(SWEEP_PER_WRITE);
        let start = if cursor.is_empty() {
            std::ops::Bound::Unbounded
        } else {
            std::ops::Bound::Excluded(cursor.as_slice())
        };
        let range = (start, std::ops::Bound::Unbounded);
        for item in self.dbs.entries.range(&self.txn, &range)?.take(SWEEP_PER_WRITE) {
            let (dbkey, raw) = item?;
            let expired = Entry::parse(raw).filter(|e| e.is_expired(now)).map(|entry| {
                let key_len = entry.long_key.map_or(dbkey.len(), <[u8]>::len);
                Found {
                    deadline: entry.deadline,
                    seq: entry.seq,
                    kind: entry.kind,
                    charge: entry.charge(key_len),
                }
            });
            seen.push((dbkey.to_vec(), expired));
        }
        if seen.len() < SWEEP_PER_WRITE {
            cursor.clear();
        } else if let Some((last, _)) = seen.last() {
            cursor.clone_from(last);
        }
        for (dbkey, expired) in seen {
            if let Some(found) = expired {
                self.remove(&dbkey, found, Removal::Expired)?;
            }
        }
        Ok(())
    }

    pub(super) fn clear(&mut self) -> Result<(), SharedError> {
        self.dbs.entries.clear(&mut self.txn)?;
        self.dbs.order.clear(&mut self.txn)?;
        self.dbs.locks.clear(&mut self.txn)?;
        self.state.bytes = 0;
        Ok(())
    }
}
