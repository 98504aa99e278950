//! `django-rustcache`: a Django cache backend whose store is written in Rust.
//!
//! [`store`] is the pure-Rust core (no Python in it); `python` is the `PyO3` binding that the
//! `django_rustcache` Python package wraps in a Django `BaseCache`.

pub mod near;
mod python;
pub mod shared;
pub mod store;
