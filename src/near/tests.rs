//! The near cache against a real `redis-server` (started by `benchmarks/redis_server.sh` on a free
//! loopback port, persistence off, stopped by its pid when the test ends).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use redis::Value;

use super::*;
use crate::store::{Limits, Record, Store};

const KIND: u8 = 7;

/// A server of this test's own.
struct Server {
    name: String,
    port: u16,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benchmarks/redis_server.sh")
}

impl Server {
    /// `None` (with a note) only if redis-server is not installed and cannot be.
    #[allow(clippy::print_stderr)]
    fn start(name: &str, args: &[&str]) -> Option<Self> {
        let name = format!("rs-{name}-{}", std::process::id());
        let out = Command::new(script())
            .arg("start")
            .arg(&name)
            .args(args)
            .output()
            .ok()?;
        if !out.status.success() {
            let installed = Command::new(script())
                .arg("install")
                .status()
                .is_ok_and(|s| s.success());
            assert!(!installed, "redis-server is installed but did not start: {out:?}");
            eprintln!("SKIPPED: redis-server is not installed and cannot be installed here");
            return None;
        }
        let port = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        Some(Self { name, port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn restart(&self) {
        let ok = Command::new(script()).arg("restart").arg(&self.name).output();
        assert!(ok.is_ok_and(|o| o.status.success()), "restart failed");
    }

    fn other(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.name).status();
    }
}

fn near(server: &Server, prefix: &str) -> NearCache<()> {
    let mut config = NearConfig::new(&server.url()).expect("url");
    config.prefix = prefix.as_bytes().to_vec();
    config.heartbeat = Duration::from_millis(200);
    let cache = NearCache::new(config, Store::new()).expect("cache");
    cache.ensure_listening(&Inline).expect("tracking");
    cache
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn local(cache: &NearCache<()>, key: &[u8]) -> Option<Vec<u8>> {
    let now = crate::store::Now::system();
    cache
        .local()
        .with(|t| t.get(key, &now).map(|(r, _)| r.value().to_vec()))
}

/// Read through: local copy, else the server and a fill.
fn read(cache: &NearCache<()>, key: &[u8]) -> Option<Vec<u8>> {
    if let Some(v) = local(cache, key) {
        return Some(v);
    }
    let (ticket, fetched) = cache.fetch(&Inline, key).expect("fetch");
    let fetched = fetched?;
    if let Some(ticket) = ticket {
        cache.fill(
            ticket,
            Record::new(key, KIND, &fetched.value).into(),
            fetched.pttl_ms,
            &Limits::default(),
        );
    }
    Some(fetched.value)
}

#[test]
fn writes_are_in_django_redis_format_and_reads_fill_the_local_copy() {
    let Some(server) = Server::start("format", &[]) else {
        return;
    };
    let cache = near(&server, ":1:");
    cache.set(&Inline, b":1:n", b"42", None).expect("set");
    cache.set(&Inline, b":1:p", b"\x80\x05pickled", Some(100)).expect("set");
    // Our own writes' invalidations: one arriving after the read below would (rightly) drop its fill.
    eventually("our writes' invalidations", || cache.stats().invalidations >= 2);
    let mut other = server.other();
    let raw: Vec<u8> = redis::cmd("GET").arg(":1:n").query(&mut other).expect("get");
    assert_eq!(raw, b"42");
    let ttl: i64 = redis::cmd("TTL").arg(":1:p").query(&mut other).expect("ttl");
    assert!((99..=100).contains(&ttl));
    assert_eq!(ServerValue::of(&raw), ServerValue::Int(42));
    assert_eq!(ServerValue::of(b"\x80\x05x"), ServerValue::Other);
    assert_eq!(read(&cache, b":1:p").as_deref(), Some(&b"\x80\x05pickled"[..]));
    assert_eq!(
        local(&cache, b":1:p").as_deref(),
        Some(&b"\x80\x05pickled"[..]),
        "filled"
    );
    assert_eq!(cache.stats().server_hits, 1);
    assert_eq!(cache.incr(&Inline, b":1:n", 5), Ok(47));
    assert_eq!(cache.incr(&Inline, b":1:missing", 1), Err(NearError::NotFound));
    assert!(matches!(cache.incr(&Inline, b":1:p", 1), Err(NearError::Response(_))));
    assert!(cache.add(&Inline, b":1:n", b"1", None).is_ok_and(|added| !added));
    assert!(cache.add(&Inline, b":1:a", b"1", Some(0)).is_ok_and(|added| added));
    assert!(
        !cache.exists(&Inline, b":1:a").expect("exists"),
        "add with timeout 0 leaves nothing"
    );
    // Own writes are visible to the next read at once.
    cache.set(&Inline, b":1:p", b"\x80\x05new", None).expect("set");
    assert_eq!(local(&cache, b":1:p"), None);
    assert_eq!(read(&cache, b":1:p").as_deref(), Some(&b"\x80\x05new"[..]));
    cache
        .set_many(&Inline, &[(b":1:x", b"1"), (b":1:y", b"2")], Some(50))
        .expect("set_many");
    assert!((1..=50_000).contains(&cache.pttl(&Inline, b":1:y").expect("pttl")));
    assert_eq!(cache.delete_many(&Inline, &[b":1:x", b":1:y", b":1:zz"]), Ok(2));
    assert!(cache.touch(&Inline, b":1:n", Some(10)).expect("touch"));
    assert!(cache.touch(&Inline, b":1:n", None).expect("persist"));
    cache.stop_listener(&Inline);
}

#[test]
fn another_clients_write_invalidates_the_local_copy() {
    let Some(server) = Server::start("inval", &[]) else {
        return;
    };
    let cache = near(&server, "");
    cache.set(&Inline, b"k", b"v1", None).expect("set");
    eventually("a fill that stays", || {
        read(&cache, b"k");
        local(&cache, b"k").is_some()
    });
    let before = cache.stats().invalidations;
    let mut other = server.other();
    let _: () = redis::cmd("SET").arg("k").arg("v2").query(&mut other).expect("set");
    eventually("the invalidation", || local(&cache, b"k").is_none());
    assert!(cache.stats().invalidations > before);
    assert_eq!(read(&cache, b"k").as_deref(), Some(&b"v2"[..]));
    cache.stop_listener(&Inline);
}

#[test]
fn a_fill_overtaken_by_an_invalidation_is_dropped() {
    let Some(server) = Server::start("race", &[]) else {
        return;
    };
    let cache = near(&server, "");
    cache.set(&Inline, b"k", b"old", None).expect("set");
    // The read is answered with "old"...
    let (ticket, fetched) = cache.fetch(&Inline, b"k").expect("fetch");
    let (ticket, fetched) = (ticket.expect("tracking"), fetched.expect("found"));
    // ...then another client writes and its invalidation is applied before the fill.
    let seen = cache.stats().invalidations;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("new")
        .query(&mut server.other())
        .expect("set");
    eventually("the invalidation", || cache.stats().invalidations > seen);
    let stored = cache.fill(
        ticket,
        Record::new(b"k", KIND, &fetched.value).into(),
        -1,
        &Limits::default(),
    );
    assert!(!stored, "a stale fill must be dropped");
    assert_eq!(cache.stats().dropped_fills, 1);
    assert_eq!(read(&cache, b"k").as_deref(), Some(&b"new"[..]));
    cache.stop_listener(&Inline);
}

#[test]
fn flushall_from_outside_empties_the_local_copy_and_tracking_goes_on() {
    let Some(server) = Server::start("flush", &[]) else {
        return;
    };
    let cache = near(&server, "");
    cache.set(&Inline, b"k", b"v", None).expect("set");
    eventually("a fill that stays", || {
        read(&cache, b"k");
        local(&cache, b"k").is_some()
    });
    let _: Value = redis::cmd("FLUSHALL").query(&mut server.other()).expect("flushall");
    // (The entry may also go by the late invalidation of our own write: wait for the flush itself.)
    eventually("the flush", || cache.stats().flushes >= 1);
    assert_eq!(local(&cache, b"k"), None);
    assert!(cache.is_tracking());
    cache.set(&Inline, b"k", b"v2", None).expect("set");
    // (The invalidation of our own write may still come and remove the first fill.)
    eventually("fills go on after a flush", || {
        read(&cache, b"k");
        local(&cache, b"k").is_some()
    });
    cache.stop_listener(&Inline);
}

#[test]
fn a_killed_listener_flushes_and_reconnects() {
    let Some(server) = Server::start("kill", &[]) else {
        return;
    };
    let cache = near(&server, "");
    cache.set(&Inline, b"k", b"v", None).expect("set");
    read(&cache, b"k");
    let id = cache.listener_client_id().expect("listening");
    let _: Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut server.other())
        .expect("kill");
    eventually("a reconnect", || cache.stats().reconnects >= 1 && cache.is_tracking());
    assert_eq!(local(&cache, b"k"), None, "flushed when the listener was lost");
    assert!(cache.listener_client_id().is_some_and(|new| new != id));
    // And coherence holds on the new connection.
    read(&cache, b"k");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .query(&mut server.other())
        .expect("set");
    eventually("the invalidation", || local(&cache, b"k").is_none());
    cache.stop_listener(&Inline);
}

#[test]
fn a_server_restart_flushes_and_recovers() {
    let Some(server) = Server::start("restart", &[]) else {
        return;
    };
    let cache = near(&server, "");
    cache.set(&Inline, b"k", b"v", None).expect("set");
    read(&cache, b"k");
    server.restart();
    eventually("a reconnect", || cache.stats().reconnects >= 1 && cache.is_tracking());
    assert_eq!(local(&cache, b"k"), None);
    // Pooled connections died with the server: the next call works anyway.
    cache.set(&Inline, b"k", b"after", None).expect("set after restart");
    assert_eq!(read(&cache, b"k").as_deref(), Some(&b"after"[..]));
    cache.stop_listener(&Inline);
}

#[test]
fn a_server_that_refuses_tracking_is_found_at_start() {
    let Some(server) = Server::start("refuse", &[]) else {
        return;
    };
    let _: Value = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("notrack")
        .arg("on")
        .arg("nopass")
        .arg("~*")
        .arg("+@all")
        .arg("-client|tracking")
        .query(&mut server.other())
        .expect("acl");
    let url = server.url().replacen("redis://", "redis://notrack:x@", 1);
    let config = NearConfig::new(&url).expect("url");
    let cache: NearCache<()> = NearCache::new(config.clone(), Store::new()).expect("cache");
    assert!(matches!(
        cache.ensure_listening(&Inline),
        Err(NearError::TrackingRefused(_))
    ));
    let mut lenient = config;
    lenient.require_tracking = false;
    lenient.max_ttl = Some(Duration::from_millis(300));
    let cache: NearCache<()> = NearCache::new(lenient, Store::new()).expect("cache");
    cache.ensure_listening(&Inline).expect("untracked but allowed");
    cache.set(&Inline, b"k", b"v", None).expect("set");
    read(&cache, b"k");
    assert!(local(&cache, b"k").is_some());
    eventually("MAX_TTL", || local(&cache, b"k").is_none());
}

#[test]
fn a_server_that_is_down_fails_fast() {
    let Some(server) = Server::start("down", &[]) else {
        return;
    };
    let url = server.url();
    drop(server);
    let config = NearConfig::new(&url).expect("url");
    let cache: NearCache<()> = NearCache::new(config, Store::new()).expect("cache");
    cache.ensure_listening(&Inline).expect("not an error by itself");
    let t = Instant::now();
    assert!(matches!(
        cache.set(&Inline, b"k", b"v", None),
        Err(NearError::Connection(_))
    ));
    assert!(matches!(cache.fetch(&Inline, b"k"), Err(NearError::Connection(_))));
    assert!(t.elapsed() < Duration::from_millis(500));
    assert!(!cache.is_tracking());
    cache.stop_listener(&Inline);
}

#[test]
fn stopping_the_listener_empties_the_copy_and_the_next_use_restarts_it() {
    let Some(server) = Server::start("stop", &[]) else {
        return;
    };
    let cache = near(&server, "");
    cache.set(&Inline, b"k", b"v", None).expect("set");
    read(&cache, b"k");
    let t = Instant::now();
    cache.stop_listener(&Inline);
    let stopped = t.elapsed();
    assert!(stopped < Duration::from_millis(200), "stop took {stopped:?}");
    assert!(!cache.is_tracking());
    assert_eq!(local(&cache, b"k"), None);
    cache.ensure_listening(&Inline).expect("restart");
    assert!(cache.is_tracking());
    read(&cache, b"k");
    assert!(local(&cache, b"k").is_some());
    cache.stop_listener(&Inline);
}

/// How many times the server ran `command` (lower case) since the last `CONFIG RESETSTAT`.
fn calls(con: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(con).expect("info");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn get_calls(con: &mut redis::Connection) -> u64 {
    calls(con, "get")
}

/// A near cache of `server` whose heartbeat outlasts a `CLIENT PAUSE` of 300 ms (so the pause does
/// not look like a dead server), with `keys` written by another client and their invalidations
/// applied, and the server's command counts reset; the other client's connection.
fn paused_after_writes(server: &Server, keys: &[&[u8]]) -> (NearCache<()>, redis::Connection) {
    let mut config = NearConfig::new(&server.url()).expect("url");
    config.heartbeat = Duration::from_secs(2);
    let cache: NearCache<()> = NearCache::new(config, Store::new()).expect("cache");
    cache.ensure_listening(&Inline).expect("tracking");
    let mut other = server.other();
    for key in keys {
        let _: () = redis::cmd("SET").arg(*key).arg(*key).query(&mut other).expect("set");
    }
    eventually("the invalidations of the writes", || {
        cache.stats().invalidations >= keys.len() as u64
    });
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut other)
        .expect("resetstat");
    // The server holds every command for a while: the first read is in flight while all the others
    // miss.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(300)
        .arg("ALL")
        .query(&mut other)
        .expect("pause");
    (cache, other)
}

fn values(reads: Vec<Read>) -> Vec<Option<Vec<u8>>> {
    reads.into_iter().map(|(_, f)| f.map(|f| f.value)).collect()
}

#[test]
fn concurrent_misses_of_one_key_make_one_read() {
    let Some(server) = Server::start("flight", &[]) else {
        return;
    };
    let (cache, mut other) = paused_after_writes(&server, &[b"k"]);
    let threads = 16;
    let barrier = std::sync::Barrier::new(threads);
    let values: Vec<Option<Vec<u8>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    cache.fetch(&Inline, b"k").expect("fetch").1.map(|f| f.value)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(values.iter().all(|v| v.as_deref() == Some(&b"k"[..])), "{values:?}");
    assert_eq!(get_calls(&mut other), 1, "one GET for {threads} concurrent misses");
    assert_eq!(cache.stats().shared_reads, threads as u64 - 1);
    assert_eq!(cache.flights.len(), 0);
    cache.stop_listener(&Inline);
}

#[test]
fn followers_of_a_failed_read_read_again_and_never_hang() {
    let Some(server) = Server::start("flightfail", &[]) else {
        return;
    };
    let url = server.url();
    drop(server);
    let mut config = NearConfig::new(&url).expect("url");
    config.connect_timeout = Some(Duration::from_millis(200));
    let cache: NearCache<()> = NearCache::new(config, Store::new()).expect("cache");
    // Eight callers of `get`, then eight of `get_many`, against a server that is down.
    let one = || cache.fetch(&Inline, b"k").map(|_| ());
    let many = || cache.fetch_many(&Inline, &[b"a", b"b", b"c"]).map(|_| ());
    for call in [&one as &(dyn Fn() -> Result<(), NearError> + Sync), &many] {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| assert!(matches!(call(), Err(NearError::Connection(_)))));
            }
        });
        assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
        assert_eq!(cache.flights.len(), 0);
    }
}

#[test]
fn concurrent_get_many_of_the_same_keys_make_one_round_trip() {
    let Some(server) = Server::start("flightmany", &[]) else {
        return;
    };
    let keys: [&[u8]; 5] = [b"k1", b"k2", b"k3", b"k4", b"k5"];
    let (cache, mut other) = paused_after_writes(&server, &keys);
    let threads = 16;
    let barrier = std::sync::Barrier::new(threads);
    let results: Vec<Vec<Option<Vec<u8>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    values(cache.fetch_many(&Inline, &keys).expect("fetch_many"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let expected: Vec<Option<Vec<u8>>> = keys.iter().map(|k| Some(k.to_vec())).collect();
    assert!(results.iter().all(|r| *r == expected), "{results:?}");
    assert_eq!(
        calls(&mut other, "mget"),
        1,
        "one MGET for {threads} concurrent get_many"
    );
    assert_eq!(get_calls(&mut other), 0);
    assert_eq!(cache.stats().shared_reads, (threads as u64 - 1) * 5);
    assert_eq!(cache.stats().server_hits, threads as u64 * 5);
    assert_eq!(cache.flights.len(), 0);
    cache.stop_listener(&Inline);
}

#[test]
fn a_get_many_follows_the_reads_in_flight_and_leads_the_rest_in_one_round_trip() {
    let Some(server) = Server::start("flightmixed", &[]) else {
        return;
    };
    let (cache, mut other) = paused_after_writes(&server, &[b"k1", b"k2", b"k3"]);
    let (single, many) = std::thread::scope(|s| {
        let single = s.spawn(|| cache.fetch(&Inline, b"k1").expect("fetch").1.map(|f| f.value));
        eventually("the read of k1 in flight", || cache.flights.len() == 1);
        // k3 twice: read once.
        let many = cache
            .fetch_many(&Inline, &[b"k1", b"k2", b"k3", b"k3"])
            .expect("fetch_many");
        (single.join().expect("thread"), many)
    });
    assert_eq!(single.as_deref(), Some(&b"k1"[..]));
    assert!(many[0].0.is_none(), "a follower does not fill: its leader does");
    assert!(many[1].0.is_some() && many[2].0.is_some(), "a leader fills");
    let expected: Vec<Option<Vec<u8>>> = [&b"k1"[..], b"k2", b"k3", b"k3"]
        .iter()
        .map(|k| Some(k.to_vec()))
        .collect();
    assert_eq!(values(many), expected);
    assert_eq!(get_calls(&mut other), 1, "k1's read");
    assert_eq!(calls(&mut other, "mget"), 1, "k2 and k3 in one round trip");
    assert_eq!(cache.stats().shared_reads, 1);
    assert_eq!(cache.flights.len(), 0);
    cache.stop_listener(&Inline);
}

#[test]
fn a_get_many_follower_takes_no_read_an_invalidation_overtook_nor_waits_for_a_vanished_leader() {
    let Some(server) = Server::start("flightstale", &[]) else {
        return;
    };
    let cache = near(&server, "");
    cache.set(&Inline, b"k", b"fresh", None).expect("set");
    cache.set(&Inline, b"j", b"other", None).expect("set");
    // This thread leads k's read by hand; the other caller follows it, and reads j itself.
    let follow = |leader: super::flight::Leader<'_>, finish: &dyn Fn(super::flight::Leader<'_>)| {
        std::thread::scope(|s| {
            let many = s.spawn(|| values(cache.fetch_many(&Inline, &[b"j", b"k"]).expect("fetch_many")));
            eventually("the follower", || cache.flights.followers(b"k") == 1);
            finish(leader);
            many.join().expect("thread")
        })
    };
    let lead = || match cache.flights.join([&b"k"[..]]).pop() {
        Some(super::flight::Role::Lead(leader)) => leader,
        _ => panic!("k's read was already in flight"),
    };
    let expected = vec![Some(b"other".to_vec()), Some(b"fresh".to_vec())];
    // The leader's read is answered, then k's invalidation is applied before the follower looks.
    let ticket = cache.coherence().ticket(b"k").expect("tracking");
    let stale = |leader: super::flight::Leader<'_>| {
        cache.coherence().bump_key(b"k");
        let value = Fetched {
            value: b"stale".to_vec(),
            pttl_ms: -1,
        };
        leader.land(|| super::flight::Landed::Read(Some(ticket), Some(value)));
    };
    assert_eq!(follow(lead(), &stale), expected, "the follower read k again");
    // The leader goes away without landing: the follower reads k itself, at once.
    let t = Instant::now();
    assert_eq!(follow(lead(), &|leader| drop(leader)), expected);
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    assert_eq!(cache.stats().shared_reads, 0);
    assert_eq!(cache.flights.len(), 0);
    cache.stop_listener(&Inline);
}
