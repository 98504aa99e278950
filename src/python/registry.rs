//! The process-wide registry: one store per LOCATION, shared by every backend instance that names
//! it (Django builds one instance per thread and per async context), as `LocMemCache`'s module-level
//! dicts are. Stores live as long as the process, as those dicts do.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use super::payload::Held;
use crate::store::{Eviction, Store};

pub(crate) type SharedStore = Arc<Store<Held>>;

static STORES: LazyLock<Mutex<HashMap<String, SharedStore>>> = LazyLock::new(Mutex::default);

/// The store for `location`, created on first use with `eviction`. A store keeps the eviction
/// policy it was created with: asking for another one is an error (`Err` holds the one in force).
pub(crate) fn store_for(location: &str, eviction: Eviction) -> Result<SharedStore, Eviction> {
    let mut stores = STORES.lock();
    if let Some(store) = stores.get(location) {
        let existing = store.eviction();
        return if existing == eviction {
            Ok(Arc::clone(store))
        } else {
            Err(existing)
        };
    }
    let store: SharedStore = Arc::new(Store::with_eviction(eviction));
    stores.insert(location.to_owned(), Arc::clone(&store));
    Ok(store)
}
