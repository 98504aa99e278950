//! The process-wide registry: one store per LOCATION, shared by every backend instance that names
//! it (Django builds one instance per thread and per async context), as `LocMemCache`'s module-level
//! dicts are. Stores live as long as the process, as those dicts do.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use super::payload::PyPayload;
use crate::store::Store;

pub(crate) type SharedStore = Arc<Store<PyPayload>>;

static STORES: LazyLock<Mutex<HashMap<String, SharedStore>>> = LazyLock::new(Mutex::default);

/// The store for `location`, created on first use.
pub(crate) fn store_for(location: &str) -> SharedStore {
    let mut stores = STORES.lock();
    if let Some(store) = stores.get(location) {
        return Arc::clone(store);
    }
    let store = SharedStore::default();
    stores.insert(location.to_owned(), Arc::clone(&store));
    store
}
