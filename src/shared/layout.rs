//! How an entry, a lock and the store's state are laid out as LMDB keys and values.
//!
//! LMDB keys are at most 511 bytes. A cache key longer than [`MAX_PLAIN_KEY`] is stored under a key
//! made of its first bytes, a `0xFF` byte (which never occurs in UTF-8, nor in Python's
//! `surrogatepass` form, so it cannot collide with a plain key) and a 128-bit digest of the whole
//! key; the entry then also holds the whole key, and a read checks it, so two long keys with the
//! same stored key evict each other rather than ever returning the other's value.

use crate::store::Timestamp;

/// Longest cache key stored as it is.
pub const MAX_PLAIN_KEY: usize = 480;
/// Bytes of a long key kept before the marker and the digest.
const LONG_KEY_HEAD: usize = 448;
const LONG_KEY_MARKER: u8 = 0xFF;

/// The entry's header: deadline (f64 LE, seconds since the epoch as `time.time()` counts them), recency sequence number
/// (u64 LE), kind, flags.
pub const HEADER: usize = 18;
const FLAG_LONG_KEY: u8 = 1;

/// Bytes charged for an entry beyond its key and value: its header, its key again in the recency
/// index (keyed by an 8-byte sequence number), and LMDB's node headers in both B-trees.
pub const ENTRY_OVERHEAD: usize = 64;

/// What the data file's `meta` database says under [`FORMAT_KEY`]: a file of another layout is
/// refused rather than misread.
pub const FORMAT_KEY: &[u8] = b"format";
pub const FORMAT: &[u8] = b"django-rustcache shared store, layout 1";
pub const STATE_KEY: &[u8] = b"state";

/// The LMDB key of a cache key.
pub fn db_key(key: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if key.len() <= MAX_PLAIN_KEY {
        return std::borrow::Cow::Borrowed(key);
    }
    let mut out = Vec::with_capacity(LONG_KEY_HEAD + 17);
    out.extend_from_slice(&key[..LONG_KEY_HEAD]);
    out.push(LONG_KEY_MARKER);
    out.extend_from_slice(&digest(key));
    std::borrow::Cow::Owned(out)
}

/// Two independent 64-bit FNV-1a hashes: a fixed function (every process must compute the same
/// stored key), collisions caught by the full key kept in the entry.
fn digest(key: &[u8]) -> [u8; 16] {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for &byte in key {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(byte.rotate_left(3))).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut out = [0; 16];
    out[..8].copy_from_slice(&a.to_le_bytes());
    out[8..].copy_from_slice(&b.to_le_bytes());
    out
}

/// The stored value of an entry.
pub fn encode_entry(key: &[u8], deadline: Timestamp, seq: u64, kind: u8, data: &[u8]) -> Vec<u8> {
    let long = key.len() > MAX_PLAIN_KEY;
    let mut out = Vec::with_capacity(HEADER + data.len() + if long { 4 + key.len() } else { 0 });
    out.extend_from_slice(&deadline.as_secs_f64().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind);
    out.push(if long { FLAG_LONG_KEY } else { 0 });
    if long {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
    }
    out.extend_from_slice(data);
    out
}

/// An entry read back; `None` from [`Entry::parse`] means bytes this layout never writes.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub deadline: Timestamp,
    pub seq: u64,
    pub kind: u8,
    /// The whole cache key, for an entry stored under a long key's digest.
    pub long_key: Option<&'a [u8]>,
    pub data: &'a [u8],
}

impl<'a> Entry<'a> {
    pub fn parse(raw: &'a [u8]) -> Option<Self> {
        let deadline = Timestamp::from_secs_f64(f64::from_le_bytes(raw.get(0..8)?.try_into().ok()?));
        let seq = u64::from_le_bytes(raw.get(8..16)?.try_into().ok()?);
        let kind = *raw.get(16)?;
        let flags = *raw.get(17)?;
        let mut rest = raw.get(HEADER..)?;
        let long_key = if flags & FLAG_LONG_KEY == 0 {
            None
        } else {
            let len = u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?) as usize;
            let key = rest.get(4..4 + len)?;
            rest = rest.get(4 + len..)?;
            Some(key)
        };
        Some(Self {
            deadline,
            seq,
            kind,
            long_key,
            data: rest,
        })
    }

    /// Whether this entry is the one of `key` (always, unless two long keys share a digest).
    pub fn is_of(&self, key: &[u8]) -> bool {
        self.long_key.is_none_or(|k| k == key)
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.deadline.has_passed(now)
    }

    /// The bytes this entry is charged (`MAX_BYTES`).
    pub fn charge(&self, key_len: usize) -> usize {
        charge(key_len, self.data.len())
    }
}

/// The bytes an entry of a `key_len`-byte key and a `data_len`-byte value is charged.
pub fn charge(key_len: usize, data_len: usize) -> usize {
    key_len + data_len + ENTRY_OVERHEAD
}

/// The recency index's key: the sequence number, big-endian so LMDB's byte order is numeric order.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The store's persistent state: the next sequence number, the bytes charged, and the counters
/// (summed over every process that has written).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    pub seq: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub sets: u64,
    pub deletes: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub refused: u64,
}

impl State {
    const FIELDS: usize = 9;

    pub fn encode(&self) -> [u8; 8 * Self::FIELDS] {
        let fields = [
            self.seq,
            self.bytes,
            self.hits,
            self.misses,
            self.sets,
            self.deletes,
            self.evictions,
            self.expirations,
            self.refused,
        ];
        let mut out = [0; 8 * Self::FIELDS];
        for (chunk, field) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&field.to_le_bytes());
        }
        out
    }

    pub fn parse(raw: &[u8]) -> Option<Self> {
        if raw.len() != 8 * Self::FIELDS {
            return None;
        }
        let mut f = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        let mut next = || f.next().unwrap_or(0);
        Some(Self {
            seq: next(),
            bytes: next(),
            hits: next(),
            misses: next(),
            sets: next(),
            deletes: next(),
            evictions: next(),
            expirations: next(),
            refused: next(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let raw = encode_entry(b"k", Timestamp::from_secs_f64(7.0), 9, 3, b"value");
        let e = Entry::parse(&raw).expect("parses");
        assert_eq!(
            (e.deadline.as_secs_f64(), e.seq, e.kind, e.data),
            (7.0, 9, 3, &b"value"[..])
        );
        assert!(e.long_key.is_none() && e.is_of(b"other"));
        let long = vec![b'x'; 600];
        let raw = encode_entry(&long, Timestamp::NEVER, 1, 1, b"v");
        let e = Entry::parse(&raw).expect("parses");
        assert_eq!(e.long_key, Some(&long[..]));
        assert_eq!(e.data, b"v");
        assert!(!e.is_of(b"x"));
        assert!(Entry::parse(&raw[..10]).is_none());
    }

    #[test]
    fn long_keys_are_digested_and_distinct() {
        let a = vec![b'a'; 600];
        let mut b = a.clone();
        b[599] = b'b';
        assert_eq!(db_key(b"short").as_ref(), b"short");
        assert!(db_key(&a).len() <= 511);
        assert_ne!(db_key(&a), db_key(&b));
        assert!(db_key(&a).contains(&LONG_KEY_MARKER));
    }

    #[test]
    fn state_round_trips() {
        let s = State {
            seq: 1,
            bytes: 2,
            hits: 3,
            misses: 4,
            sets: 5,
            deletes: 6,
            evictions: 7,
            expirations: 8,
            refused: 9,
        };
        assert_eq!(State::parse(&s.encode()), Some(s));
        assert_eq!(State::parse(b"short"), None);
    }
}
