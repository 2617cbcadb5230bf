//! Jittered exponential backoff for reconnects.

use std::time::Duration;

/// Reconnect delays: `base * factor^attempt`, capped at `max`, with "full jitter" (a
/// uniformly random fraction, between half and all, of the capped delay) so that many
/// sockets dropped at once do not reconnect in lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub base: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Growth per attempt.
    pub factor: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            factor: 2.0,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based); `random` is any uniformly
    /// distributed `u64` (the caller's RNG, so tests can fix it).
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let exp = self
            .factor
            .powi(i32::try_from(attempt.min(64)).unwrap_or(64));
        let capped = (self.base.as_secs_f64() * exp).min(self.max.as_secs_f64());
        // Uniform in [0.5, 1.0).
        let frac = 0.5 + (random >> 12) as f64 / (1u64 << 52) as f64 / 2.0;
        Duration::from_secs_f64(capped * frac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, 0), Duration::from_millis(500));
        assert!(b.delay(0, u64::MAX) <= Duration::from_secs(1));
        assert_eq!(b.delay(3, 0), Duration::from_secs(4));
        assert_eq!(b.delay(30, 0), Duration::from_secs(30));
        assert!(b.delay(1000, u64::MAX) <= Duration::from_secs(60));
        assert_ne!(b.delay(5, 1 << 62), b.delay(5, 3 << 62));
    }
}
