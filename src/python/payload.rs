//! How Python values are held in the store, and turned back into Python values.
//!
//! Exact `int`s that fit in 64 bits become native integers (atomic `incr`, no decoding). An exact
//! `str` is immutable, so the object itself is kept and returned. Values of exact type `bytes`,
//! `float`, `bool` and `None` are held as plain Rust data and rebuilt on `get` (bytes are copied
//! into Rust: a Python `bytes` object would cost ~40 more bytes per entry). Either way it costs a
//! fraction of `pickle.loads`. Everything else, subclasses included (`SafeString`, `IntEnum`, `bool` stays `bool`), is
//! pickled, so it comes back with its exact type.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

use crate::store::{Value, Weigh};

/// What the binding stores for a value that is not a native integer.
#[derive(Debug)]
pub(crate) enum PyPayload {
    /// An exact `str`: immutable, so the object itself is kept and handed back (a new reference costs
    /// a few instructions; building a new `str` about 200). Its weight (UTF-8 length) rides along.
    Str(Py<PyString>, usize),
    Bytes(Box<[u8]>),
    Float(f64),
    Bool(bool),
    None,
    /// What `pickle.dumps` returned, copied into an allocation of exactly its size: the pickler's
    /// own output object can hold on to its larger working buffer, which doubled resident memory for
    /// small pickled values (`benchmarks/memory_budget.py`).
    Pickled(Box<[u8]>),
}

/// The weight of the fixed-size payloads, in bytes.
const SCALAR_WEIGHT: usize = 8;

impl Weigh for PyPayload {
    fn weight(&self) -> usize {
        match self {
            Self::Str(_, len) => *len,
            Self::Bytes(b) | Self::Pickled(b) => b.len(),
            Self::Float(_) | Self::Bool(_) | Self::None => SCALAR_WEIGHT,
        }
    }
}

/// The length of a `str` in UTF-8 (its weight), without leaving a cached UTF-8 copy inside the
/// object as `to_str` would for non-ASCII text. Lone surrogates count as the three bytes
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

static PICKLE_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PICKLE_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Turn a Python value into what the store holds. Pickling runs here, before any lock is taken,
/// and its errors propagate unchanged.
pub(crate) fn encode(value: &Bound<'_, PyAny>, protocol: i32) -> PyResult<Value<PyPayload>> {
    let py = value.py();
    if let Ok(int) = value.cast_exact::<PyInt>() {
        if let Ok(n) = int.extract::<i64>() {
            return Ok(Value::Int(n));
        }
    } else if let Ok(s) = value.cast_exact::<PyString>() {
        return Ok(Value::Data(PyPayload::Str(s.clone().unbind(), utf8_len(s)?)));
    } else if let Ok(b) = value.cast_exact::<PyBytes>() {
        return Ok(Value::Data(PyPayload::Bytes(b.as_bytes().into())));
    } else if let Ok(f) = value.cast_exact::<PyFloat>() {
        return Ok(Value::Data(PyPayload::Float(f.value())));
    } else if let Ok(b) = value.cast_exact::<PyBool>() {
        return Ok(Value::Data(PyPayload::Bool(b.is_true())));
    } else if value.is_none() {
        return Ok(Value::Data(PyPayload::None));
    }
    let dumps = PICKLE_DUMPS.import(py, "pickle", "dumps")?;
    let pickled = dumps.call1((value, protocol))?;
    let pickled = pickled.cast_into::<PyBytes>().map_err(PyErr::from)?;
    Ok(Value::Data(PyPayload::Pickled(pickled.as_bytes().into())))
}

/// A stored value on its way out: either already a Python object, or pickled bytes to load once
/// the lock is released (unpickling runs arbitrary code).
pub(crate) enum Decoded<'py> {
    Ready(Bound<'py, PyAny>),
    Pickled(Bound<'py, PyBytes>),
}

/// Build the Python form of a stored value. Safe under the store lock: it only allocates
/// immutable builtins or takes a new reference, and runs no Python code.
pub(crate) fn decode_in_lock<'py>(py: Python<'py>, value: &Value<PyPayload>) -> Decoded<'py> {
    let obj = match value {
        Value::Int(n) => PyInt::new(py, *n).into_any(),
        Value::Data(PyPayload::Pickled(p)) => return Decoded::Pickled(PyBytes::new(py, p)),
        Value::Data(PyPayload::Str(s, _)) => s.bind(py).clone().into_any(),
        Value::Data(PyPayload::Bytes(b)) => PyBytes::new(py, b).into_any(),
        Value::Data(PyPayload::Float(f)) => PyFloat::new(py, *f).into_any(),
        Value::Data(PyPayload::Bool(b)) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Data(PyPayload::None) => py.None().into_bound(py),
    };
    Decoded::Ready(obj)
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
