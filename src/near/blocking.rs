//! How a caller waits: the core marks every wait that may block (a server round trip, a connect, a
//! listener's start or stop) by running it through a [`Blocking`], and does everything else (its
//! locks included) outside it. The binding's `Blocking` releases Python's interpreter for the wait;
//! so every lock of the near cache a Python thread takes is taken and released with the interpreter
//! held, and a `fork()` (which runs in a thread holding it) never lands while a Python thread holds
//! one. Rust callers wait [`Inline`].

/// Runs a wait that may block.
pub trait Blocking {
    fn wait<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R;
}

/// Waits on the calling thread, as is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inline;

impl Blocking for Inline {
    fn wait<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }
}
