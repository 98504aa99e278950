//! How Python values are held in the store, and turned back into Python values.
//!
//! Values are held as bytes, in the entry's record beside its key. Exact `int`s that fit in 64 bits
//! are the store's native integers (atomic `incr` in place, no decoding). Values of exact type
//! `bytes`, `float`, `bool` and `None` are held as their plain contents and rebuilt on `get`, for a
//! fraction of what `pickle.loads` costs. An exact `str` is immutable, so the object itself is kept
//! (the record's attachment) and handed back: a new reference costs a few instructions, building a
//! `str` from UTF-8 about 300, an eighth of a whole `get`. Everything else, subclasses included
//! (`SafeString`, `IntEnum`), is pickled, so it comes back with its exact type.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

use crate::store::{Attachment, Item, Kind, Record, INT};

/// What the store keeps beside a record: the `str` object of an exact `str` value.
pub(crate) type Held = Py<PyString>;

const BYTES: Kind = 1;
/// An exact `str`: the object is the record's attachment, the record's value is empty.
pub(crate) const STR: Kind = 2;
/// A little-endian `f64`.
const FLOAT: Kind = 3;
const TRUE: Kind = 4;
const FALSE: Kind = 5;
const NONE: Kind = 6;
const PICKLED: Kind = 7;
/// An exact `str` held as its UTF-8 bytes, by a store that keeps no Python objects (the shared
/// store: its values live in a file that other processes read).
pub(crate) const UTF8: Kind = 8;

static PICKLE_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PICKLE_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The length of a `str` in UTF-8 (what it is charged), without leaving a cached UTF-8 copy inside
/// the object as `to_str` would for non-ASCII text. Lone surrogates count as the three bytes
/// `surrogatepass` gives them.
fn utf8_len(s: &Bound<'_, PyString>) -> PyResult<usize> {
    let py = s.py();
    if s.call_method0(intern!(py, "isascii"))?.is_truthy()? {
        return s.len();
    }
    let encoded = s.call_method1(
        intern!(py, "encode"),
        (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
    )?;
    encoded.len()
}

/// Turn a Python value into what the store holds for `key`. Pickling runs here, before any lock is
/// taken, and its errors propagate unchanged.
pub(crate) fn encode(key: &[u8], value: &Bound<'_, PyAny>, protocol: i32) -> PyResult<Item<Held>> {
    if let Ok(s) = value.cast_exact::<PyString>() {
        return Ok(Item {
            record: Record::new(key, STR, &[]),
            attachment: Some(Attachment {
                object: s.clone().unbind(),
                weight: utf8_len(s)?,
            }),
        });
    }
    let plain = encode_plain(value, protocol)?;
    Ok(Record::new(key, plain.kind, plain.bytes()).into())
}

/// A value as plain bytes, for a store that keeps no Python object (`SharedCache`): its kind and
/// contents, borrowed from the value where they can be.
pub(crate) struct Plain<'py> {
    pub(crate) kind: Kind,
    contents: Contents<'py>,
}

enum Contents<'py> {
    Fixed([u8; 8], usize),
    Bytes(Bound<'py, PyBytes>),
    Text(Bound<'py, PyString>),
}

impl Plain<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.contents {
            Contents::Fixed(buf, len) => &buf[..*len],
            Contents::Bytes(b) => b.as_bytes(),
            // Checked to be valid UTF-8 in `encode_plain`.
            Contents::Text(s) => s.to_str().map_or(&[], str::as_bytes),
        }
    }
}

/// `encode` for a store that keeps no Python objects: an exact `str` is held as UTF-8 (a `str` with
/// lone surrogates, which has none, is pickled), everything else as `encode` holds it.
pub(crate) fn encode_plain<'py>(value: &Bound<'py, PyAny>, protocol: i32) -> PyResult<Plain<'py>> {
    let fixed = |kind, bytes: &[u8]| {
        let mut buf = [0; 8];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(Plain {
            kind,
            contents: Contents::Fixed(buf, bytes.len()),
        })
    };
    if let Ok(int) = value.cast_exact::<PyInt>() {
        if let Ok(n) = int.extract::<i64>() {
            return fixed(INT, &n.to_le_bytes());
        }
    } else if let Ok(s) = value.cast_exact::<PyString>() {
        if s.to_str().is_ok() {
            return Ok(Plain {
                kind: UTF8,
                contents: Contents::Text(s.clone()),
            });
        }
    } else if let Ok(b) = value.cast_exact::<PyBytes>() {
        return Ok(Plain {
            kind: BYTES,
            contents: Contents::Bytes(b.clone()),
        });
    } else if let Ok(f) = value.cast_exact::<PyFloat>() {
        return fixed(FLOAT, &f.value().to_le_bytes());
    } else if let Ok(b) = value.cast_exact::<PyBool>() {
        return fixed(if b.is_true() { TRUE } else { FALSE }, &[]);
    } else if value.is_none() {
        return fixed(NONE, &[]);
    }
    let dumps = PICKLE_DUMPS.import(value.py(), "pickle", "dumps")?;
    let pickled = dumps.call1((value, protocol))?;
    let pickled = pickled.cast_into::<PyBytes>().map_err(PyErr::from)?;
    Ok(Plain {
        kind: PICKLED,
        contents: Contents::Bytes(pickled),
    })
}

/// A stored value on its way out: either already a Python object, or pickled bytes to load once
/// the lock is released (unpickling runs arbitrary code).
pub(crate) enum Decoded<'py> {
    Ready(Bound<'py, PyAny>),
    Pickled(Bound<'py, PyBytes>),
}

/// Build the Python form of a stored value. Safe under the store lock: it only allocates
/// immutable builtins or takes a new reference, and runs no Python code.
pub(crate) fn decode_in_lock<'py>(py: Python<'py>, record: &Record, held: Option<&Held>) -> Decoded<'py> {
    if let Some(s) = held {
        return Decoded::Ready(s.bind(py).clone().into_any());
    }
    decode_plain(py, record.kind(), record.value())
}

/// Build the Python form of a value held as plain bytes (`decode_in_lock` without a held object; all
/// of `SharedCache`'s values). Runs no Python code, so it is safe inside a store lock or an LMDB
/// read transaction.
pub(crate) fn decode_plain<'py>(py: Python<'py>, kind: Kind, value: &[u8]) -> Decoded<'py> {
    let obj = match kind {
        INT => match value.try_into() {
            Ok(bits) => PyInt::new(py, i64::from_le_bytes(bits)).into_any(),
            Err(_) => malformed(py, value),
        },
        UTF8 => match std::str::from_utf8(value) {
            Ok(text) => PyString::new(py, text).into_any(),
            Err(_) => malformed(py, value),
        },
        PICKLED => return Decoded::Pickled(PyBytes::new(py, value)),
        BYTES => PyBytes::new(py, value).into_any(),
        FLOAT => match value.try_into() {
            Ok(bits) => PyFloat::new(py, f64::from_le_bytes(bits)).into_any(),
            Err(_) => malformed(py, value),
        },
        TRUE => PyBool::new(py, true).to_owned().into_any(),
        FALSE => PyBool::new(py, false).to_owned().into_any(),
        NONE => py.None().into_bound(py),
        _ => malformed(py, value),
    };
    Decoded::Ready(obj)
}

/// Every record is written by `encode`, so no kind is unknown and no fixed-size value has the
/// wrong size; were one ever read, its raw bytes are returned rather than a panic or a guess.
fn malformed<'py>(py: Python<'py>, value: &[u8]) -> Bound<'py, PyAny> {
    PyBytes::new(py, value).into_any()
}

impl<'py> Decoded<'py> {
    /// The value as Python sees it; unpickles if needed. Call with no lock held.
    pub(crate) fn into_value(self) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Self::Ready(obj) => Ok(obj),
            Self::Pickled(bytes) => {
                let loads = PICKLE_LOADS.import(bytes.py(), "pickle", "loads")?;
                loads.call1((bytes,))
            }
        }
    }
}

/// The bytes Django's `RedisSerializer` stores for `value`: an exact `int` (of any size) as its
/// decimal digits (redis-py's encoding of an int), anything else pickled with `protocol`.
pub(crate) fn to_server(value: &Bound<'_, PyAny>, protocol: i32) -> PyResult<Vec<u8>> {
    if let Ok(int) = value.cast_exact::<PyInt>() {
        return Ok(match int.extract::<i64>() {
            Ok(n) => n.to_string().into_bytes(),
            Err(_) => int.str()?.to_str()?.as_bytes().to_vec(),
        });
    }
    let dumps = PICKLE_DUMPS.import(value.py(), "pickle", "dumps")?;
    let pickled = dumps.call1((value, protocol))?;
    Ok(pickled.cast_into::<PyBytes>().map_err(PyErr::from)?.as_bytes().to_vec())
}

/// `RedisSerializer.loads`: `int(data)`, else `pickle.loads(data)`.
pub(crate) fn from_server<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(Ok(n)) = std::str::from_utf8(data).map(str::parse::<i64>) {
        return Ok(PyInt::new(py, n).into_any());
    }
    let bytes = PyBytes::new(py, data);
    // A pickle (protocol 2 and later) starts with PROTO (0x80), which `int()` never accepts.
    if data.first() != Some(&0x80) {
        match py.get_type::<PyInt>().call1((&bytes,)) {
            Ok(n) => return Ok(n),
            Err(err) if err.is_instance_of::<pyo3::exceptions::PyValueError>(py) => {}
            Err(err) => return Err(err),
        }
    }
    let loads = PICKLE_LOADS.import(py, "pickle", "loads")?;
    loads.call1((bytes,))
}

/// What the local copy holds for a value read from the server: exact builtins as `encode` holds
/// them (a `str` kept as the object, an int past 64 bits pickled), anything else as the server's
/// pickle, loaded at every hit.
pub(crate) fn hold_loaded(key: &[u8], obj: &Bound<'_, PyAny>, data: &[u8], protocol: i32) -> PyResult<Item<Held>> {
    // An int past 64 bits came as digits, not as a pickle: `encode` pickles it for the local copy.
    let exact = obj.cast_exact::<PyInt>().is_ok()
        || obj.cast_exact::<PyString>().is_ok()
        || obj.cast_exact::<PyBytes>().is_ok()
        || obj.cast_exact::<PyFloat>().is_ok()
        || obj.cast_exact::<PyBool>().is_ok()
        || obj.is_none();
    if exact {
        encode(key, obj, protocol)
    } else {
        Ok(Record::new(key, PICKLED, data).into())
    }
}
