//! The ways a store operation can fail. None of them leaves the store changed.

use std::fmt;

/// Why a store operation refused to act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// `incr` on a key that is absent or expired.
    NotFound,
    /// `incr` on a native integer with a non-integer payload: the caller must take the generic path.
    NotAnInteger,
    /// `incr` would leave the 64-bit range: the caller must take the generic (big int) path.
    Overflow,
    /// The entry alone is larger than the byte budget, so storing it would empty the cache and still
    /// not fit. The old value, if any, is kept.
    TooLarge { entry_bytes: usize, max_bytes: usize },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("key not found"),
            Self::NotAnInteger => f.write_str("value is not a native integer"),
            Self::Overflow => f.write_str("integer overflow"),
            Self::TooLarge { entry_bytes, max_bytes } => write!(
                f,
                "entry of {entry_bytes} bytes is larger than the cache's MAX_BYTES of {max_bytes}"
            ),
        }
    }
}

impl std::error::Error for StoreError {}
