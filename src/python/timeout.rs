//! Django's `timeout` argument, resolved to a [`Ttl`] as `BaseCache.get_backend_timeout` does, or
//! by the backend's own `get_backend_timeout` where a subclass overrides it.

use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt};

use crate::store::Ttl;

/// How one backend instance turns a `timeout` argument into a [`Ttl`]. Shared by every handle.
pub(crate) struct Timeouts {
    default: Ttl,
    /// Django's `DEFAULT_TIMEOUT` sentinel: a `timeout` that *is* this object means "the default".
    sentinel: Py<PyAny>,
    /// A subclass's `get_backend_timeout` (the usual hook for capping or jittering timeouts), bound to
    /// the instance: called with every timeout, and its answer (`None`, or an absolute Unix time, as
    /// `LocMemCache` stores it) is the entry's deadline.
    hook: Option<Py<PyAny>>,
}

impl Timeouts {
    pub(crate) fn new(
        default_timeout: &Bound<'_, PyAny>,
        sentinel: Py<PyAny>,
        hook: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        Ok(Self {
            default: ttl_from_py(default_timeout)?,
            sentinel,
            hook,
        })
    }

    pub(crate) fn has_hook(&self) -> bool {
        self.hook.is_some()
    }

    pub(crate) fn resolve(&self, timeout: &Bound<'_, PyAny>) -> PyResult<Ttl> {
        self.resolve_as(timeout, true)
    }

    /// `resolve`, skipping the hook when `hooked` is false: a lock's timeout is the lock's contract
    /// (django-redis's locks never pass through `get_backend_timeout` either), so a capping or
    /// jittering hook must not shorten how long a lock excludes others.
    pub(crate) fn resolve_as(&self, timeout: &Bound<'_, PyAny>, hooked: bool) -> PyResult<Ttl> {
        if let Some(hook) = self.hook.as_ref().filter(|_| hooked) {
            let deadline = hook.bind(timeout.py()).call1((timeout,))?;
            return if deadline.is_none() {
                Ok(Ttl::Forever)
            } else {
                Ok(Ttl::At(deadline.extract()?))
            };
        }
        if timeout.is(&self.sentinel) {
            Ok(self.default)
        } else {
            ttl_from_py(timeout)
        }
    }
}

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
