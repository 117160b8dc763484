//! Redis Cluster hash slots, and [`Batch`]: commands on keys of several slots sent in one
//! round trip where the server allows it, in ordered stages where it does not.
//!
//! Every script and multi-key command of the bus touches keys of one slot (the worker's
//! `{<wid>}` keys, or the DLQ's `{dlq}` keys). Steps that write to several slots (store a
//! result, then ack in the worker's slot) are separate commands whose order matters for
//! at-least-once delivery. On a single Redis server (standalone or Sentinel-managed), one
//! connection executes a pipeline in order, so a whole batch goes out as one pipeline: one
//! round trip. A Redis Cluster connection refuses a pipeline that spans slots before
//! sending anything (`CROSSSLOT`); then the batch is sent stage by stage, each stage as one
//! pipeline per slot (in parallel), the next stage only after the previous one succeeded.

use futures::future::try_join_all;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisResult, Value};

/// Number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster uses.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash slot of `key`: CRC16 of the key, or of its hash tag (the text between the
/// first `{` and the next `}`, when not empty), modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// The key that routes `cmd` on a cluster: the first key of an `EVAL`/`EVALSHA`, else the
/// first argument. `None` for a command without arguments.
fn routing_key(cmd: &Cmd) -> Option<&[u8]> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args.first()?;
    if name.eq_ignore_ascii_case(b"EVAL") || name.eq_ignore_ascii_case(b"EVALSHA") {
        args.get(3).copied()
    } else {
        args.get(1).copied()
    }
}

/// Whether `e` is a refusal of a pipeline whose commands span slots.
fn is_cross_slot(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot)
}

/// Commands in ordered stages: every command of a stage runs after every command of the
/// previous stages; inside a stage, commands on one slot keep their order. Replies of
/// commands added with [`Batch::add_ignored`] are dropped.
#[derive(Default)]
pub struct Batch {
    pipe: Pipeline,
    /// Per command: its stage and whether its reply is kept.
    steps: Vec<(usize, bool)>,
    stage: usize,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a command whose reply [`Batch::query`] returns.
    pub fn add(&mut self, cmd: Cmd) -> &mut Batch {
        self.pipe.add_command(cmd);
        self.steps.push((self.stage, true));
        self
    }

    /// Adds a command whose reply is dropped.
    pub fn add_ignored(&mut self, cmd: Cmd) -> &mut Batch {
        self.pipe.add_command(cmd).ignore();
        self.steps.push((self.stage, false));
        self
    }

    /// Starts the next stage: commands added from now on run after those added before.
    pub fn then(&mut self) -> &mut Batch {
        if self.steps.last().is_some_and(|&(s, _)| s == self.stage) {
            self.stage += 1;
        }
        self
    }

    /// Whether no command was added.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Sends the batch; returns the kept replies in the order the commands were added.
    /// Fails with the first error; on a cluster, stages after a failed one are not sent.
    pub async fn query<C>(&self, conn: &mut C) -> RedisResult<Vec<Value>>
    where
        C: ConnectionLike + Clone + Send,
    {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        match self.pipe.query_async(conn).await {
            Err(e) if is_cross_slot(&e) => self.query_in_stages(conn).await,
            other => other,
        }
    }

    /// Sends the whole batch and then `last` as one pipeline over `conn`, which must reach a
    /// single server (no fallback to stages); returns the kept replies and `last`'s reply.
    /// For a worker's finish followed by its next take on the blocking connection.
    pub async fn query_then<C>(&self, conn: &mut C, last: Cmd) -> RedisResult<(Vec<Value>, Value)>
    where
        C: ConnectionLike,
    {
        let mut pipe = self.pipe.clone();
        pipe.add_command(last);
        let mut replies: Vec<Value> = pipe.query_async(conn).await?;
        let last = replies.pop().unwrap_or(Value::Nil);
        Ok((replies, last))
    }

    /// Sends the batch as a cluster needs it: stage by stage, each stage as one pipeline
    /// per slot (in parallel). Replies as for [`Batch::query`].
    pub async fn query_in_stages<C>(&self, conn: &mut C) -> RedisResult<Vec<Value>>
    where
        C: ConnectionLike + Clone + Send,
    {
        let cmds: Vec<&Cmd> = self.pipe.cmd_iter().collect();
        let mut replies: Vec<Option<Value>> = vec![None; cmds.len()];
        for stage in 0..=self.stage {
            // (slot, indices of its commands in this stage, in order)
            let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
            for (i, &(s, _)) in self.steps.iter().enumerate() {
                if s != stage {
                    continue;
                }
                let slot = routing_key(cmds[i]).map_or(0, key_slot);
                match groups.iter_mut().find(|(g, _)| *g == slot) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((slot, vec![i])),
                }
            }
            let sent = groups.iter().map(|(_, members)| {
                let mut pipe = redis::pipe();
                for &i in members {
                    pipe.add_command(cmds[i].clone());
                }
                let mut conn = conn.clone();
                async move {
                    let values: Vec<Value> = pipe.query_async(&mut conn).await?;
                    Ok::<_, RedisError>(members.iter().copied().zip(values).collect::<Vec<_>>())
                }
            });
            for (i, value) in try_join_all(sent).await?.into_iter().flatten() {
                replies[i] = Some(value);
            }
        }
        Ok(self
            .steps
            .iter()
            .zip(replies)
            .filter(|((_, keep), _)| *keep)
            .map(|(_, v)| v.unwrap_or(Value::Nil))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_redis_cluster_reference_value() {
        // The check value of CRC16/XMODEM, quoted in the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn slots_follow_the_hash_tag_rules_of_the_specification() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        // Empty tag: the whole key is hashed; only the first tag counts.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn the_routing_key_of_a_script_is_its_first_key() {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc").arg(2).arg("k1").arg("k2").arg("v");
        assert_eq!(routing_key(&eval), Some(&b"k1"[..]));
        let mut set = redis::cmd("SET");
        set.arg("k").arg("v");
        assert_eq!(routing_key(&set), Some(&b"k"[..]));
    }

    #[test]
    fn then_after_an_empty_stage_does_not_open_another() {
        let mut batch = Batch::new();
        batch.then();
        batch.add(redis::cmd("PING"));
        batch.then().then();
        batch.add(redis::cmd("PING"));
        assert_eq!(batch.steps, vec![(0, true), (1, true)]);
    }
}
