//! Connections to one server, pooled per process, and the commands the near cache sends, in the
//! format Django's `RedisCache` uses on the wire (values are the bytes `RedisSerializer` writes: an
//! exact `int` as its decimal digits, anything else pickled; the binding makes them).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Client, Connection, ConnectionInfo, ConnectionLike, Value};

use super::blocking::Blocking;
use super::errors::{breaks_connection, NearError};

/// Idle connections kept per server and process; more are opened when more threads wait on the
/// server at once, and closed when they come back to a full pool.
const MAX_IDLE: usize = 16;

/// A value read from the server with its remaining life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The stored bytes, as `RedisSerializer` wrote them.
    pub value: Vec<u8>,
    /// `PTTL`: milliseconds left, `-1` if it never expires.
    pub pttl_ms: i64,
}

/// What `RedisSerializer.loads` would make of stored bytes, decided without Python where it can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerValue {
    /// Decimal digits that fit in 64 bits: an `int`.
    Int(i64),
    /// Anything else: `int(data)` is tried, then `pickle.loads(data)`.
    Other,
}

impl ServerValue {
    pub fn of(bytes: &[u8]) -> Self {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .map_or(Self::Other, Self::Int)
    }
}

/// The connections of one process to one server.
pub struct Pool {
    client: Client,
    idle: Mutex<Vec<(u64, Connection)>>,
    /// The process the idle connections belong to: a forked child must not use its parent's sockets.
    pid: AtomicU32,
    /// Bumped when the server is known to have gone away (the listener saw it): older idle
    /// connections are discarded instead of failing one call each.
    generation: AtomicU64,
    connect_timeout: Option<Duration>,
    socket_timeout: Option<Duration>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("server", self.client.get_connection_info().addr())
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(
        info: ConnectionInfo,
        connect_timeout: Option<Duration>,
        socket_timeout: Option<Duration>,
    ) -> Result<Self, NearError> {
        Ok(Self {
            client: Client::open(info).map_err(|e| NearError::Config(e.to_string()))?,
            idle: Mutex::new(Vec::new()),
            pid: AtomicU32::new(std::process::id()),
            generation: AtomicU64::new(0),
            connect_timeout,
            socket_timeout,
        })
    }

    /// A new connection with this pool's timeouts (the listener opens its own this way).
    pub(crate) fn connect(&self, info: Option<ConnectionInfo>) -> redis::RedisResult<Connection> {
        let client;
        let client_ref = match info {
            Some(info) => {
                client = Client::open(info)?;
                &client
            }
            None => &self.client,
        };
        let con = match self.connect_timeout {
            Some(t) => client_ref.get_connection_with_timeout(t)?,
            None => client_ref.get_connection()?,
        };
        con.set_read_timeout(self.socket_timeout)?;
        con.set_write_timeout(self.socket_timeout)?;
        Ok(con)
    }

    pub(crate) fn info(&self) -> &ConnectionInfo {
        self.client.get_connection_info()
    }

    /// Forget every idle connection: they are dead (the server went away).
    pub(crate) fn discard_idle(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let dropped = std::mem::take(&mut *self.idle.lock());
        drop(dropped);
    }

    /// An idle connection of this process, if there is one (a short lock, no I/O: dead or stale
    /// connections are closed after it is released).
    fn take_idle(&self) -> (u64, Option<Connection>) {
        let pid = std::process::id();
        let generation = self.generation.load(Ordering::SeqCst);
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock();
            if self.pid.load(Ordering::Relaxed) != pid {
                // A forked child: the sockets are shared with the parent, which is still using them.
                // Closing our copies would be harmless, but a clean close (shutdown) would cut the
                // parent's too: leak them instead (a few file descriptors, once per fork).
                for con in idle.drain(..) {
                    std::mem::forget(con);
                }
                self.pid.store(pid, Ordering::Relaxed);
            }
            let mut found = None;
            while let Some((gen, con)) = idle.pop() {
                if gen == generation && con.is_open() {
                    found = Some(con);
                    break;
                }
                stale.push(con);
            }
            found
        };
        drop(stale);
        (generation, found)
    }

    fn checkin(&self, gen: u64, con: Connection) {
        if gen != self.generation.load(Ordering::SeqCst) || std::process::id() != self.pid.load(Ordering::Relaxed) {
            return;
        }
        let extra = {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push((gen, con));
                None
            } else {
                Some(con)
            }
        };
        drop(extra);
    }

    /// Run `f` on a pooled connection, the connect and the round trip inside `blocking` (the
    /// pool's lock is taken only outside it, and never while a connection is in use). A connection
    /// that failed is closed, not returned. With `idempotent`, a call that failed on a connection
    /// taken from the pool (it may have died while idle: a server restart) is tried once more on a
    /// new one.
    pub fn run<R: Send>(
        &self,
        blocking: &impl Blocking,
        idempotent: bool,
        mut f: impl FnMut(&mut Connection) -> redis::RedisResult<R> + Send,
    ) -> Result<R, NearError> {
        let (gen, pooled) = self.take_idle();
        let (result, back) = blocking.wait(|| {
            let mut con = match pooled {
                Some(con) => con,
                None => match self.connect(None) {
                    Ok(con) => con,
                    Err(err) => return (Err(err.into()), None),
                },
            };
            match f(&mut con) {
                Ok(r) => (Ok(r), Some(con)),
                Err(err) if breaks_connection(&err) => {
                    drop(con);
                    if !idempotent || err.is_timeout() {
                        return (Err(err.into()), None);
                    }
                    let retried = self
                        .connect(None)
                        .and_then(|mut fresh| f(&mut fresh).map(|r| (r, fresh)));
                    match retried {
                        Ok((r, fresh)) => (Ok(r), Some(fresh)),
                        Err(err) => (Err(err.into()), None),
                    }
                }
                Err(err) => (Err(err.into()), Some(con)),
            }
        });
        if let Some(con) = back {
            self.checkin(gen, con);
        }
        result
    }
}

/// `GET` and `PTTL` of one key, in one round trip.
pub(crate) fn fetch(con: &mut Connection, key: &[u8]) -> redis::RedisResult<Option<Fetched>> {
    let (value, pttl_ms): (Option<Vec<u8>>, i64) = redis::pipe().get(key).pttl(key).query(con)?;
    Ok(value.map(|value| Fetched { value, pttl_ms }))
}

/// `MGET` and a `PTTL` of each key, in one round trip.
pub(crate) fn fetch_many(con: &mut Connection, keys: &[&[u8]]) -> redis::RedisResult<Vec<Option<Fetched>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    pipe.cmd("MGET").arg(keys);
    for key in keys {
        pipe.pttl(*key);
    }
    let mut replies: Vec<Value> = pipe.query(con)?;
    let ttls = replies.split_off(1);
    let values: Vec<Option<Vec<u8>>> = match replies.pop() {
        Some(v) => redis::from_redis_value(v)?,
        None => Vec::new(),
    };
    let mut out = Vec::with_capacity(keys.len());
    for (value, ttl) in values.into_iter().zip(ttls) {
        let pttl_ms: i64 = redis::from_redis_value(ttl)?;
        out.push(value.map(|value| Fetched { value, pttl_ms }));
    }
    Ok(out)
}

/// `incr`: atomic on the server, and a missing key is an error rather than a new counter
/// (Django's `RedisCache` checks `EXISTS` first, in a separate round trip; one script does both).
pub(crate) const INCR_IF_EXISTS: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then return false end \
                                         return redis.call('INCRBY', KEYS[1], ARGV[1])";

/// The compare-and-delete of a lock release (redis-py's `Lock` does the same).
pub(crate) const DELETE_IF_EQUAL: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                                          return redis.call('DEL', KEYS[1]) else return 0 end";

/// The compare-and-extend of a lock's `extend`/`reacquire` (redis-py's `Lock` does the same): if
/// `KEYS[1]` holds `ARGV[1]`, it expires in `ARGV[2]` ms, plus what it had left if `ARGV[3]` is `1`.
pub(crate) const EXPIRE_IF_EQUAL: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
                                          local left = 0 \
                                          if ARGV[3] == '1' then left = math.max(redis.call('PTTL', KEYS[1]), 0) end \
                                          return redis.call('PEXPIRE', KEYS[1], left + tonumber(ARGV[2]))";
