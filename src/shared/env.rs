//! Opening a LOCATION's LMDB environment: once per process, whatever the number of handles and
//! threads, and again (never reusing the parent's) in a child after `fork()`.
//!
//! LMDB's rules (`lmdb.h`, "Caveats"), and how each is kept:
//! - *Do not use an environment in a process other than the one that opened it, and do not close it
//!   there either*: `mdb_env_close` in the child would close the inherited descriptors of the lock
//!   file, and closing any descriptor of a file drops every `fcntl` lock the process holds on it,
//!   including the one by which the child's *own* environment tells other processes it is alive
//!   (they would then clear its reader slots as stale while it reads). So a child puts the
//!   parent's environments in [`GRAVEYARD`], never dropped, and opens its own.
//! - heed refuses to open a path a second time in one process (`EnvAlreadyOpened`), and its record
//!   of open paths is inherited by a forked child. The child therefore opens the same two files
//!   through a directory of its own, `LOCATION/.forks/<pid>/`, holding the symbolic links
//!   `data.mdb -> ../../data.mdb` and `lock.mdb -> ../../lock.mdb`: LMDB opens the files by those
//!   names (following the links), so it is the same data, the same lock file and the same shared
//!   reader table; only heed's record sees another path. Directories of dead processes are removed
//!   when a process opens the LOCATION.
//! - A dead process's reader slots (`mdb_reader_check`) are cleared at open and then every few
//!   seconds by a writer, so the reader table never fills up and old pages are freed.
//! - The writer lock is a robust mutex: a writer killed mid-transaction leaves it to the next
//!   writer, whose transaction starts on the last committed state.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvFlags, EnvOpenOptions, WithTls};
use parking_lot::Mutex;

use super::errors::SharedError;
use super::layout::{FORMAT, FORMAT_KEY};
use super::store::SharedStore;

pub type Env = heed::Env<WithTls>;
pub type Db = Database<'static, Bytes, Bytes>;

/// The databases of a store's environment.
#[derive(Clone, Copy)]
pub struct Dbs {
    /// Cache key → entry (`layout::encode_entry`).
    pub entries: Db,
    /// Sequence number (big-endian) → cache key: the recency order, oldest first.
    pub order: Db,
    /// Lock name → deadline and holder's token. Never culled.
    pub locks: Db,
    /// `format` and `state` (`layout::State`).
    pub meta: Db,
}

/// Reader slots: one per thread that has read (slots are kept per thread, MDB TLS mode).
pub const MAX_READERS: u32 = 4096;

/// How an environment is opened.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// The map size in bytes (rounded up to a page); the largest of the processes' wins.
    pub map_size: usize,
}

/// Bumped by `after_fork()` in a child: handles compare it to reopen their store.
pub static GENERATION: AtomicU64 = AtomicU64::new(0);

struct Registry {
    pid: u32,
    stores: HashMap<PathBuf, Arc<SharedStore>>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    Mutex::new(Registry {
        pid: std::process::id(),
        stores: HashMap::new(),
    })
});

/// Stores inherited from a parent process: never dropped, so their environments are never closed
/// in this process (see the module docs).
static GRAVEYARD: LazyLock<Mutex<Vec<Arc<SharedStore>>>> = LazyLock::new(Mutex::default);

/// Forget (without closing) every environment of the parent. Call in a child right after `fork()`;
/// also done on the next open when the process id has changed.
pub fn after_fork() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    let mut registry = REGISTRY.lock();
    bury(&mut registry);
}

fn bury(registry: &mut Registry) {
    let pid = std::process::id();
    if registry.pid == pid {
        return;
    }
    registry.pid = pid;
    GRAVEYARD.lock().extend(registry.stores.drain().map(|(_, store)| store));
}

/// The store of `location` (an existing directory) for this process, opened on first use.
pub fn store_for(location: &Path, options: OpenOptions) -> Result<Arc<SharedStore>, SharedError> {
    let canonical = location
        .canonicalize()
        .map_err(|e| SharedError::Io(format!("LOCATION {}: {e}", location.display())))?;
    let mut registry = REGISTRY.lock();
    bury(&mut registry);
    if let Some(store) = registry.stores.get(&canonical) {
        if store.pid() == std::process::id() {
            return Ok(Arc::clone(store));
        }
    }
    let store = Arc::new(open(&canonical, options)?);
    registry.stores.insert(canonical, Arc::clone(&store));
    Ok(store)
}

fn open(location: &Path, options: OpenOptions) -> Result<SharedStore, SharedError> {
    remove_dead_aliases(location);
    let env = match open_env(location, options) {
        Err(heed::Error::EnvAlreadyOpened) => open_env(&alias_dir(location)?, options),
        other => other,
    }
    .map_err(|e| SharedError::open(location, &e))?;
    let dbs = open_databases(&env).map_err(|e| match e {
        SharedError::Lmdb(msg) => SharedError::Foreign(format!("{}: {msg}", location.display())),
        other => other,
    })?;
    let store = SharedStore::new(env, dbs, location.to_owned());
    store.clear_stale_readers();
    Ok(store)
}

fn open_env(path: &Path, options: OpenOptions) -> heed::Result<Env> {
    let page = 4096;
    let map_size = options.map_size.div_ceil(page).max(64) * page;
    let mut builder = EnvOpenOptions::new();
    builder.map_size(map_size).max_dbs(4).max_readers(MAX_READERS);
    // SAFETY: these flags trade durability against an OS crash (not a process crash) for speed:
    // NO_SYNC / NO_META_SYNC skip fsync (a cache need not survive a reboot, and a killed process
    // loses nothing: its committed pages are in the page cache); WRITE_MAP writes through the shared
    // mapping, so a stray write into the map could corrupt it — only LMDB writes into it (we never
    // hold a pointer into the map past a transaction, and no code here writes through one).
    #[allow(unsafe_code)]
    unsafe {
        builder.flags(EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC | EnvFlags::WRITE_MAP | EnvFlags::NO_READ_AHEAD);
    }
    // SAFETY: heed's contract for `open` is that the files are not opened twice in this process
    // and not used after a fork by the child: the registry opens each LOCATION once per process,
    // and a child never uses (nor closes) its parent's environments but opens its own (module docs).
    #[allow(unsafe_code)]
    unsafe {
        builder.open(path)
    }
}

/// `LOCATION/.forks/<pid>`: links to the LOCATION's two files, for a process that inherited heed's
/// record of the LOCATION being open.
fn alias_dir(location: &Path) -> Result<PathBuf, SharedError> {
    let io = |e: std::io::Error| SharedError::Io(format!("{}: {e}", location.display()));
    let forks = location.join(".forks");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&forks)
        .map_err(io)?;
    let dir = forks.join(std::process::id().to_string());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io)?;
    for name in ["data.mdb", "lock.mdb"] {
        let link = dir.join(name);
        let target = Path::new("../..").join(name);
        if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            let _ = fs::remove_file(&link);
            symlink(&target, &link).map_err(io)?;
        }
    }
    Ok(dir)
}

/// Remove the alias directories of processes that no longer run.
fn remove_dead_aliases(location: &Path) {
    let Ok(entries) = fs::read_dir(location.join(".forks")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Create (or open) the four databases and check that the file is one of ours.
fn open_databases(env: &Env) -> Result<Dbs, SharedError> {
    let wtxn = env.write_txn()?;
    let committed = env.create_databases_and_commit(wtxn, |opener, wtxn| -> Result<_, SharedError> {
        let entries = opener.create_database::<Bytes, Bytes>(wtxn, Some("entries"))?;
        let order = opener.create_database::<Bytes, Bytes>(wtxn, Some("order"))?;
        let locks = opener.create_database::<Bytes, Bytes>(wtxn, Some("locks"))?;
        let meta = opener.create_database::<Bytes, Bytes>(wtxn, Some("meta"))?;
        match meta.get(wtxn, FORMAT_KEY)? {
            Some(format) if format == FORMAT => {}
            Some(other) => {
                return Err(SharedError::Foreign(format!(
                    "the data file was written by another program or version (format {:?})",
                    String::from_utf8_lossy(other)
                )))
            }
            None => {
                if !entries.is_empty(wtxn)? || !order.is_empty(wtxn)? {
                    return Err(SharedError::Foreign(
                        "the data file holds data of another program".into(),
                    ));
                }
                meta.put(wtxn, FORMAT_KEY, FORMAT)?;
            }
        }
        Ok(CommitOrAbort::<_, ()>::Commit((entries, order, locks, meta)))
    })?;
    match committed {
        CommitOrAbort::Commit((entries, order, locks, meta)) => Ok(Dbs {
            entries,
            order,
            locks,
            meta,
        }),
        CommitOrAbort::Abort(()) => Err(SharedError::Foreign("could not open the databases".into())),
    }
}
