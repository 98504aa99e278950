//! The one place store errors become Python exceptions, as Django's own backends raise them.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;

use super::keys::key_to_str;
use crate::store::StoreError;

/// `incr` on a missing key: `ValueError("Key ':1:k' not found")`, `LocMemCache`'s text (with the
/// made key).
pub(crate) fn key_not_found(py: Python<'_>, key: &[u8]) -> PyErr {
    // Formatted by Python, so a key with lone surrogates is shown as it is.
    let message = key_to_str(py, key).and_then(|k| intern!(py, "Key '{}' not found").call_method1("format", (k,)));
    match message {
        Ok(message) => PyValueError::new_err(message.unbind()),
        Err(err) => err,
    }
}

/// Any other store error: the value is too large for the byte budget (`ValueError`), or a number
/// is not a number (`TypeError`).
pub(crate) fn to_py(py: Python<'_>, key: &[u8], err: &StoreError) -> PyErr {
    match err {
        StoreError::NotFound => key_not_found(py, key),
        StoreError::NotAnInteger | StoreError::Overflow => PyTypeError::new_err(err.to_string()),
        StoreError::TooLarge { .. } => PyValueError::new_err(err.to_string()),
    }
}

pyo3::create_exception!(
    django_rustcache._core,
    SharedStoreError,
    pyo3::exceptions::PyOSError,
    "A SharedCache's LMDB store could not be opened or used (a foreign or damaged file, the file \
     system, LMDB itself)."
);

/// A shared-store error: the store errors as for every backend, the rest as `SharedStoreError`
/// with LMDB's or the file system's words.
pub(crate) fn shared_to_py(py: Python<'_>, key: &[u8], err: &crate::shared::SharedError) -> PyErr {
    match err {
        crate::shared::SharedError::Store(err) => to_py(py, key, err),
        other => SharedStoreError::new_err(other.to_string()),
    }
}
