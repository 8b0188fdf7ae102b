//! A token bucket: at most `rate` operations per second on average, with
//! bursts of up to `burst`. Time is passed in, so the rule is a plain function.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    /// Time of the last refill, on the caller's clock.
    last: Duration,
}

impl TokenBucket {
    /// A full bucket at time `now`. `rate` is clamped to at least 0.001/s and
    /// `burst` to at least 1.
    pub fn new(rate: f64, burst: u32, now: Duration) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: rate.max(0.001),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token at `now`: `Duration::ZERO` if one was there, else how
    /// long the caller must wait before acting (the token is reserved, so
    /// waiting callers queue up fairly rather than all waking at once).
    pub fn take(&mut self, now: Duration) -> Duration {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_passes_then_callers_are_spaced_at_the_rate() {
        let mut b = TokenBucket::new(10.0, 3, ms(0));
        let waits: Vec<u128> = (0..6).map(|_| b.take(ms(0)).as_millis()).collect();
        assert_eq!(waits, [0, 0, 0, 100, 200, 300]);
    }

    #[test]
    fn tokens_refill_with_time_up_to_the_burst() {
        let mut b = TokenBucket::new(10.0, 2, ms(0));
        assert_eq!(b.take(ms(0)), Duration::ZERO);
        assert_eq!(b.take(ms(0)), Duration::ZERO);
        // An hour idle refills only up to the burst.
        assert_eq!(b.take(ms(3_600_000)), Duration::ZERO);
        assert_eq!(b.take(ms(3_600_000)), Duration::ZERO);
        assert_eq!(b.take(ms(3_600_000)).as_millis(), 100);
    }

    #[test]
    fn a_thousand_changes_at_once_take_their_time() {
        let mut b = TokenBucket::new(50.0, 50, ms(0));
        let last = (0..1000).map(|_| b.take(ms(0))).last().unwrap();
        assert_eq!(last.as_millis(), 19_000);
    }
}
