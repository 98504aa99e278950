//! What can go wrong talking to the server, in the terms Django's `RedisCache` (redis-py) uses.

use std::fmt;

/// A failed server operation. The binding maps each kind to the exception redis-py raises for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NearError {
    /// The server could not be reached or the connection broke (redis-py's `ConnectionError`).
    Connection(String),
    /// The server refused the credentials (redis-py's `AuthenticationError`, a `ConnectionError`).
    Authentication(String),
    /// The server did not answer in time (redis-py's `TimeoutError`).
    Timeout(String),
    /// The server answered with an error (redis-py's `ResponseError`), e.g. INCR of a pickle.
    Response(String),
    /// `incr` of a key that is not there (Django's `ValueError("Key '…' not found.")`).
    NotFound,
    /// The server refused `CLIENT TRACKING` (an old server, a proxy, an ACL): the near cache
    /// cannot be coherent with it.
    TrackingRefused(String),
    /// A setting that cannot work (a URL the client does not understand).
    Config(String),
}

impl fmt::Display for NearError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connection(m) | Self::Authentication(m) | Self::Timeout(m) | Self::Response(m) | Self::Config(m) => {
                f.write_str(m)
            }
            Self::NotFound => f.write_str("key not found"),
            Self::TrackingRefused(m) => write!(f, "the server refused CLIENT TRACKING: {m}"),
        }
    }
}

impl std::error::Error for NearError {}

impl From<redis::RedisError> for NearError {
    fn from(err: redis::RedisError) -> Self {
        let text = err.to_string();
        if err.is_timeout() {
            Self::Timeout(text)
        } else if err.kind() == redis::ErrorKind::AuthenticationFailed {
            Self::Authentication(text)
        } else if err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() {
            Self::Connection(text)
        } else {
            Self::Response(text)
        }
    }
}

/// Whether a connection that produced `err` must not go back to the pool.
pub(crate) fn breaks_connection(err: &redis::RedisError) -> bool {
    err.is_timeout() || err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error()
}
