//! Recency order over slab slots: an intrusive doubly linked list held in a `Vec`, indexed by slot.
//! The front is the most recently used entry; eviction takes from the back. Every operation is O(1).

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link { prev: NIL, next: NIL };

#[derive(Debug)]
pub(crate) struct LruList {
    links: Vec<Link>,
    head: u32,
    tail: u32,
}

impl Default for LruList {
    fn default() -> Self {
        Self {
            links: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }
}

impl LruList {
    pub(crate) fn push_front(&mut self, slot: u32) {
        let i = slot as usize;
        if self.links.len() <= i {
            self.links.resize(i + 1, UNLINKED);
        }
        self.links[i] = Link {
            prev: NIL,
            next: self.head,
        };
        if self.head == NIL {
            self.tail = slot;
        } else {
            self.links[self.head as usize].prev = slot;
        }
        self.head = slot;
    }

    pub(crate) fn unlink(&mut self, slot: u32) {
        let Link { prev, next } = self.links[slot as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
        self.links[slot as usize] = UNLINKED;
    }

    pub(crate) fn move_to_front(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.push_front(slot);
        }
    }

    /// The least recently used slot.
    pub(crate) fn back(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    pub(crate) fn clear(&mut self) {
        self.links.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    /// How many slots are linked, walking from the front (O(n): for invariant checks).
    pub(crate) fn len_from_head(&self) -> usize {
        self.iter().count()
    }

    /// Slots from most to least recently used.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors((self.head != NIL).then_some(self.head), |&s| {
            let next = self.links[s as usize].next;
            (next != NIL).then_some(next)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_use() {
        let mut l = LruList::default();
        for s in 0..4 {
            l.push_front(s);
        }
        assert_eq!(l.iter().collect::<Vec<_>>(), [3, 2, 1, 0]);
        l.move_to_front(1);
        assert_eq!(l.iter().collect::<Vec<_>>(), [1, 3, 2, 0]);
        l.unlink(0);
        assert_eq!(l.back(), Some(2));
        l.unlink(1);
        l.unlink(3);
        l.unlink(2);
        assert_eq!(l.back(), None);
        assert_eq!(l.iter().count(), 0);
    }
}
