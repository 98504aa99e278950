//! `EVICTION = "adaptive"`: a frequency-aware, scan-resistant eviction policy that adapts between recency and
//! frequency. It is W-TinyLFU (Einziger, Friedman and Manes, "`TinyLFU`: A Highly Efficient Cache Admission
//! Policy") with an adaptive window, as in Caffeine, but the window is steered by ghost hits, as in ARC,
//! rather than by a hill climber over sampled hit ratios (which the simulator found too noisy to follow).
//!
//! The cache is split in three LRU lists over the table's slots:
//!
//! * the **window** takes every new entry. When it overflows, its least recent entry enters the main space
//!   only if the [`FrequencySketch`] says it is requested more often than the main space's own victim;
//!   otherwise that window entry is the one evicted. A one-time scan passes through the window and leaves;
//! * the **main** space is a segmented LRU: **probation** (entries admitted from the window, and entries
//!   demoted from protected) and **protected** (entries hit while in probation), protected taking 80 %.
//!
//! The split adapts. The hashes of recently evicted entries are remembered (a *ghost*, a tenth of the
//! capacity for each side), tagged by where they were evicted from. A `get` that misses on a key lately
//! evicted from the window says a larger window would have hit, and grows the window by one entry; one on a
//! key lately evicted from the main space shrinks it by one. A recency-heavy workload drives the window
//! toward the whole cache (plain LRU with a small filtered tail); a frequency-heavy one toward 1 entry (LFU
//! with admission). Resizes only move the targets; the lists follow a bounded number of moves per call.
//!
//! Frequencies: the sketch counts requests for keys not in the cache; an entry keeps its own count (the
//! sketch's estimate when it was stored, plus its hits), which admission compares and which the entry hands
//! back to the sketch when it leaves. A hit so touches only the entry's node.
//!
//! Memory: per slot two links, the key's 32-bit index tag, a region byte and the entry's count (16 bytes);
//! the sketch (one `u64`, sixteen 4-bit counters, per entry of capacity, grown with the entries actually
//! held); the ghosts (64-byte buckets, one per 0.75 to 1.5 ghosts of a side: 4 to 9 bytes per entry of
//! capacity, grown with the evictions actually seen). Every operation is O(1) amortised.

use super::index::tag_of;
use super::sketch::FrequencySketch;

const NIL: u32 = u32::MAX;

const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;
const ABSENT: u8 = 3;

/// A candidate at least this frequent is admitted at random 1 time in 128 even when it loses (defence
/// against a crafted sequence that keeps an attacker's keys in the main space).
const HASHDOS_THRESHOLD: u8 = 6;
/// Moves per call spent on converging the regions after the window target changed.
const MAX_MOVES: usize = 2;
/// The sketch is created for at most this many entries, then grows with the entries held.
const INITIAL_SKETCH: usize = 1024;

/// The policy's parameters. [`Tuning::default`] is what `EVICTION = "adaptive"` uses; the rest is for the
/// hit-ratio simulator.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// The window's share of the capacity before any adaptation.
    pub initial_window: f64,
    /// The largest window, as a share of the capacity.
    pub max_window: f64,
    /// Protected's share of the main space.
    pub protected_share: f64,
    /// Whether the window adapts (off: plain W-TinyLFU with a fixed window).
    pub adapt: bool,
    /// Each ghost list's length, as a share of the capacity (at least 8).
    pub ghost: f64,
    /// Sketch increments between halvings, per entry of capacity.
    pub sketch_period: f64,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            initial_window: 0.01,
            max_window: 0.99,
            protected_share: 0.80,
            adapt: true,
            ghost: 0.10,
            sketch_period: 20.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Node {
    prev: u32,
    next: u32,
    /// The key's index tag (`index::tag_of` of the table's hash): the policy's hash of the key, and what
    /// the table reads back to unfile a victim without hashing its key again.
    hash: u32,
    region: u8,
    /// The entry's estimated frequency: the sketch's estimate when it was stored, plus its hits since
    /// (kept here, beside the links a hit moves anyway, rather than in a far-away sketch counter).
    freq: u8,
    /// The sketch's estimate when it was stored (aged like `freq`): whether it has hits to hand over.
    base: u8,
    /// The sketch's epoch when `freq` and `base` were last written; they halve once per epoch since.
    epoch: u8,
}

const EMPTY: Node = Node {
    prev: NIL,
    next: NIL,
    hash: 0,
    region: ABSENT,
    freq: 0,
    base: 0,
    epoch: 0,
};

impl Node {
    /// `freq` and `base` as of `epoch`.
    fn aged(&self, epoch: u8) -> (u8, u8) {
        let halvings = u32::from(epoch.wrapping_sub(self.epoch).min(7));
        (self.freq >> halvings, self.base >> halvings)
    }
}

/// One LRU list: `head` is the most recently used slot, `tail` the least.
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    len: usize,
}

const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// Where a ghost was evicted from.
const FROM_WINDOW: usize = 0;
const FROM_MAIN: usize = 1;

/// Hashes of recently evicted entries, by where they were evicted from: for each side, about the last
/// `limit` evicted. Each side numbers its evictions, and a remembered hash is still a ghost while fewer
/// than `limit` evictions from its side have followed it, so nothing has to be removed when a ghost ages
/// out: it is merely no longer fresh.
///
/// The ghosts sit in a set-associative table: a hash belongs to one [`GhostBucket`], one cache line of
/// [`GHOST_WAYS`] cells for each side, and a new ghost overwrites the oldest of its side's cells there
/// (within a side the oldest is also the stalest), so recording an eviction and looking a hash up each read
/// one line. There is no queue to keep in step and no sweep (an open-addressing index swept of stale ghosts
/// cost a sixth of an evicting write). A bucket holds one side's fresh ghosts about once on average, so a
/// ghost is overwritten before it ages out only when more than [`GHOST_WAYS`] of its side's later ghosts
/// share its bucket: rarely, and then the oldest goes, the one nearest ageing out anyway.
#[derive(Debug, Default)]
struct Ghosts {
    buckets: Vec<GhostBucket>,
    /// Evictions per side, modulo `NUMBERS`.
    evictions: [u32; 2],
    limit: usize,
    /// The table's size for `limit`, in buckets (`target_buckets`).
    target: usize,
    /// Ghosts recorded since the table was last sized: it doubles once they outnumber its buckets, up to
    /// its size for `limit`, so a cache that rarely evicts does not pay for a table sized by its capacity
    /// (nor, after its capacity is raised, regrow all at once).
    since_resize: usize,
}

/// Cells per side in a bucket: two sides of four `u64`s fill one 64-byte cache line.
const GHOST_WAYS: usize = 4;

/// Cells `side * GHOST_WAYS ..` hold that side's ghosts, each `hash << 32 | number`, or `VACANT`.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct GhostBucket([u64; 2 * GHOST_WAYS]);

const EMPTY_BUCKET: GhostBucket = GhostBucket([VACANT; 2 * GHOST_WAYS]);

/// A cell that holds no ghost. A ghost's number is below `NUMBERS`, so its cell is never all ones.
const VACANT: u64 = u64::MAX;

/// Eviction numbers wrap at this; a limit is far below it.
const NUMBERS: u32 = 1 << 30;

/// Spreads a hash over the buckets (a multiplier other than the sketch's, so the two choose unrelated
/// places for a key).
const GHOST_SPREAD: u64 = 0xd6e8_feb8_6659_fd93;

/// The smallest table the ghosts grow from, in buckets.
const MIN_GHOST_BUCKETS: usize = 8;

/// Evictions from its side since `cell` was recorded, given that side's count now; `u32::MAX` for a
/// vacant cell.
#[inline]
fn cell_age(cell: u64, evictions: u32) -> u32 {
    if cell == VACANT {
        u32::MAX
    } else {
        evictions.wrapping_sub(cell as u32) % NUMBERS
    }
}

impl Ghosts {
    #[inline]
    fn record(&mut self, hash: u32, side: usize) {
        if self.limit == 0 {
            return;
        }
        let number = (self.evictions[side] + 1) % NUMBERS;
        self.evictions[side] = number;
        self.since_resize = self.since_resize.saturating_add(1);
        if self.buckets.len() < self.target && self.since_resize > self.buckets.len() {
            self.resize((self.buckets.len() * 2).max(MIN_GHOST_BUCKETS).min(self.target));
        }
        self.place((u64::from(hash) << 32) | u64::from(number), side);
    }

    /// Buckets for `limit` ghosts a side: a power of two, from two thirds of `limit` up, so a bucket holds
    /// 0.75 to 1.5 of a side's fresh ghosts on average.
    fn target_buckets(&self) -> usize {
        self.limit.saturating_mul(2).div_ceil(3).next_power_of_two()
    }

    fn bucket(&self, hash: u32) -> usize {
        (u64::from(hash).wrapping_mul(GHOST_SPREAD) >> 32) as usize & (self.buckets.len() - 1)
    }

    fn is_fresh(&self, cell: u64, side: usize) -> bool {
        (cell_age(cell, self.evictions[side]) as usize) < self.limit
    }

    /// Write a ghost `cell` of `side` into its bucket, over the oldest (or a vacant) cell of that side if
    /// that one is older. A cell of either side holding the same hash goes first: a key has at most one
    /// ghost, of the side it was last evicted from.
    #[inline]
    fn place(&mut self, cell: u64, side: usize) {
        let hash = (cell >> 32) as u32;
        let evictions = self.evictions[side];
        let at = self.bucket(hash);
        let bucket = &mut self.buckets[at].0;
        for other in bucket.iter_mut() {
            // A select, not a branch: the eight cells are cleared in a few vector instructions.
            let same = *other >> 32 == cell >> 32;
            *other = if same { VACANT } else { *other };
        }
        let ways = &mut bucket[side * GHOST_WAYS..(side + 1) * GHOST_WAYS];
        let (mut oldest, mut oldest_age) = (0, 0);
        for (way, &other) in ways.iter().enumerate() {
            let age = cell_age(other, evictions);
            if age >= oldest_age {
                (oldest, oldest_age) = (way, age);
            }
        }
        if oldest_age > cell_age(cell, evictions) {
            ways[oldest] = cell;
        }
    }

    /// Rebuild the table with `buckets` buckets, keeping the fresh ghosts (where a bucket overflows, the
    /// freshest of each side).
    fn resize(&mut self, buckets: usize) {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY_BUCKET; buckets]);
        self.since_resize = 0;
        for bucket in old {
            for (way, &cell) in bucket.0.iter().enumerate() {
                let side = way / GHOST_WAYS;
                if self.is_fresh(cell, side) {
                    self.place(cell, side);
                }
            }
        }
    }

    /// The side `hash` was last evicted from, if it is still remembered (and forget it).
    fn take(&mut self, hash: u32) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let at = self.bucket(hash);
        let way = self.buckets[at]
            .0
            .iter()
            .position(|&cell| cell != VACANT && (cell >> 32) as u32 == hash)?;
        let cell = std::mem::replace(&mut self.buckets[at].0[way], VACANT);
        let side = way / GHOST_WAYS;
        self.is_fresh(cell, side).then_some(side)
    }

    fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(NUMBERS as usize / 2);
        self.target = self.target_buckets();
        if self.limit == 0 {
            self.clear();
        } else if self.buckets.len() > self.target {
            self.resize(self.target);
        }
    }

    fn clear(&mut self) {
        self.buckets = Vec::new();
        self.since_resize = 0;
    }
}

/// The adaptive W-TinyLFU policy over a table's slots. See the module documentation.
#[derive(Debug)]
pub struct AdaptivePolicy {
    nodes: Vec<Node>,
    lists: [List; 3],
    capacity: usize,
    window_max: usize,
    protected_max: usize,
    sketch: FrequencySketch,
    ghosts: Ghosts,
    /// The hash of the last `on_miss`, so that the `set` following a missed `get` is not counted twice.
    last_miss: Option<u32>,
    rng: u64,
    tuning: Tuning,
}

impl AdaptivePolicy {
    pub fn new(capacity: usize) -> Self {
        Self::with_tuning(capacity, Tuning::default())
    }

    #[doc(hidden)]
    pub fn with_tuning(capacity: usize, tuning: Tuning) -> Self {
        let mut policy = Self {
            nodes: Vec::new(),
            lists: [EMPTY_LIST; 3],
            capacity,
            window_max: 0,
            protected_max: 0,
            sketch: FrequencySketch::new(capacity.min(INITIAL_SKETCH), tuning.sketch_period),
            ghosts: Ghosts::default(),
            last_miss: None,
            rng: 0x2545_f491_4f6c_dd1d,
            tuning,
        };
        policy.reset_sizes();
        policy
    }

    /// The number of tracked entries.
    pub fn len(&self) -> usize {
        self.lists.iter().map(|l| l.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The window's current target size, in entries.
    pub fn window_max(&self) -> usize {
        self.window_max
    }

    fn reset_sizes(&mut self) {
        let cap = self.capacity;
        self.window_max = ((cap as f64 * self.tuning.initial_window) as usize).clamp(1.min(cap), cap);
        self.protected_max = ((cap - self.window_max) as f64 * self.tuning.protected_share) as usize;
        self.ghosts.set_limit(self.ghost_limit());
        self.sketch.set_aging(cap, self.tuning.sketch_period);
    }

    fn ghost_limit(&self) -> usize {
        if self.tuning.adapt {
            ((self.capacity as f64 * self.tuning.ghost) as usize).max(8)
        } else {
            0
        }
    }

    /// Change the capacity; the window keeps its share. Cheap if unchanged. Entries beyond a lowered
    /// capacity stay until the table evicts them through [`Self::victim`].
    #[inline]
    pub fn set_capacity(&mut self, capacity: usize) {
        if capacity != self.capacity {
            self.change_capacity(capacity);
        }
    }

    #[cold]
    fn change_capacity(&mut self, capacity: usize) {
        let share = self.window_max as f64 / self.capacity.max(1) as f64;
        self.capacity = capacity;
        self.window_max = ((capacity as f64 * share) as usize).clamp(1.min(capacity), capacity);
        self.protected_max = ((capacity - self.window_max) as f64 * self.tuning.protected_share) as usize;
        self.ghosts.set_limit(self.ghost_limit());
        if self.sketch.words() > capacity.max(INITIAL_SKETCH).saturating_mul(2) {
            // Much smaller now: give the memory back (the history goes with it).
            let mut fresh = FrequencySketch::new(capacity.min(INITIAL_SKETCH), self.tuning.sketch_period);
            fresh.continue_from(&self.sketch);
            self.sketch = fresh;
        }
        // Counters age at a pace set by the capacity in force, whatever size the sketch has grown to.
        self.sketch.set_aging(capacity, self.tuning.sketch_period);
    }

    /// A new entry was stored in `slot`.
    pub fn on_insert(&mut self, slot: u32, hash: u64) {
        let h = tag_of(hash);
        let estimate = if self.last_miss.take() == Some(h) {
            self.sketch.frequency(h)
        } else {
            self.sketch.increment(h)
        };
        let i = slot as usize;
        if self.nodes.len() <= i {
            self.nodes.resize(i + 1, EMPTY);
        }
        if self.nodes[i].region != ABSENT {
            self.on_remove(slot);
        }
        let epoch = self.sketch.epoch();
        let node = &mut self.nodes[i];
        node.hash = h;
        node.freq = estimate;
        node.base = estimate;
        node.epoch = epoch;
        self.push_front(WINDOW, slot);
        // Overflow moves to probation at once (no admission test: nothing is evicted while the cache
        // fills); once the cache is full, `victim` has made room in the window before this insert.
        for _ in 0..MAX_MOVES {
            if self.lists[WINDOW as usize].len <= self.window_max.max(1) {
                break;
            }
            if let Some(tail) = self.tail(WINDOW) {
                self.unlink(tail);
                self.push_front(PROBATION, tail);
            }
        }
        self.grow_sketch();
    }

    /// Size the sketch to the entries actually held, up to the capacity: a cache configured with a huge
    /// `MAX_ENTRIES` but holding little does not pay for counters it cannot use.
    fn grow_sketch(&mut self) {
        let len = self.len();
        let words = self.sketch.words();
        if len > words && words < self.capacity {
            let target = len.saturating_mul(2).min(self.capacity);
            let mut fresh = FrequencySketch::new(target, self.tuning.sketch_period);
            fresh.continue_from(&self.sketch);
            if fresh.words() > words {
                fresh.set_aging(self.capacity, self.tuning.sketch_period);
                self.sketch = fresh;
            }
        }
    }

    /// The entry in `slot` was read (get hit) or rewritten (overwrite, incr).
    pub fn on_hit(&mut self, slot: u32, hash: u64) {
        self.hit(slot, tag_of(hash));
    }

    /// As `on_hit`, with the hash recorded when the entry was inserted: the table need not hash the
    /// key again on every hit.
    pub fn on_hit_slot(&mut self, slot: u32) {
        if let Some(h) = self.tag(slot) {
            self.hit(slot, h);
        }
    }

    /// The index tag (`index::tag_of`) of the key of the entry in `slot`, as recorded when it was
    /// inserted; `None` if the slot is not tracked.
    pub(crate) fn tag(&self, slot: u32) -> Option<u32> {
        self.nodes
            .get(slot as usize)
            .filter(|n| n.region != ABSENT)
            .map(|n| n.hash)
    }

    fn hit(&mut self, slot: u32, h: u32) {
        self.last_miss = None;
        let epoch = self.sketch.epoch();
        let Some(node) = self.nodes.get_mut(slot as usize).filter(|n| n.region != ABSENT) else {
            self.sketch.increment(h);
            return;
        };
        let (freq, base) = node.aged(epoch);
        node.freq = (freq + 1).min(15);
        node.base = base;
        node.epoch = epoch;
        let region = node.region;
        // As the sketch counts an increment only when a counter moves, so aging keeps its pace.
        if freq < 15 {
            self.sketch.count_event();
        }
        match region {
            WINDOW => self.move_to_front(WINDOW, slot),
            PROBATION => {
                self.unlink(slot);
                self.push_front(PROTECTED, slot);
                for _ in 0..MAX_MOVES {
                    if self.lists[PROTECTED as usize].len <= self.protected_max {
                        break;
                    }
                    self.demote();
                }
            }
            PROTECTED => self.move_to_front(PROTECTED, slot),
            _ => {}
        }
    }

    /// A `get` missed: the key's frequency is counted, and if it was evicted lately the window adapts.
    pub fn on_miss(&mut self, hash: u64) {
        let h = tag_of(hash);
        self.sketch.increment(h);
        self.last_miss = Some(h);
        match self.ghosts.take(h) {
            Some(FROM_WINDOW) => self.resize_window(1),
            Some(_) => self.resize_window(-1),
            None => {}
        }
    }

    /// The entry in `slot` left the table (delete, expiry, eviction, cull).
    pub fn on_remove(&mut self, slot: u32) {
        let Some(node) = self.nodes.get(slot as usize).filter(|n| n.region != ABSENT).copied() else {
            return;
        };
        let (freq, base) = node.aged(self.sketch.epoch());
        if freq > base {
            self.sketch.raise(node.hash, freq);
        }
        self.unlink(slot);
    }

    /// The slot to evict next, when a new entry is about to be inserted in a full cache (or the byte budget
    /// is exceeded); `None` only if the policy tracks no entry. It is not removed here: the table removes it
    /// and then calls [`Self::on_remove`]. The call may move entries between the policy's lists.
    pub fn victim(&mut self) -> Option<u32> {
        // Converge the window toward its target after a shrink: its oldest entries go to probation.
        for _ in 0..MAX_MOVES {
            if self.lists[WINDOW as usize].len <= self.window_max {
                break;
            }
            if let Some(slot) = self.tail(WINDOW) {
                self.unlink(slot);
                self.push_front(PROBATION, slot);
            }
        }
        if self.lists[PROTECTED as usize].len > self.protected_max {
            self.demote();
        }
        let main_victim = self.tail(PROBATION).or_else(|| self.tail(PROTECTED));
        if self.lists[WINDOW as usize].len < self.window_max {
            // The window has room for the new entry: the main space gives one up.
            return match main_victim {
                Some(victim) => Some(self.ghost(victim, FROM_MAIN)),
                None => self.tail(WINDOW),
            };
        }
        // The window will overflow: its oldest entry competes with the main space's victim.
        let Some(candidate) = self.tail(WINDOW) else {
            return main_victim;
        };
        let Some(victim) = main_victim else {
            return Some(candidate);
        };
        if self.admit(candidate, victim) {
            self.unlink(candidate);
            self.push_front(PROBATION, candidate);
            Some(self.ghost(victim, FROM_MAIN))
        } else {
            Some(self.ghost(candidate, FROM_WINDOW))
        }
    }

    /// The slot to evict for the byte budget: the main space's least recent entry, else the window's,
    /// but never `keep` (the entry just written); `None` if nothing else is left.
    pub fn budget_victim(&mut self, keep: u32) -> Option<u32> {
        let (slot, side) = [(PROBATION, FROM_MAIN), (PROTECTED, FROM_MAIN), (WINDOW, FROM_WINDOW)]
            .into_iter()
            .find_map(|(region, side)| self.tail(region).filter(|&slot| slot != keep).map(|slot| (slot, side)))?;
        Some(self.ghost(slot, side))
    }

    /// Remember that `slot`'s key is being evicted from `side`; returns `slot`.
    #[inline]
    fn ghost(&mut self, slot: u32, side: usize) -> u32 {
        self.ghosts.record(self.nodes[slot as usize].hash, side);
        slot
    }

    /// The `TinyLFU` admission test: does `candidate` deserve `victim`'s place?
    fn admit(&mut self, candidate: u32, victim: u32) -> bool {
        let epoch = self.sketch.epoch();
        let candidate_freq = self.nodes[candidate as usize].aged(epoch).0;
        let victim_freq = self.nodes[victim as usize].aged(epoch).0;
        if candidate_freq > victim_freq {
            return true;
        }
        if candidate_freq >= HASHDOS_THRESHOLD {
            // xorshift64
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            return self.rng.trailing_zeros() >= 7;
        }
        false
    }

    /// Forget every entry and all history; the capacity stays.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.lists = [EMPTY_LIST; 3];
        self.sketch.clear();
        self.ghosts.clear();
        self.last_miss = None;
        self.reset_sizes();
    }

    /// Move the window's target by `amount` entries, within [1, `max_window` × capacity]. Only the
    /// targets change here; the lists follow lazily.
    fn resize_window(&mut self, amount: i64) {
        if !self.tuning.adapt {
            return;
        }
        let cap = self.capacity;
        let limit = ((cap as f64 * self.tuning.max_window) as usize).clamp(1.min(cap), cap);
        let target = if amount >= 0 {
            self.window_max
                .saturating_add(amount as usize)
                .min(limit.max(self.window_max))
        } else {
            self.window_max
                .saturating_sub(amount.unsigned_abs() as usize)
                .max(1.min(cap))
        };
        if target != self.window_max {
            self.window_max = target;
            self.protected_max = ((cap - target) as f64 * self.tuning.protected_share) as usize;
        }
    }

    // -- the lists ---------------------------------------------------------------------------------------

    fn tail(&self, region: u8) -> Option<u32> {
        let tail = self.lists[region as usize].tail;
        (tail != NIL).then_some(tail)
    }

    /// Protected's oldest entry goes back to probation.
    fn demote(&mut self) {
        if let Some(slot) = self.tail(PROTECTED) {
            self.unlink(slot);
            self.push_front(PROBATION, slot);
        }
    }

    #[inline]
    fn push_front(&mut self, region: u8, slot: u32) {
        let list = &mut self.lists[region as usize];
        let old_head = list.head;
        list.head = slot;
        if old_head == NIL {
            list.tail = slot;
        }
        list.len += 1;
        if old_head != NIL {
            self.nodes[old_head as usize].prev = slot;
        }
        let node = &mut self.nodes[slot as usize];
        node.prev = NIL;
        node.next = old_head;
        node.region = region;
    }

    #[inline]
    fn unlink(&mut self, slot: u32) {
        let Node { prev, next, region, .. } = self.nodes[slot as usize];
        let list = &mut self.lists[region as usize];
        list.len -= 1;
        if prev == NIL {
            list.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        let node = &mut self.nodes[slot as usize];
        node.prev = NIL;
        node.next = NIL;
        node.region = ABSENT;
    }

    fn move_to_front(&mut self, region: u8, slot: u32) {
        if self.lists[region as usize].head != slot {
            self.unlink(slot);
            self.push_front(region, slot);
        }
    }

    /// Check the lists against each other and against the slot metadata.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut listed = 0;
        for (r, list) in self.lists.iter().enumerate() {
            let mut count = 0;
            let mut prev = NIL;
            let mut cur = list.head;
            while cur != NIL {
                let node = self
                    .nodes
                    .get(cur as usize)
                    .ok_or_else(|| format!("slot {cur} out of range"))?;
                if node.region as usize != r {
                    return Err(format!("slot {cur} in list {r} has region {}", node.region));
                }
                if node.prev != prev {
                    return Err(format!("slot {cur} has prev {} not {prev}", node.prev));
                }
                prev = cur;
                cur = node.next;
                count += 1;
                if count > self.nodes.len() {
                    return Err(format!("cycle in list {r}"));
                }
            }
            if prev != list.tail || count != list.len {
                return Err(format!("list {r}: tail {} len {} counted {count}", list.tail, list.len));
            }
            listed += count;
        }
        let present = self.nodes.iter().filter(|n| n.region != ABSENT).count();
        if present != listed {
            return Err(format!("{present} slots present, {listed} listed"));
        }
        if self.window_max > self.capacity || self.protected_max > self.capacity - self.window_max {
            return Err(format!(
                "targets window {} protected {} exceed capacity {}",
                self.window_max, self.protected_max, self.capacity
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::{tag_of, AdaptivePolicy, Ghosts, FROM_MAIN, FROM_WINDOW};

    /// Drives the policy as `Table` does: a slab of keys with slots reused after removal.
    struct Driver {
        policy: AdaptivePolicy,
        slot_of: HashMap<u64, u32>,
        key_of: Vec<Option<u64>>,
        free: Vec<u32>,
        hits: usize,
    }

    fn hash(key: u64) -> u64 {
        let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    impl Driver {
        fn new(capacity: usize) -> Self {
            Self {
                policy: AdaptivePolicy::new(capacity),
                slot_of: HashMap::new(),
                key_of: Vec::new(),
                free: Vec::new(),
                hits: 0,
            }
        }

        fn remove(&mut self, slot: u32) {
            let key = self.key_of[slot as usize].take().expect("victim is a live slot");
            self.slot_of.remove(&key);
            self.policy.on_remove(slot);
            self.free.push(slot);
        }

        /// A `get`; on a miss, a `set`.
        fn request(&mut self, key: u64) {
            if let Some(&slot) = self.slot_of.get(&key) {
                self.hits += 1;
                self.policy.on_hit(slot, hash(key));
                return;
            }
            self.policy.on_miss(hash(key));
            while self.slot_of.len() >= self.policy.capacity() {
                let victim = self.policy.victim().expect("a full cache has a victim");
                self.remove(victim);
            }
            let slot = self.free.pop().unwrap_or_else(|| {
                self.key_of.push(None);
                (self.key_of.len() - 1) as u32
            });
            self.key_of[slot as usize] = Some(key);
            self.slot_of.insert(key, slot);
            self.policy.on_insert(slot, hash(key));
        }

        fn delete(&mut self, key: u64) {
            if let Some(&slot) = self.slot_of.get(&key) {
                self.remove(slot);
            }
        }

        fn contains(&self, key: u64) -> bool {
            self.slot_of.contains_key(&key)
        }
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn ghosts(limit: usize) -> Ghosts {
        let mut ghosts = Ghosts::default();
        ghosts.set_limit(limit);
        ghosts
    }

    /// Record the evictions of `keys`, in order, from `side`.
    fn record_all(g: &mut Ghosts, keys: std::ops::Range<u64>, side: usize) {
        for key in keys {
            g.record(tag_of(hash(key)), side);
        }
    }

    #[test]
    fn a_ghost_is_remembered_until_limit_evictions_from_its_side_follow() {
        let mut g = ghosts(100);
        let h = tag_of(hash(1));
        g.record(h, FROM_MAIN);
        record_all(&mut g, 1_000..1_099, FROM_MAIN);
        assert_eq!(g.take(h), Some(FROM_MAIN), "99 later evictions: still a ghost");
        assert_eq!(g.take(h), None, "take forgets");
        g.record(h, FROM_MAIN);
        record_all(&mut g, 2_000..2_100, FROM_MAIN);
        assert_eq!(g.take(h), None, "100 later evictions: aged out");
        // Evictions from the other side do not age it.
        g.record(h, FROM_WINDOW);
        record_all(&mut g, 3_000..13_000, FROM_MAIN);
        assert_eq!(g.take(h), Some(FROM_WINDOW));
    }

    #[test]
    fn ghosts_keep_nearly_every_fresh_hash_in_bounded_memory() {
        let limit = 1_000;
        let mut g = ghosts(limit);
        let keys = 0..50_000u64;
        for key in keys.clone() {
            let side = if key % 3 == 0 { FROM_WINDOW } else { FROM_MAIN };
            g.record(tag_of(hash(key)), side);
        }
        assert_eq!(g.buckets.len(), g.target_buckets());
        // A bucket (64 bytes) per 0.75 to 1.5 of a side's ghosts.
        assert!(3 * size_of_val(&g.buckets[..]) <= 256 * limit);
        // Fresh: the last `limit` of each side. Of those, all but a few are found, on the right side.
        let fresh_window: Vec<u64> = keys.clone().rev().filter(|k| k % 3 == 0).take(limit).collect();
        let fresh_main: Vec<u64> = keys.clone().rev().filter(|k| k % 3 != 0).take(limit).collect();
        let stale = keys.clone().rev().filter(|k| k % 3 == 0).skip(limit).take(limit);
        let found_window = fresh_window
            .iter()
            .filter(|&&k| g.take(tag_of(hash(k))) == Some(FROM_WINDOW))
            .count();
        let found_main = fresh_main
            .iter()
            .filter(|&&k| g.take(tag_of(hash(k))) == Some(FROM_MAIN))
            .count();
        assert!(
            found_window >= limit * 98 / 100,
            "{found_window} of {limit} window ghosts"
        );
        assert!(found_main >= limit * 98 / 100, "{found_main} of {limit} main ghosts");
        assert!(
            stale.clone().all(|k| g.take(tag_of(hash(k))).is_none()),
            "an aged-out ghost was found"
        );
    }

    #[test]
    fn a_key_evicted_twice_keeps_one_ghost_of_the_side_it_left_last() {
        let mut g = ghosts(100);
        let h = tag_of(hash(7));
        g.record(h, FROM_MAIN);
        g.record(h, FROM_WINDOW);
        // Later evictions from the window age its ghost past the main one's: the later eviction counts.
        record_all(&mut g, 100..150, FROM_WINDOW);
        assert_eq!(g.take(h), Some(FROM_WINDOW));
        assert_eq!(g.take(h), None, "no second ghost left behind");
        g.record(h, FROM_WINDOW);
        g.record(h, FROM_MAIN);
        assert_eq!(g.take(h), Some(FROM_MAIN));
        assert_eq!(g.take(h), None);
    }

    #[test]
    fn a_raised_limit_grows_the_ghost_table_with_the_evictions_that_follow() {
        let mut g = ghosts(100);
        record_all(&mut g, 0..1_000, FROM_WINDOW);
        let before = g.buckets.len();
        g.set_limit(1_000_000);
        record_all(&mut g, 1_000..1_000 + before as u64, FROM_WINDOW);
        assert!(
            g.buckets.len() <= 2 * before,
            "{} buckets from {before}",
            g.buckets.len()
        );
        assert_eq!(g.take(tag_of(hash(999))), Some(FROM_WINDOW), "growing keeps the ghosts");
    }

    #[test]
    fn ghosts_shrink_with_the_limit_and_clear() {
        let mut g = ghosts(10_000);
        record_all(&mut g, 0..20_000, FROM_WINDOW);
        let large = g.buckets.len();
        g.set_limit(100);
        assert!(g.buckets.len() < large && g.buckets.len() <= g.target_buckets());
        assert_eq!(
            g.take(tag_of(hash(19_999))),
            Some(FROM_WINDOW),
            "the freshest survive the shrink"
        );
        g.clear();
        assert_eq!(g.take(tag_of(hash(19_998))), None);
        g.set_limit(0);
        g.record(tag_of(hash(1)), FROM_MAIN);
        assert_eq!(g.take(tag_of(hash(1))), None, "no ghosts without a limit");
    }

    #[test]
    fn capacity_is_respected_and_lists_stay_consistent() {
        let mut d = Driver::new(50);
        let mut rng = Rng(7);
        for i in 0..20_000 {
            let key = rng.below(400);
            if i % 17 == 0 {
                d.delete(key);
            } else {
                d.request(key);
            }
            assert!(d.slot_of.len() <= 50);
            assert_eq!(d.policy.len(), d.slot_of.len());
            if i % 101 == 0 {
                d.policy.check_invariants().unwrap();
            }
        }
        d.policy.check_invariants().unwrap();
        assert!(d.hits > 0);
    }

    #[test]
    fn lowering_the_capacity_evicts_through_victim() {
        let mut d = Driver::new(100);
        for key in 0..100 {
            d.request(key);
        }
        d.policy.set_capacity(10);
        while d.slot_of.len() > 10 {
            let victim = d.policy.victim().unwrap();
            d.remove(victim);
        }
        d.policy.check_invariants().unwrap();
        for key in 1000..1100 {
            d.request(key);
            assert!(d.slot_of.len() <= 10);
        }
        d.policy.check_invariants().unwrap();
    }

    #[test]
    fn a_one_time_scan_does_not_flush_the_hot_set() {
        let mut d = Driver::new(100);
        for _ in 0..20 {
            for key in 0..50 {
                d.request(key);
            }
        }
        for key in 1_000..11_000 {
            d.request(key);
        }
        let kept = (0..50).filter(|&k| d.contains(k)).count();
        assert!(kept >= 45, "only {kept} of 50 hot keys survived the scan");
        d.policy.check_invariants().unwrap();
    }

    #[test]
    fn the_window_grows_for_recency_and_shrinks_for_frequency() {
        let capacity = 200;
        let mut d = Driver::new(capacity);
        let initial = d.policy.window_max();
        // Recency: each new key comes with a request for a key that was new at most 150 keys ago (so LRU
        // of this capacity hits every one of those), and keys are never requested after that.
        let mut rng = Rng(5);
        for i in 150..40_150u64 {
            d.request(1_000_000 + i);
            d.request(1_000_000 + i - 1 - rng.below(150));
        }
        let grown = d.policy.window_max();
        assert!(
            grown > capacity / 2,
            "window {grown} (from {initial}) did not grow toward LRU"
        );
        // Frequency: a stable hot set just under the capacity, mixed with one-time keys.
        for i in 0..200_000u64 {
            if rng.below(2) == 0 {
                d.request(rng.below(150));
            } else {
                d.request(5_000_000 + i);
            }
        }
        let shrunk = d.policy.window_max();
        assert!(
            shrunk < capacity / 4,
            "window {shrunk} (from {grown}) did not shrink toward LFU"
        );
        let kept = (0..150).filter(|&k| d.contains(k)).count();
        assert!(kept > 120, "only {kept} of 150 hot keys cached");
        d.policy.check_invariants().unwrap();
    }

    #[test]
    fn clear_forgets_entries_and_adaptation() {
        let mut d = Driver::new(20);
        for key in 0..100 {
            d.request(key);
        }
        d.policy.clear();
        assert!(d.policy.is_empty());
        assert_eq!(d.policy.victim(), None);
        assert_eq!(d.policy.window_max(), AdaptivePolicy::new(20).window_max());
        d.policy.check_invariants().unwrap();
    }

    #[test]
    fn tiny_capacities_work() {
        for capacity in 1..4 {
            let mut d = Driver::new(capacity);
            for key in [1, 2, 1, 3, 1, 4, 2, 2, 5] {
                d.request(key);
                assert!(d.slot_of.len() <= capacity);
            }
            d.policy.check_invariants().unwrap();
        }
    }
}
