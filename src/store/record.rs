//! An entry's key and value in one allocation.
//!
//! Layout: `[kind][key length, LEB128][key bytes][value bytes]`. One heap block per entry, not one
//! for the key and one for the value: at a million small entries the second block's allocator header
//! and rounding, and a second pointer, cost more than the value itself (`benchmarks/bench.py`,
//! memory row). The store interprets one kind, [`INT`]; every other kind is the binding's to choose.

/// How the value's bytes are to be read. Opaque to the store except for [`INT`].
pub type Kind = u8;

/// A native integer: 8 bytes, a little-endian `i64`, which `incr` adds to in place.
pub const INT: Kind = 0;

/// The bit of the kind byte the table sets on a record that has an attachment (`table::Attachment`).
const ATTACHED: u8 = 0x80;
/// The bit of the kind byte that pins an entry: it stays out of the eviction order (never culled or
/// evicted for room, though it still expires), as a held lock must. The binding's kinds stay below it.
const PINNED: u8 = 0x40;
/// The kind byte's flag bits, which are not part of the kind.
const FLAGS: u8 = ATTACHED | PINNED;

#[derive(Clone, PartialEq, Eq)]
pub struct Record(Box<[u8]>);

impl Record {
    /// A record of `kind` (below `0x40`; the top bits are flags) for `key` and `value`.
    pub fn new(key: &[u8], kind: Kind, value: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(1 + varint_len(key.len()) + key.len() + value.len());
        bytes.push(kind & !FLAGS);
        push_varint(&mut bytes, key.len());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        Self(bytes.into_boxed_slice())
    }

    pub fn int(key: &[u8], n: i64) -> Self {
        Self::new(key, INT, &n.to_le_bytes())
    }

    pub fn kind(&self) -> Kind {
        self.0[0] & !FLAGS
    }

    /// Keep this record's entry out of the eviction order (see `PINNED`).
    pub fn pin(&mut self) {
        self.0[0] |= PINNED;
    }

    pub fn is_pinned(&self) -> bool {
        self.0[0] & PINNED != 0
    }

    pub(crate) fn is_attached(&self) -> bool {
        self.0[0] & ATTACHED != 0
    }

    pub(crate) fn set_attached(&mut self, attached: bool) {
        if attached {
            self.0[0] |= ATTACHED;
        } else {
            self.0[0] &= !ATTACHED;
        }
    }

    /// Where the key starts and how long it is.
    fn key_span(&self) -> (usize, usize) {
        let mut len = 0usize;
        let mut shift = 0;
        let mut at = 1;
        while let Some(&byte) = self.0.get(at) {
            at += 1;
            len |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        (at, len)
    }

    pub fn key(&self) -> &[u8] {
        let (start, len) = self.key_span();
        &self.0[start..start + len]
    }

    pub fn value(&self) -> &[u8] {
        let (start, len) = self.key_span();
        &self.0[start + len..]
    }

    /// The value as a native integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        if self.kind() != INT {
            return None;
        }
        self.value().try_into().ok().map(i64::from_le_bytes)
    }

    /// Overwrite a native integer in place; `false` (and no change) if the value is not one.
    pub(crate) fn set_int(&mut self, n: i64) -> bool {
        if self.as_int().is_none() {
            return false;
        }
        let (start, len) = self.key_span();
        self.0[start + len..].copy_from_slice(&n.to_le_bytes());
        true
    }

    /// Whether the two hold the same kind and value (keys aside): a compare-and-swap's test. Equal
    /// bytes decode to equal values, so a value changed and changed back is rightly seen as unchanged.
    pub fn same_value(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.value() == other.value()
    }

    /// The bytes this record is charged for its key and value (the byte budget adds a fixed
    /// per-entry overhead, `entry::ENTRY_OVERHEAD`, for the header and everything else).
    pub fn weight(&self) -> usize {
        let (start, _) = self.key_span();
        self.0.len() - start
    }
}

/// A ready-made form of a value that the binding keeps beside its record and `get` hands back instead
/// of rebuilding it (a Python `str` object: building one from UTF-8 costs about 300 instructions, an
/// eighth of a `get`). The store does not look inside; it charges `weight` bytes for it.
#[derive(Debug)]
pub struct Attachment<A> {
    pub object: A,
    pub weight: usize,
}

/// What a write stores: a record, and maybe an attachment.
#[derive(Debug)]
pub struct Item<A> {
    pub record: Record,
    pub attachment: Option<Attachment<A>>,
}

impl<A> From<Record> for Item<A> {
    fn from(record: Record) -> Self {
        Self {
            record,
            attachment: None,
        }
    }
}

impl<A> Item<A> {
    pub(crate) fn bytes(&self) -> usize {
        super::entry::entry_bytes(&self.record) + self.attachment.as_ref().map_or(0, |a| a.weight)
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("kind", &self.kind())
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value", &self.value())
            .finish()
    }
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_value_round_trip_across_varint_widths() {
        for key_len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let key = vec![b'k'; key_len];
            let record = Record::new(&key, 7, b"value");
            assert_eq!(record.kind(), 7);
            assert_eq!(record.key(), &key[..]);
            assert_eq!(record.value(), b"value");
            assert_eq!(record.weight(), key_len + 5);
        }
    }

    #[test]
    fn integers_are_read_and_rewritten_in_place() {
        let mut record = Record::int(b"n", -5);
        assert_eq!(record.as_int(), Some(-5));
        assert!(record.set_int(i64::MAX));
        assert_eq!(record.as_int(), Some(i64::MAX));
        assert_eq!(record.key(), b"n");
        let mut text = Record::new(b"n", 1, &7i64.to_le_bytes());
        assert_eq!(text.as_int(), None, "only the INT kind is an integer");
        assert!(!text.set_int(1));
        assert_eq!(
            Record::new(b"n", INT, b"short").as_int(),
            None,
            "a malformed INT is not one"
        );
    }

    #[test]
    fn same_value_ignores_keys() {
        assert!(Record::new(b"a", 1, b"v").same_value(&Record::new(b"b", 1, b"v")));
        assert!(!Record::new(b"a", 1, b"v").same_value(&Record::new(b"a", 2, b"v")));
        assert!(!Record::new(b"a", 1, b"v").same_value(&Record::new(b"a", 1, b"w")));
    }
}
