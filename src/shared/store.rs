//! One LOCATION's store as this process sees it: reads in LMDB read transactions (never the writer
//! lock), writes in write transactions, each begun and ended inside one call.
//!
//! Recency without making every read a write: a read records the key it hit in this process's
//! `Pending` buffer (with its hit or miss, and any expired entry it met); the process's next write
//! transaction first replays that buffer into the recency index (`order`: sequence number → key),
//! then writes. Culls remove the lowest sequence numbers. Within one process the order is exactly
//! `LocMemCache`'s (every read is replayed, in order, before the write that may cull); across
//! processes a read counts from the reader's next write on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::env::{Dbs, Env};
use super::errors::SharedError;
use super::layout::{charge, db_key, encode_entry, seq_key, Entry, State, STATE_KEY};
use super::writer::{Removal, WriteError, Writer};
use crate::store::{Counters, Limits, Snapshot, StoreError, Timestamp};

/// Keys a process remembers having read before its next write; past this, the oldest half is
/// dropped (those reads then do not count for recency).
const MAX_TOUCHED: usize = 16_384;
/// How often a writer clears the reader slots of dead processes.
const READER_CHECK_EVERY: Duration = Duration::from_secs(2);
/// Attempts at a write that finds the map full, each after evicting more.
const MAP_FULL_ATTEMPTS: usize = 12;

/// What this process's reads did since its last write.
#[derive(Default)]
pub(super) struct Pending {
    /// Stored keys of the hits, oldest first.
    pub(super) touched: Vec<Vec<u8>>,
    /// Stored keys of expired entries that reads met.
    pub(super) expired: Vec<Vec<u8>>,
    pub(super) hits: u64,
    pub(super) misses: u64,
}

impl Pending {
    fn put_back(&mut self, mut older: Pending) {
        older.touched.append(&mut self.touched);
        older.expired.append(&mut self.expired);
        older.hits += self.hits;
        older.misses += self.misses;
        *self = older;
    }
}

/// A value read under a write transaction: its kind and bytes, and its deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub kind: u8,
    pub data: Vec<u8>,
    pub deadline: Timestamp,
}

/// One item of `set_many`: key, kind, value bytes and deadline (`None`: dead on arrival).
pub type SetItem = (Vec<u8>, u8, Vec<u8>, Option<Timestamp>);

/// One LOCATION's store in this process.
pub struct SharedStore {
    env: Env,
    dbs: Dbs,
    location: PathBuf,
    pid: u32,
    /// Held shared by every transaction, exclusively to adopt another process's larger map.
    gate: RwLock<()>,
    pending: Mutex<Pending>,
    /// Where the expiry sweep stopped (a stored key), and when dead readers were last cleared.
    housekeeping: Mutex<(Vec<u8>, Instant)>,
}

impl SharedStore {
    pub(super) fn new(env: Env, dbs: Dbs, location: PathBuf) -> Self {
        Self {
            env,
            dbs,
            location,
            pid: std::process::id(),
            gate: RwLock::new(()),
            pending: Mutex::new(Pending::default()),
            housekeeping: Mutex::new((Vec::new(), Instant::now())),
        }
    }

    /// The process that opened this store (a store is never used by another).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn location(&self) -> &Path {
        &self.location
    }

    /// The map size in force in this process.
    pub fn map_size(&self) -> usize {
        self.env.info().map_size
    }

    /// Clear the reader slots of dead processes; how many.
    pub fn clear_stale_readers(&self) -> usize {
        self.env.clear_stale_readers().unwrap_or(0)
    }

    /// Reader slots in use (by live or dead processes), for tests and `stats()`.
    pub fn readers_in_use(&self) -> u32 {
        self.env.info().number_of_readers
    }

    /// Another process grew the map: adopt its size. No transaction of this process may be active,
    /// which the exclusive gate guarantees.
    fn adopt_map_size(&self) -> Result<(), SharedError> {
        let _exclusive = self.gate.write();
        // SAFETY: `mdb_env_set_mapsize` on an open environment requires that no transaction of this
        // process is active; every transaction holds `gate` shared, and we hold it exclusively.
        // A size of 0 adopts the size in the data file's meta page.
        #[allow(unsafe_code)]
        let resized = unsafe { self.env.resize(0) };
        resized.map_err(SharedError::from)
    }

    // -- reads ---------------------------------------------------------------------------------

    /// The entry of `key` (live or not) in `entries`, else in `locks`; and whether it is a lock.
    fn lookup<'t>(
        txn: &'t heed::RoTxn<'_, heed::WithTls>,
        dbs: &Dbs,
        key: &[u8],
    ) -> Result<Option<(Entry<'t>, bool)>, heed::Error> {
        let dbkey = db_key(key);
        if let Some(entry) = dbs
            .entries
            .get(txn, &dbkey)?
            .and_then(Entry::parse)
            .filter(|e| e.is_of(key))
        {
            return Ok(Some((entry, false)));
        }
        Ok(dbs
            .locks
            .get(txn, &dbkey)?
            .and_then(Entry::parse)
            .filter(|e| e.is_of(key))
            .map(|e| (e, true)))
    }

    /// Run `f` in a read transaction (retrying after adopting a grown map).
    fn read<R>(
        &self,
        mut f: impl FnMut(&heed::RoTxn<'_, heed::WithTls>, &Dbs) -> Result<R, heed::Error>,
    ) -> Result<R, SharedError> {
        let mut cleared = false;
        loop {
            let gate = self.gate.read();
            let result = self.env.read_txn().and_then(|txn| f(&txn, &self.dbs));
            drop(gate);
            match result {
                Err(heed::Error::Mdb(heed::MdbError::MapResized)) => self.adopt_map_size()?,
                Err(heed::Error::Mdb(heed::MdbError::ReadersFull)) if !cleared => {
                    cleared = true;
                    self.clear_stale_readers();
                }
                other => return other.map_err(SharedError::from),
            }
        }
    }

    /// The live value of `key`, passed to `f` inside the read transaction (so it can be copied out
    /// once); counts a hit or a miss and remembers the hit for recency.
    pub fn get<R>(
        &self,
        key: &[u8],
        now: Timestamp,
        mut f: impl FnMut(u8, &[u8]) -> R,
    ) -> Result<Option<R>, SharedError> {
        let dbkey = db_key(key);
        let mut expired = false;
        let mut lock = false;
        let found = self.read(|txn, dbs| {
            expired = false;
            let Some((entry, is_lock)) = Self::lookup(txn, dbs, key)? else {
                return Ok(None);
            };
            lock = is_lock;
            if entry.is_expired(now) {
                expired = !is_lock;
                return Ok(None);
            }
            Ok(Some(f(entry.kind, entry.data)))
        })?;
        let mut pending = self.pending.lock();
        if found.is_some() {
            pending.hits += 1;
            if !lock {
                if pending.touched.len() >= MAX_TOUCHED {
                    pending.touched.drain(..MAX_TOUCHED / 2);
                }
                pending.touched.push(dbkey.into_owned());
            }
        } else {
            pending.misses += 1;
            if expired {
                pending.expired.push(dbkey.into_owned());
            }
        }
        Ok(found)
    }

    /// `get` of several keys in one read transaction: `f(i, kind, data)` for each live one.
    pub fn get_many(
        &self,
        keys: &[Vec<u8>],
        now: Timestamp,
        mut f: impl FnMut(usize, u8, &[u8]),
    ) -> Result<(), SharedError> {
        #[derive(Clone, Copy)]
        enum Outcome {
            Hit,
            LockHit,
            Expired,
            Miss,
        }
        let mut outcomes = Vec::with_capacity(keys.len());
        self.read(|txn, dbs| {
            outcomes.clear();
            for (i, key) in keys.iter().enumerate() {
                outcomes.push(match Self::lookup(txn, dbs, key)? {
                    Some((entry, is_lock)) if !entry.is_expired(now) => {
                        f(i, entry.kind, entry.data);
                        if is_lock {
                            Outcome::LockHit
                        } else {
                            Outcome::Hit
                        }
                    }
                    Some((_, false)) => Outcome::Expired,
                    Some((_, true)) | None => Outcome::Miss,
                });
            }
            Ok(())
        })?;
        let mut pending = self.pending.lock();
        for (key, outcome) in keys.iter().zip(outcomes) {
            match outcome {
                Outcome::Hit => {
                    pending.hits += 1;
                    if pending.touched.len() >= MAX_TOUCHED {
                        pending.touched.drain(..MAX_TOUCHED / 2);
                    }
                    pending.touched.push(db_key(key).into_owned());
                }
                Outcome::LockHit => pending.hits += 1,
                Outcome::Expired => {
                    pending.misses += 1;
                    pending.expired.push(db_key(key).into_owned());
                }
                Outcome::Miss => pending.misses += 1,
            }
        }
        Ok(())
    }

    /// The deadline of the live entry of `key` (`Timestamp::NEVER` for none); no recency, no count.
    pub fn deadline(&self, key: &[u8], now: Timestamp) -> Result<Option<Timestamp>, SharedError> {
        self.read(|txn, dbs| {
            Ok(Self::lookup(txn, dbs, key)?
                .filter(|(e, _)| !e.is_expired(now))
                .map(|(e, _)| e.deadline))
        })
    }

    /// Whether `key` holds a live value (`has_key`: no recency, no count).
    pub fn contains(&self, key: &[u8], now: Timestamp) -> Result<bool, SharedError> {
        self.deadline(key, now).map(|d| d.is_some())
    }

    /// The live value of `key`, copied, for a compare-and-swap (`replace_if`); no recency, no count.
    pub fn get_for_update(&self, key: &[u8], now: Timestamp) -> Result<Option<Value>, SharedError> {
        let dbkey = db_key(key);
        self.read(|txn, dbs| {
            let raw = dbs.entries.get(txn, &dbkey)?;
            Ok(raw
                .and_then(Entry::parse)
                .filter(|e| e.is_of(key) && !e.is_expired(now))
                .map(|e| Value {
                    kind: e.kind,
                    data: e.data.to_vec(),
                    deadline: e.deadline,
                }))
        })
    }

    /// The cache keys of the live entries that start with `prefix`.
    pub fn live_keys(&self, prefix: &[u8], now: Timestamp) -> Result<Vec<Vec<u8>>, SharedError> {
        self.read(|txn, dbs| {
            let mut keys = Vec::new();
            // A long key's stored form starts with its first bytes, so the prefix scan still finds
            // it when the prefix is shorter than those bytes; otherwise every long key is checked.
            let head = &prefix[..prefix.len().min(super::layout::MAX_PLAIN_KEY)];
            for db in [dbs.entries, dbs.locks] {
                for item in db.prefix_iter(txn, head)? {
                    let (dbkey, raw) = item?;
                    let Some(entry) = Entry::parse(raw) else { continue };
                    if entry.is_expired(now) {
                        continue;
                    }
                    let key = entry.long_key.unwrap_or(dbkey);
                    if key.starts_with(prefix) {
                        keys.push(key.to_vec());
                    }
                }
            }
            Ok(keys)
        })
    }

    /// Counters summed over every process (as of each one's last write, plus this process's reads
    /// since its own), entries and bytes.
    pub fn snapshot(&self) -> Result<Snapshot, SharedError> {
        let (state, entries) = self.read(|txn, dbs| {
            let state = dbs.meta.get(txn, STATE_KEY)?.and_then(State::parse).unwrap_or_default();
            Ok((state, dbs.entries.len(txn)? + dbs.locks.len(txn)?))
        })?;
        let pending = self.pending.lock();
        Ok(Snapshot {
            counters: Counters {
                hits: state.hits + pending.hits,
                misses: state.misses + pending.misses,
                sets: state.sets,
                deletes: state.deletes,
                evictions: state.evictions,
                expirations: state.expirations,
                refused: state.refused,
            },
            entries: entries as usize,
            bytes: state.bytes as usize,
        })
    }

    // -- writes --------------------------------------------------------------------------------

    /// Run `op` in a write transaction that first replays this process's reads, then housekeeps and
    /// commits. A full map evicts the oldest quarter and retries; `Err(MapFull)` only when even an
    /// empty cache cannot take the write.
    fn write<R>(
        &self,
        now: Timestamp,
        mut op: impl FnMut(&mut Writer<'_>) -> Result<R, SharedError>,
    ) -> Result<R, SharedError> {
        let mut attempts = 0;
        loop {
            let pending = std::mem::take(&mut *self.pending.lock());
            let gate = self.gate.read();
            let result = self.write_once(now, &pending, &mut op);
            drop(gate);
            match result {
                Ok(value) => {
                    self.after_commit();
                    return Ok(value);
                }
                Err(err) => {
                    self.pending.lock().put_back(pending);
                    match err {
                        WriteError::Resized => self.adopt_map_size()?,
                        WriteError::Failed(SharedError::MapFull) if attempts < MAP_FULL_ATTEMPTS => {
                            attempts += 1;
                            if !self.relieve(now)? {
                                return Err(SharedError::MapFull);
                            }
                        }
                        WriteError::Failed(err) => return Err(err),
                    }
                }
            }
        }
    }

    fn write_once<R>(
        &self,
        now: Timestamp,
        pending: &Pending,
        op: &mut impl FnMut(&mut Writer<'_>) -> Result<R, SharedError>,
    ) -> Result<R, WriteError> {
        let txn = self.env.write_txn().map_err(WriteError::from)?;
        let mut w = Writer::begin(txn, self.dbs, now, self.map_size())?;
        w.replay(pending)?;
        let value = op(&mut w)?;
        {
            let mut housekeeping = self.housekeeping.lock();
            w.sweep_some(&mut housekeeping.0)?;
        }
        w.commit()?;
        Ok(value)
    }

    fn after_commit(&self) {
        let due = {
            let mut housekeeping = self.housekeeping.lock();
            let due = housekeeping.1.elapsed() >= READER_CHECK_EVERY;
            if due {
                housekeeping.1 = Instant::now();
            }
            due
        };
        if due {
            self.clear_stale_readers();
        }
    }

    /// Make room in a full map: evict the oldest quarter (at least one entry). Whether anything was
    /// evicted.
    fn relieve(&self, now: Timestamp) -> Result<bool, SharedError> {
        let _gate = self.gate.read();
        let txn = self.env.write_txn()?;
        let mut w = Writer::begin(txn, self.dbs, now, self.map_size()).map_err(WriteError::into_shared)?;
        let len = w.len()?;
        if len == 0 {
            return Ok(false);
        }
        let evicted = w.evict_oldest(len.div_ceil(4).max(1) as usize, None)?;
        w.commit().map_err(WriteError::into_shared)?;
        Ok(evicted > 0)
    }

    /// Store `data` (of `kind`) under `key` (`LocMemCache.set`): cull first if the cache is full,
    /// then write and make it most recently used. `deadline` `None` (dead on arrival) removes the
    /// key. A value larger than `MAX_BYTES` (or than the map can ever hold) is refused, and the old
    /// value removed.
    pub fn set(
        &self,
        key: &[u8],
        kind: u8,
        data: &[u8],
        deadline: Option<Timestamp>,
        limits: &Limits,
        now: Timestamp,
    ) -> Result<(), SharedError> {
        let result = self.write(now, |w| w.set(key, kind, data, deadline, limits));
        match result {
            Ok(Some(refused)) => Err(refused.into()),
            Ok(None) => Ok(()),
            Err(SharedError::MapFull) => {
                self.write(now, |w| {
                    w.state.refused += 1;
                    w.remove_key(key, Removal::Replaced)
                })?;
                Err(StoreError::TooLarge {
                    entry_bytes: charge(key.len(), data.len()),
                    max_bytes: self.map_size(),
                }
                .into())
            }
            Err(other) => Err(other),
        }
    }

    /// `set` of several items in one transaction (when the map is full, one transaction each);
    /// the indexes of the items refused as too large.
    pub fn set_many(&self, items: &[SetItem], limits: &Limits, now: Timestamp) -> Result<Vec<usize>, SharedError> {
        let together = self.write(now, |w| {
            let mut refused = Vec::new();
            for (i, (key, kind, data, deadline)) in items.iter().enumerate() {
                if w.set(key, *kind, data, *deadline, limits)?.is_some() {
                    refused.push(i);
                }
            }
            Ok(refused)
        });
        match together {
            Err(SharedError::MapFull) => {}
            other => return other,
        }
        let mut refused = Vec::new();
        for (i, (key, kind, data, deadline)) in items.iter().enumerate() {
            match self.set(key, *kind, data, *deadline, limits, now) {
                Ok(()) => {}
                Err(SharedError::Store(StoreError::TooLarge { .. })) => refused.push(i),
                Err(err) => return Err(err),
            }
        }
        Ok(refused)
    }

    /// Store only if `key` holds no live value (`LocMemCache.add`); whether it stored. Exactly one
    /// of several concurrent `add`s of a key wins, in any number of processes: the check and the
    /// write are one write transaction.
    pub fn add(
        &self,
        key: &[u8],
        kind: u8,
        data: &[u8],
        deadline: Option<Timestamp>,
        limits: &Limits,
        now: Timestamp,
    ) -> Result<bool, SharedError> {
        let result = self.write(now, |w| {
            if w.live(key)?.is_some() {
                return Ok(Some(StoreError::NotFound));
            }
            w.set(key, kind, data, deadline, limits)
        });
        match result {
            Ok(None) => Ok(true),
            // `NotFound` here means the key was present: nothing to add.
            Ok(Some(StoreError::NotFound)) => Ok(false),
            Ok(Some(refused)) => Err(refused.into()),
            Err(SharedError::MapFull) => Err(StoreError::TooLarge {
                entry_bytes: charge(key.len(), data.len()),
                max_bytes: self.map_size(),
            }
            .into()),
            Err(other) => Err(other),
        }
    }

    /// Give the live entry of `key` a new deadline (`None`: remove it); whether there was one.
    pub fn touch(&self, key: &[u8], deadline: Option<Timestamp>, now: Timestamp) -> Result<bool, SharedError> {
        self.write(now, |w| {
            let dbkey = db_key(key);
            if let Some(found) = w.live(key)? {
                match deadline {
                    None => w.remove(&dbkey, found, Removal::Expired)?,
                    Some(deadline) => w.set_deadline(w.dbs.entries, &dbkey, deadline)?,
                }
                return Ok(true);
            }
            if w.live_lock(key)?.is_none() {
                return Ok(false);
            }
            match deadline {
                None => {
                    w.dbs.locks.delete(&mut w.txn, &dbkey)?;
                    w.state.expirations += 1;
                }
                Some(deadline) => w.set_deadline(w.dbs.locks, &dbkey, deadline)?,
            }
            Ok(true)
        })
    }

    /// Remove the live entry of `key`; whether there was one.
    pub fn delete(&self, key: &[u8], now: Timestamp) -> Result<bool, SharedError> {
        self.write(now, |w| w.remove_key(key, Removal::Deleted))
    }

    /// Remove every key given; how many live entries were removed.
    pub fn delete_many(&self, keys: &[Vec<u8>], now: Timestamp) -> Result<usize, SharedError> {
        self.write(now, |w| {
            let mut removed = 0;
            for key in keys {
                removed += usize::from(w.remove_key(key, Removal::Deleted)?);
            }
            Ok(removed)
        })
    }

    /// Remove `key` if its live value is `kind`/`data`; whether it did.
    pub fn delete_if_equal(&self, key: &[u8], kind: u8, data: &[u8], now: Timestamp) -> Result<bool, SharedError> {
        self.write(now, |w| {
            if !w.value_is(key, kind, data)? {
                return Ok(false);
            }
            w.remove_key(key, Removal::Deleted)
        })
    }

    /// Add `delta` to a native integer (`kind` `int_kind`, 8 bytes LE), keeping its deadline and
    /// making it most recently used.
    pub fn incr(&self, key: &[u8], int_kind: u8, delta: i64, now: Timestamp) -> Result<i64, SharedError> {
        self.write(now, |w| {
            let found = w.live(key)?.ok_or(StoreError::NotFound)?;
            if found.kind != int_kind {
                return Err(StoreError::NotAnInteger.into());
            }
            let current = w.data(key)?.and_then(|d| <[u8; 8]>::try_from(d.as_slice()).ok());
            let current = i64::from_le_bytes(current.ok_or(StoreError::NotAnInteger)?);
            let next = current.checked_add(delta).ok_or(StoreError::Overflow)?;
            w.put(key, found.deadline, int_kind, &next.to_le_bytes(), Some(found))?;
            Ok(next)
        })
    }

    /// Replace the live value of `key` with `kind`/`data` if it still is `expected` (what
    /// `get_for_update` read), keeping its deadline and making it most recently used. `Ok(false)`
    /// if it changed or went away.
    pub fn replace_if(
        &self,
        key: &[u8],
        expected: &Value,
        kind: u8,
        data: &[u8],
        limits: &Limits,
        now: Timestamp,
    ) -> Result<bool, SharedError> {
        let budget_refusal = limits.max_bytes.filter(|&max| charge(key.len(), data.len()) > max);
        self.write(now, |w| {
            let Some(found) = w.live(key)? else {
                return Ok(false);
            };
            if found.deadline != expected.deadline || !w.value_is(key, expected.kind, &expected.data)? {
                return Ok(false);
            }
            if let Some(max_bytes) = budget_refusal {
                return Err(StoreError::TooLarge {
                    entry_bytes: charge(key.len(), data.len()),
                    max_bytes,
                }
                .into());
            }
            w.put(key, found.deadline, kind, data, Some(found))?;
            if let Some(max_bytes) = limits.max_bytes {
                w.enforce_byte_budget(max_bytes as u64, &db_key(key))?;
            }
            Ok(true)
        })
    }

    /// Remove every entry and lock of the LOCATION, for every process.
    pub fn clear(&self, now: Timestamp) -> Result<(), SharedError> {
        self.pending.lock().touched.clear();
        #[allow(clippy::redundant_closure_for_method_calls)] // a path is not general over the lifetime
        self.write(now, |w| w.clear())
    }

    /// `add` for `cache.lock()`: the entry goes to the `locks` database, out of the recency order,
    /// so it is never culled or evicted for room; it still expires at its deadline, is cleared by
    /// `clear()`, and is an ordinary entry to every other method.
    pub fn lock_add(
        &self,
        key: &[u8],
        kind: u8,
        data: &[u8],
        deadline: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool, SharedError> {
        self.write(now, |w| {
            if w.live(key)?.is_some() || w.live_lock(key)?.is_some() {
                return Ok(false);
            }
            w.state.sets += 1;
            if let Some(deadline) = deadline {
                let dbkey = db_key(key);
                w.dbs
                    .locks
                    .put(&mut w.txn, &dbkey, &encode_entry(key, deadline, 0, kind, data))?;
            }
            Ok(true)
        })
    }

    /// Check the store's invariants: every entry has its recency record and the other way round,
    /// every entry parses, and the bytes charged add up. A description of the first broken one.
    pub fn check_invariants(&self) -> Result<Result<(), String>, SharedError> {
        self.read(|txn, dbs| {
            let state = dbs.meta.get(txn, STATE_KEY)?.and_then(State::parse).unwrap_or_default();
            let mut bytes = 0u64;
            let mut seqs = HashSet::new();
            for item in dbs.entries.iter(txn)? {
                let (dbkey, raw) = item?;
                let Some(entry) = Entry::parse(raw) else {
                    return Ok(Err(format!("entry {dbkey:?} does not parse")));
                };
                let key_len = entry.long_key.map_or(dbkey.len(), <[u8]>::len);
                bytes += entry.charge(key_len) as u64;
                if state.seq < entry.seq {
                    return Ok(Err(format!("entry {dbkey:?} has seq {} past the counter", entry.seq)));
                }
                match dbs.order.get(txn, &seq_key(entry.seq))? {
                    Some(k) if k == dbkey => {}
                    other => return Ok(Err(format!("entry {dbkey:?}: order holds {other:?}"))),
                }
                seqs.insert(entry.seq);
            }
            let order_len = dbs.order.len(txn)?;
            if order_len != seqs.len() as u64 {
                return Ok(Err(format!("{order_len} order records for {} entries", seqs.len())));
            }
            if bytes != state.bytes {
                return Ok(Err(format!("bytes charged {} but counted {}", bytes, state.bytes)));
            }
            Ok(Ok(()))
        })
    }
}
