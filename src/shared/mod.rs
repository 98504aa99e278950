//! The host-shared store: one LOCATION's cache for every process of the host, in an LMDB
//! environment (through `heed`), with no server. Pure Rust, no Python: `cargo test` covers it.
//!
//! Layout (see [`layout`]): four databases in one environment, `entries` (cache key → deadline,
//! recency number, kind, value), `order` (recency number → key: the LRU order, oldest first),
//! `locks` (lock name → deadline and token; never culled) and `meta` (the format tag, the next
//! recency number, the bytes charged and the counters). Every operation is one LMDB transaction,
//! begun and ended inside the call; reads never take the writer lock.

mod env;
mod errors;
mod layout;
mod store;
mod writer;

pub use env::{after_fork, store_for, OpenOptions, GENERATION, MAX_READERS};
pub use errors::SharedError;
pub use layout::{charge, ENTRY_OVERHEAD, MAX_PLAIN_KEY};
pub use store::{SharedStore, Value};

#[cfg(test)]
mod tests;
