//! A signal that an embedded file is closed: every holder of it (including port calls still
//! running on the blocking pool after their caller was cancelled) has dropped it.
//!
//! redb locks its file for the whole process, so stopping local mode and opening the same data
//! directory again (a restart in tests, `flowscope local` in a supervisor) must wait for that.

use tokio::sync::watch;

/// Held inside the resource; dropped last, when the resource is gone.
pub(super) struct ReleaseGuard(#[allow(dead_code)] watch::Sender<()>);

impl ReleaseGuard {
    pub(super) fn new() -> (ReleaseGuard, Released) {
        let (sender, receiver) = watch::channel(());
        (ReleaseGuard(sender), Released(receiver))
    }
}

/// Resolves [`Released::wait`] once its resource has been dropped by every holder.
#[derive(Clone, Debug)]
pub struct Released(watch::Receiver<()>);

impl Released {
    /// Waits until the resource is dropped; nothing is ever sent, so `changed` only returns once
    /// the guard's sender is gone.
    pub async fn wait(mut self) {
        while self.0.changed().await.is_ok() {}
    }

    /// Whether the resource has been dropped already.
    pub fn is_released(&self) -> bool {
        self.0.has_changed().is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn released_resolves_only_after_the_last_holder_drops_the_guard() {
        let (guard, released) = ReleaseGuard::new();
        let holder = std::sync::Arc::new(guard);
        let second = holder.clone();
        drop(holder);
        assert!(!released.is_released(), "a holder is left");
        let waiting = tokio::spawn(released.clone().wait());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(second);
        waiting.await.expect("the wait ends");
        assert!(released.is_released());
    }
}
