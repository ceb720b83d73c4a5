// SPDX-License-Identifier: MPL-2.0
//! Locking helpers shared by the elements.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the
/// elements keep their guarded values consistent at every point where a
/// panic could occur, and a recorder must not die of a poisoned lock.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Lets the streaming thread wait (for a failing disk, for the writer) in a
/// way that `unlock` (flush, state change) interrupts at once.
#[derive(Default)]
pub struct FlushGate {
    flushing: Mutex<bool>,
    cond: Condvar,
}

impl FlushGate {
    /// `unlock` (true) and `unlock_stop` (false).
    pub fn set_flushing(&self, flushing: bool) {
        *lock(&self.flushing) = flushing;
        if flushing {
            self.cond.notify_all();
        }
    }

    /// Waits up to `timeout`; returns false if flushing (now or meanwhile).
    pub fn wait(&self, timeout: Duration) -> bool {
        let flushing = lock(&self.flushing);
        let (flushing, _) = self
            .cond
            .wait_timeout_while(flushing, timeout, |f| !*f)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !*flushing
    }
}
