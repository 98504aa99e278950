//! `_core.Cache`: one backend instance's view of a shared store. It holds what the instance
//! configured (key prefix and version, default timeout, limits, pickle protocol, clock) and is
//! immutable; the Python face builds a new one when a setting changes.
//!
//! Every method is one call from Python and takes the store lock once. Keys are made and checked
//! before the lock, values are pickled before it and unpickled after it.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::{intern, IntoPyObjectExt};

use super::args::{native_int, pair};
use super::clock::Clock;
use super::errors;
use super::keys::{key_to_str, KeyMaker, FACE_STACKLEVEL};
use super::payload::{decode_in_lock, encode, Decoded, Held, STR};
use super::registry::{store_for, SharedStore};
use super::timeout::Timeouts;
use crate::store::{Eviction, Limits, Now, Record, StoreError, Timestamp, Ttl};

pyo3::create_exception!(
    django_rustcache._core,
    EvictionConflict,
    PyValueError,
    "A LOCATION's store already uses another eviction policy."
);

/// A backend instance's handle on the store of its LOCATION.
#[pyclass(frozen, name = "Cache", module = "django_rustcache._core")]
pub struct PyCache {
    store: SharedStore,
    keys: KeyMaker,
    timeouts: Timeouts,
    limits: Limits,
    protocol: i32,
    clock: Clock,
}

impl PyCache {
    fn get_made<'py>(&self, key: &[u8], default: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = default.py();
        let now = self.now(py)?;
        match self
            .store
            .with(|t| t.get(key, &now).map(|(r, held)| decode_in_lock(py, r, held)))
        {
            Some(found) => found.into_value(),
            None => Ok(default.clone()),
        }
    }

    /// The full key, for a method the face calls from one of its own.
    fn key(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        self.keys.make(key, version, FACE_STACKLEVEL)
    }

    /// The made key and the current time: how every single-key operation starts.
    fn key_and_now(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<(Vec<u8>, Now)> {
        let made = self.key(key, version)?;
        Ok((made, self.now(key.py())?))
    }

    /// The timeout as a `Ttl`; or `None` when it is bad but `LocMemCache` would not have looked at it
    /// (`add` reads it only for an absent key, `touch` only for a present one).
    fn resolve_ttl_if_read(
        &self,
        timeout: &Bound<'_, PyAny>,
        key: &[u8],
        now: &Now,
        read_when_present: bool,
    ) -> PyResult<Option<Ttl>> {
        match self.timeouts.resolve(timeout) {
            Ok(ttl) => Ok(Some(ttl)),
            Err(err) if self.store.with(|t| t.contains(key, now)) == read_when_present => Err(err),
            Err(_) => Ok(None),
        }
    }

    fn now(&self, py: Python<'_>) -> PyResult<Now> {
        self.clock.now(py)
    }
}

#[pymethods]
impl PyCache {
    #[new]
    #[pyo3(signature = (
        location, *, key_prefix, version, default_timeout, timeout_sentinel, max_entries,
        cull_frequency, max_bytes, pickle_protocol, make_keys, key_warner, python_clock, eviction = "lru",
        timeout_hook = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        location: &str,
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
        eviction: &str,
        timeout_hook: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let eviction = match eviction {
            "lru" => Eviction::Lru,
            "adaptive" => Eviction::Adaptive,
            other => return Err(PyValueError::new_err(format!("unknown eviction policy {other:?}"))),
        };
        let store = store_for(location, eviction).map_err(|existing| {
            EvictionConflict::new_err(format!(
                "LOCATION {location:?} already holds a store with eviction {existing:?}; all aliases sharing a \
                 LOCATION must use the same EVICTION"
            ))
        })?;
        Ok(Self {
            store,
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

    /// `get` with Django's signature, which the face binds as the instance's own `get` when it
    /// makes no keys itself: a call from Python then comes straight here, with no Python frame
    /// between (that frame cost about 700 of the 3,100 instructions of a `get`).
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

    /// A dict of the keys found, in the order asked for.
    fn get_many<'py>(&self, keys: &Bound<'py, PyAny>, version: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let py = keys.py();
        let keys = self.keys.make_all(keys, version)?;
        let now = self.now(py)?;
        let found: Vec<(usize, Decoded<'py>)> = self.store.with(|t| {
            keys.iter()
                .enumerate()
                .filter_map(|(i, (_, made))| t.get(made, &now).map(|(r, held)| (i, decode_in_lock(py, r, held))))
                .collect()
        });
        let result = PyDict::new(py);
        for (i, value) in found {
            result.set_item(&keys[i].0, value.into_value()?)?;
        }
        Ok(result)
    }

    /// Store `value` under `key`. A value larger than the byte budget is not stored (the store logs
    /// a warning) and the key's old value is removed.
    fn set(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        timeout: &Bound<'_, PyAny>,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = key.py();
        let key = self.key(key, version)?;
        let record = encode(&key, value, self.protocol)?;
        let ttl = self.timeouts.resolve(timeout)?;
        let now = self.now(py)?;
        // A refusal (TooLarge) is reported by the store's log; `set` returns None either way.
        let _ = self.store.with(|t| t.set(record, ttl, &self.limits, &now));
        Ok(())
    }

    /// Store `value` only if `key` holds no live value; whether it was stored.
    fn add(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        timeout: &Bound<'_, PyAny>,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let py = key.py();
        let key = self.key(key, version)?;
        let record = encode(&key, value, self.protocol)?;
        let now = self.now(py)?;
        let Some(ttl) = self.resolve_ttl_if_read(timeout, &key, &now, false)? else {
            return Ok(false);
        };
        Ok(self
            .store
            .with(|t| t.add(record, ttl, &self.limits, &now))
            .unwrap_or(false))
    }

    /// `add` for `cache.lock()`: the entry is pinned, kept out of the eviction order, so however full
    /// the cache a held lock is never culled or evicted for room (it still expires at its timeout, and
    /// is an ordinary entry to every other method). The timeout is the lock's own (see `lock_touch`).
    fn lock_add(
        &self,
        key: &Bound<'_, PyAny>,
        token: &Bound<'_, PyString>,
        timeout: &Bound<'_, PyAny>,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let py = key.py();
        let key = self.key(key, version)?;
        let mut item = encode(&key, token, self.protocol)?;
        item.record.pin();
        let now = self.now(py)?;
        let ttl = self.timeouts.resolve_as(timeout, false)?;
        Ok(self
            .store
            .with(|t| t.add(item, ttl, &self.limits, &now))
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
        let (key, now) = self.key_and_now(key, version)?;
        let ttl = self.timeouts.resolve_as(timeout, false)?;
        Ok(self.store.with(|t| t.touch(&key, ttl, &now)))
    }

    /// Store every item of `data`; the keys that could not be stored (too large for the byte
    /// budget: their old values are removed). Every value is pickled before anything is stored, so a pickling error stores
    /// nothing.
    fn set_many<'py>(
        &self,
        data: &Bound<'py, PyAny>,
        timeout: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = data.py();
        let mut items = Vec::new();
        for item in data.call_method0(intern!(py, "items"))?.try_iter()? {
            let (key, value) = pair(&item?)?;
            let made = self.key(&key, version)?;
            let encoded = match encode(&made, &value, self.protocol) {
                Ok(encoded) => encoded,
                Err(err) => {
                    let note = format!(
                        "set_many() stored nothing: the value for key {} could not be pickled",
                        key.repr()?
                    );
                    err.add_note(py, note)?;
                    return Err(err);
                }
            };
            items.push((key, Some(encoded)));
        }
        if items.is_empty() {
            return Ok(PyList::empty(py));
        }
        // One deadline per key, as LocMemCache's `set_many` (BaseCache's loop of `set`s) asks a
        // `get_backend_timeout` override once per key; without one, the same for every key.
        let ttls = if self.timeouts.has_hook() {
            items
                .iter()
                .map(|_| self.timeouts.resolve(timeout))
                .collect::<PyResult<Vec<_>>>()?
        } else {
            vec![self.timeouts.resolve(timeout)?; items.len()]
        };
        let now = self.now(py)?;
        let refused: Vec<usize> = self.store.with(|t| {
            items
                .iter_mut()
                .zip(ttls)
                .enumerate()
                .filter_map(|(i, ((_, record), ttl))| {
                    let record = record.take()?;
                    t.set(record, ttl, &self.limits, &now).is_err().then_some(i)
                })
                .collect()
        });
        PyList::new(py, refused.into_iter().map(|i| &items[i].0))
    }

    /// Give `key` a new timeout; whether it was there to touch.
    fn touch(&self, key: &Bound<'_, PyAny>, timeout: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let (key, now) = self.key_and_now(key, version)?;
        let Some(ttl) = self.resolve_ttl_if_read(timeout, &key, &now, true)? else {
            return Ok(false);
        };
        Ok(self.store.with(|t| t.touch(&key, ttl, &now)))
    }

    /// Remove `key`; whether a live value was removed.
    fn delete(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let (key, now) = self.key_and_now(key, version)?;
        Ok(self.store.with(|t| t.delete(&key, &now)))
    }

    /// Remove every key given; how many live values were removed.
    fn delete_many(&self, keys: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<usize> {
        let py = keys.py();
        let keys = self.keys.make_all(keys, version)?;
        let now = self.now(py)?;
        Ok(self
            .store
            .with(|t| keys.iter().filter(|(_, made)| t.delete(made, &now)).count()))
    }

    /// Remove `key` only if it holds a `str` equal to `expected` (atomically); whether it did.
    fn delete_if_equal(&self, key: &Bound<'_, PyAny>, expected: &str, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = key.py();
        let (key, now) = self.key_and_now(key, version)?;
        Ok(self.store.with(|t| {
            t.delete_if(&key, &now, |r, held| {
                // Reading an exact str's UTF-8 runs no Python code: safe under the lock.
                r.kind() == STR && held.is_some_and(|s| s.bind(py).to_str().is_ok_and(|s| s == expected))
            })
        }))
    }

    /// Seconds until `key` expires: `-1.0` if it never does, `-2.0` if there is no live value
    /// (Redis's `TTL` conventions, which the face turns into django-redis's).
    fn ttl(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<f64> {
        let (key, now) = self.key_and_now(key, version)?;
        Ok(match self.store.with(|t| t.deadline(&key, &now)) {
            None => -2.0,
            // A NaN deadline (written under a NaN clock, as LocMemCache would) never expires either.
            Some(deadline) if deadline == Timestamp::NEVER || deadline.as_secs_f64().is_nan() => -1.0,
            // To the microsecond: two clock readings near 1.7e9 s differ from the true interval by up
            // to a quarter of one (float rounding), and `pttl` must see 6.6 s, not 6.5999999 s.
            Some(deadline) => (((deadline.as_secs_f64() - now.secs()) * 1e6).round() / 1e6).max(0.0),
        })
    }

    /// The full keys (as made, `prefix:version:key`) of the live entries that start with `prefix`.
    fn live_keys<'py>(&self, py: Python<'py>, prefix: &str) -> PyResult<Vec<Bound<'py, PyString>>> {
        let now = self.now(py)?;
        let keys = self.store.with(|t| t.live_keys(prefix.as_bytes(), &now));
        keys.iter().map(|k| key_to_str(py, k)).collect()
    }

    fn has_key(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let (key, now) = self.key_and_now(key, version)?;
        Ok(self.store.with(|t| t.contains(&key, &now)))
    }

    /// Add `delta` to the number under `key` and return the new value, keeping the key's expiry.
    ///
    /// A native integer and an integer delta take one atomic step in the store. Anything else that
    /// `LocMemCache` can add (big ints, floats, `Decimal`, ...) is added in Python and written back
    /// with a compare-and-swap, retried if another writer got in between: still atomic.
    fn incr<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        delta: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = key.py();
        let (key, now) = self.key_and_now(key, version)?;
        if let Some(step) = native_int(delta) {
            match self.store.with(|t| t.incr(&key, step, &now)) {
                Ok(n) => return n.into_bound_py_any(py),
                Err(StoreError::NotFound) => return Err(errors::key_not_found(py, &key)),
                Err(_) => {}
            }
        }
        loop {
            let Some((current, expected, expected_held)) = self.store.with(|t| {
                t.get_for_update(&key, &now)
                    .map(|(r, held)| (decode_in_lock(py, r, held), r.clone(), held.map(Py::as_ptr)))
            }) else {
                return Err(errors::key_not_found(py, &key));
            };
            // `current` holds a reference to the held object (if any) until the swap, so its address
            // cannot be reused meanwhile.
            let current = current.into_value()?;
            let new_value = current.add(delta)?;
            let item = encode(&key, &new_value, self.protocol)?;
            // Unchanged: the same bytes, and the very same object if one is held.
            let unchanged =
                |r: &Record, held: Option<&Held>| r.same_value(&expected) && held.map(Py::as_ptr) == expected_held;
            match self.store.with(|t| t.replace_if(item, &self.limits, &now, unchanged)) {
                Ok(true) => return Ok(new_value),
                Ok(false) => {}
                Err(err) => return Err(errors::to_py(py, &key, &err)),
            }
        }
    }

    /// Remove every entry of this LOCATION.
    fn clear(&self) {
        self.store.with(crate::store::Table::clear);
    }

    /// Counters and sizes of this LOCATION, and the limits this instance writes with.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let snap = self.store.snapshot();
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

    /// The hash the store gives `key` (its seed is random per process and per LOCATION).
    fn _hash_key(&self, key: &[u8]) -> u64 {
        self.store.with(|t| t.hash_of(key))
    }

    /// Check the store's internal invariants; raises `AssertionError` naming the broken one.
    fn check_invariants(&self) -> PyResult<()> {
        self.store
            .with(|t| t.check_invariants())
            .map_err(pyo3::exceptions::PyAssertionError::new_err)
    }
}
