//! The limits a writer asks for. As in `LocMemCache`, the data belongs to a LOCATION but the limits
//! belong to the backend instance that writes: two aliases may share a LOCATION with different
//! `MAX_ENTRIES` (Django's own test settings do), so every write carries its limits.

/// Limits in force for one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Django's `MAX_ENTRIES`. A write into a cache holding this many entries or more culls first.
    /// Signed, because Django parses it with `int()` and its tests set `-1` to force a cull.
    pub max_entries: i64,
    /// Django's `CULL_FREQUENCY`: a cull removes `len / cull_frequency` entries, all of them if `0`,
    /// none if negative (Python's `range(len // -n)` is empty).
    pub cull_frequency: i64,
    /// Our `MAX_BYTES`: the most bytes the entries may be charged in all (see `entry::entry_bytes`).
    pub max_bytes: Option<usize>,
}

impl Default for Limits {
    /// Django's defaults: 300 entries, cull a third.
    fn default() -> Self {
        Self {
            max_entries: 300,
            cull_frequency: 3,
            max_bytes: None,
        }
    }
}

impl Limits {
    /// Whether a cache holding `len` entries must cull before the next write (`LocMemCache._set`).
    pub(crate) fn is_full(&self, len: usize) -> bool {
        i64::try_from(len).unwrap_or(i64::MAX) >= self.max_entries
    }

    /// How many entries a cull of a cache holding `len` entries removes (`LocMemCache._cull`).
    pub(crate) fn cull_count(&self, len: usize) -> usize {
        match self.cull_frequency {
            0 => len,
            f if f < 0 => 0,
            f => len / f as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locmem_cull_arithmetic() {
        let l = Limits {
            max_entries: 30,
            cull_frequency: 3,
            max_bytes: None,
        };
        assert!(l.is_full(30));
        assert!(!l.is_full(29));
        assert_eq!(l.cull_count(30), 10);
        let zero = Limits { cull_frequency: 0, ..l };
        assert_eq!(zero.cull_count(30), 30);
        let negative = Limits {
            cull_frequency: -2,
            ..l
        };
        assert_eq!(negative.cull_count(30), 0);
        let forced = Limits { max_entries: -1, ..l };
        assert!(forced.is_full(0));
    }
}
