//! The clock expiry is measured on, read before any store lock is taken.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::store::Now;

/// The `time` module's namespace.
static TIME_MODULE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// Python's `time.time()` (which time-machine and freezegun move, as they move `LocMemCache`'s), or
/// the system clock read in Rust.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) python: bool,
}

impl Clock {
    pub(crate) fn now(self, py: Python<'_>) -> PyResult<Now> {
        if !self.python {
            return Ok(Now::system());
        }
        // Look `time.time` up in the module's dict on every call, so a replacement (freezegun) is
        // seen; time-machine patches the builtin itself, which any reference sees.
        let time = TIME_MODULE.get_or_try_init(py, || py.import("time").map(|m| m.dict().unbind()))?;
        let Some(now_fn) = time.bind(py).get_item(intern!(py, "time"))? else {
            return Ok(Now::system());
        };
        let secs: f64 = now_fn.call0()?.extract()?;
        Ok(Now::at_secs(secs))
    }
}
