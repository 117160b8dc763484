//! Command results, stored by command id for `PANEBUS_RESULT_TTL`.
//!
//! A result key is a list holding exactly one element, the result JSON. A list rather than
//! a string so a waiter can block on it: `BLMOVE key key LEFT LEFT timeout` returns the
//! element as soon as it is pushed and puts it straight back, so every waiter (not just the
//! first) wakes up, a result stored before the wait starts is returned at once, and no
//! polling delay is added. Readers that do not wait use `LINDEX key 0`.

use std::time::Duration;

use super::slots::Batch;
use super::{BlockingConnection, Bus, BusError};
use crate::schema::CommandResult;

/// The longest single wait sent to Redis (100 years): Redis refuses a blocking timeout
/// whose milliseconds do not fit its clock arithmetic ("timeout is negative"), and a
/// `--wait` of `u64::MAX` seconds means "as long as it takes".
const LONGEST_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn parse(command_id: &str, json: &str) -> Result<CommandResult, BusError> {
    serde_json::from_str(json).map_err(|e| {
        BusError::InvalidPayload(format!(
            "stored result of command {command_id} is not valid: {e}"
        ))
    })
}

impl Bus {
    /// Adds the commands storing `result` to `batch`: DEL, RPUSH, PEXPIRE (one key, so they
    /// keep their order on a cluster too), replacing any earlier result (a redelivered
    /// command's last run wins). Plain commands rather than a script: they are cheaper, and
    /// a batch cut short before the RPUSH is followed by no ack either, so the command is
    /// redelivered rather than its result lost.
    pub(crate) fn store_result_cmds(&self, result: &CommandResult, batch: &mut Batch) {
        let json = serde_json::to_string(result).expect("results serialize");
        let key = self.keys.result(&result.command_id);
        let ttl_ms = self.limits.result_ttl.as_millis().max(1) as u64;
        batch.add_ignored(redis::cmd("DEL").arg(&key).to_owned());
        batch.add_ignored(redis::cmd("RPUSH").arg(&key).arg(json).to_owned());
        batch.add_ignored(redis::cmd("PEXPIRE").arg(&key).arg(ttl_ms).to_owned());
    }

    /// Stores `result` under its command id, replacing an earlier one.
    pub async fn store_result(&self, result: &CommandResult) -> Result<(), BusError> {
        let mut batch = Batch::new();
        self.store_result_cmds(result, &mut batch);
        batch.query(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Deletes the stored result of `command_id`, if any.
    pub async fn delete_result(&self, command_id: &str) -> Result<(), BusError> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.keys.result(command_id))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The stored result of `command_id`, if there is one.
    pub async fn result(&self, command_id: &str) -> Result<Option<CommandResult>, BusError> {
        let json: Option<String> = redis::cmd("LINDEX")
            .arg(self.keys.result(command_id))
            .arg(0)
            .query_async(&mut self.conn.clone())
            .await?;
        json.map(|j| parse(command_id, &j)).transpose()
    }

    /// Waits up to `timeout` for the result of `command_id`; returns at once if it is
    /// already stored. Fails with [`BusError::Timeout`] when none arrives in time.
    pub async fn wait_result(
        &self,
        blocking: &mut BlockingConnection,
        command_id: &str,
        timeout: Duration,
    ) -> Result<CommandResult, BusError> {
        let key = self.keys.result(command_id);
        let secs = format!("{:.3}", timeout.min(LONGEST_WAIT).as_secs_f64().max(0.001));
        let json: Option<String> = redis::cmd("BLMOVE")
            .arg(&key)
            .arg(&key)
            .arg("LEFT")
            .arg("LEFT")
            .arg(secs)
            .query_async(&mut blocking.conn)
            .await?;
        match json {
            Some(j) => parse(command_id, &j),
            None => Err(BusError::Timeout {
                what: format!("no result for command {command_id} yet; it may still run: check later with its id"),
                after: timeout,
            }),
        }
    }
}
