//! Single-flight of concurrent local misses of one key: the first caller to miss reads the server
//! (the leader); the others that miss meanwhile wait for its result (followers) instead of sending
//! the same read. A cache stampede after a flush (every caller misses the same hot keys at once) is
//! then one read per key, not one per caller. A caller missing several keys at once (`get_many`)
//! joins them all in one step, leading some and following others; it lands the flights it leads
//! before it waits for any it follows, so no two callers can wait for each other.
//!
//! Locks: the map of flights is locked only to join or to land (no I/O, no wait: the binding takes
//! it with the interpreter held); a follower waits on its flight's own condition variable, released
//! by the interpreter, and never holds the map's lock while it waits. A forked child finds its
//! parent's flights by the pid and forgets them without touching them (their leaders do not exist
//! in the child).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ahash::RandomState;
use parking_lot::{Condvar, Mutex};

use super::client::Fetched;
use super::tracking::Ticket;

/// What a leader's read came to, for its followers.
#[derive(Debug, Clone)]
pub(crate) enum Landed {
    /// The server answered; the ticket the leader took before it sent the read.
    Read(Option<Ticket>, Option<Fetched>),
    /// The read failed (or the leader gave up): followers try again themselves.
    Failed,
}

/// One key's read in flight.
#[derive(Default)]
pub(crate) struct Flight {
    landed: Mutex<Option<Landed>>,
    changed: Condvar,
}

impl Flight {
    /// Wait until `deadline` for the leader; `None` if it has not landed by then.
    pub(crate) fn wait_until(&self, deadline: Instant) -> Option<Landed> {
        let mut landed = self.landed.lock();
        while landed.is_none() {
            if self.changed.wait_until(&mut landed, deadline).timed_out() {
                break;
            }
        }
        landed.clone()
    }
}

#[derive(Default)]
struct Map {
    /// The process the flights belong to.
    pid: u32,
    flights: HashMap<Vec<u8>, Arc<Flight>, RandomState>,
}

/// The reads in flight in this process.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<Map>,
}

/// A caller's part in a key's read.
pub(crate) enum Role<'a> {
    Lead(Leader<'a>),
    Follow(Arc<Flight>),
}

impl Flights {
    /// For each of `keys` (distinct), in order: lead its read, or follow the one in flight. One
    /// taking of the map's lock for all of them.
    pub(crate) fn join<'a, 'k>(&'a self, keys: impl IntoIterator<Item = &'k [u8]>) -> Vec<Role<'a>> {
        let pid = std::process::id();
        let mut map = self.map.lock();
        if map.pid != pid {
            // A forked child: the parent's flights have no leader here.
            for (_, inherited) in map.flights.drain() {
                std::mem::forget(inherited);
            }
            map.pid = pid;
        }
        keys.into_iter()
            .map(|key| {
                if let Some(flight) = map.flights.get(key) {
                    return Role::Follow(Arc::clone(flight));
                }
                let flight = Arc::new(Flight::default());
                map.flights.insert(key.to_vec(), Arc::clone(&flight));
                Role::Lead(Leader {
                    flights: self,
                    key: key.to_vec(),
                    flight: Some(flight),
                })
            })
            .collect()
    }

    /// Reads in flight (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().flights.len()
    }

    /// Callers following the read of `key` in flight (tests).
    #[cfg(test)]
    pub(crate) fn followers(&self, key: &[u8]) -> usize {
        // Every holder of the flight but the map and its leader.
        self.map
            .lock()
            .flights
            .get(key)
            .map_or(0, |flight| Arc::strong_count(flight).saturating_sub(2))
    }
}

/// The leader of a read: must [`land`](Leader::land) it (dropping it lands it as failed, so no
/// follower waits longer than its bound even if the leader never answers).
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: Vec<u8>,
    flight: Option<Arc<Flight>>,
}

impl Leader<'_> {
    /// Hand the result to the followers; `outcome` is only made if there are any.
    pub(crate) fn land(mut self, outcome: impl FnOnce() -> Landed) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: impl FnOnce() -> Landed) {
        let Some(flight) = self.flight.take() else { return };
        {
            let mut map = self.flights.map.lock();
            if map.flights.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                map.flights.remove(&self.key);
            }
        }
        // Out of the map: no new follower can join, so the count tells whether anyone waits.
        if Arc::strong_count(&flight) > 1 {
            *flight.landed.lock() = Some(outcome());
            flight.changed.notify_all();
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.finish(|| Landed::Failed);
    }
}
