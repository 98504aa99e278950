//! `_core.NearCache`: a backend instance's handle on the process's near cache of one Redis server
//! and `LOCATION` (`src/near`). Keys are made by the shared [`KeyMaker`], values encoded as Django's
//! `RedisSerializer` encodes them (`payload::to_server`) and held locally as the in-process store
//! holds them. Every network wait runs with the interpreter released (`py.detach`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};
use pyo3::{intern, IntoPyObjectExt};

use super::errors::key_not_found;
use super::keys::{KeyMaker, FACE_STACKLEVEL};
use super::payload::{decode_in_lock, from_server, hold_loaded, to_server, Held};
use crate::near::{Blocking, Event, NearCache, NearConfig, NearError, Read, TlsSettings, TlsVerify};
use crate::store::{Limits, Now, Store};

type SharedNear = Arc<NearCache<Held>>;

/// The core's waits, run with the interpreter released (`py.detach`); everything else the core does
/// (its locks included) runs with it held.
pub(crate) struct Detach<'py>(Python<'py>);

impl Blocking for Detach<'_> {
    fn wait<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.0.detach(f)
    }
}

/// One near cache per server, `LOCATION` and settings, per process.
static NEARS: LazyLock<Mutex<HashMap<String, SharedNear>>> = LazyLock::new(Mutex::default);

/// The classes of [`Errors`] as the face passes them: connection, authentication, timeout, response,
/// configuration.
type ErrorClasses = (Py<PyType>, Py<PyType>, Py<PyType>, Py<PyType>, Py<PyType>);

/// The exception classes Django's `RedisCache` raises (redis-py's), given by the face.
struct Errors {
    connection: Py<PyType>,
    authentication: Py<PyType>,
    timeout: Py<PyType>,
    response: Py<PyType>,
    config: Py<PyType>,
}

impl Errors {
    #[allow(clippy::needless_pass_by_value)]
    fn to_py(&self, py: Python<'_>, key: &[u8], err: NearError) -> PyErr {
        let class = match &err {
            NearError::NotFound => return key_not_found(py, key),
            NearError::Connection(_) => &self.connection,
            NearError::Authentication(_) => &self.authentication,
            NearError::Timeout(_) => &self.timeout,
            NearError::Response(_) => &self.response,
            NearError::TrackingRefused(_) | NearError::Config(_) => &self.config,
        };
        PyErr::from_type(class.bind(py).clone(), err.to_string())
    }
}

/// A backend instance's handle on its near cache.
#[pyclass(frozen, name = "NearCache", module = "django_rustcache._core")]
pub struct PyNearCache {
    near: SharedNear,
    keys: KeyMaker,
    limits: Limits,
    protocol: i32,
    errors: Errors,
}

/// `OPTIONS`' `ssl_*` settings as the face passes them (a dict, the files named, not read).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct TlsOptions {
    /// `"full"`, `"any-hostname"` or `"none"`.
    verify: String,
    ca_file: Option<PathBuf>,
    ca_data: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

impl TlsOptions {
    fn settings(self) -> Result<TlsSettings, NearError> {
        let verify = match self.verify.as_str() {
            "full" => TlsVerify::Full,
            "any-hostname" => TlsVerify::AnyHostname,
            "none" => TlsVerify::Nothing,
            other => return Err(NearError::Config(format!("unknown TLS verification {other:?}"))),
        };
        Ok(TlsSettings {
            verify,
            ca_file: self.ca_file,
            ca_pem: self.ca_data.map(String::into_bytes),
            cert_file: self.cert_file,
            key_file: self.key_file,
        })
    }
}

fn secs(s: Option<f64>) -> Option<Duration> {
    s.filter(|s| s.is_finite() && *s > 0.0).map(Duration::from_secs_f64)
}

impl PyNearCache {
    /// Start the listener if this process has none yet, with the interpreter released; log what the
    /// listener queued.
    fn ready(&self, py: Python<'_>) -> PyResult<()> {
        let started = self.near.ensure_listening(&Detach(py));
        self.log_events();
        started.map_err(|e| self.errors.to_py(py, b"", e))
    }

    fn log_events(&self) {
        for event in self.near.coherence().take_events() {
            match event {
                Event::Tracking { reconnect: true } => {
                    log::warn!(target: "django_rustcache.near", "invalidation listener reconnected; tracking re-established");
                }
                Event::Tracking { reconnect: false } => {
                    log::debug!(target: "django_rustcache.near", "invalidation listener tracking");
                }
                Event::Flushed(why) => log::warn!(target: "django_rustcache.near", "local copy flushed: {why}"),
                Event::ListenerError(why) => log::warn!(target: "django_rustcache.near", "{why}"),
            }
        }
    }

    fn local<'py>(&self, py: Python<'py>, key: &[u8]) -> Option<super::payload::Decoded<'py>> {
        let now = Now::system();
        let found = self
            .near
            .local()
            .with(|t| t.get(key, &now).map(|(r, held)| decode_in_lock(py, r, held)));
        if found.is_some() {
            self.near.count_local_hit();
        }
        found
    }

    /// A server value into Python, and into the local copy if its ticket still holds.
    fn admit<'py>(&self, py: Python<'py>, key: &[u8], read: Read) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (ticket, fetched) = read;
        let Some(fetched) = fetched else { return Ok(None) };
        let value = from_server(py, &fetched.value)?;
        if let Some(ticket) = ticket {
            let item = hold_loaded(key, &value, &fetched.value, self.protocol)?;
            self.near.fill(ticket, item, fetched.pttl_ms, &self.limits);
        }
        Ok(Some(value))
    }

    fn get_made<'py>(&self, key: &[u8], default: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = default.py();
        if let Some(found) = self.local(py, key) {
            return found.into_value();
        }
        self.ready(py)?;
        let read = self
            .near
            .fetch(&Detach(py), key)
            .map_err(|e| self.errors.to_py(py, key, e))?;
        Ok(self.admit(py, key, read)?.unwrap_or_else(|| default.clone()))
    }

    fn key(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        self.keys.make(key, version, FACE_STACKLEVEL)
    }

    /// Run a server call on `near` after making sure of the listener; the core releases the
    /// interpreter for each wait (and only for the waits: its locks are taken with it held).
    fn call<'py, T>(
        &self,
        py: Python<'py>,
        key: &[u8],
        f: impl FnOnce(&NearCache<Held>, &Detach<'py>) -> Result<T, NearError>,
    ) -> PyResult<T> {
        self.ready(py)?;
        let result = f(&self.near, &Detach(py));
        self.log_events();
        result.map_err(|e| self.errors.to_py(py, key, e))
    }
}

#[pymethods]
impl PyNearCache {
    #[new]
    #[pyo3(signature = (
        registry_key, urls, *, connect_timeout, socket_timeout, tls, tracking_prefix,
        max_ttl, heartbeat, require_tracking, max_entries, max_bytes, key_prefix, version, make_keys,
        key_warner, pickle_protocol, errors
    ))]
    #[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)]
    fn new(
        registry_key: &str,
        urls: Vec<String>,
        connect_timeout: Option<f64>,
        socket_timeout: Option<f64>,
        tls: Option<TlsOptions>,
        tracking_prefix: &str,
        max_ttl: Option<f64>,
        heartbeat: f64,
        require_tracking: bool,
        max_entries: i64,
        max_bytes: Option<usize>,
        key_prefix: &Bound<'_, PyAny>,
        version: &Bound<'_, PyAny>,
        make_keys: bool,
        key_warner: Py<PyAny>,
        pickle_protocol: i32,
        errors: ErrorClasses,
    ) -> PyResult<Self> {
        let errors = Errors {
            connection: errors.0,
            authentication: errors.1,
            timeout: errors.2,
            response: errors.3,
            config: errors.4,
        };
        let py = key_prefix.py();
        let near = {
            let mut nears = NEARS.lock();
            if let Some(near) = nears.get(registry_key) {
                Arc::clone(near)
            } else {
                let build = || -> Result<NearCache<Held>, NearError> {
                    let Some(first) = urls.first() else {
                        return Err(NearError::Config("LOCATION names no server".into()));
                    };
                    let mut config = NearConfig::new(first)?;
                    if let Some(read) = urls.get(1) {
                        config = config.with_read_url(read)?;
                    }
                    if let Some(tls) = tls {
                        config = config.with_tls(&tls.settings()?)?;
                    }
                    config.connect_timeout = secs(connect_timeout);
                    config.socket_timeout = secs(socket_timeout);
                    config.prefix = tracking_prefix.as_bytes().to_vec();
                    config.max_ttl = secs(max_ttl);
                    config.heartbeat = secs(Some(heartbeat)).unwrap_or(crate::near::DEFAULT_HEARTBEAT);
                    config.require_tracking = require_tracking;
                    NearCache::new(config, Store::new())
                };
                let near = Arc::new(build().map_err(|e| errors.to_py(py, b"", e))?);
                nears.insert(registry_key.to_owned(), Arc::clone(&near));
                near
            }
        };
        Ok(Self {
            near,
            keys: KeyMaker::new(key_prefix, version, make_keys, key_warner)?,
            limits: Limits {
                max_entries,
                cull_frequency: 0,
                max_bytes,
            },
            protocol: pickle_protocol,
            errors,
        })
    }

    fn get<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let made = self.key(key, version)?;
        self.get_made(&made, default)
    }

    /// `get` with Django's signature, bound as the instance's own `get` (no Python frame between).
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

    /// The local copy only (no server round trip): the value, or `default`.
    fn get_local<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let made = self.key(key, version)?;
        match self.local(key.py(), &made) {
            Some(found) => found.into_value(),
            None => Ok(default.clone()),
        }
    }

    fn get_many<'py>(&self, keys: &Bound<'py, PyAny>, version: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let py = keys.py();
        let keys = self.keys.make_all(keys, version)?;
        let result = PyDict::new(py);
        let mut missing = Vec::new();
        let mut found: Vec<Option<Bound<'py, PyAny>>> = Vec::with_capacity(keys.len());
        for (i, (_, made)) in keys.iter().enumerate() {
            if let Some(v) = self.local(py, made) {
                found.push(Some(v.into_value()?));
            } else {
                missing.push(i);
                found.push(None);
            }
        }
        if !missing.is_empty() {
            let wanted: Vec<Vec<u8>> = missing.iter().map(|&i| keys[i].1.clone()).collect();
            let reads = self.call(py, b"", |near, b| {
                let refs: Vec<&[u8]> = wanted.iter().map(Vec::as_slice).collect();
                near.fetch_many(b, &refs)
            })?;
            for (&i, read) in missing.iter().zip(reads) {
                found[i] = self.admit(py, &keys[i].1, read)?;
            }
        }
        for ((key, _), value) in keys.iter().zip(found) {
            if let Some(value) = value {
                result.set_item(key, value)?;
            }
        }
        Ok(result)
    }

    /// `timeout`: Django's `RedisCache.get_backend_timeout` (whole seconds, `None` for no expiry).
    #[pyo3(signature = (key, value, timeout, version))]
    fn set(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        timeout: Option<u64>,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let made = self.key(key, version)?;
        let data = to_server(value, self.protocol)?;
        self.call(key.py(), &made, |near, b| near.set(b, &made, &data, timeout))
    }

    #[pyo3(signature = (key, value, timeout, version))]
    fn add(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        timeout: Option<u64>,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let made = self.key(key, version)?;
        let data = to_server(value, self.protocol)?;
        self.call(key.py(), &made, |near, b| near.add(b, &made, &data, timeout))
    }

    /// `SET NX PX` of a lock token; whether it was taken.
    #[pyo3(signature = (key, token, millis, version))]
    fn lock_add(
        &self,
        key: &Bound<'_, PyAny>,
        token: &str,
        millis: Option<u64>,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let made = self.key(key, version)?;
        let data = to_server(&token.into_bound_py_any(key.py())?, self.protocol)?;
        self.call(key.py(), &made, |near, b| near.add_px(b, &made, &data, millis))
    }

    /// Delete `key` if it still holds `token` (compare-and-delete on the server); whether it did.
    fn delete_if_equal(&self, key: &Bound<'_, PyAny>, token: &str, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let made = self.key(key, version)?;
        let data = to_server(&token.into_bound_py_any(key.py())?, self.protocol)?;
        self.call(key.py(), &made, |near, b| near.delete_if_equal(b, &made, &data))
    }

    /// If `key` still holds `token`, make it expire in `millis` ms (plus what it had left if
    /// `add_to_left`), atomically on the server; whether it did.
    #[pyo3(signature = (key, token, millis, add_to_left, version))]
    fn expire_if_equal(
        &self,
        key: &Bound<'_, PyAny>,
        token: &str,
        millis: u64,
        add_to_left: bool,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let made = self.key(key, version)?;
        let data = to_server(&token.into_bound_py_any(key.py())?, self.protocol)?;
        self.call(key.py(), &made, |near, b| {
            near.expire_if_equal(b, &made, &data, millis, add_to_left)
        })
    }

    #[pyo3(signature = (data, timeout, version))]
    fn set_many<'py>(
        &self,
        data: &Bound<'py, PyAny>,
        timeout: Option<u64>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = data.py();
        let mut items = Vec::new();
        for item in data.call_method0(intern!(py, "items"))?.try_iter()? {
            let (key, value): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?.extract()?;
            items.push((self.key(&key, version)?, to_server(&value, self.protocol)?));
        }
        if items.is_empty() {
            return Ok(PyList::empty(py));
        }
        self.call(py, b"", |near, b| {
            let refs: Vec<(&[u8], &[u8])> = items.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            near.set_many(b, &refs, timeout)
        })?;
        Ok(PyList::empty(py))
    }

    #[pyo3(signature = (key, timeout, version))]
    fn touch(&self, key: &Bound<'_, PyAny>, timeout: Option<u64>, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let made = self.key(key, version)?;
        self.call(key.py(), &made, |near, b| near.touch(b, &made, timeout))
    }

    /// `PEXPIRE key ms` (`None`: `PERSIST`); whether the key was there.
    #[pyo3(signature = (key, ms, version))]
    fn pexpire(&self, key: &Bound<'_, PyAny>, ms: Option<i64>, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let made = self.key(key, version)?;
        self.call(key.py(), &made, |near, b| near.pexpire(b, &made, ms))
    }

    /// `PTTL` from the server: `-2` no key, `-1` no expiry, else milliseconds.
    fn pttl(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<i64> {
        let made = self.key(key, version)?;
        self.call(key.py(), &made, |near, b| near.pttl(b, &made))
    }

    fn delete(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let made = self.key(key, version)?;
        self.call(key.py(), &made, |near, b| near.delete(b, &made))
    }

    fn delete_many(&self, keys: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<u64> {
        let made: Vec<Vec<u8>> = self.keys.make_all(keys, version)?.into_iter().map(|(_, m)| m).collect();
        self.call(keys.py(), b"", |near, b| {
            let refs: Vec<&[u8]> = made.iter().map(Vec::as_slice).collect();
            near.delete_many(b, &refs)
        })
    }

    /// `incr` on the server (atomic); `ValueError` if the key is missing, the face's
    /// `ResponseError` if the value is not an integer.
    fn incr(&self, key: &Bound<'_, PyAny>, delta: i64, version: &Bound<'_, PyAny>) -> PyResult<i64> {
        let made = self.key(key, version)?;
        self.call(key.py(), &made, |near, b| near.incr(b, &made, delta))
    }

    fn has_key(&self, key: &Bound<'_, PyAny>, version: &Bound<'_, PyAny>) -> PyResult<bool> {
        let made = self.key(key, version)?;
        if self.local(key.py(), &made).is_some() {
            return Ok(true);
        }
        self.call(key.py(), &made, |near, b| near.exists(b, &made))
    }

    /// Full keys matching a Redis glob, from `SCAN`.
    fn scan<'py>(&self, py: Python<'py>, pattern: &[u8]) -> PyResult<Vec<Bound<'py, pyo3::types::PyBytes>>> {
        let keys = self.call(py, b"", |near, b| near.scan(b, pattern))?;
        Ok(keys.iter().map(|k| pyo3::types::PyBytes::new(py, k)).collect())
    }

    /// `FLUSHDB`, as Django's `RedisCache.clear()`.
    fn clear(&self, py: Python<'_>) -> PyResult<bool> {
        self.call(py, b"", NearCache::clear)
    }

    /// `RustCache.stats()`'s counters for the local copy, plus the near cache's own.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.log_events();
        let snap = self.near.local().snapshot();
        let near = self.near.stats();
        let c = snap.counters;
        let stats = PyDict::new(py);
        stats.set_item("hits", near.local_hits + near.server_hits)?;
        stats.set_item("misses", near.misses)?;
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
        stats.set_item("local_hits", near.local_hits)?;
        stats.set_item("server_hits", near.server_hits)?;
        stats.set_item("invalidations", near.invalidations)?;
        stats.set_item("flushes", near.flushes)?;
        stats.set_item("reconnects", near.reconnects)?;
        stats.set_item("dropped_fills", near.dropped_fills)?;
        stats.set_item("shared_reads", near.shared_reads)?;
        stats.set_item("tracking", near.tracking)?;
        Ok(stats)
    }

    /// The server's `CLIENT ID` of this process's listener connection (tests kill it).
    fn listener_client_id(&self) -> Option<i64> {
        self.near.listener_client_id()
    }

    /// Start the listener now (the first operation would).
    fn connect(&self, py: Python<'_>) -> PyResult<()> {
        self.ready(py)
    }
}

/// Stop every near cache's listener in this process (`os.register_at_fork(before=...)`) and wait for
/// their threads to end: the fork then copies no thread (so no lock a vanished thread held), and no
/// listener starts again until [`near_after_fork`] (operations meanwhile go to the server untracked).
/// The parent's next operation after the fork starts a new listener, and so does the child's.
#[pyfunction]
pub(crate) fn near_before_fork(py: Python<'_>) {
    crate::near::fork_prepare();
    let nears: Vec<SharedNear> = NEARS.lock().values().cloned().collect();
    for near in nears {
        near.stop_listener(&Detach(py));
    }
}

/// After a fork (`os.register_at_fork(after_in_parent=..., after_in_child=...)`): listeners may start
/// again.
#[pyfunction]
pub(crate) fn near_after_fork(in_child: bool) {
    crate::near::fork_done(in_child);
}
