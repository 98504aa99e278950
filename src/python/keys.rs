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

/// How one backend instance makes its keys: Django's `prefix:version:key`, with Django's key
/// warnings; or, when the instance makes keys in Python (a custom `KEY_FUNCTION`, an overridden
/// `make_key`/`validate_key`), the key as given. Shared by every handle.
pub(crate) struct KeyMaker {
    prefix: Box<[u8]>,
    version: Box<[u8]>,
    /// False when keys arrive made and checked, to be used as they are.
    make_keys: bool,
    /// Called with the full key and a stack level when `needs_warning` says Django would warn.
    warner: Py<PyAny>,
}

impl KeyMaker {
    pub(crate) fn new(
        key_prefix: &Bound<'_, PyAny>,
        version: &Bound<'_, PyAny>,
        make_keys: bool,
        warner: Py<PyAny>,
    ) -> PyResult<Self> {
        let mut prefix = Vec::new();
        push_str_of(&mut prefix, key_prefix)?;
        let mut default_version = Vec::new();
        push_str_of(&mut default_version, version)?;
        Ok(Self {
            prefix: prefix.into(),
            version: default_version.into(),
            make_keys,
            warner,
        })
    }

    /// The full key; a key warning is attributed `stacklevel` Python frames up.
    pub(crate) fn make(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>, stacklevel: u8) -> PyResult<Vec<u8>> {
        let mut buf = Vec::with_capacity(self.prefix.len() + self.version.len() + 32);
        if !self.make_keys {
            push_str_of(&mut buf, key)?;
            return Ok(buf);
        }
        buf.extend_from_slice(&self.prefix);
        buf.push(b':');
        if version.is_none() {
            buf.extend_from_slice(&self.version);
        } else {
            push_str_of(&mut buf, version)?;
        }
        buf.push(b':');
        push_str_of(&mut buf, key)?;
        if needs_warning(&buf) {
            let py = key.py();
            self.warner.call1(py, (key_to_str(py, &buf)?, stacklevel))?;
        }
        Ok(buf)
    }

    /// Each key of `keys` with its full key, for a method the face calls from one of its own.
    pub(crate) fn make_all<'py>(
        &self,
        keys: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<(Bound<'py, PyAny>, Vec<u8>)>> {
        keys.try_iter()?
            .map(|key| {
                let key = key?;
                let made = self.make(&key, version, FACE_STACKLEVEL)?;
                Ok((key, made))
            })
            .collect()
    }
}

/// Where a key warning points for a method the face calls from one of its own: past the warner and
/// the face's method, to the caller's line.
pub(crate) const FACE_STACKLEVEL: u8 = 3;

/// Memcached's key limit, in characters (Django's `MEMCACHE_MAX_KEY_LENGTH`).
const MEMCACHE_MAX_KEY_LENGTH: usize = 250;

/// Append the bytes of `str(obj)` (`"%s" % obj`) to `buf`.
pub(crate) fn push_str_of(buf: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
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

fn push_py_str(buf: &mut Vec<u8>, s: &Bound<'_, PyString>) -> PyResult<()> {
    if let Ok(text) = s.to_str() {
        buf.extend_from_slice(text.as_bytes());
    } else {
        let py = s.py();
        let encoded = s.call_method1(
            intern!(py, "encode"),
            (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
        )?;
        buf.extend_from_slice(encoded.cast::<PyBytes>()?.as_bytes());
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
