//! The invalidation listener: one thread per near cache and process, holding a RESP3 connection with
//! `CLIENT TRACKING ON BCAST PREFIX <prefix>`, and a second one applying what it receives. Neither
//! ever needs the Python interpreter: they touch only the local store, the epochs and the counters,
//! and leave log records to the next caller ([`Event`]).
//!
//! The reader blocks on the socket. When the connection has been quiet for a heartbeat it sends a
//! `PING`, which must be answered within another: a dead, silent or restarted server is noticed
//! within two heartbeats, the local copy flushed and tracking re-established on a new connection
//! (with a backoff while the server is away). The applier receives the pushes the reader's
//! connection hands over (redis-rs forwards them to a channel as it parses them) and applies each at
//! once: `invalidate` with keys drops those keys; `invalidate` with a null (FLUSHALL/FLUSHDB) empties
//! the copy.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use redis::{Connection, ProtocolVersion, PushInfo, PushKind, Value};

use super::blocking::Blocking;
use super::client::Pool;
use super::errors::NearError;
use super::tracking::Event;

/// The first retry after a failed connection waits this long; each next one twice as long, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What the listener does to the local copy. Implemented by the near cache.
pub(crate) trait Apply: Send + Sync + 'static {
    /// These keys changed on the server.
    fn invalidate(&self, keys: &[Vec<u8>]);
    /// Everything may have changed (`lost`: or invalidations may have been missed, and filling
    /// stops until tracking is re-established): empty the copy.
    fn flush(&self, why: &str, lost: bool);
    /// Tracking is established: start from an empty copy and allow fills.
    fn tracking_up(&self, reconnect: bool);
    /// Queue a log record for the next caller.
    fn event(&self, event: Event);
}

/// What the first attempt to track came to, for the caller that started the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    Pending,
    Tracking,
    Failed(NearError),
}

#[derive(Default)]
struct Signal {
    stop: AtomicBool,
    /// The first attempt to track has come to an outcome (read without the lock).
    settled: AtomicBool,
    start: Mutex<Option<Start>>,
    changed: Condvar,
}

impl Signal {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleep for `d`, or less if asked to stop.
    fn sleep(&self, d: Duration) {
        let mut guard = self.start.lock();
        if !self.stopping() {
            let _ = self.changed.wait_for(&mut guard, d);
        }
    }

    fn report(&self, outcome: Start) {
        let mut guard = self.start.lock();
        if matches!(*guard, None | Some(Start::Pending)) {
            *guard = Some(outcome);
            self.settled.store(true, Ordering::SeqCst);
            self.changed.notify_all();
        }
    }
}

/// A running listener. Dropping it does not stop it: call [`Listener::stop`].
pub(crate) struct Listener {
    signal: Arc<Signal>,
    client_id: Arc<AtomicI64>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Start listening on `pool`'s server for keys starting with `prefix`.
    pub(crate) fn start(
        pool: Arc<Pool>,
        prefix: Vec<u8>,
        heartbeat: Duration,
        apply: Arc<dyn Apply>,
    ) -> Result<Self, NearError> {
        let signal = Arc::new(Signal::default());
        *signal.start.lock() = Some(Start::Pending);
        let client_id = Arc::new(AtomicI64::new(-1));
        let ctx = Ctx {
            pool,
            prefix,
            heartbeat,
            apply,
            signal: Arc::clone(&signal),
            client_id: Arc::clone(&client_id),
        };
        let thread = std::thread::Builder::new()
            .name("rustcache-near-listener".into())
            .spawn(move || ctx.run())
            .map_err(|e| NearError::Connection(format!("cannot start the invalidation listener: {e}")))?;
        Ok(Self {
            signal,
            client_id,
            thread: Some(thread),
        })
    }

    /// A handle to wait on for the first attempt to track, held apart from the listener (so the
    /// wait needs no lock on wherever the listener is kept).
    pub(crate) fn starting(&self) -> Starting {
        Starting(Arc::clone(&self.signal))
    }

    /// Whether `other` is a handle on this listener.
    pub(crate) fn is(&self, other: &Starting) -> bool {
        Arc::ptr_eq(&self.signal, &other.0)
    }

    /// The server's id of the listener's connection (`CLIENT ID`), `-1` while there is none.
    pub(crate) fn client_id(&self) -> i64 {
        self.client_id.load(Ordering::SeqCst)
    }

    /// Whether the thread has ended (tracking refused for good).
    pub(crate) fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stop the thread and wait for it (a real join: it has joined its applier first, so neither
    /// holds any lock afterwards). Its connection is closed by the server (`CLIENT KILL`, sent on
    /// `kill_via`), so a reader blocked on the socket wakes at once. Both waits run in `blocking`.
    pub(crate) fn stop(mut self, blocking: &impl Blocking, kill_via: &Pool) {
        self.signal.stop.store(true, Ordering::SeqCst);
        {
            let _guard = self.signal.start.lock();
            self.signal.changed.notify_all();
        }
        let id = self.client_id();
        if id >= 0 {
            let _ = kill_via.run(blocking, false, |con| {
                redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query::<Value>(con)
            });
        }
        if let Some(thread) = self.thread.take() {
            blocking.wait(move || {
                let _ = thread.join();
            });
        }
    }
}

/// What a caller waits on while a listener makes its first attempt to track.
pub(crate) struct Starting(Arc<Signal>);

impl Starting {
    /// Whether the first attempt has come to an outcome (no lock taken).
    pub(crate) fn settled(&self) -> bool {
        self.0.settled.load(Ordering::SeqCst)
    }

    /// Wait up to `timeout` for the first attempt to track to succeed or fail.
    pub(crate) fn wait(&self, timeout: Duration) -> Start {
        let mut guard = self.0.start.lock();
        if matches!(*guard, Some(Start::Pending)) {
            let _ = self.0.changed.wait_for(&mut guard, timeout);
        }
        guard.clone().unwrap_or(Start::Pending)
    }
}

struct Ctx {
    pool: Arc<Pool>,
    prefix: Vec<u8>,
    heartbeat: Duration,
    apply: Arc<dyn Apply>,
    signal: Arc<Signal>,
    client_id: Arc<AtomicI64>,
}

impl Ctx {
    fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        let mut reconnect = false;
        let mut reported_error = false;
        while !self.signal.stopping() {
            match self.connect_and_track() {
                Ok((mut con, pushes, id)) => {
                    self.client_id.store(id, Ordering::SeqCst);
                    self.apply.tracking_up(reconnect);
                    self.signal.report(Start::Tracking);
                    reconnect = true;
                    reported_error = false;
                    backoff = FIRST_BACKOFF;
                    let apply = Arc::clone(&self.apply);
                    let applier = std::thread::Builder::new()
                        .name("rustcache-near-applier".into())
                        .spawn(move || apply_pushes(&pushes, apply.as_ref()));
                    let why = self.serve(&mut con);
                    self.client_id.store(-1, Ordering::SeqCst);
                    self.apply.flush(&why, true);
                    // The sender lives in the connection: dropping it ends the applier's loop.
                    drop(con);
                    match applier {
                        Ok(applier) => {
                            let _ = applier.join();
                        }
                        Err(e) => self
                            .apply
                            .event(Event::ListenerError(format!("cannot start the applier: {e}"))),
                    }
                    if !self.signal.stopping() {
                        // The server went away or went quiet: idle connections are dead too.
                        self.pool.discard_idle();
                    }
                }
                Err(NearError::TrackingRefused(msg)) => {
                    self.signal
                        .report(Start::Failed(NearError::TrackingRefused(msg.clone())));
                    self.apply.event(Event::ListenerError(format!(
                        "the server refused CLIENT TRACKING ({msg}); the listener stops"
                    )));
                    return;
                }
                Err(err) => {
                    self.signal.report(Start::Failed(err.clone()));
                    if !reported_error {
                        self.apply.event(Event::ListenerError(format!(
                            "cannot listen for invalidations ({err}); retrying"
                        )));
                        reported_error = true;
                    }
                    self.signal.sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn connect_and_track(&self) -> Result<(Connection, mpsc::Receiver<PushInfo>, i64), NearError> {
        let info = self.pool.info().clone();
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let mut con = self.pool.connect(Some(info.set_redis_settings(settings)))?;
        let (tx, rx) = mpsc::channel();
        con.set_push_sender(tx);
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con)?;
        let _: Value = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg("rustcache-near-listener")
            .query(&mut con)?;
        let mut tracking = redis::cmd("CLIENT");
        tracking.arg("TRACKING").arg("ON").arg("BCAST");
        if !self.prefix.is_empty() {
            tracking.arg("PREFIX").arg(&self.prefix[..]);
        }
        match tracking.query::<Value>(&mut con) {
            Ok(Value::ServerError(err)) => Err(NearError::TrackingRefused(format!("{err:?}"))),
            Ok(_) => Ok((con, rx, id)),
            Err(err) if !err.is_io_error() && !err.is_timeout() => Err(NearError::TrackingRefused(err.to_string())),
            Err(err) => Err(err.into()),
        }
    }

    /// Read until the connection is lost, goes silent or the listener is stopped; why it ended.
    fn serve(&self, con: &mut Connection) -> String {
        loop {
            if self.signal.stopping() {
                return "the listener was stopped".into();
            }
            if let Err(err) = con.set_read_timeout(Some(self.heartbeat)) {
                return format!("the listener's connection failed: {err}");
            }
            let message = con.as_pubsub().get_message();
            match message {
                Ok(_) => {}
                Err(err) if err.is_timeout() => {
                    if self.signal.stopping() {
                        return "the listener was stopped".into();
                    }
                    if let Err(err) = redis::cmd("PING").query::<Value>(con) {
                        return format!("the listener's heartbeat got no answer in time ({err})");
                    }
                }
                Err(err) => {
                    if self.signal.stopping() {
                        return "the listener was stopped".into();
                    }
                    return format!("the listener's connection was lost ({err})");
                }
            }
        }
    }
}

fn apply_pushes(pushes: &mpsc::Receiver<PushInfo>, apply: &dyn Apply) {
    // Only `invalidate` is expected; the reader notices a lost connection itself.
    for push in pushes.iter().filter(|p| p.kind == PushKind::Invalidate) {
        match push.data.into_iter().next() {
            Some(Value::Array(keys)) => {
                let keys: Vec<Vec<u8>> = keys
                    .into_iter()
                    .filter_map(|k| match k {
                        Value::BulkString(bytes) => Some(bytes),
                        Value::SimpleString(s) => Some(s.into_bytes()),
                        _ => None,
                    })
                    .collect();
                apply.invalidate(&keys);
            }
            // `invalidate` with a null: FLUSHALL or FLUSHDB.
            _ => apply.flush("the server was flushed (FLUSHALL/FLUSHDB)", false),
        }
    }
}
