//! The near cache's core: a Redis (or Valkey) client, an invalidation listener and the in-process
//! local copy, in pure Rust (no Python). `cargo test` runs it against a real `redis-server` started by
//! `benchmarks/redis_server.sh`.
//!
//! ```text
//! callers ──▶ NearCache ──▶ local copy (a src/store Store)      hit: no network
//!                 │  miss / write                               ▲ invalidations, flushes
//!                 ▼                                             │
//!               Pool (redis::Connection, GET+PTTL, SET PX, …)   Listener thread (RESP3, CLIENT
//!                                                               TRACKING ON BCAST PREFIX p, heartbeat)
//! ```
//!
//! Coherence rests on three rules, kept by [`tracking::Coherence`]:
//! 1. the local copy holds entries only while tracking is established; whenever it is lost (the
//!    connection drops or goes silent, the server restarts, the listener is stopped for a fork) or
//!    the server says everything changed (FLUSHALL/FLUSHDB's null invalidation), the copy is emptied;
//! 2. a fill (a value read from the server, entering the local copy) carries the epochs it started
//!    under and is dropped if an invalidation of its key, or a flush, was applied meanwhile;
//! 3. a write by this process drops the key's local copy (and bumps its epoch) once the server has
//!    answered, so the next read in the process goes to the server.

mod blocking;
mod client;
mod config;
mod errors;
mod flight;
mod listener;
mod near_cache;
mod tracking;

pub use blocking::{Blocking, Inline};
pub use client::{Fetched, Pool, ServerValue};
pub use config::{NearConfig, TlsSettings, TlsVerify, DEFAULT_HEARTBEAT};
pub use errors::NearError;
pub use near_cache::{fork_done, fork_prepare, NearCache, NearStats, Read};
pub use tracking::{Coherence, Event, Ticket};

#[cfg(test)]
mod tests;
