//! Django's default cache key, `"%s:%s:%s" % (KEY_PREFIX, version, key)`, made in Rust, and the
//! cheap test that tells which keys need the memcached-portability warning.
//!
//! Keys are bytes: the UTF-8 of the key string, or, for a string holding lone surrogates (which
//! `LocMemCache` accepts as dict keys), Python's `surrogatepass` encoding of it. That form is never
//! valid UTF-8, so it cannot collide with the key of any other string.

use std::fmt::Write as _;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString};

/// Memcached's key limit, in characters (Django's `MEMCACHE_MAX_KEY_LENGTH`).
const MEMCACHE_MAX_KEY_LENGTH: usize = 250;

/// Bytes kept on the stack while a key is made: Django keys are short (memcached allows 250
/// characters), so nearly every key avoids a heap allocation (~100 instructions a call).
const INLINE_KEY: usize = 256;

/// A key being made: on the stack up to `INLINE_KEY` bytes, on the heap beyond.
pub(crate) struct KeyBuf {
    inline: [u8; INLINE_KEY],
    len: usize,
    spilled: Vec<u8>,
}

impl KeyBuf {
    pub(crate) fn new() -> Self {
        Self { inline: [0; INLINE_KEY], len: 0, spilled: Vec::new() }
    }

    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        if self.spilled.is_empty() && self.len + bytes.len() <= INLINE_KEY {
            self.inline[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline[..self.len]);
            }
            self.spilled.extend_from_slice(bytes);
        }
    }

    pub(crate) fn push(&mut self, byte: u8) {
        self.extend_from_slice(&[byte]);
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

impl std::ops::Deref for KeyBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Append the bytes of `str(obj)` (`"%s" % obj`) to `buf`.
pub(crate) fn push_str_of(buf: &mut KeyBuf, obj: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return push_py_str(buf, s);
    }
    if let Ok(int) = obj.cast_exact::<PyInt>() {
        if let Ok(n) = int.extract::<i64>() {
            let mut digits = String::with_capacity(20);
            let _ = write!(digits, "{n}");
            buf.extend_from_slice(digits.as_bytes());
            return Ok(());
        }
    }
    push_py_str(buf, &obj.str()?)
}

fn push_py_str(buf: &mut KeyBuf, s: &Bound<'_, PyString>) -> PyResult<()> {
    match s.to_str() {
        Ok(text) => buf.extend_from_slice(text.as_bytes()),
        Err(_) => {
            let py = s.py();
            let encoded = s.call_method1(
                intern!(py, "encode"),
                (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
            )?;
            buf.extend_from_slice(encoded.cast::<PyBytes>()?.as_bytes());
        }
    }
    Ok(())
}

/// The `str` a key's bytes stand for (the inverse of `push_str_of` for strings).
pub(crate) fn key_to_str<'py>(py: Python<'py>, key: &[u8]) -> PyResult<Bound<'py, PyString>> {
    match std::str::from_utf8(key) {
        Ok(text) => Ok(PyString::new(py, text)),
        Err(_) => PyBytes::new(py, key)
            .call_method1(
                intern!(py, "decode"),
                (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
            )?
            .cast_into::<PyString>()
            .map_err(PyErr::from),
    }
}

/// Whether Django's `memcache_key_warnings` has something to say about this key: longer than 250
/// characters, or holding a control character or space (`[\x00-\x20\x7f]`). Bytes under 0x80 are
/// whole characters in both encodings we use, so the byte test is exact.
pub(crate) fn needs_warning(key: &[u8]) -> bool {
    let too_long = key.len() > MEMCACHE_MAX_KEY_LENGTH && char_count(key) > MEMCACHE_MAX_KEY_LENGTH;
    too_long || key.iter().any(|&b| b <= b' ' || b == 0x7f)
}

/// Characters in UTF-8 (or surrogatepass) bytes: every byte that does not continue a sequence.
fn char_count(key: &[u8]) -> usize {
    key.iter().filter(|&&b| (b & 0xC0) != 0x80).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_buffer_spills_to_the_heap_intact() {
        let mut buf = KeyBuf::new();
        buf.extend_from_slice(b"prefix:1:");
        for _ in 0..100 {
            buf.extend_from_slice(b"abc");
        }
        buf.push(b'!');
        let expected = [b"prefix:1:".to_vec(), b"abc".repeat(100), b"!".to_vec()].concat();
        assert_eq!(buf.as_bytes(), expected.as_slice());
    }

    #[test]
    fn warns_like_django() {
        assert!(!needs_warning(b":1:plain-key"));
        assert!(needs_warning(b":1:has space"));
        assert!(needs_warning(b":1:tab\there"));
        assert!(needs_warning(b":1:del\x7f"));
        assert!(
            !needs_warning("é".repeat(200).as_bytes()),
            "200 characters in 400 bytes"
        );
        assert!(needs_warning("é".repeat(251).as_bytes()));
        assert!(!needs_warning(&[b'a'; 250]));
        assert!(needs_warning(&[b'a'; 251]));
    }
}
