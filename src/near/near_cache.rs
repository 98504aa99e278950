//! [`NearCache`]: the local copy, the server behind it and the listener that keeps them coherent.
//!
//! Reads look in the local copy first; a miss reads the server (`GET` + `PTTL` in one round trip)
//! and fills the copy under the rules of [`tracking`](super::tracking). Writes go to the server
//! (atomic there: `SET`, `SET NX`, `INCRBY` in a script, `EXPIRE`, `DEL`) and drop the key's local
//! copy once the server has answered, whatever it answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::RandomState;
use parking_lot::Mutex;
use redis::Value;

use super::blocking::Blocking;
use super::client::{self, Fetched, Pool, DELETE_IF_EQUAL, EXPIRE_IF_EQUAL, INCR_IF_EXISTS};
use super::config::NearConfig;
use super::errors::NearError;
use super::flight::{Flights, Landed, Role};
use super::listener::{Apply, Listener, Start};
use super::tracking::{Coherence, Event, Ticket};
use crate::store::{Item, Limits, Now, Store, Table, Ttl};

/// How long the first operation of a process waits for tracking to be established (beyond the
/// connect timeout) before it goes ahead without a local copy.
const START_GRACE: Duration = Duration::from_millis(500);

/// Forks being prepared in this process ([`fork_prepare`]); no listener starts meanwhile.
static FORKING: AtomicUsize = AtomicUsize::new(0);

/// Before a fork (`os.register_at_fork(before=...)`), ahead of stopping the listeners: no listener
/// is started until [`fork_done`], so none can be running when the fork happens.
pub fn fork_prepare() {
    FORKING.fetch_add(1, Ordering::SeqCst);
}

/// After a fork, in the parent (`in_child: false`) or in the child (where no other preparation can
/// be going on: only the forking thread exists).
pub fn fork_done(in_child: bool) {
    if in_child {
        FORKING.store(0, Ordering::SeqCst);
    } else {
        let _ = FORKING.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
}

fn forking() -> bool {
    FORKING.load(Ordering::SeqCst) > 0
}

/// How many reads of others a caller may wait for before it reads on its own.
const FLIGHT_ROUNDS: usize = 3;

/// A server read: the ticket its fill must present (`None`: the local copy may not be filled now)
/// and the value, if the server had one.
pub type Read = (Option<Ticket>, Option<Fetched>);

/// The near cache's own counters, read at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NearStats {
    pub local_hits: u64,
    pub server_hits: u64,
    pub misses: u64,
    pub invalidations: u64,
    pub flushes: u64,
    pub reconnects: u64,
    pub dropped_fills: u64,
    /// Misses served by another caller's read of the same key (single-flight).
    pub shared_reads: u64,
    pub tracking: bool,
}

struct Applier<A> {
    store: Arc<Store<A>>,
    coherence: Arc<Coherence>,
}

impl<A: Send + Sync + 'static> Apply for Applier<A> {
    fn invalidate(&self, keys: &[Vec<u8>]) {
        let c = &self.coherence;
        for key in keys {
            c.bump_key(key);
        }
        c.counters.invalidations.fetch_add(keys.len() as u64, Ordering::Relaxed);
        let now = Now::system();
        self.store.with(|t| {
            for key in keys {
                t.delete(key, &now);
            }
        });
    }

    fn flush(&self, why: &str, lost: bool) {
        if lost {
            self.coherence.set_tracking(false);
        }
        self.coherence.bump_all();
        self.store.with(Table::clear);
        self.coherence.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.coherence.push_event(Event::Flushed(why.to_owned()));
    }

    fn tracking_up(&self, reconnect: bool) {
        self.coherence.bump_all();
        self.store.with(Table::clear);
        self.coherence.set_tracking(true);
        if reconnect {
            self.coherence.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        self.coherence.push_event(Event::Tracking { reconnect });
    }

    fn event(&self, event: Event) {
        self.coherence.push_event(event);
    }
}

#[derive(Default)]
struct ListenerSlot {
    /// The process the listener runs in (0: none started).
    pid: u32,
    listener: Option<Listener>,
    /// The server refused tracking (kept: asking again would not change its mind).
    refused: Option<NearError>,
}

/// One process's near cache of one server and `LOCATION`.
pub struct NearCache<A> {
    store: Arc<Store<A>>,
    coherence: Arc<Coherence>,
    writer: Arc<Pool>,
    reader: Arc<Pool>,
    config: NearConfig,
    listener: Mutex<ListenerSlot>,
    pub(super) flights: Flights,
}

impl<A: Send + Sync + 'static> NearCache<A> {
    /// A near cache of the server `config` names. Nothing is connected until first use.
    pub fn new(config: NearConfig, store: Store<A>) -> Result<Self, NearError> {
        let writer = Arc::new(Pool::new(
            config.write.clone(),
            config.connect_timeout,
            config.socket_timeout,
        )?);
        let reader = if config.separate_read {
            Arc::new(Pool::new(
                config.read.clone(),
                config.connect_timeout,
                config.socket_timeout,
            )?)
        } else {
            Arc::clone(&writer)
        };
        Ok(Self {
            store: Arc::new(store),
            coherence: Arc::new(Coherence::default()),
            writer,
            reader,
            config,
            listener: Mutex::new(ListenerSlot::default()),
            flights: Flights::default(),
        })
    }

    pub fn local(&self) -> &Store<A> {
        &self.store
    }

    pub fn coherence(&self) -> &Coherence {
        &self.coherence
    }

    pub fn config(&self) -> &NearConfig {
        &self.config
    }

    /// Start the listener in this process if it is not running (the first operation, and the first
    /// after a fork). Waits for tracking to be established, so a server that refuses it is found at
    /// once: an error if `require_tracking`; otherwise the local copy works untracked, each entry
    /// capped at `max_ttl`. A server that cannot be reached is not an error here (the operation that
    /// follows reports it); the listener keeps trying.
    ///
    /// The slot's lock is held only to look and to record (the listener is started under it, which
    /// is a thread spawn, not a wait); the wait for tracking runs in `blocking`, with no lock held, and
    /// a refusal is recorded under the lock again afterwards. While a fork is being prepared
    /// ([`fork_prepare`]) no listener is started: the operation goes ahead untracked.
    pub fn ensure_listening(&self, blocking: &impl Blocking) -> Result<(), NearError> {
        let pid = std::process::id();
        let starting = {
            let mut slot = self.listener.lock();
            if let Some(refused) = &slot.refused {
                return if self.config.require_tracking {
                    Err(refused.clone())
                } else {
                    Ok(())
                };
            }
            if slot.pid != pid {
                // A forked child (or the first use, or the first after a stop): a listener recorded
                // here belongs to another process and does not exist in this one, and whatever the
                // copy holds was not kept coherent since the fork. Nothing of it is waited on.
                if let Some(inherited) = slot.listener.take() {
                    std::mem::forget(inherited);
                }
                slot.pid = pid;
                self.drop_local();
            }
            match slot.listener.as_ref().filter(|l| !l.finished()) {
                Some(running) => running.starting(),
                None if forking() => return Ok(()),
                None => {
                    let apply: Arc<dyn Apply> = Arc::new(Applier {
                        store: Arc::clone(&self.store),
                        coherence: Arc::clone(&self.coherence),
                    });
                    let listener = Listener::start(
                        Arc::clone(&self.reader),
                        self.config.prefix.clone(),
                        self.config.heartbeat,
                        apply,
                    )?;
                    let starting = listener.starting();
                    slot.listener = Some(listener);
                    starting
                }
            }
        };
        if starting.settled() {
            return Ok(());
        }
        let wait = self.config.connect_timeout.unwrap_or(Duration::from_secs(1)) + START_GRACE;
        let outcome = blocking.wait(|| starting.wait(wait));
        let Start::Failed(err @ NearError::TrackingRefused(_)) = outcome else {
            return Ok(());
        };
        let (first, ended) = {
            let mut slot = self.listener.lock();
            let first = slot.refused.is_none();
            slot.refused = Some(err.clone());
            let ours = slot.listener.as_ref().is_some_and(|l| l.is(&starting));
            (first, if ours { slot.listener.take() } else { None })
        };
        if let Some(ended) = ended {
            ended.stop(blocking, &self.reader);
        }
        if self.config.require_tracking {
            return Err(err);
        }
        if first {
            // Untracked: fills allowed, each capped at max_ttl.
            self.coherence.set_tracking(true);
            self.coherence.push_event(Event::ListenerError(format!(
                "{err}: the local copy is not kept coherent; each entry lives at most LOCAL['MAX_TTL']"
            )));
        }
        Ok(())
    }

    /// Stop the listener (before a fork) and wait for its threads to end (in `blocking`): tracking is
    /// off and the local copy empty until the next operation starts it again.
    pub fn stop_listener(&self, blocking: &impl Blocking) {
        let (listener, refused) = {
            let mut slot = self.listener.lock();
            slot.pid = 0;
            (slot.listener.take(), slot.refused.is_some())
        };
        if !refused {
            // Before the listener stops receiving: no fill from now on, and none in flight.
            self.coherence.set_tracking(false);
            self.coherence.bump_all();
        }
        if let Some(listener) = listener {
            listener.stop(blocking, &self.reader);
        }
        if !refused {
            self.drop_local();
        }
    }

    fn drop_local(&self) {
        self.coherence.set_tracking(false);
        self.coherence.bump_all();
        self.store.with(Table::clear);
    }

    /// The server's id of the listener's connection, if it has one.
    pub fn listener_client_id(&self) -> Option<i64> {
        let slot = self.listener.lock();
        slot.listener.as_ref().map(Listener::client_id).filter(|id| *id >= 0)
    }

    /// Whether the local copy is allowed to serve and be filled.
    pub fn is_tracking(&self) -> bool {
        self.coherence.is_tracking()
    }

    pub fn count_local_hit(&self) {
        self.coherence.counters.local_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Read `key` from the server (after a local miss), with the ticket its fill must present:
    /// [`fetch_many`](Self::fetch_many) of one key (a `GET`).
    pub fn fetch(&self, blocking: &impl Blocking, key: &[u8]) -> Result<Read, NearError> {
        let mut reads = self.fetch_distinct(blocking, &[key])?;
        // One key in, one read out.
        Ok(reads.pop().unwrap_or((None, None)))
    }

    /// Read `keys` from the server (after local misses), each with the ticket its fill must
    /// present; a key asked twice is read once.
    ///
    /// Concurrent misses of one key make one read ([`flight`](super::flight)): the caller leads the
    /// read of every key no one is reading (all of them in one round trip: `MGET` and a `PTTL`
    /// each, or `GET` + `PTTL` for one) and follows the reads in flight for the others, waiting for
    /// them (in `blocking`, bounded by the reads' own timeouts) only after it has landed its own. A
    /// follower takes a key's value with no ticket (its leader fills the local copy), and only if
    /// no invalidation of the key (nor a flush) was applied since the leader took its ticket, which
    /// was before the read was sent: the value is then as fresh as one it would read itself. The
    /// keys whose leader failed or was overtaken are joined again (leading or following a new
    /// read); after [`FLIGHT_ROUNDS`], or as soon as a leader is late, the rest are read in one
    /// round trip of the caller's own.
    pub fn fetch_many(&self, blocking: &impl Blocking, keys: &[&[u8]]) -> Result<Vec<Read>, NearError> {
        let mut at: HashMap<&[u8], usize, RandomState> =
            HashMap::with_capacity_and_hasher(keys.len(), RandomState::new());
        let mut distinct = Vec::with_capacity(keys.len());
        let slots: Vec<usize> = keys
            .iter()
            .map(|&key| {
                *at.entry(key).or_insert_with(|| {
                    distinct.push(key);
                    distinct.len() - 1
                })
            })
            .collect();
        let reads = self.fetch_distinct(blocking, &distinct)?;
        if distinct.len() == keys.len() {
            return Ok(reads);
        }
        Ok(slots.into_iter().map(|i| reads[i].clone()).collect())
    }

    /// [`fetch_many`](Self::fetch_many) of keys that are all different.
    fn fetch_distinct(&self, blocking: &impl Blocking, keys: &[&[u8]]) -> Result<Vec<Read>, NearError> {
        let mut reads: Vec<Read> = vec![(None, None); keys.len()];
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        for _ in 0..FLIGHT_ROUNDS {
            if pending.is_empty() {
                return Ok(reads);
            }
            let roles = self.flights.join(pending.iter().map(|&i| keys[i]));
            let (mut led, mut followed) = (Vec::new(), Vec::new());
            for (i, role) in pending.drain(..).zip(roles) {
                match role {
                    Role::Lead(leader) => led.push((i, leader)),
                    Role::Follow(flight) => followed.push((i, flight)),
                }
            }
            if !led.is_empty() {
                let wanted: Vec<&[u8]> = led.iter().map(|(i, _)| keys[*i]).collect();
                let tickets: Vec<Option<Ticket>> = wanted.iter().map(|k| self.coherence.ticket(k)).collect();
                // On an error the leaders are dropped, which lands their flights as failed.
                let fetched = self.read(blocking, &wanted)?;
                for (((i, leader), ticket), found) in led.into_iter().zip(tickets).zip(fetched) {
                    leader.land(|| Landed::Read(ticket, found.clone()));
                    reads[i] = (ticket, found);
                }
            }
            if followed.is_empty() {
                return Ok(reads);
            }
            let deadline = Instant::now() + self.flight_wait();
            let landed: Vec<Option<Landed>> =
                blocking.wait(|| followed.iter().map(|(_, flight)| flight.wait_until(deadline)).collect());
            let mut late = false;
            for ((i, _), landed) in followed.into_iter().zip(landed) {
                match landed {
                    Some(Landed::Read(Some(ticket), fetched)) if self.coherence.still_valid(&ticket) => {
                        self.coherence.counters.shared_reads.fetch_add(1, Ordering::Relaxed);
                        self.count_fetch(usize::from(fetched.is_some()), 1);
                        reads[i] = (None, fetched);
                    }
                    None => {
                        late = true;
                        pending.push(i);
                    }
                    Some(_) => pending.push(i),
                }
            }
            if late {
                break;
            }
        }
        if !pending.is_empty() {
            let wanted: Vec<&[u8]> = pending.iter().map(|&i| keys[i]).collect();
            let tickets: Vec<Option<Ticket>> = wanted.iter().map(|k| self.coherence.ticket(k)).collect();
            let fetched = self.read(blocking, &wanted)?;
            for ((i, ticket), found) in pending.into_iter().zip(tickets).zip(fetched) {
                reads[i] = (ticket, found);
            }
        }
        Ok(reads)
    }

    /// One round trip for `keys` (`GET` + `PTTL` for one key, `MGET` and a `PTTL` each for more),
    /// counted as server hits and misses.
    fn read(&self, blocking: &impl Blocking, keys: &[&[u8]]) -> Result<Vec<Option<Fetched>>, NearError> {
        let fetched = match keys {
            [key] => self
                .reader
                .run(blocking, true, |con| client::fetch(con, key))
                .map(|found| vec![found])?,
            _ => self.reader.run(blocking, true, |con| client::fetch_many(con, keys))?,
        };
        self.count_fetch(fetched.iter().filter(|f| f.is_some()).count(), keys.len());
        Ok(fetched)
    }

    /// How long a follower waits for a leader: as long as the leader's read may take (a connect
    /// and a round trip), and a margin.
    fn flight_wait(&self) -> Duration {
        self.config.connect_timeout.unwrap_or(Duration::from_secs(1))
            + self.config.socket_timeout.unwrap_or(Duration::from_secs(5))
            + Duration::from_millis(100)
    }

    fn count_fetch(&self, found: usize, asked: usize) {
        let c = &self.coherence.counters;
        c.server_hits.fetch_add(found as u64, Ordering::Relaxed);
        c.misses.fetch_add((asked - found) as u64, Ordering::Relaxed);
    }

    /// The local deadline of a value the server holds for `pttl_ms` more milliseconds (`-1`: no
    /// expiry): the earlier of that and `max_ttl`.
    pub fn local_ttl(&self, pttl_ms: i64) -> Ttl {
        let server = (pttl_ms >= 0).then(|| Duration::from_millis(pttl_ms as u64));
        match (server, self.config.max_ttl) {
            (None, None) => Ttl::Forever,
            (Some(d), None) | (None, Some(d)) => Ttl::Seconds(d.as_secs_f64()),
            (Some(a), Some(b)) => Ttl::Seconds(a.min(b).as_secs_f64()),
        }
    }

    /// Store a value read from the server in the local copy, unless an invalidation or a flush
    /// overtook it (then it is counted as a dropped fill). Whether it was stored.
    pub fn fill(&self, ticket: Ticket, item: Item<A>, pttl_ms: i64, limits: &Limits) -> bool {
        let ttl = self.local_ttl(pttl_ms);
        let now = Now::system();
        let stored = self.store.with(|t| {
            if self.coherence.still_valid(&ticket) {
                t.set(item, ttl, limits, &now).is_ok()
            } else {
                false
            }
        });
        if !stored && !self.coherence.still_valid(&ticket) {
            self.coherence.counters.dropped_fills.fetch_add(1, Ordering::Relaxed);
        }
        stored
    }

    /// After a write of `keys` (answered or not): their local copies are gone, fills in flight void.
    fn forget(&self, keys: &[&[u8]]) {
        for key in keys {
            self.coherence.bump_key(key);
        }
        let now = Now::system();
        self.store.with(|t| {
            for key in keys {
                t.delete(key, &now);
            }
        });
    }

    /// A write on the server (in `blocking`), then, outside it, the local copies of `keys` dropped.
    fn write<R: Send>(
        &self,
        blocking: &impl Blocking,
        keys: &[&[u8]],
        idempotent: bool,
        f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<R> + Send,
    ) -> Result<R, NearError> {
        let result = self.writer.run(blocking, idempotent, f);
        self.forget(keys);
        result
    }

    /// `set`: `timeout` in whole seconds as Django's `RedisCache` computes it (`None`: no expiry;
    /// `0`: the key is deleted).
    pub fn set(
        &self,
        blocking: &impl Blocking,
        key: &[u8],
        value: &[u8],
        timeout: Option<u64>,
    ) -> Result<(), NearError> {
        self.write(blocking, &[key], true, |con| match timeout {
            Some(0) => redis::cmd("DEL").arg(key).query::<()>(con),
            Some(secs) => redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("EX")
                .arg(secs)
                .query::<()>(con),
            None => redis::cmd("SET").arg(key).arg(value).query::<()>(con),
        })
    }

    /// `add`: `SET NX` (with `timeout=0`, set then deleted, as `RedisCache` does); whether stored.
    pub fn add(
        &self,
        blocking: &impl Blocking,
        key: &[u8],
        value: &[u8],
        timeout: Option<u64>,
    ) -> Result<bool, NearError> {
        self.write(blocking, &[key], false, |con| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value).arg("NX");
            if let Some(secs) = timeout.filter(|s| *s > 0) {
                cmd.arg("EX").arg(secs);
            }
            let stored: Option<String> = cmd.query(con)?;
            if stored.is_some() && timeout == Some(0) {
                redis::cmd("DEL").arg(key).query::<()>(con)?;
            }
            Ok(stored.is_some())
        })
    }

    /// `add` with a millisecond expiry (`SET NX PX`), for locks.
    pub fn add_px(
        &self,
        blocking: &impl Blocking,
        key: &[u8],
        value: &[u8],
        millis: Option<u64>,
    ) -> Result<bool, NearError> {
        self.write(blocking, &[key], false, |con| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value).arg("NX");
            if let Some(ms) = millis {
                cmd.arg("PX").arg(ms.max(1));
            }
            Ok(cmd.query::<Option<String>>(con)?.is_some())
        })
    }

    /// Delete `key` if it holds exactly `expected` (a lock's release); whether it did.
    pub fn delete_if_equal(&self, blocking: &impl Blocking, key: &[u8], expected: &[u8]) -> Result<bool, NearError> {
        let script = redis::Script::new(DELETE_IF_EQUAL);
        self.write(blocking, &[key], true, |con| {
            Ok(script.key(key).arg(expected).invoke::<i64>(con)? == 1)
        })
    }

    /// If `key` holds exactly `expected` (a lock's extend), make it expire in `millis` ms, plus the
    /// time it had left if `add_to_left`; whether it did. One script: the lock cannot change hands
    /// between the check and the new expiry.
    pub fn expire_if_equal(
        &self,
        blocking: &impl Blocking,
        key: &[u8],
        expected: &[u8],
        millis: u64,
        add_to_left: bool,
    ) -> Result<bool, NearError> {
        let script = redis::Script::new(EXPIRE_IF_EQUAL);
        self.write(blocking, &[key], true, |con| {
            let mut invocation = script.key(key);
            invocation.arg(expected).arg(millis).arg(u8::from(add_to_left));
            Ok(invocation.invoke::<i64>(con)? == 1)
        })
    }

    /// Every item, then each key's expiry, in one pipeline (`MSET` has no expiry).
    pub fn set_many(
        &self,
        blocking: &impl Blocking,
        items: &[(&[u8], &[u8])],
        timeout: Option<u64>,
    ) -> Result<(), NearError> {
        if items.is_empty() {
            return Ok(());
        }
        let keys: Vec<&[u8]> = items.iter().map(|(k, _)| *k).collect();
        self.write(blocking, &keys, true, |con| {
            let mut pipe = redis::pipe();
            pipe.cmd("MSET");
            for (k, v) in items {
                pipe.arg(*k).arg(*v);
            }
            pipe.ignore();
            if let Some(secs) = timeout {
                for k in &keys {
                    pipe.cmd("EXPIRE").arg(*k).arg(secs).ignore();
                }
            }
            pipe.query::<()>(con)
        })
    }

    /// `touch`: `EXPIRE`, or `PERSIST` for `None` (whose answer is whether an expiry was removed, as
    /// with `RedisCache`).
    pub fn touch(&self, blocking: &impl Blocking, key: &[u8], timeout: Option<u64>) -> Result<bool, NearError> {
        self.write(blocking, &[key], true, |con| match timeout {
            Some(secs) => redis::cmd("EXPIRE").arg(key).arg(secs).query::<bool>(con),
            None => redis::cmd("PERSIST").arg(key).query::<bool>(con),
        })
    }

    /// `PEXPIRE` (a `ms` of 0 or less deletes) or `PERSIST`; whether the key was there.
    pub fn pexpire(&self, blocking: &impl Blocking, key: &[u8], ms: Option<i64>) -> Result<bool, NearError> {
        self.write(blocking, &[key], true, |con| match ms {
            Some(ms) => redis::cmd("PEXPIRE").arg(key).arg(ms).query::<bool>(con),
            None => redis::cmd("PERSIST").arg(key).query::<bool>(con),
        })
    }

    /// `PTTL` of `key` (`-2`: no such key, `-1`: no expiry), from the server.
    pub fn pttl(&self, blocking: &impl Blocking, key: &[u8]) -> Result<i64, NearError> {
        self.reader
            .run(blocking, true, |con| redis::cmd("PTTL").arg(key).query::<i64>(con))
    }

    pub fn delete(&self, blocking: &impl Blocking, key: &[u8]) -> Result<bool, NearError> {
        self.write(blocking, &[key], true, |con| {
            redis::cmd("DEL").arg(key).query::<i64>(con)
        })
        .map(|n| n > 0)
    }

    /// Delete every key given; how many the server removed.
    pub fn delete_many(&self, blocking: &impl Blocking, keys: &[&[u8]]) -> Result<u64, NearError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.write(blocking, keys, true, |con| {
            redis::cmd("DEL").arg(keys).query::<u64>(con)
        })
    }

    /// `incr` on the server, atomically: `NotFound` if the key is absent, `Response` if its value is
    /// not an integer (or the sum leaves 64 bits).
    pub fn incr(&self, blocking: &impl Blocking, key: &[u8], delta: i64) -> Result<i64, NearError> {
        let script = redis::Script::new(INCR_IF_EXISTS);
        let result = self.write(blocking, &[key], false, |con| {
            script.key(key).arg(delta).invoke::<Option<i64>>(con)
        })?;
        result.ok_or(NearError::NotFound)
    }

    /// Whether the server holds `key` (the local copy is asked first by the binding).
    pub fn exists(&self, blocking: &impl Blocking, key: &[u8]) -> Result<bool, NearError> {
        self.reader
            .run(blocking, true, |con| redis::cmd("EXISTS").arg(key).query::<bool>(con))
    }

    /// Keys matching a glob, from `SCAN` (never `KEYS`, which blocks the server).
    pub fn scan(&self, blocking: &impl Blocking, pattern: &[u8]) -> Result<Vec<Vec<u8>>, NearError> {
        self.reader.run(blocking, true, |con| {
            let mut cursor: u64 = 0;
            let mut keys = Vec::new();
            loop {
                let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(con)?;
                keys.extend(batch);
                if next == 0 {
                    return Ok(keys);
                }
                cursor = next;
            }
        })
    }

    /// `FLUSHDB` (Django's `clear()`): the server sends every listener a null invalidation; this
    /// process's copy is emptied at once too.
    pub fn clear(&self, blocking: &impl Blocking) -> Result<bool, NearError> {
        let result = self
            .writer
            .run(blocking, true, |con| redis::cmd("FLUSHDB").query::<Value>(con));
        self.coherence.bump_all();
        self.store.with(Table::clear);
        result.map(|_| true)
    }

    /// The near cache's counters.
    pub fn stats(&self) -> NearStats {
        let c = &self.coherence.counters;
        NearStats {
            local_hits: c.local_hits.load(Ordering::Relaxed),
            server_hits: c.server_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            dropped_fills: c.dropped_fills.load(Ordering::Relaxed),
            shared_reads: c.shared_reads.load(Ordering::Relaxed),
            tracking: self.coherence.is_tracking(),
        }
    }

    /// Run a raw command on the write server (tests and the binding's extras).
    pub fn command(&self, blocking: &impl Blocking, args: &[&[u8]]) -> Result<Value, NearError> {
        let Some((name, rest)) = args.split_first() else {
            return Err(NearError::Config("empty command".into()));
        };
        self.writer.run(blocking, false, |con| {
            let mut cmd = redis::cmd(&String::from_utf8_lossy(name));
            for a in rest {
                cmd.arg(*a);
            }
            cmd.query::<Value>(con)
        })
    }
}
