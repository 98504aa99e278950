//! What the process knows about the local copy's coherence: whether tracking is established, the
//! invalidation epochs fills are checked against, the counters, and the events waiting to be logged.
//!
//! The fill race: a reader sends `GET k`, the server answers `v1`; meanwhile another client writes
//! `v2` and the server sends the invalidation of `k`, which the listener applies before the reader
//! stores `v1`. Were `v1` stored, it would stay stale until the next write of `k`. So a reader takes
//! a [`Ticket`] (the global epoch and `k`'s slot epoch) *before* sending its read, and stores the
//! reply only if neither epoch has moved, checked under the local store's lock; the listener bumps
//! the epochs *before* it takes that lock to delete. Either the fill's check comes first (and the
//! delete that follows removes it) or the bump does (and the fill is dropped). A read sent after an
//! invalidation was applied was executed by the server after the write that caused it, so it cannot
//! return the old value.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ahash::RandomState;
use parking_lot::Mutex;

/// Slots of per-key epochs: an invalidation bumps its key's slot, so it drops the fills of keys that
/// share the slot too (rarely: 1 in 4,096), never a fill of another slot.
const SLOTS: usize = 4096;

/// Something an operator should see in the log. The listener thread never needs the interpreter,
/// so it cannot log through Python itself: it queues events and the next caller logs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Tracking (re-)established on a new listener connection.
    Tracking { reconnect: bool },
    /// The local copy was emptied, and why.
    Flushed(String),
    /// The listener could not connect or track (it keeps trying).
    ListenerError(String),
}

/// The epochs a fill started under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    global: u64,
    slot: usize,
    slot_epoch: u64,
}

/// Counters of the near cache (the local store keeps its own).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) local_hits: AtomicU64,
    pub(crate) server_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) dropped_fills: AtomicU64,
    pub(crate) shared_reads: AtomicU64,
}

/// Coherence state shared by callers and the listener.
#[derive(Debug)]
pub struct Coherence {
    tracking: AtomicBool,
    global: AtomicU64,
    slots: Box<[AtomicU64]>,
    hasher: RandomState,
    pub(crate) counters: Counters,
    events: Mutex<Vec<Event>>,
    has_events: AtomicBool,
}

impl Default for Coherence {
    fn default() -> Self {
        Self {
            tracking: AtomicBool::new(false),
            global: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
            counters: Counters::default(),
            events: Mutex::new(Vec::new()),
            has_events: AtomicBool::new(false),
        }
    }
}

impl Coherence {
    /// Whether invalidations are being received: only then may the local copy be filled.
    pub fn is_tracking(&self) -> bool {
        self.tracking.load(Ordering::SeqCst)
    }

    pub(crate) fn set_tracking(&self, on: bool) {
        self.tracking.store(on, Ordering::SeqCst);
    }

    fn slot_of(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) as usize) & (SLOTS - 1)
    }

    /// The epochs to check a fill of `key` against; `None` if the local copy may not be filled now.
    pub fn ticket(&self, key: &[u8]) -> Option<Ticket> {
        let global = self.global.load(Ordering::SeqCst);
        if !self.is_tracking() {
            return None;
        }
        let slot = self.slot_of(key);
        Some(Ticket {
            global,
            slot,
            slot_epoch: self.slots[slot].load(Ordering::SeqCst),
        })
    }

    /// Whether a fill that started with `ticket` may still be stored (call under the store lock).
    pub fn still_valid(&self, ticket: &Ticket) -> bool {
        self.is_tracking()
            && self.global.load(Ordering::SeqCst) == ticket.global
            && self.slots[ticket.slot].load(Ordering::SeqCst) == ticket.slot_epoch
    }

    /// Before a key's local copy is deleted: fills in flight for it are void.
    pub fn bump_key(&self, key: &[u8]) {
        self.slots[self.slot_of(key)].fetch_add(1, Ordering::SeqCst);
    }

    /// Before the whole local copy is emptied: every fill in flight is void.
    pub fn bump_all(&self) {
        self.global.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn push_event(&self, event: Event) {
        self.events.lock().push(event);
        self.has_events.store(true, Ordering::Release);
    }

    /// Events queued by the listener since the last call (cheap when there are none).
    pub fn take_events(&self) -> Vec<Event> {
        if !self.has_events.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.events.lock())
    }
}
