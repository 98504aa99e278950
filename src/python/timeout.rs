//! Django's `timeout` argument, resolved to a [`Ttl`] as `BaseCache.get_backend_timeout` does.

use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt};

use crate::store::Ttl;

/// `None` never expires; numbers are seconds, and zero or less is not cached (Django maps `0` to
/// `-1`, ticket 21147). Anything `time.time() + timeout` accepts works (a `Fraction`, say); anything
/// it rejects raises the same `TypeError` (a `str`, a `Decimal`).
pub(crate) fn ttl_from_py(timeout: &Bound<'_, PyAny>) -> PyResult<Ttl> {
    if timeout.is_none() {
        return Ok(Ttl::Forever);
    }
    let secs: f64 = if timeout.is_instance_of::<PyInt>() || timeout.is_instance_of::<PyFloat>() {
        timeout.extract()?
    } else if timeout.eq(0)? {
        // `BaseCache.get_backend_timeout` tests `timeout == 0` first: `Decimal(0)` means "not cached".
        0.0
    } else {
        // Mirror `time.time() + timeout`: a float on the left, Python's own rules for the rest.
        PyFloat::new(timeout.py(), 0.0).add(timeout)?.extract()?
    };
    Ok(Ttl::Seconds(secs))
}
