//! `_core.SharedCache`: one backend instance's handle on the host-shared store of its LOCATION
//! (`crate::shared`). Keys, values, timeouts, the clock and errors are made as for `_core.Cache`
//! (the same modules); what differs is the store: an LMDB environment that every process of the
//! host opens.
//!
//! Every method is one native call and at most two LMDB transactions, each begun and ended inside
//! the call on the calling thread. Reads run with the GIL held (an LMDB read never waits); writes
//! release it (`py.detach`) around the write transaction, which may wait for another process's
//! writer, and hold nothing Python-level meanwhile: only bytes.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::{intern, IntoPyObjectExt};

use super::args::{native_int, pair};
use super::clock::Clock;
use super::errors::{key_not_found, shared_to_py, SharedStoreError};
use super::keys::{key_to_str, KeyMaker, FACE_STACKLEVEL};
use super::payload::{decode_plain, encode_plain, Decoded, UTF8};
use super::timeout::Timeouts;
use crate::shared::{self, OpenOptions, SharedError, SharedStore, GENERATION};
use crate::store::{Limits, Now, StoreError, Timestamp, Ttl, INT};

/// A backend instance's handle on the shared store of its LOCATION.
#[pyclass(frozen, name = "SharedCache", module = "django_rustcache._core")]
pub struct PySharedCache {
    location: PathBuf,
    open: OpenOptions,
    /// The store, and the fork generation it was opened in: a child process reopens its own.
    store: RwLock<(u64, Arc<SharedStore>)>,
    keys: KeyMaker,
    timeouts: Timeouts,
    limits: Limits,
    protocol: i32,
    clock: Clock,
}

/// Forget the parent's environments (never closing them) in a child process: `os.fork()` calls it
/// (`os.register_at_fork`, registered by the face).
#[pyfunction]
pub fn _after_fork() {
    shared::after_fork();
}

fn open_error(err: &SharedError) -> PyErr {
    SharedStoreError::new_err(err.to_string())
}

impl PySharedCache {
    /// The store for this process (reopened after a fork).
    fn store(&self) -> PyResult<Arc<SharedStore>> {
        let generation = GENERATION.load(Ordering::Acquire);
        {
            let current = self.store.read();
            if current.0 == generation {
                return Ok(Arc::clone(&current.1));
            }
        }
        // Opened with the GIL held: no Python thread can fork meanwhile (and leave the registry's
        // lock held in the child).
        let store = shared::store_for(&self.location, self.open).map_err(|e| open_error(&e))?;
        *self.store.write() = (generation, Arc::clone(&store));
        Ok(store)
    }

    fn key(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        self.keys.make(key, version, FACE_STACKLEVEL)
    }

    fn key_and_now(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<(Vec<u8>, Now)> {
        let made = self.key(key, version)?;
        Ok((made, self.clock.now(key.py())?))
    }

    fn get_made<'py>(&self, key: &[u8], default: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = default.py();
        let now = self.clock.now(py)?.get();
        let found = self
            .store()?
            .get(key, now, |kind, data| decode_plain(py, kind, data))
            .map_err(|e| shared_to_py(py, key, &e))?;
        match found {
            Some(found) => found.into_value(),
            None => Ok(default.clone()),
        }
    }

    /// As `_core.Cache`: the timeout as a `Ttl`, or `None` when it is bad but `LocMemCache` would not
    /// have looked at it (`add` reads it only for an absent key, `touch` only for a present one).
    fn resolve_ttl_if_read(
        &self,
        timeout: &Bound<'_, PyAny>,
        key: &[u8],
        now: &Now,
        read_when_present: bool,
    ) -> PyResult<Option<Ttl>> {
        match self.timeouts.resolve(timeout) {
            Ok(ttl) => Ok(Some(ttl)),
            Err(err) => {
                let present = self
                    .store()?
                    .contains(key, now.get())
                    .map_err(|e| shared_to_py(timeout.py(), key, &e))?;
                if present == read_when_present {
                    Err(err)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Run a write with the GIL released; a refusal for size is logged (as the in-process store
    /// logs it) and reported as `Ok(false)`.
    fn write<T: Send>(
        &self,
        py: Python<'_>,
        key: &[u8],
        op: impl FnOnce(&SharedStore) -> Result<T, SharedError> + Send,
    ) -> PyResult<Result<T, StoreError>> {
        let store = self.store()?;
        match py.detach(|| op(&store)) {
            Ok(value) => Ok(Ok(value)),
            Err(SharedError::Store(err @ StoreError::TooLarge { .. })) => {
                log::warn!(target: "django_rustcache.store", "value not stored: {err}; the key's old value was removed");
                Ok(Err(err))
            }
            Err(SharedError::Store(err)) => Ok(Err(err)),
            Err(err) => Err(shared_to_py(py, key, &err)),
        }
    }
}

#[pymethods]
impl PySharedCache {
    #[new]
    #[pyo3(signature = (
        location, *, key_prefix, version, default_timeout, timeout_sentinel, max_entries,
        cull_frequency, max_bytes, pickle_protocol, make_keys, key_warner, python_clock, map_size,
        timeout_hook = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        location: PathBuf,
        key_prefix: &Bound<'_, PyAny>,
        version: &Bound<'_, PyAny>,
        default_timeout: &Bound<'_, PyAny>,
        timeout_sentinel: Py<PyAny>,
        max_entries: i64,
        cull_frequency: i64,
        max_bytes: Option<usize>,
        pickle_protocol: i32,
        make_keys: bool,
        key_warner: Py<PyAny>,
        python_clock: bool,
        map_size: usize,
        timeout_hook: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let open = OpenOptions { map_size };
        let store = shared::store_for(&location, open).map_err(|e| open_error(&e))?;
        Ok(Self {
            location,
            open,
            store: RwLock::new((GENERATION.load(Ordering::Acquire), store)),
            keys: KeyMaker::new(key_prefix, version, make_keys, key_warner)?,
            timeouts: Timeouts::new(default_timeout, timeout_sentinel, timeout_hook)?,
            limits: Limits {
                max_entries,
                cull_frequency,
                max_bytes,
            },
            protocol: pickle_protocol,
            clock: Clock { python: python_clock },
        })
    }

    /// The value stored under `key`, or `default`.
    fn get<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let made = self.key(key, version)?;
        self.get_made(&made, default)
    }

    /// `get` with Django's signature, bound as the instance's own `get` (see `_core.Cache`).
    #[pyo3(signature = (key, default = None, version = None))]
    fn direct_get<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: Option<&Bound<'py, PyAny>>,
        version: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = key.py();
        let none = py.None().into_bound(py);
        let made = self.keys.make(key, version.unwrap_or(&none), 2)?;
        self.get_made(&made, default.unwrap_or(&none))
    }

    /// A dict of the keys found, in the order asked for; one read transaction.
    fn get_many<'py>(&self, keys: &Bound<'py, PyAny>, version: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let py = keys.py();
        let keys = self.keys.make_all(keys, version)?;
        let now = self.clock.now(py)?.get();
        let made: Vec<Vec<u8>> = keys.iter().map(|(_, m)| m.clone()).collect();
        let mut found: Vec<(usize, Decoded<'py>)> = Vec::new();
        self.store()?
            .get_many(&made, now, |i, kind, data| {
                found.push((i, decode_plain(py, kind, data)));
            })
            .map_err(|e| shared_to_py(py, &[], &e))?;
        let result = PyDict::new(py);
        for (i, value) in found {
            result.set_item(&keys[i].0, value.into_value()?)?;
        }
        Ok(result)
    }

    /// Store `value` under `key`. A value larger than the byte budget (or than the whole map) is not
    /// stored (logged) and the key's old value is removed.
    fn set(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        timeout: &Bound<'_, PyAny>,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = key.py();
        let key = self.key(key, version)?;
        let plain = encode_plain(value, self.protocol)?;
        let ttl = self.timeouts.resolve(timeout)?;
        let now = self.clock.now(py)?;
        let deadline = ttl.deadline(&now);
        let (kind, data, at, limits) = (plain.kind, plain.bytes(), now.get(), &self.limits);
        let _ = self.write(py, &key, |s| s.set(&key, kind, data, deadline, limits, at))?;
        Ok(())
    }

    /// Store `value` only if `key` holds no live value; whether it was stored (exactly one winner
    /// across every process).
    fn add(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        timeout: &Bound<'_, PyAny>,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let py = key.py();
        let key = self.key(key, version)?;
        let plain = encode_plain(value, self.protocol)?;
        let now = self.clock.now(py)?;
        let Some(ttl) = self.resolve_ttl_if_read(timeout, &key, &now, false)? else {
            return Ok(false);
        };
        let deadline = ttl.deadline(&now);
        let (kind, data, at, limits) = (plain.kind, plain.bytes(), now.get(), &self.limits);
        Ok(self
            .write(py, &key, |s| s.add(&key, kind, data, deadline, limits, at))?
            .unwrap_or(false))
    }

    /// `add` for `cache.lock()`: the entry goes to the store's `locks` database, never culled nor
    /// evicted (it still expires at its timeout, and is an ordinary entry to every other method).
    fn lock_add(
        &self,
        key: &Bound<'_, PyAny>,
        token: &Bound<'_, PyString>,
        timeout: &Bound<'_, PyAny>,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let py = key.py();
        let key = self.key(key, version)?;
        let plain = encode_plain(token, self.protocol)?;
        let now = self.clock.now(py)?;
        // A lock's own timeout, never passed through a `get_backend_timeout` override.
        let deadline = self.timeouts.resolve_as(timeout, false)?.deadline(&now);
        let (kind, data, at) = (plain.kind, plain.bytes(), now.get());
        Ok(self
            .write(py, &key, |s| s.lock_add(&key, kind, data, deadline, at))?
            .unwrap_or(false))
    }

    /// `touch` for `cache.lock()`'s `extend` and `reacquire`: the lock's own timeout, never passed
    /// through a `get_backend_timeout` override.
    fn lock_touch(
        &self,
        key: &Bound<'_, PyAny>,
        timeout: &Bound<'_, PyAny>,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let py = key.py();
        let (key, now) = self.key_and_now(key, version)?;
        let deadline = self.timeouts.resolve_as(timeout, false)?.deadline(&now);
        let at = now.get();
        Ok(self.write(py, &key, |s| s.touch(&key, deadline, at))?.unwrap_or(false))
    }

    /// Store every item of `data` in one write transaction; the keys that could not be stored (too
    /// large: their old values are removed). Every value is pickled before anything is stored.
    fn set_many<'py>(
        &self,
        data: &Bound<'py, PyAny>,
        timeout: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = data.py();
        let mut keys = Vec::new();
        let mut items = Vec::new();
        for item in data.call_method0(intern!(py, "items"))?.try_iter()? {
            let (key, value) = pair(&item?)?;
            let made = self.key(&key, version)?;
            let plain = match encode_plain(&value, self.protocol) {
                Ok(plain) => plain,
                Err(err) => {
                    let note = format!(
                        "set_many() stored nothing: the value for key {} could not be pickled",
                        key.repr()?
                    );
                    err.add_note(py, note)?;
                    return Err(err);
                }
            };
            items.push((made, plain.kind, plain.bytes().to_vec(), None));
            keys.push(key);
        }
        if items.is_empty() {
            return Ok(PyList::empty(py));
        }
        let now = self.clock.now(py)?;
        if self.timeouts.has_hook() {
            // A `get_backend_timeout` override is asked once per key, as `LocMemCache.set` asks it.
            for item in &mut items {
                item.3 = self.timeouts.resolve(timeout)?.deadline(&now);
            }
        } else {
            let deadline = self.timeouts.resolve(timeout)?.deadline(&now);
            for item in &mut items {
                item.3 = deadline;
            }
        }
        let (at, limits) = (now.get(), &self.limits);
        let refused = self
            .write(py, &[], |s| s.set_many(&items, limits, at))?
            .unwrap_or_default();
        if !refused.is_empty() {
            log::warn!(target: "django_rustcache.store", "{} value(s) not stored: too large for MAX_BYTES or the map; their old values were removed", refused.len());
        }
        PyList::new(py, refused.into_iter().map(|i| &keys[i]))
    }

    /// Give `key` a new timeout; whether it was there to touch.
    fn touch(&self, key: &Bound<'_, PyAny>, timeout: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = key.py();
        let (key, now) = self.key_and_now(key, version)?;
        let Some(ttl) = self.resolve_ttl_if_read(timeout, &key, &now, true)? else {
            return Ok(false);
        };
        let (deadline, at) = (ttl.deadline(&now), now.get());
        Ok(self.write(py, &key, |s| s.touch(&key, deadline, at))?.unwrap_or(false))
    }

    /// Remove `key`; whether a live value was removed.
    fn delete(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = key.py();
        let (key, now) = self.key_and_now(key, version)?;
        let at = now.get();
        Ok(self.write(py, &key, |s| s.delete(&key, at))?.unwrap_or(false))
    }

    /// Remove every key given (one write transaction); how many live values were removed.
    fn delete_many(&self, keys: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<usize> {
        let py = keys.py();
        let made: Vec<Vec<u8>> = self.keys.make_all(keys, version)?.into_iter().map(|(_, m)| m).collect();
        let at = self.clock.now(py)?.get();
        Ok(self.write(py, &[], |s| s.delete_many(&made, at))?.unwrap_or(0))
    }

    /// Remove `key` only if it holds a `str` equal to `expected` (atomically); whether it did.
    fn delete_if_equal(&self, key: &Bound<'_, PyAny>, expected: &str, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = key.py();
        let (key, now) = self.key_and_now(key, version)?;
        let at = now.get();
        Ok(self
            .write(py, &key, |s| s.delete_if_equal(&key, UTF8, expected.as_bytes(), at))?
            .unwrap_or(false))
    }

    /// Seconds until `key` expires: `-1.0` if it never does, `-2.0` if there is no live value.
    fn ttl(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<f64> {
        let py = key.py();
        let (key, now) = self.key_and_now(key, version)?;
        let deadline = self
            .store()?
            .deadline(&key, now.get())
            .map_err(|e| shared_to_py(py, &key, &e))?;
        Ok(match deadline {
            None => -2.0,
            Some(deadline) if deadline == Timestamp::NEVER || deadline.as_secs_f64().is_nan() => -1.0,
            Some(deadline) => (((deadline.as_secs_f64() - now.secs()) * 1e6).round() / 1e6).max(0.0),
        })
    }

    /// The full keys (as made) of the live entries that start with `prefix`.
    fn live_keys<'py>(&self, py: Python<'py>, prefix: &str) -> PyResult<Vec<Bound<'py, PyString>>> {
        let now = self.clock.now(py)?.get();
        let keys = self
            .store()?
            .live_keys(prefix.as_bytes(), now)
            .map_err(|e| shared_to_py(py, &[], &e))?;
        keys.iter().map(|k| key_to_str(py, k)).collect()
    }

    fn has_key(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = key.py();
        let (key, now) = self.key_and_now(key, version)?;
        self.store()?
            .contains(&key, now.get())
            .map_err(|e| shared_to_py(py, &key, &e))
    }

    /// Add `delta` to the number under `key` and return the new value, keeping the key's expiry.
    /// A native integer and an integer delta take one write transaction; anything else is added in
    /// Python and written back with a compare-and-swap, retried if another writer (in any process)
    /// got in between.
    fn incr<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        delta: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = key.py();
        let (key, now) = self.key_and_now(key, version)?;
        let at = now.get();
        if let Some(step) = native_int(delta) {
            match self.write(py, &key, |s| s.incr(&key, INT, step, at))? {
                Ok(n) => return n.into_bound_py_any(py),
                Err(StoreError::NotFound) => return Err(key_not_found(py, &key)),
                Err(_) => {}
            }
        }
        let store = self.store()?;
        loop {
            let Some(expected) = store.get_for_update(&key, at).map_err(|e| shared_to_py(py, &key, &e))? else {
                return Err(key_not_found(py, &key));
            };
            let current = decode_plain(py, expected.kind, &expected.data).into_value()?;
            let new_value = current.add(delta)?;
            let plain = encode_plain(&new_value, self.protocol)?;
            let (kind, data, limits) = (plain.kind, plain.bytes(), &self.limits);
            match self.write(py, &key, |s| s.replace_if(&key, &expected, kind, data, limits, at))? {
                Ok(true) => return Ok(new_value),
                Ok(false) => {}
                Err(err) => return Err(super::errors::to_py(py, &key, &err)),
            }
        }
    }

    /// Remove every entry and lock of this LOCATION, for every process.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let at = self.clock.now(py)?.get();
        self.write(py, &[], |s| s.clear(at))?.ok();
        Ok(())
    }

    /// Counters (summed over every process of the host, as of each one's last write, plus this
    /// process's reads since its own), sizes, and the limits this instance writes with.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let snap = self.store()?.snapshot().map_err(|e| shared_to_py(py, &[], &e))?;
        let c = snap.counters;
        let stats = PyDict::new(py);
        stats.set_item("hits", c.hits)?;
        stats.set_item("misses", c.misses)?;
        stats.set_item("sets", c.sets)?;
        stats.set_item("deletes", c.deletes)?;
        stats.set_item("evictions", c.evictions)?;
        stats.set_item("expirations", c.expirations)?;
        stats.set_item("refused", c.refused)?;
        stats.set_item("entries", snap.entries)?;
        stats.set_item("bytes", snap.bytes)?;
        stats.set_item("max_entries", self.limits.max_entries)?;
        stats.set_item("cull_frequency", self.limits.cull_frequency)?;
        stats.set_item("max_bytes", self.limits.max_bytes)?;
        Ok(stats)
    }

    /// The environment as LMDB sees it in this process: map size, reader slots in use, pid, path.
    fn _environment<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let info = PyDict::new(py);
        info.set_item("map_size", store.map_size())?;
        info.set_item("readers", store.readers_in_use())?;
        info.set_item("max_readers", shared::MAX_READERS)?;
        info.set_item("pid", store.pid())?;
        info.set_item("location", store.location())?;
        Ok(info)
    }

    /// Clear the reader slots of dead processes now; how many were cleared.
    fn _clear_stale_readers(&self) -> PyResult<usize> {
        Ok(self.store()?.clear_stale_readers())
    }

    /// Check the store's internal invariants; raises `AssertionError` naming the broken one.
    fn check_invariants(&self, py: Python<'_>) -> PyResult<()> {
        self.store()?
            .check_invariants()
            .map_err(|e| shared_to_py(py, &[], &e))?
            .map_err(pyo3::exceptions::PyAssertionError::new_err)
    }
}
