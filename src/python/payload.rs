//! How Python values are held in the store, and turned back into Python values.
//!
//! Everything is held as bytes, in the entry's record beside its key. Exact `int`s that fit in 64
//! bits are the store's native integers (atomic `incr` in place, no decoding). Values of exact type
//! `bytes`, `str`, `float`, `bool` and `None` are held as their plain contents and rebuilt on `get`,
//! for a fraction of what `pickle.loads` costs. Everything else, subclasses included (`SafeString`,
//! `IntEnum`), is pickled, so it comes back with its exact type; so is a `str` that is not valid
//! UTF-8 (lone surrogates), which pickle carries and UTF-8 cannot.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

use crate::store::{Kind, Record, INT};

const BYTES: Kind = 1;
/// UTF-8 text.
pub(crate) const STR: Kind = 2;
/// A little-endian `f64`.
const FLOAT: Kind = 3;
const TRUE: Kind = 4;
const FALSE: Kind = 5;
const NONE: Kind = 6;
const PICKLED: Kind = 7;

static PICKLE_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PICKLE_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Turn a Python value into the record the store holds for `key`. Pickling runs here, before any
/// lock is taken, and its errors propagate unchanged.
pub(crate) fn encode(key: &[u8], value: &Bound<'_, PyAny>, protocol: i32) -> PyResult<Record> {
    if let Ok(int) = value.cast_exact::<PyInt>() {
        if let Ok(n) = int.extract::<i64>() {
            return Ok(Record::int(key, n));
        }
    } else if let Ok(s) = value.cast_exact::<PyString>() {
        if let Ok(text) = s.to_str() {
            return Ok(Record::new(key, STR, text.as_bytes()));
        }
    } else if let Ok(b) = value.cast_exact::<PyBytes>() {
        return Ok(Record::new(key, BYTES, b.as_bytes()));
    } else if let Ok(f) = value.cast_exact::<PyFloat>() {
        return Ok(Record::new(key, FLOAT, &f.value().to_le_bytes()));
    } else if let Ok(b) = value.cast_exact::<PyBool>() {
        return Ok(Record::new(key, if b.is_true() { TRUE } else { FALSE }, &[]));
    } else if value.is_none() {
        return Ok(Record::new(key, NONE, &[]));
    }
    let dumps = PICKLE_DUMPS.import(value.py(), "pickle", "dumps")?;
    let pickled = dumps.call1((value, protocol))?;
    let pickled = pickled.cast_into::<PyBytes>().map_err(PyErr::from)?;
    Ok(Record::new(key, PICKLED, pickled.as_bytes()))
}

/// A stored value on its way out: either already a Python object, or pickled bytes to load once
/// the lock is released (unpickling runs arbitrary code).
pub(crate) enum Decoded<'py> {
    Ready(Bound<'py, PyAny>),
    Pickled(Bound<'py, PyBytes>),
}

/// Build the Python form of a stored value. Safe under the store lock: it only allocates
/// immutable builtins, and runs no Python code.
pub(crate) fn decode_in_lock<'py>(py: Python<'py>, record: &Record) -> Decoded<'py> {
    let value = record.value();
    let obj = match record.kind() {
        INT => match record.as_int() {
            Some(n) => PyInt::new(py, n).into_any(),
            None => malformed(py, value),
        },
        PICKLED => return Decoded::Pickled(PyBytes::new(py, value)),
        // Written from a `str`'s UTF-8, so valid; `from_utf8_lossy` borrows it as it is.
        STR => PyString::new(py, &String::from_utf8_lossy(value)).into_any(),
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
