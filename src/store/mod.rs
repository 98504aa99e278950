//! The pure-Rust cache store: no Python, no Django. `cargo test` covers it alone.
//!
//! A [`Store`] is one LOCATION's data: entries keyed by bytes, a least-recently-used order, deadlines
//! checked against a [`Now`] the caller supplies, and counters. Limits come with every write
//! ([`Limits`]), because in Django they belong to the backend instance, not to the data.

mod adaptive;
mod clock;
mod entry;
mod errors;
mod index;
mod limits;
mod lru;
mod record;
mod sink;
mod sketch;
mod stats;
#[allow(clippy::module_inception)]
mod store;
mod table;

pub use adaptive::{AdaptivePolicy, Tuning};
pub use clock::{system_time, Now, Timestamp, Ttl};
pub use entry::{entry_bytes, ENTRY_OVERHEAD};
pub use errors::StoreError;
pub use limits::Limits;
pub use record::{Attachment, Item, Kind, Record, INT};
pub use sink::Sink;
pub use stats::{Counters, Snapshot};
pub use store::Store;
pub use table::{Eviction, Table};

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
