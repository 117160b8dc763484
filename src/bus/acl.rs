//! Redis ACL rules for the three kinds of bus client: a pure function from a role, the key
//! layout and a worker scope to the arguments of one `ACL SETUSER` (`panebus acl` prints
//! them; `tests/acl.rs` applies them to a real redis-server and runs PaneBus as each user).
//!
//! Whoever can write a worker's queue can make it run anything its handlers run, so the
//! rules separate who may *write* a queue (dispatchers), who may *take* from it (only its
//! worker) and who may *read* it (its worker and the coordinator). Redis 7 selectors make
//! that precise: a command is allowed when one selector allows both the command and every
//! key it touches, so each capability below is its own selector, `(+commands ~keys)`, and
//! commands of one never combine with keys of another. `EVAL`/`EVALSHA` need read *and*
//! write permission on the keys they declare (Redis cannot tell what a script does) and
//! each `redis.call` inside a script is checked again, so a selector that allows a script
//! on a key allows only the few commands the bus's scripts run on it. Every key pattern
//! comes from [`Keys::patterns`], so the rules follow the layout in `keys.rs`.
//!
//! What ACLs cannot express, and the README's "Security" section says: a worker can write
//! any command's result, trim or forge events and remove other ids from the registry sets
//! (those keys are shared); `CLIENT UNBLOCK` can end any connection's blocking call; a
//! dispatcher can make any worker in its scope run anything its handlers run.

use std::collections::BTreeSet;

use serde::Serialize;
use thiserror::Error;

use super::keys::{glob_escape, Keys};

/// What an ACL user is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `panebus worker`: takes from its own queue, writes results, events, DLQ entries.
    Worker,
    /// The CLI: dispatch, results, events, status, DLQ, workflows, restart, release.
    Dispatcher,
    /// `panebus attach` / `watchdog`: reads and writes every key of the bus.
    Coordinator,
}

impl Role {
    /// Lower-case name, as in `--role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Dispatcher => "dispatcher",
            Role::Coordinator => "coordinator",
        }
    }
}

/// Why a rule cannot be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AclError {
    /// The worker scope is not `*`, `NODE/PANE` or a glob of those.
    #[error("invalid worker scope {spec:?}: {reason}; give a worker id (`devbox/%3`), all workers of a node (`devbox/*`) or `*`")]
    Scope { spec: String, reason: String },
    /// A `--password-sha256` value that is not a SHA-256 digest.
    #[error("invalid password hash: expected 64 hexadecimal digits (`printf %s \"$PASSWORD\" | sha256sum`)")]
    Hash,
    /// A user name Redis would split or refuse.
    #[error("invalid user name {0:?}: use letters, digits, `-`, `_`, `.`, `@` (no spaces)")]
    User(String),
}

/// The worker ids a rule covers: one id, or a glob over ids where `*` is a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerScope {
    /// The scope as given (`devbox/%3`, `devbox/*`, `*`).
    spec: String,
    /// The same as a Redis glob: literal parts escaped, `*` kept.
    glob: String,
}

impl WorkerScope {
    /// Every worker of the bus.
    pub fn all() -> WorkerScope {
        WorkerScope {
            spec: "*".to_string(),
            glob: "*".to_string(),
        }
    }

    /// Parses `*`, `NODE/PANE` (either side may hold `*` wildcards). The node has no
    /// whitespace, `{`, `}`, `:` or `/`; the pane no whitespace, `{`, `}` or `:`, as worker
    /// ids do. A pane alone (`%3`) must be resolved to `<node>/%3` by the caller first.
    pub fn parse(spec: &str) -> Result<WorkerScope, AclError> {
        let error = |reason: &str| AclError::Scope {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if spec == "*" {
            return Ok(WorkerScope::all());
        }
        let (node, pane) = spec
            .split_once('/')
            .ok_or_else(|| error("no `/` between node and pane"))?;
        if node.is_empty() || pane.is_empty() {
            return Err(error("empty node or pane"));
        }
        let bad = |part: &str, extra: &str| {
            part.chars().any(|c| {
                c.is_whitespace() || c.is_control() || "{}:".contains(c) || extra.contains(c)
            })
        };
        if bad(node, "/") || bad(pane, "") {
            return Err(error("whitespace, `{`, `}` or `:` (or `/` in the node)"));
        }
        let glob = spec
            .split('*')
            .map(glob_escape)
            .collect::<Vec<_>>()
            .join("*");
        Ok(WorkerScope {
            spec: spec.to_string(),
            glob,
        })
    }

    /// The scope as given.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    fn is_all(&self) -> bool {
        self.glob.chars().all(|c| c == '*' || c == '/')
    }

    /// A name fragment for a default user name: `devbox/%3` → `devbox-3`, `*` → ``.
    fn name_part(&self) -> String {
        let cleaned: String = self
            .spec
            .chars()
            .filter(|c| !matches!(c, '*' | '%'))
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        cleaned
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// How a selector may use the keys of one pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// `%R~`: commands that read the value.
    Read,
    /// `%W~`: commands that write it.
    Write,
    /// `~`: both (needed by `EVAL`/`EVALSHA` on the keys they declare, and by `BLMOVE`).
    ReadWrite,
}

/// One key pattern and what may be done with its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRule {
    pub access: Access,
    pub pattern: String,
}

impl KeyRule {
    fn rule(&self) -> String {
        let prefix = match self.access {
            Access::Read => "%R~",
            Access::Write => "%W~",
            Access::ReadWrite => "~",
        };
        format!("{prefix}{}", self.pattern)
    }
}

/// One capability: commands allowed together with the keys they may touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selector {
    /// What it is for, e.g. `take own commands`.
    pub purpose: &'static str,
    /// Commands (lower case; `client|id` form for subcommands).
    pub commands: Vec<&'static str>,
    pub keys: Vec<KeyRule>,
}

impl Selector {
    /// The selector as one `ACL SETUSER` argument: `(+cmd ... ~pattern ...)`.
    pub fn rule(&self) -> String {
        let parts: Vec<String> = self
            .commands
            .iter()
            .map(|c| format!("+{c}"))
            .chain(self.keys.iter().map(KeyRule::rule))
            .collect();
        format!("({})", parts.join(" "))
    }
}

/// The password part of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// No password: the user exists but cannot log in until one is added.
    Unset,
    /// `>password` (the caller asked for it to be printed).
    Plain(String),
    /// `#<sha256 hex>`: Redis stores only the digest; no secret is printed.
    Sha256(String),
}

impl Password {
    /// A `--password-sha256` value, checked and lower-cased.
    pub fn sha256(hex: &str) -> Result<Password, AclError> {
        let hex = hex.trim().to_ascii_lowercase();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(AclError::Hash);
        }
        Ok(Password::Sha256(hex))
    }

    fn rule(&self) -> Option<String> {
        match self {
            Password::Unset => None,
            Password::Plain(p) => Some(format!(">{p}")),
            Password::Sha256(h) => Some(format!("#{h}")),
        }
    }
}

/// The complete ACL of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAcl {
    pub user: String,
    pub role: Role,
    /// Worker scope (worker: the workers it may serve; dispatcher: the queues it may push to).
    pub workers: Option<String>,
    /// Commands without keys (connection housekeeping).
    pub commands: Vec<&'static str>,
    pub selectors: Vec<Selector>,
    #[serde(skip)]
    pub password: Password,
}

impl UserAcl {
    /// The arguments after `ACL SETUSER`: the user, then rules that first reset everything
    /// (password, keys, channels, commands, selectors), so applying them again converges.
    pub fn setuser_args(&self) -> Vec<String> {
        let mut args = vec![self.user.clone(), "reset".to_string(), "on".to_string()];
        args.extend(self.password.rule());
        args.extend(["resetchannels".to_string(), "-@all".to_string()]);
        args.extend(self.commands.iter().map(|c| format!("+{c}")));
        args.extend(self.selectors.iter().map(Selector::rule));
        args
    }
}

/// The default user name of `role` for bus `keys` and `scope`: `<ns>-worker-devbox-3`,
/// `<ns>-worker-devbox` (a node's workers), `<ns>-dispatcher`, `<ns>-coordinator`.
pub fn default_user(role: Role, keys: &Keys, scope: &WorkerScope) -> String {
    let part = scope.name_part();
    let base = format!("{}-{}", keys.namespace(), role.as_str());
    if part.is_empty() || role == Role::Coordinator {
        base
    } else {
        format!("{base}-{part}")
    }
}

/// Checks a `--user` name: no whitespace or characters that need quoting in a URL.
pub fn check_user(name: &str) -> Result<(), AclError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AclError::User(name.to_string()))
    }
}

/// Connection housekeeping every PaneBus process sends: `PING` (health checks, `redis-cli
/// ping`), `CLIENT ID` (each blocking connection learns its id), `MULTI`/`EXEC` (atomic
/// pipelines), `SCRIPT LOAD` (after `NOSCRIPT`), and the topology reads of the other
/// deployments: `CLUSTER SLOTS` and `CLIENT INFO` (Redis Cluster: slot map, and the node a
/// blocking connection must go to) and `ROLE` (Sentinel: is this still the primary). None
/// of them touches a key or changes the server.
const CONNECTION: &[&str] = &[
    "ping",
    "client|id",
    "client|info",
    "multi",
    "exec",
    "discard",
    "script|load",
    "cluster|slots",
    "role",
];

fn rw(pattern: String) -> KeyRule {
    KeyRule {
        access: Access::ReadWrite,
        pattern,
    }
}

fn read(pattern: String) -> KeyRule {
    KeyRule {
        access: Access::Read,
        pattern,
    }
}

fn write(pattern: String) -> KeyRule {
    KeyRule {
        access: Access::Write,
        pattern,
    }
}

/// The worker's selectors: its own keys (take, ack, register, heartbeat, recover), then
/// write-only access to the shared keys it reports into.
fn worker_selectors(keys: &Keys, scope: &WorkerScope) -> Vec<Selector> {
    let p = keys.patterns();
    let w = &scope.glob;
    vec![
        Selector {
            purpose:
                "own queue, processing list, dead letters, registry record, heartbeat, generation",
            commands: vec![
                "eval", "evalsha", "blmove", "lindex", "lrange", "lrem", "rpush", "get", "set",
                "incr", "del", "hget", "hset", "exists",
            ],
            keys: vec![
                rw(p.queue(w)),
                rw(p.processing(w)),
                rw(p.dead_letters(w)),
                rw(p.heartbeat(w)),
                rw(p.info(w)),
                rw(p.generation(w)),
            ],
        },
        Selector {
            purpose: "registry index: add and remove itself",
            commands: vec!["sadd", "srem"],
            keys: vec![write(p.workers()), write(p.role("*"))],
        },
        Selector {
            purpose: "store results; read them to skip a command finished before a crash",
            commands: vec!["del", "rpush", "pexpire", "lindex"],
            keys: vec![rw(p.result("*"))],
        },
        Selector {
            purpose: "record events",
            commands: vec!["xadd"],
            keys: vec![write(p.events())],
        },
        Selector {
            purpose: "add DLQ entries",
            commands: vec!["eval", "evalsha", "hsetnx", "lpush"],
            keys: vec![rw(p.dlq()), rw(p.dlq_entries())],
        },
    ]
}

/// The dispatcher's selectors: enqueue (scope), then reads of the registry, results,
/// events and DLQ, and the operator actions (DLQ retry/purge, workflows, restart, release).
fn dispatcher_selectors(keys: &Keys, scope: &WorkerScope) -> Vec<Selector> {
    let p = keys.patterns();
    vec![
        Selector {
            purpose: "enqueue (the ENQUEUE script checks the registry record and depth)",
            commands: vec!["eval", "evalsha", "lpush", "llen", "exists"],
            keys: vec![rw(p.queue(&scope.glob)), rw(p.info(&scope.glob))],
        },
        Selector {
            purpose: "read the registry, heartbeats, quarantines and managed panes",
            commands: vec!["smembers", "hgetall", "hget", "pttl", "exists"],
            keys: vec![
                read(p.workers()),
                read(p.role("*")),
                read(p.info("*")),
                read(p.heartbeat("*")),
                read(p.quarantine("*")),
                read(p.managed("*")),
            ],
        },
        Selector {
            purpose: "status-line's summary script (declares the worker set; its reads are \
                      checked against the selectors above)",
            commands: vec!["eval"],
            keys: vec![rw(p.workers())],
        },
        Selector {
            purpose: "queue lengths only (never their contents)",
            commands: vec!["llen"],
            keys: vec![read(p.queue("*")), read(p.processing("*"))],
        },
        Selector {
            purpose: "read and wait for results; drop one before a DLQ retry",
            commands: vec!["lindex", "blmove", "del"],
            keys: vec![rw(p.result("*"))],
        },
        Selector {
            purpose: "read, follow and record events",
            commands: vec!["xrange", "xrevrange", "xread", "xadd"],
            keys: vec![rw(p.events())],
        },
        Selector {
            purpose: "list, show, retry and purge the DLQ",
            commands: vec![
                "llen", "lrange", "hget", "hmget", "hvals", "lrem", "hdel", "del",
            ],
            keys: vec![rw(p.dlq()), rw(p.dlq_entries())],
        },
        Selector {
            purpose: "workflow records (ask, workflows, workflow-status)",
            commands: vec!["hset", "hget", "expire", "zadd", "zrevrange", "zrem"],
            keys: vec![rw(p.workflow("*")), rw(p.workflows())],
        },
        Selector {
            purpose: "restart: find the coordinator, send a request, read its reply",
            commands: vec!["get", "pttl", "rpush", "lpop"],
            keys: vec![
                read(p.lease("*", "*")),
                write(p.coordinator_requests("*", "*")),
                rw(p.coordinator_reply("*")),
            ],
        },
        Selector {
            purpose: "release a quarantine (the RELEASE script)",
            commands: vec!["eval", "evalsha", "del", "zadd", "zremrangebyrank"],
            keys: vec![rw(p.quarantine("*")), rw(p.restarts("*"))],
        },
    ]
}

/// The coordinator's one selector: every key of the bus with every command the bus sends
/// (it requeues from any worker's processing list, respawns from `managed`, holds leases,
/// drains requests, deregisters workers) and no server administration command.
fn coordinator_selectors(keys: &Keys) -> Vec<Selector> {
    let all = WorkerScope::all();
    let own: &[&'static str] = &[
        "zrange",
        "zremrangebyrank",
        "pexpire",
        "lrange",
        "lpop",
        "srem",
    ];
    let commands: BTreeSet<&'static str> = worker_selectors(keys, &all)
        .into_iter()
        .chain(dispatcher_selectors(keys, &all))
        .flat_map(|s| s.commands)
        .chain(own.iter().copied())
        .collect();
    vec![Selector {
        purpose: "every key of the bus (supervision, requeue, leases, requests)",
        commands: commands.into_iter().collect(),
        keys: vec![rw(keys.all_pattern())],
    }]
}

/// The ACL of `user` in `role` on bus `keys`. `scope` limits a worker to the workers it
/// serves and a dispatcher to the queues it may push to; the coordinator ignores it.
pub fn user_acl(
    role: Role,
    keys: &Keys,
    scope: &WorkerScope,
    user: String,
    password: Password,
) -> UserAcl {
    let mut commands = CONNECTION.to_vec();
    if role == Role::Worker {
        // A stopping worker ends its own parked BLMOVE (Redis cannot limit the id).
        commands.push("client|unblock");
    }
    let selectors = match role {
        Role::Worker => worker_selectors(keys, scope),
        Role::Dispatcher => dispatcher_selectors(keys, scope),
        Role::Coordinator => coordinator_selectors(keys),
    };
    let workers = match role {
        Role::Coordinator => None,
        Role::Dispatcher if scope.is_all() => None,
        _ => Some(scope.spec().to_string()),
    };
    UserAcl {
        user,
        role,
        workers,
        commands,
        selectors,
        password,
    }
}

/// Quotes one argument for `redis-cli` (which splits lines like `sdssplitargs`): bare when
/// it has no space, quote or control character, else in double quotes with `\\`, `\"`
/// and `\xHH` escapes.
pub fn redis_cli_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'');
    if plain {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    for b in arg.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' ' => out.push(' '),
            b if b.is_ascii_graphic() => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// `ACL SETUSER ...` as one `redis-cli` line.
pub fn redis_cli_line(acl: &UserAcl) -> String {
    let mut line = String::from("ACL SETUSER");
    for arg in acl.setuser_args() {
        line.push(' ');
        line.push_str(&redis_cli_quote(&arg));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(role: Role, scope: &str) -> UserAcl {
        let keys = Keys::new("pb");
        let scope = WorkerScope::parse(scope).unwrap();
        let user = default_user(role, &keys, &scope);
        user_acl(role, &keys, &scope, user, Password::Unset)
    }

    /// Which selectors of `acl` allow `command` on `key` with `access`, by Redis's rules
    /// (glob over the key, permission flags).
    fn allows(acl: &UserAcl, command: &str, key: &str, access: Access) -> bool {
        acl.selectors.iter().any(|s| {
            s.commands.contains(&command)
                && s.keys.iter().any(|k| {
                    let flags_ok = match access {
                        Access::Read => k.access != Access::Write,
                        Access::Write => k.access != Access::Read,
                        Access::ReadWrite => k.access == Access::ReadWrite,
                    };
                    flags_ok && glob_match(&k.pattern, key)
                })
        })
    }

    /// Redis's glob subset used by the rules: `*`, `\` escapes and literals.
    fn glob_match(pattern: &str, text: &str) -> bool {
        fn go(p: &[char], t: &[char]) -> bool {
            match p.first() {
                None => t.is_empty(),
                Some('*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
                Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && go(&p[2..], &t[1..]),
                Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
            }
        }
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        go(&p, &t)
    }

    #[test]
    fn scopes_parse_and_escape() {
        assert_eq!(WorkerScope::parse("devbox/%3").unwrap().glob, "devbox/%3");
        assert_eq!(WorkerScope::parse("dev?/*").unwrap().glob, r"dev\?/*");
        assert_eq!(WorkerScope::parse("*/*").unwrap().glob, "*/*");
        assert!(WorkerScope::parse("*/*").unwrap().is_all());
        assert!(!WorkerScope::parse("devbox/*").unwrap().is_all());
        for bad in ["%3", "dev box/%3", "a/b/c:d", "{x}/%1", "/%1", "devbox/"] {
            assert!(WorkerScope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_names_follow_namespace_role_and_scope() {
        assert_eq!(acl(Role::Worker, "devbox/%3").user, "pb-worker-devbox-3");
        assert_eq!(acl(Role::Worker, "devbox/*").user, "pb-worker-devbox");
        assert_eq!(acl(Role::Worker, "*").user, "pb-worker");
        assert_eq!(acl(Role::Dispatcher, "*").user, "pb-dispatcher");
        assert_eq!(acl(Role::Coordinator, "devbox/*").user, "pb-coordinator");
        assert!(check_user("pb-worker-devbox-3").is_ok());
        assert!(check_user("a b").is_err());
        assert!(check_user("a:b").is_err());
    }

    #[test]
    fn a_worker_takes_only_from_its_own_queue() {
        let w = acl(Role::Worker, "devbox/%3");
        let own = "pb:{devbox/%3}:queue";
        let other = "pb:{devbox/%4}:queue";
        assert!(allows(&w, "blmove", own, Access::ReadWrite));
        assert!(allows(
            &w,
            "lrange",
            "pb:{devbox/%3}:processing",
            Access::Read
        ));
        assert!(!allows(&w, "blmove", other, Access::Read));
        assert!(!allows(&w, "lrange", other, Access::Read));
        assert!(!allows(
            &w,
            "lrange",
            "pb:{devbox/%4}:processing",
            Access::Read
        ));
        assert!(allows(&w, "lrem", "pb:{devbox/%3}:dead", Access::Write));
        // Shared keys: write-only, but for results (read by crash recovery).
        assert!(allows(&w, "rpush", "pb:result:01J", Access::Write));
        assert!(allows(&w, "lindex", "pb:result:01J", Access::Read));
        assert!(!allows(&w, "blmove", "pb:result:01J", Access::ReadWrite));
        assert!(allows(&w, "xadd", "pb:events", Access::Write));
        assert!(!allows(&w, "xrange", "pb:events", Access::Read));
        assert!(allows(&w, "sadd", "pb:workers", Access::Write));
        assert!(!allows(&w, "smembers", "pb:workers", Access::Read));
        assert!(!allows(&w, "del", "pb:workers", Access::Write));
        // The DLQ script needs RW, but only HSETNX/LPUSH run on those keys.
        assert!(!allows(&w, "lrange", &Keys::new("pb").dlq(), Access::Read));
        assert!(!allows(
            &w,
            "hget",
            &Keys::new("pb").dlq_entries(),
            Access::Read
        ));
        // Coordinator keys are out of reach.
        assert!(!allows(&w, "hset", "pb:{devbox/%3}:managed", Access::Write));
    }

    #[test]
    fn a_node_wide_worker_scope_stops_at_the_node() {
        let w = acl(Role::Worker, "devbox/*");
        assert!(allows(
            &w,
            "blmove",
            "pb:{devbox/%9}:queue",
            Access::ReadWrite
        ));
        assert!(!allows(
            &w,
            "blmove",
            "pb:{other/%9}:queue",
            Access::ReadWrite
        ));
        assert!(!allows(
            &w,
            "blmove",
            "pb:{devbox2/%9}:queue",
            Access::ReadWrite
        ));
    }

    #[test]
    fn a_dispatcher_enqueues_but_never_reads_or_takes_a_queue() {
        let d = acl(Role::Dispatcher, "*");
        let queue = "pb:{devbox/%3}:queue";
        let processing = "pb:{devbox/%3}:processing";
        assert!(allows(&d, "evalsha", queue, Access::ReadWrite));
        assert!(allows(&d, "lpush", queue, Access::Write));
        assert!(allows(&d, "llen", processing, Access::Read));
        for cmd in ["lrange", "lindex", "blmove", "rpop", "lpop", "lmove", "del"] {
            assert!(!allows(&d, cmd, queue, Access::Read), "{cmd} on the queue");
            assert!(
                !allows(&d, cmd, processing, Access::Read),
                "{cmd} on processing"
            );
        }
        assert!(!allows(&d, "evalsha", processing, Access::ReadWrite));
        assert!(allows(&d, "blmove", "pb:result:01J", Access::ReadWrite));
        assert!(allows(&d, "xread", "pb:events", Access::Read));
        assert!(allows(&d, "hgetall", "pb:{devbox/%3}:info", Access::Read));
        assert!(!allows(
            &d,
            "get",
            "pb:{devbox/%3}:generation",
            Access::Read
        ));
        // No server administration, anywhere.
        let all: Vec<&str> = d
            .commands
            .iter()
            .chain(d.selectors.iter().flat_map(|s| s.commands.iter()))
            .copied()
            .collect();
        for cmd in [
            "flushdb", "flushall", "config", "keys", "scan", "debug", "acl", "shutdown",
        ] {
            assert!(!all.iter().any(|c| c.starts_with(cmd)), "{cmd}");
        }
    }

    #[test]
    fn a_scoped_dispatcher_enqueues_only_in_its_scope() {
        let d = acl(Role::Dispatcher, "devbox/*");
        assert_eq!(d.user, "pb-dispatcher-devbox");
        assert!(allows(&d, "lpush", "pb:{devbox/%3}:queue", Access::Write));
        assert!(!allows(&d, "lpush", "pb:{other/%3}:queue", Access::Write));
    }

    #[test]
    fn the_coordinator_has_the_bus_and_nothing_else() {
        let c = acl(Role::Coordinator, "*");
        assert_eq!(c.selectors.len(), 1);
        assert_eq!(c.selectors[0].keys, vec![rw("pb:*".to_string())]);
        for cmd in [
            "lrange", "blmove", "zrange", "hset", "xadd", "evalsha", "srem",
        ] {
            assert!(
                allows(&c, cmd, "pb:{devbox/%3}:processing", Access::ReadWrite),
                "{cmd}"
            );
        }
        assert!(!allows(
            &c,
            "lrange",
            "other:{devbox/%3}:processing",
            Access::Read
        ));
        assert!(!c.selectors[0].commands.iter().any(|c| c.contains("flush")));
    }

    #[test]
    fn setuser_arguments_reset_first_and_quote_for_redis_cli() {
        let keys = Keys::new("pb");
        let scope = WorkerScope::parse("devbox/%3").unwrap();
        let w = user_acl(
            Role::Worker,
            &keys,
            &scope,
            "w".into(),
            Password::Plain("p w\"d".into()),
        );
        let args = w.setuser_args();
        assert_eq!(
            &args[..6],
            ["w", "reset", "on", ">p w\"d", "resetchannels", "-@all"]
        );
        assert!(args.contains(&"+client|unblock".to_string()));
        let line = redis_cli_line(&w);
        assert!(
            line.starts_with(r#"ACL SETUSER w reset on ">p w\"d" resetchannels -@all +ping"#),
            "{line}"
        );
        assert!(line.contains(r#""(+eval +evalsha +blmove"#), "{line}");
        let hashed = Password::sha256(&"AB".repeat(32)).unwrap();
        assert_eq!(hashed.rule().unwrap(), format!("#{}", "ab".repeat(32)));
        assert_eq!(Password::sha256("abc"), Err(AclError::Hash));
        assert_eq!(Password::Unset.rule(), None);
        assert_eq!(redis_cli_quote("a\\b"), "a\\b");
        assert_eq!(redis_cli_quote("(a \\b)"), "\"(a \\\\b)\"");
        assert_eq!(redis_cli_quote("x\ny"), "\"x\\x0ay\"");
        assert_eq!(redis_cli_quote(""), "\"\"");
    }
}
