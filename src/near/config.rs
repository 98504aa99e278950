//! Where the server is and how to talk to it: the settings a [`NearCache`](super::NearCache) is built
//! with, read from `LOCATION` and `OPTIONS` by the binding.

use std::time::Duration;

use redis::{ConnectionInfo, IntoConnectionInfo};

use super::errors::NearError;

/// How long the listener's connection may stay quiet before it is asked for a `PING`, and how long
/// the `PING` may take: a connection that stays silent for both is taken as lost (the local copy is
/// flushed and tracking re-established on a new one).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// The settings of one near cache.
#[derive(Debug, Clone)]
pub struct NearConfig {
    /// The server writes go to (the first of Django's `LOCATION` list).
    pub write: ConnectionInfo,
    /// The server reads (and so tracking) use: the write server, or one of the others of the list.
    pub read: ConnectionInfo,
    /// Whether `read` is another server than `write`.
    pub separate_read: bool,
    /// How long connecting may take (`None`: the OS's limit).
    pub connect_timeout: Option<Duration>,
    /// How long a reply may take (`None`: wait for ever).
    pub socket_timeout: Option<Duration>,
    /// The key prefix tracked (`CLIENT TRACKING ON BCAST PREFIX`); empty tracks every key.
    pub prefix: Vec<u8>,
    /// The longest a local entry lives, whatever the server's TTL (`LOCAL["MAX_TTL"]`).
    pub max_ttl: Option<Duration>,
    /// See [`DEFAULT_HEARTBEAT`].
    pub heartbeat: Duration,
    /// If the server refuses tracking: fail (`true`), or keep a local copy capped at `max_ttl`.
    pub require_tracking: bool,
}

impl NearConfig {
    /// Settings for a server given by URL (`redis://`, `unix://`, `valkey://`), reads and writes on it.
    pub fn new(url: &str) -> Result<Self, NearError> {
        let info = parse_url(url)?;
        Ok(Self {
            write: info.clone(),
            read: info,
            separate_read: false,
            connect_timeout: Some(Duration::from_secs(1)),
            socket_timeout: Some(Duration::from_secs(5)),
            prefix: Vec::new(),
            max_ttl: None,
            heartbeat: DEFAULT_HEARTBEAT,
            require_tracking: true,
        })
    }

    /// Read from (and track on) another server than the one written to.
    pub fn with_read_url(mut self, url: &str) -> Result<Self, NearError> {
        self.read = parse_url(url)?;
        self.separate_read = true;
        Ok(self)
    }

    /// Override the database and credentials of both servers (Django's `OPTIONS["db"]`,
    /// `OPTIONS["username"]`, `OPTIONS["password"]`, which redis-py lets override the URL).
    #[must_use]
    pub fn with_overrides(mut self, db: Option<i64>, username: Option<&str>, password: Option<&str>) -> Self {
        for info in [&mut self.write, &mut self.read] {
            let mut settings = info.redis_settings().clone();
            if let Some(db) = db {
                settings = settings.set_db(db);
            }
            if let Some(username) = username {
                settings = settings.set_username(username);
            }
            if let Some(password) = password {
                settings = settings.set_password(password);
            }
            *info = info.clone().set_redis_settings(settings);
        }
        self
    }
}

fn parse_url(url: &str) -> Result<ConnectionInfo, NearError> {
    if url.starts_with("rediss://") || url.starts_with("valkeys://") {
        return Err(NearError::Config(format!(
            "{url:?}: TLS (rediss://) is not supported by this build; use redis:// or unix://"
        )));
    }
    url.into_connection_info()
        .map_err(|err| NearError::Config(format!("{url:?} is not a Redis URL: {err}")))
}
