//! Arguments every handle takes apart the same way.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// `for key, value in data.items()`: any iterable of exactly two items unpacks.
pub(crate) fn pair<'py>(item: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    if let Ok(pair) = item.extract() {
        return Ok(pair);
    }
    let mut parts = item.try_iter()?;
    let mut next = || parts.next().transpose();
    match (next()?, next()?, next()?) {
        (Some(key), Some(value), None) => Ok((key, value)),
        (_, _, Some(_)) => Err(PyValueError::new_err("too many values to unpack (expected 2)")),
        (first, _, _) => Err(PyValueError::new_err(format!(
            "not enough values to unpack (expected 2, got {})",
            usize::from(first.is_some())
        ))),
    }
}

/// `delta` as a native step, if it is an exact `int` in the 64-bit range.
pub(crate) fn native_int(delta: &Bound<'_, PyAny>) -> Option<i64> {
    delta.cast_exact::<pyo3::types::PyInt>().ok()?.extract::<i64>().ok()
}
