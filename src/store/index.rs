//! Key → slot: an open-addressing hash table of `(hash, slot)` cells, linear probing, deletion by
//! backward shift (no tombstones).
//!
//! The keys live in the slab's records, not here: a cell is 8 bytes (the low 32 bits of the key's hash and
//! a slot number), where a `HashMap<Box<[u8]>, u32>` spends 24 and a second pointer per entry. The hash in
//! the cell decides a probe without touching the record unless the hashes match, and gives each cell's
//! home bucket, so growing and shifting never rehash a key.

const EMPTY: u64 = u64::MAX;

/// The table grows before it is more than this full (numerator over 8).
const MAX_LOAD_EIGHTHS: usize = 6;
const MIN_CAPACITY: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct Index {
    cells: Vec<u64>,
    len: usize,
}

/// The 32 bits of a hash the index keeps. `u32::MAX` with slot `u32::MAX` would be `EMPTY`; slots stop
/// below that.
pub(crate) fn tag_of(hash: u64) -> u32 {
    hash as u32
}

fn cell(tag: u32, slot: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(slot)
}

fn tag(cell: u64) -> u32 {
    (cell >> 32) as u32
}

fn slot(cell: u64) -> u32 {
    cell as u32
}

impl Index {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.cells.len().wrapping_sub(1)
    }

    /// The slot whose key `is_key` accepts, among those filed under `tag`.
    pub(crate) fn find(&self, tag_: u32, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(tag_, &mut is_key).map(|at| slot(self.cells[at]))
    }

    fn position(&self, tag_: u32, is_key: &mut impl FnMut(u32) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut at = tag_ as usize & mask;
        loop {
            let c = self.cells[at];
            if c == EMPTY {
                return None;
            }
            if tag(c) == tag_ && is_key(slot(c)) {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// File `slot` under `tag`; the caller knows its key is not filed yet.
    pub(crate) fn insert(&mut self, tag_: u32, slot_: u32) {
        if (self.len + 1) * 8 > self.cells.len() * MAX_LOAD_EIGHTHS {
            self.grow();
        }
        self.place(cell(tag_, slot_));
        self.len += 1;
    }

    fn place(&mut self, c: u64) {
        let mask = self.mask();
        let mut at = tag(c) as usize & mask;
        while self.cells[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.cells[at] = c;
    }

    fn grow(&mut self) {
        let capacity = (self.cells.len() * 2).max(MIN_CAPACITY);
        let old = std::mem::replace(&mut self.cells, vec![EMPTY; capacity]);
        for c in old.into_iter().filter(|&c| c != EMPTY) {
            self.place(c);
        }
    }

    /// Unfile `slot` (filed under `tag`); whether it was there.
    pub(crate) fn remove(&mut self, tag_: u32, slot_: u32) -> bool {
        match self.position(tag_, &mut |s| s == slot_) {
            Some(at) => {
                self.remove_at(at);
                true
            }
            None => false,
        }
    }

    /// Empty cell `at` and pull back every later cell of the run that may now sit nearer its home, so
    /// every probe still meets its key before an empty cell.
    fn remove_at(&mut self, mut gap: usize) {
        let mask = self.mask();
        self.cells[gap] = EMPTY;
        self.len -= 1;
        let mut at = gap;
        loop {
            at = (at + 1) & mask;
            let c = self.cells[at];
            if c == EMPTY {
                return;
            }
            let home = tag(c) as usize & mask;
            // The cell may move into the gap unless its home lies cyclically in (gap, at].
            let stays = if gap <= at {
                gap < home && home <= at
            } else {
                gap < home || home <= at
            };
            if !stays {
                self.cells[gap] = c;
                self.cells[at] = EMPTY;
                gap = at;
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.cells = Vec::new();
        self.len = 0;
    }

    /// Every filed `(tag, slot)`, for invariant checks.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.cells.iter().filter(|&&c| c != EMPTY).map(|&c| (tag(c), slot(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model check: random inserts and removes with deliberately colliding tags, against a `Vec`.
    #[test]
    fn agrees_with_a_list_under_collisions_and_wraparound() {
        let mut index = Index::default();
        let mut model: Vec<(u32, u32)> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for step in 0..20_000u32 {
            let r = next();
            // Few distinct homes (the low bits), many tags, so runs collide and wrap around the end.
            let tag_ = ((r >> 8) as u32 & 0xff00) | (r as u32 & 0x1f) | 0xf0;
            if r % 3 == 0 && !model.is_empty() {
                let (t, s) = model.swap_remove((r >> 40) as usize % model.len());
                assert!(index.remove(t, s));
                assert!(!index.remove(t, s));
            } else {
                index.insert(tag_, step);
                model.push((tag_, step));
            }
            assert_eq!(index.len(), model.len());
            if step % 997 == 0 {
                for &(t, s) in &model {
                    assert_eq!(index.find(t, |x| x == s), Some(s));
                }
                let mut filed: Vec<_> = index.iter().collect();
                let mut expected = model.clone();
                filed.sort_unstable();
                expected.sort_unstable();
                assert_eq!(filed, expected);
            }
        }
        index.clear();
        assert_eq!(index.find(1, |_| true), None);
    }
}
