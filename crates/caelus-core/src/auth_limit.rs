//! How many failed authentications a client address may make before it is
//! refused for a while. Pure: the caller keeps one [`FailureCount`] per address
//! and passes the time in.
//!
//! A fixed window per address: the first failure opens a window of `window`;
//! within it, after `max_failures` failures, every attempt from that address is
//! refused until the window closes (a correct token included — otherwise the
//! limit would still answer "right" or "wrong" to a guesser).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    pub max_failures: u32,
    pub window: Duration,
}

impl Default for FailureLimit {
    /// Twenty failures a minute: far above a person mistyping, far below a guesser.
    fn default() -> Self {
        FailureLimit {
            max_failures: 20,
            window: Duration::from_secs(60),
        }
    }
}

/// Failures of one address in its current window (times on the caller's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    pub window_start: Duration,
    pub failures: u32,
}

impl FailureLimit {
    /// `Some(wait)` when the address must wait before trying again.
    pub fn blocked(&self, count: Option<&FailureCount>, now: Duration) -> Option<Duration> {
        let c = count?;
        let ends = c.window_start + self.window;
        (c.failures >= self.max_failures && now < ends).then(|| ends - now)
    }

    /// The count after one more failure at `now` (a closed window starts afresh).
    pub fn record_failure(&self, count: Option<&FailureCount>, now: Duration) -> FailureCount {
        match count {
            Some(c) if now < c.window_start + self.window => FailureCount {
                window_start: c.window_start,
                failures: c.failures.saturating_add(1),
            },
            _ => FailureCount {
                window_start: now,
                failures: 1,
            },
        }
    }

    /// Whether a count no longer matters at `now` (so callers can forget it).
    pub fn is_stale(&self, count: &FailureCount, now: Duration) -> bool {
        now >= count.window_start + self.window
    }
}

/// Whole seconds to announce in `Retry-After` (rounded up, at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn blocks_after_the_limit_until_the_window_closes() {
        let limit = FailureLimit {
            max_failures: 3,
            window: S(60),
        };
        let mut c = None;
        for t in 0..3 {
            assert_eq!(limit.blocked(c.as_ref(), S(t)), None);
            c = Some(limit.record_failure(c.as_ref(), S(t)));
        }
        assert_eq!(limit.blocked(c.as_ref(), S(10)), Some(S(50)));
        assert_eq!(limit.blocked(c.as_ref(), S(59)), Some(S(1)));
        assert_eq!(limit.blocked(c.as_ref(), S(60)), None);
        assert!(limit.is_stale(c.as_ref().unwrap(), S(60)));
        // A new window starts with the next failure.
        let next = limit.record_failure(c.as_ref(), S(61));
        assert_eq!(next.failures, 1);
        assert_eq!(next.window_start, S(61));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(S(7)), 7);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
