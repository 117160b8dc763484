//! Capped exponential backoff for retrying Redis while it is unreachable: 100 ms, 200 ms,
//! 400 ms, ... up to 5 s, with ±20 % jitter so many workers do not retry in lockstep.
//! A pure value: the caller sleeps.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The default for Redis reconnection: 100 ms doubling up to 5 s.
    pub fn redis() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// Failures since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next try (without jitter) and count one more failure.
    pub fn next_base(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        self.attempt += 1;
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next try, with jitter.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next_base();
        base.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
    }

    /// Back to the initial delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<u128> = (0..6).map(|_| b.next_base().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.attempt(), 6);
        b.reset();
        assert_eq!(b.next_base(), Duration::from_millis(100));
        let d = b.next_delay();
        assert!(
            d >= Duration::from_millis(160) && d <= Duration::from_millis(240),
            "{d:?}"
        );
    }
}
