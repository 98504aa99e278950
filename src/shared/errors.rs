//! What can go wrong in a shared store, beside the store errors every backend has.

use std::fmt;
use std::path::Path;

use crate::store::StoreError;

/// Why a shared-store operation failed. None of them leaves a half-written entry: a failed write
/// transaction is aborted whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedError {
    /// The same refusals as the in-process store's (`incr` of a missing key, a value too large).
    Store(StoreError),
    /// The data file is not one of ours (another program's LMDB file, a damaged file, another
    /// layout version).
    Foreign(String),
    /// The file system refused (the LOCATION vanished, no space, permissions).
    Io(String),
    /// The map is full even after evicting: only a write so large that it can never fit gets this.
    MapFull,
    /// Any other LMDB error, with LMDB's own text.
    Lmdb(String),
}

impl SharedError {
    /// An error from opening the environment at `location`, said in words a settings author can act
    /// on.
    pub fn open(location: &Path, err: &heed::Error) -> Self {
        let at = location.display();
        match err {
            heed::Error::Mdb(heed::MdbError::Invalid | heed::MdbError::VersionMismatch | heed::MdbError::Corrupted) => {
                Self::Foreign(format!(
                    "{at} holds a file that is not a django-rustcache shared store, or a damaged one ({err}); \
                     remove it or choose another LOCATION"
                ))
            }
            heed::Error::Io(io) => Self::Io(format!("cannot open the shared store in {at}: {io}")),
            other => Self::Lmdb(format!("cannot open the shared store in {at}: {other}")),
        }
    }
}

impl From<heed::Error> for SharedError {
    fn from(err: heed::Error) -> Self {
        match err {
            heed::Error::Mdb(heed::MdbError::MapFull) => Self::MapFull,
            heed::Error::Mdb(heed::MdbError::Corrupted | heed::MdbError::Invalid | heed::MdbError::Panic) => {
                Self::Foreign(format!("the shared store's data file is damaged: {err}"))
            }
            heed::Error::Io(io) => Self::Io(io.to_string()),
            other => Self::Lmdb(other.to_string()),
        }
    }
}

impl From<StoreError> for SharedError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(err) => err.fmt(f),
            Self::Foreign(msg) | Self::Io(msg) | Self::Lmdb(msg) => f.write_str(msg),
            Self::MapFull => f.write_str("the shared store's map is full"),
        }
    }
}

impl std::error::Error for SharedError {}
