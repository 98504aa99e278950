//! A count-min frequency sketch with 4-bit counters and periodic aging: the `TinyLFU` estimate of how often a
//! key was requested recently, in a few bytes per cache entry.
//!
//! Each `u64` word holds sixteen 4-bit counters. A key owns four counters, each in a different word chosen
//! by its own hash, and its estimate is the smallest of the four. After `sample_size` counted events every
//! counter is halved, so old popularity fades and the sketch follows a changing workload.

/// Spreads a 32-bit key hash over the blocks (Fibonacci hashing: the product's high bits).
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// Words per block: a key's four counters share one 64-byte block (one cache line), each in its own pair
/// of words, as in Caffeine's sketch.
const BLOCK_WORDS: usize = 8;

/// The smallest table, in words (16 counters each), whatever the capacity.
const MIN_WORDS: usize = 16;

/// A key's counters: one cache line, aligned as one (a `Vec<u64>` is only 8-aligned, so most blocks
/// would straddle two lines and every count would miss twice).
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Block([u64; BLOCK_WORDS]);

#[derive(Debug, Clone)]
pub(crate) struct FrequencySketch {
    table: Vec<Block>,
    /// `table.len() - 1`; the length is a power of two.
    block_mask: usize,
    /// Counted increments since the last halving.
    additions: usize,
    /// Increments between two halvings.
    sample_size: usize,
    /// Halvings so far (wrapping): whoever keeps a count of its own beside the sketch halves it as
    /// many times when it next reads it.
    epoch: u8,
}

impl FrequencySketch {
    /// A sketch for about `entries` cache entries (one word per entry, rounded up to a power of two) that
    /// halves its counters every `period` × `entries` counted increments.
    pub(crate) fn new(entries: usize, period: f64) -> Self {
        let entries = entries.max(MIN_WORDS);
        let words = entries.checked_next_power_of_two().unwrap_or(1 << 30).min(1 << 30);
        Self {
            table: vec![Block([0; BLOCK_WORDS]); words / BLOCK_WORDS],
            block_mask: words / BLOCK_WORDS - 1,
            additions: 0,
            sample_size: ((entries as f64 * period) as usize).max(MIN_WORDS),
            epoch: 0,
        }
    }

    /// Halve the counters every `period` × `entries` counted increments from now on.
    pub(crate) fn set_aging(&mut self, entries: usize, period: f64) {
        self.sample_size = ((entries as f64 * period) as usize).max(MIN_WORDS);
    }

    /// How many entries this sketch was sized for (its word count).
    pub(crate) fn words(&self) -> usize {
        self.table.len() * BLOCK_WORDS
    }

    /// A key's block (from the spread hash) and its four (word in the block, bit shift) pairs: from a
    /// byte of the hash each, one word of the counter's pair and one of its sixteen nibbles.
    #[inline]
    fn cells(&self, hash: u32) -> (usize, [(usize, u32); 4]) {
        let block = (u64::from(hash).wrapping_mul(SPREAD) >> 32) as usize & self.block_mask;
        let mut out = [(0usize, 0u32); 4];
        for (i, cell) in out.iter_mut().enumerate() {
            let bits = hash >> (i * 8);
            *cell = (i * 2 + (bits & 1) as usize, ((bits >> 1) & 15) << 2);
        }
        (block, out)
    }

    /// The estimated recent frequency of `hash`, 0 to 15.
    #[inline]
    pub(crate) fn frequency(&self, hash: u32) -> u8 {
        let (block, cells) = self.cells(hash);
        let words = &self.table[block].0;
        let mut min = 15u64;
        for (index, shift) in cells {
            min = min.min((words[index] >> shift) & 0xf);
        }
        min as u8
    }

    /// Count one request for `hash` (each of its counters below 15 goes up by one), aging if due; its
    /// estimate after counting.
    #[inline]
    pub(crate) fn increment(&mut self, hash: u32) -> u8 {
        let mut added = false;
        let mut min = 15u64;
        let (block, cells) = self.cells(hash);
        let words = &mut self.table[block].0;
        for (index, shift) in cells {
            let word = &mut words[index];
            let count = (*word >> shift) & 0xf;
            if count < 15 {
                *word += 1 << shift;
                added = true;
            }
            min = min.min((count + 1).min(15));
        }
        if added {
            self.count_event();
        }
        min as u8
    }

    /// Count a request that is tallied elsewhere (an entry's own count), so aging keeps its pace.
    #[inline]
    pub(crate) fn count_event(&mut self) {
        self.additions += 1;
        if self.additions >= self.sample_size {
            self.age();
        }
    }

    /// Raise each counter of `hash` to at least `count` (an entry leaving the cache hands over the
    /// requests it had while cached, which were tallied on the entry, not here).
    pub(crate) fn raise(&mut self, hash: u32, count: u8) {
        let count = u64::from(count.min(15));
        let (block, cells) = self.cells(hash);
        let words = &mut self.table[block].0;
        for (index, shift) in cells {
            let word = &mut words[index];
            let current = (*word >> shift) & 0xf;
            if current < count {
                *word += (count - current) << shift;
            }
        }
    }

    pub(crate) fn epoch(&self) -> u8 {
        self.epoch
    }

    /// Continue the aging count of `previous` (a sketch this one replaces).
    pub(crate) fn continue_from(&mut self, previous: &Self) {
        self.epoch = previous.epoch;
    }

    /// Halve every counter.
    fn age(&mut self) {
        for word in self.table.iter_mut().flat_map(|block| &mut block.0) {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
        self.epoch = self.epoch.wrapping_add(1);
    }

    pub(crate) fn clear(&mut self) {
        self.table.fill(Block([0; BLOCK_WORDS]));
        self.additions = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::FrequencySketch;

    #[test]
    fn counts_saturate_at_fifteen() {
        let mut sketch = FrequencySketch::new(1024, 10.0);
        for _ in 0..40 {
            sketch.increment(7);
        }
        assert_eq!(sketch.frequency(7), 15);
        assert!(sketch.frequency(8) < 15);
    }

    #[test]
    fn aging_halves_counts() {
        let mut sketch = FrequencySketch::new(16, 10.0);
        for _ in 0..8 {
            sketch.increment(1);
        }
        assert_eq!(sketch.frequency(1), 8);
        // 160 increments to distinct keys trigger one halving.
        for k in 1000..1200 {
            sketch.increment(k);
        }
        assert!(sketch.frequency(1) <= 5, "{}", sketch.frequency(1));
    }

    #[test]
    fn increment_returns_the_estimate_and_raise_lifts_every_counter() {
        let mut sketch = FrequencySketch::new(1024, 10.0);
        assert_eq!(sketch.increment(5), 1);
        assert_eq!(sketch.increment(5), 2);
        sketch.raise(5, 9);
        assert_eq!(sketch.frequency(5), 9);
        sketch.raise(5, 3);
        assert_eq!(sketch.frequency(5), 9, "raise never lowers");
        sketch.raise(5, 200);
        assert_eq!(sketch.frequency(5), 15);
        let epoch = sketch.epoch();
        sketch.age();
        assert_eq!(sketch.epoch(), epoch.wrapping_add(1));
    }

    #[test]
    fn clear_forgets() {
        let mut sketch = FrequencySketch::new(64, 10.0);
        sketch.increment(3);
        sketch.clear();
        assert_eq!(sketch.frequency(3), 0);
    }
}
