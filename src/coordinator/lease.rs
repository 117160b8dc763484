//! The leader lease: at most one coordinator acts on a (node, tmux session) at a time.
//!
//! The lease is a Redis string with a TTL whose value is `<token> <holder>`. The token comes
//! from a counter that only grows, so every tenure has a distinct, increasing fencing token
//! (it is written into the events a leader emits, so an observer can tell tenures apart).
//! Acquiring is `SET`-if-absent done in Lua together with the counter; renewing and releasing
//! compare the whole value first, so a coordinator whose lease lapsed can never extend or
//! delete its successor's lease. A standby polls [`Lease::try_acquire`] and takes over at
//! most one poll interval after the lease lapses.
//!
//! Before each action on tmux or Redis the leader calls [`Lease::renew`] and acts only if it
//! still holds the lease, with a whole TTL ahead of it: an action takes milliseconds, the TTL
//! seconds, so a standby cannot start acting while a stale leader finishes one.

use std::time::Duration;

use crate::bus::{eval, Bus, BusError};
use crate::config::short_hostname;
use crate::schema::new_id;

/// A holder name for a new tenure of this process (coordinator or watchdog): host, pid and
/// a random part, so two tenures of one process differ and `status` can say who leads.
pub fn new_holder() -> String {
    format!(
        "{}:{}:{}",
        short_hostname(),
        std::process::id(),
        &new_id()[..10]
    )
}

/// KEYS: lease, token counter. ARGV: holder, TTL ms.
/// Returns `{token, value}` when acquired, `{0, current value}` when someone holds it.
const ACQUIRE: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  return {0, current}
end
local token = redis.call('INCR', KEYS[2])
local value = token .. ' ' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {token, value}
";

/// KEYS: lease. ARGV: expected value, TTL ms. Returns 1 when renewed.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// KEYS: lease. ARGV: expected value. Returns 1 when deleted.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A held lease.
#[derive(Clone)]
pub struct Lease {
    bus: Bus,
    key: String,
    value: String,
    token: u64,
    ttl: Duration,
}

/// Who holds a lease (for messages and `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub token: u64,
    pub holder: String,
    /// Time left before it lapses unless renewed.
    pub remaining: Duration,
}

fn ttl_ms(ttl: Duration) -> String {
    ttl.as_millis().max(1).to_string()
}

impl Lease {
    /// Takes the lease of `session` on `node` for `holder` if nobody holds it.
    pub async fn try_acquire(
        bus: &Bus,
        node: &str,
        session: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, BusError> {
        let keys = [
            bus.keys().lease(node, session),
            bus.keys().lease_token(node, session),
        ];
        let (token, value): (u64, String) =
            eval(ACQUIRE, &keys, &[holder.to_string(), ttl_ms(ttl)])
                .query_async(&mut bus.connection())
                .await?;
        if token == 0 {
            return Ok(None);
        }
        let [key, _] = keys;
        Ok(Some(Lease {
            bus: bus.clone(),
            key,
            value,
            token,
            ttl,
        }))
    }

    /// The current holder of the lease of `session` on `node`, if any.
    pub async fn holder(
        bus: &Bus,
        node: &str,
        session: &str,
    ) -> Result<Option<LeaseHolder>, BusError> {
        let key = bus.keys().lease(node, session);
        let (value, pttl): (Option<String>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut bus.connection())
            .await?;
        Ok(value.and_then(|v| {
            let (token, holder) = v.split_once(' ')?;
            Some(LeaseHolder {
                token: token.parse().ok()?,
                holder: holder.to_string(),
                remaining: Duration::from_millis(pttl.max(0) as u64),
            })
        }))
    }

    /// The fencing token of this tenure.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Extends the lease by a full TTL. `Ok(false)`: it lapsed and someone else may hold it
    /// now; the caller must stop acting.
    pub async fn renew(&self) -> Result<bool, BusError> {
        let renewed: i64 = eval(
            RENEW,
            std::slice::from_ref(&self.key),
            &[self.value.clone(), ttl_ms(self.ttl)],
        )
        .query_async(&mut self.bus.connection())
        .await?;
        Ok(renewed == 1)
    }

    /// Gives the lease up at once so a standby need not wait for it to lapse.
    pub async fn release(&self) -> Result<bool, BusError> {
        let deleted: i64 = eval(
            RELEASE,
            std::slice::from_ref(&self.key),
            std::slice::from_ref(&self.value),
        )
        .query_async(&mut self.bus.connection())
        .await?;
        Ok(deleted == 1)
    }
}
