//! The `PyO3` binding: argument conversion, error mapping, logging set-up and the per-LOCATION
//! registry. Nothing here knows Django; `python/django_rustcache` does.

mod args;
mod clock;
mod errors;
mod handle;
mod keys;
mod near;
mod payload;
mod registry;
mod shared_handle;
mod timeout;

/// The native half of django-rustcache. Use `django_rustcache.RustCache`, not this module.
// `gil_used = true`: `get` builds str/bytes/int objects while holding the store lock. With the GIL
// that is safe (those allocations run no Python code and cannot start a garbage collection), but on
// a free-threaded build an allocation may wait for a stop-the-world pause that a thread blocked on
// the same lock would never join. Until the lock waits detached, we ask for the GIL.
#[pyo3::pymodule(gil_used = true, name = "_core")]
pub mod core_module {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::handle::{EvictionConflict, PyCache};
    #[pymodule_export]
    use super::near::{near_after_fork, near_before_fork, PyNearCache};

    #[pymodule_export]
    use super::shared_handle::{_after_fork, PySharedCache};

    #[pymodule_export]
    use super::errors::SharedStoreError;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("ENTRY_OVERHEAD", crate::store::ENTRY_OVERHEAD)?;
        m.add("SHARED_ENTRY_OVERHEAD", crate::shared::ENTRY_OVERHEAD)?;
        // Cache loggers but not levels, so a change of logging configuration at run time takes
        // effect. Another extension may have installed a `log` backend already: then ours is not
        // needed, and that is not an error.
        let logger = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::Loggers)?;
        let _ = logger.install();
        Ok(())
    }
}
