//! The Redis key layout of a bus: the only place key strings are formatted.
//!
//! Every key starts with `<namespace>:`, so an ACL pattern `~<namespace>:*` covers one bus
//! and several buses share one Redis. The keys of one worker carry the hash tag
//! `{<worker id>}`, so the multi-key atomic steps on them (BLMOVE queue → processing, the
//! Lua scripts in `queue.rs`) stay in one slot on Redis Cluster; so do the two DLQ keys
//! (hash tag `{dlq}`), and the workflow records with their index (hash tag `{workflows}`).
//! `docs/PROTOCOL.md` lists
//! the type, contents and lifetime of each key.

/// Builds the keys of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    ns: String,
}

impl Keys {
    /// Keys of the bus named `namespace`.
    pub fn new(namespace: impl Into<String>) -> Keys {
        Keys {
            ns: namespace.into(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    fn worker_key(&self, worker: &str, suffix: &str) -> String {
        format!("{}:{{{}}}:{}", self.ns, worker, suffix)
    }

    /// List: commands waiting for `worker` (LPUSH in, taken from the right).
    pub fn queue(&self, worker: &str) -> String {
        self.worker_key(worker, "queue")
    }

    /// List: commands taken by `worker` and not yet acknowledged.
    pub fn processing(&self, worker: &str) -> String {
        self.worker_key(worker, "processing")
    }

    /// String with a TTL: present while `worker` is alive; value = its generation.
    pub fn heartbeat(&self, worker: &str) -> String {
        self.worker_key(worker, "hb")
    }

    /// Hash: the registry record of `worker` (see `WorkerInfo`).
    pub fn info(&self, worker: &str) -> String {
        self.worker_key(worker, "info")
    }

    /// Counter: incarnation number of `worker`, raised on each start and on fencing.
    pub fn generation(&self, worker: &str) -> String {
        self.worker_key(worker, "generation")
    }

    /// List: DLQ entries (JSON) taken out of `worker`'s processing list and not yet written
    /// to the DLQ. Written in the same atomic step that removes them from `processing`, so
    /// a crash before the DLQ write loses nothing and a repeated write keeps the entry id.
    pub fn dead_letters(&self, worker: &str) -> String {
        self.worker_key(worker, "dead")
    }

    /// Sorted set: restart history of `worker` (score = ms, member = entry JSON), kept by the
    /// coordinator.
    pub fn restarts(&self, worker: &str) -> String {
        self.worker_key(worker, "restarts")
    }

    /// Hash: quarantine diagnostic of `worker` (present while quarantined).
    pub fn quarantine(&self, worker: &str) -> String {
        self.worker_key(worker, "quarantine")
    }

    /// Set: ids of all registered workers.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.ns)
    }

    /// Set: ids of the registered workers with role `role`.
    pub fn role(&self, role: &str) -> String {
        format!("{}:role:{}", self.ns, role)
    }

    /// List holding one element, the result JSON of command `command_id` (with a TTL).
    /// A list rather than a string so that waiters can block on it (see `results.rs`).
    pub fn result(&self, command_id: &str) -> String {
        format!("{}:result:{}", self.ns, command_id)
    }

    /// List: DLQ entry ids, newest first. Hash tag `{dlq}` shared with [`Keys::dlq_entries`]
    /// so the script adding an entry to both stays in one cluster slot.
    pub fn dlq(&self) -> String {
        format!("{}:{{dlq}}", self.ns)
    }

    /// Hash: DLQ entry id → entry JSON.
    pub fn dlq_entries(&self) -> String {
        format!("{}:{{dlq}}:entries", self.ns)
    }

    /// Stream: the bus's events.
    pub fn events(&self) -> String {
        format!("{}:events", self.ns)
    }

    /// String with a TTL: leader lease of the coordinator of tmux session `session` on `node`.
    pub fn lease(&self, node: &str, session: &str) -> String {
        format!("{}:lease:{{{}/{}}}", self.ns, node, session)
    }

    /// Counter: fencing tokens handed out for the lease of `session` on `node`.
    pub fn lease_token(&self, node: &str, session: &str) -> String {
        format!("{}:lease:{{{}/{}}}:token", self.ns, node, session)
    }

    /// Hash: state of workflow `id`. Hash tag `{workflows}` shared with
    /// [`Keys::workflows`], so the transaction writing a record and its index entry, and
    /// the pipeline reading many records, stay in one cluster slot.
    pub fn workflow(&self, id: &str) -> String {
        format!("{}:{{workflows}}:{}", self.ns, id)
    }

    /// Sorted set: workflow ids by start time (ms).
    pub fn workflows(&self) -> String {
        format!("{}:{{workflows}}", self.ns)
    }

    // coordinator keys

    /// Hash: how the coordinator respawns managed pane `worker` (session, argv, cwd), kept
    /// while the pane is managed, so a worker that dies before registering can be respawned.
    pub fn managed(&self, worker: &str) -> String {
        self.worker_key(worker, "managed")
    }

    /// List: requests (`panebus restart`) for the coordinator of `session` on `node`.
    pub fn coordinator_requests(&self, node: &str, session: &str) -> String {
        format!("{}:coordinator:{}/{}:requests", self.ns, node, session)
    }

    /// List holding the coordinator's reply to request `request_id` (with a TTL).
    pub fn coordinator_reply(&self, request_id: &str) -> String {
        format!("{}:coordinator:reply:{}", self.ns, request_id)
    }
}

// Key patterns for Redis ACL rules (`src/bus/acl.rs`). They are built by the layout
// functions above, so a rule can never drift from the keys the bus really uses.

/// Escapes Redis's glob metacharacters (`*`, `?`, `[`, `]`, `\`) so that a key pattern
/// matches `text` literally.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Keys {
    /// The same layout with the namespace glob-escaped. Its functions, given glob arguments
    /// (`*`, or text escaped with [`glob_escape`]), return key patterns in the syntax of
    /// `KEYS` and ACL `~` rules: `keys.patterns().queue("*")` is `<ns>:{*}:queue`.
    pub fn patterns(&self) -> Keys {
        Keys::new(glob_escape(&self.ns))
    }

    /// The pattern matching every key of this bus.
    pub fn all_pattern(&self) -> String {
        format!("{}:*", glob_escape(&self.ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_keys_share_one_hash_tag_and_the_namespace() {
        let k = Keys::new("pb");
        let w = "devbox/%3";
        for key in [
            k.queue(w),
            k.processing(w),
            k.heartbeat(w),
            k.info(w),
            k.generation(w),
            k.restarts(w),
            k.quarantine(w),
            k.dead_letters(w),
        ] {
            assert!(key.starts_with("pb:{devbox/%3}:"), "{key}");
        }
        assert_eq!(k.queue(w), "pb:{devbox/%3}:queue");
    }

    #[test]
    fn shared_keys_start_with_the_namespace() {
        let k = Keys::new("pb");
        assert_eq!(k.workers(), "pb:workers");
        assert_eq!(k.role("reviewer"), "pb:role:reviewer");
        assert_eq!(k.result("01J"), "pb:result:01J");
        assert_eq!(k.dlq(), "pb:{dlq}");
        assert_eq!(k.dlq_entries(), "pb:{dlq}:entries");
        assert_eq!(k.events(), "pb:events");
        assert_eq!(k.lease("devbox", "main"), "pb:lease:{devbox/main}");
        assert_eq!(
            k.lease_token("devbox", "main"),
            "pb:lease:{devbox/main}:token"
        );
        assert_eq!(k.workflow("w1"), "pb:{workflows}:w1");
        assert_eq!(k.workflows(), "pb:{workflows}");
    }

    #[test]
    fn patterns_escape_glob_characters_of_literal_parts() {
        assert_eq!(glob_escape(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
        let k = Keys::new("p*b");
        assert_eq!(k.patterns().queue("*"), r"p\*b:{*}:queue");
        assert_eq!(k.patterns().result("*"), r"p\*b:result:*");
        assert_eq!(k.all_pattern(), r"p\*b:*");
        assert_eq!(
            Keys::new("pb").patterns().info(&glob_escape("dev[1]/%3")),
            r"pb:{dev\[1\]/%3}:info"
        );
    }
}
