//! What an operation leaves to do once the store's lock is released: drop what it removed, log
//! what an operator should hear about.

use super::errors::StoreError;
use super::record::Record;

/// What an operation removed or wants said, handed out of the lock to be dropped and logged.
#[derive(Debug)]
pub struct Sink<A> {
    pub(crate) garbage: Garbage<Record>,
    pub(crate) objects: Garbage<A>,
    /// Live entries removed by culls or the byte budget in this operation.
    pub evicted: usize,
    /// A value refused because it alone exceeds the byte budget.
    pub refused: Option<StoreError>,
    /// The refused value's key had an old value, which was removed.
    pub refused_removed_old: bool,
}

/// What to drop once the lock is released. Most operations remove at most one thing, which is held
/// inline, so they allocate nothing for it.
#[derive(Debug)]
pub(crate) struct Garbage<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Default for Garbage<T> {
    fn default() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<T> Garbage<T> {
    pub(crate) fn push(&mut self, item: T) {
        if self.first.is_none() {
            self.first = Some(item);
        } else {
            self.rest.push(item);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    #[cfg(test)]
    pub(crate) fn into_vec(self) -> Vec<T> {
        self.first.into_iter().chain(self.rest).collect()
    }
}

impl<T> Extend<T> for Garbage<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, items: I) {
        for item in items {
            self.push(item);
        }
    }
}

impl<A> Default for Sink<A> {
    fn default() -> Self {
        Self {
            garbage: Garbage::default(),
            objects: Garbage::default(),
            evicted: 0,
            refused: None,
            refused_removed_old: false,
        }
    }
}
