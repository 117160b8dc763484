//! Many nodes on one bus: two private tmux servers stand for two hosts (`alpha`, `beta`,
//! set through `PANEBUS_NODE`), each with a session of the same name, its own coordinator
//! and two workers, all on one private redis-server.
//!
//! Checked: `panes` and `status` show every node's workers; `dispatch-role`, `broadcast` and
//! `restart` reach workers on both; a worker killed with SIGKILL is respawned by the
//! coordinator of its own node only (events, restart history and pids of the other node
//! stay untouched), also while that coordinator is down for a while, and for either node.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use panebus::bus::Keys;
use redis::Commands;
use serde_json::Value;
use support::coordinator::{attach_args, registered_pid, start_coordinator};
use support::events::stream_events;
use support::process::{signal_pid, ChildGuard};
use support::wait::wait_for;
use support::{RedisServer, TmuxServer};

const NS: &str = "multi";
/// Both hosts name their session alike: leases and requests are per node and session.
const SESSION: &str = "work";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_panebus")
}

/// One host: a tmux server and the node name its processes use.
struct Node {
    name: &'static str,
    tmux: TmuxServer,
    logs: tempfile::TempDir,
}

impl Node {
    fn start(name: &'static str) -> Node {
        Node {
            name,
            tmux: TmuxServer::start(SESSION),
            logs: tempfile::tempdir().unwrap(),
        }
    }

    fn socket(&self) -> String {
        self.tmux.socket.to_str().unwrap().to_string()
    }

    fn env(&self, redis: &RedisServer) -> Vec<(&'static str, String)> {
        vec![
            ("PANEBUS_REDIS_URL", redis.url()),
            ("PANEBUS_NAMESPACE", NS.to_string()),
            ("PANEBUS_NODE", self.name.to_string()),
            ("PANEBUS_HEARTBEAT_INTERVAL", "300ms".to_string()),
            ("PANEBUS_HEARTBEAT_TTL", "2".to_string()),
            ("PANEBUS_LOG_LEVEL", "info".to_string()),
        ]
    }

    /// `panebus ARGS` as run on this host.
    fn panebus(&self, redis: &RedisServer, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .envs(self.env(redis))
            .stdin(Stdio::null());
        cmd
    }

    fn json(&self, redis: &RedisServer, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.panebus(redis, &all).output().unwrap();
        assert!(
            out.status.success(),
            "panebus {args:?} on {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn coordinator(&self, redis: &RedisServer, log: &str) -> ChildGuard {
        let socket = self.socket();
        start_coordinator(
            self.panebus(redis, &attach_args(SESSION, &socket)),
            &self.logs.path().join(log),
            redis,
            &Keys::new(NS).lease(self.name, SESSION),
        )
    }

    /// Starts `panebus worker --role ROLE` as the command of a new window; its pane id.
    fn start_worker(&self, redis: &RedisServer, role: &str) -> String {
        self.tmux.new_window(
            &format!("={SESSION}:"),
            &self.env(redis),
            &[bin(), "worker", "--role", role],
        )
    }

    fn pane(&self, pane: &str, format: &str) -> String {
        self.tmux.display(pane, format)
    }

    fn pane_pid(&self, pane: &str) -> u32 {
        self.pane(pane, "#{pane_pid}").parse().unwrap()
    }

    fn id(&self, pane: &str) -> String {
        format!("{}/{pane}", self.name)
    }

    /// Waits until this node's coordinator manages `pane` and its worker is registered as
    /// the pane's process.
    fn wait_managed(&self, redis: &RedisServer, pane: &str) {
        let id = self.id(pane);
        let keys = Keys::new(NS);
        wait_for(&format!("{id} managed"), WAIT, || {
            self.pane(pane, "#{@panebus_worker}") == id
                && registered_pid(&mut redis.conn(), &keys, &id) == Some(self.pane_pid(pane))
        });
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default()
    }
}

/// How long a condition may take to come true.
const WAIT: Duration = Duration::from_secs(40);

/// Every event as (type, worker, details).
fn events(redis: &RedisServer) -> Vec<(String, String, Value)> {
    stream_events(&mut redis.conn(), &Keys::new(NS))
        .into_iter()
        .map(|e| (e.kind, e.worker, e.details))
        .collect()
}

/// Workers that the coordinators respawned (from `pane_respawned` events).
fn respawned(redis: &RedisServer) -> Vec<String> {
    events(redis)
        .into_iter()
        .filter(|(kind, _, _)| kind == "pane_respawned")
        .map(|(_, worker, _)| worker)
        .collect()
}

/// Entries in a worker's restart history.
fn restarts(redis: &RedisServer, worker: &str) -> usize {
    redis.conn().zcard(Keys::new(NS).restarts(worker)).unwrap()
}

/// Kills the worker of `pane` and waits for its own coordinator to respawn it in place.
fn kill_and_wait_respawn(node: &Node, redis: &RedisServer, pane: &str) {
    let old = node.pane_pid(pane);
    signal_pid(old, libc::SIGKILL);
    wait_for(&format!("{} respawned", node.id(pane)), WAIT, || {
        node.pane(pane, "#{pane_dead}") == "0" && node.pane_pid(pane) != old
    });
    node.wait_managed(redis, pane);
}

#[test]
fn two_nodes_share_one_bus_and_each_coordinator_keeps_to_its_own_panes() {
    let redis = RedisServer::start();
    let alpha = Node::start("alpha");
    let beta = Node::start("beta");
    let mut alpha_coord = alpha.coordinator(&redis, "alpha-1.log");
    let _beta_coord = beta.coordinator(&redis, "beta.log");
    let a_build = alpha.start_worker(&redis, "build");
    let a_review = alpha.start_worker(&redis, "review");
    let b_build = beta.start_worker(&redis, "build");
    let b_review = beta.start_worker(&redis, "review");
    // Fresh tmux servers number panes alike: the node keeps the worker ids apart.
    assert_eq!(a_build, b_build);
    for (node, pane) in [
        (&alpha, &a_build),
        (&alpha, &a_review),
        (&beta, &b_build),
        (&beta, &b_review),
    ] {
        node.wait_managed(&redis, pane);
    }
    let all: BTreeSet<String> = [
        alpha.id(&a_build),
        alpha.id(&a_review),
        beta.id(&b_build),
        beta.id(&b_review),
    ]
    .into();

    // `panes` and `status` on either host show both nodes.
    for node in [&alpha, &beta] {
        let panes = node.json(&redis, &["panes"]);
        let shown: BTreeSet<String> = panes
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["alive"] == true)
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(shown, all, "panes on {}", node.name);
        for p in panes.as_array().unwrap() {
            let id = p["id"].as_str().unwrap();
            assert_eq!(p["node"], id.split('/').next().unwrap(), "{p}");
            assert_eq!(p["session"], SESSION, "{p}");
        }
        let status = node.json(&redis, &["status"]);
        assert_eq!(status["workers"]["alive"], 4, "{status}");
        assert_eq!(status["node"], node.name, "{status}");
        let text = node.panebus(&redis, &["panes"]).output().unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        for id in &all {
            assert!(
                text.contains(id.as_str()),
                "panes on {} lacks {id}: {text}",
                node.name
            );
        }
    }

    // Fan-out spans the nodes, from either host.
    let reached = |value: Value| -> BTreeSet<String> {
        value
            .as_array()
            .unwrap()
            .iter()
            .inspect(|r| assert_eq!(r["status"], "ok", "{r}"))
            .map(|r| r["worker"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        reached(alpha.json(&redis, &["dispatch-role", "build", "ping", "--wait"])),
        BTreeSet::from([alpha.id(&a_build), beta.id(&b_build)])
    );
    assert_eq!(
        reached(beta.json(&redis, &["broadcast", "ping", "--wait"])),
        all
    );
    // A pane id alone means this host's pane; the full id reaches the other host.
    let own = beta.json(&redis, &["dispatch", &b_review, "ping", "--wait"]);
    assert_eq!(own["worker"], beta.id(&b_review).as_str(), "{own}");
    let other = beta.json(
        &redis,
        &["dispatch", &alpha.id(&a_review), "ping", "--wait"],
    );
    assert_eq!(other["worker"], alpha.id(&a_review).as_str(), "{other}");

    // kill -9 on alpha: alpha's coordinator respawns it, beta's does nothing.
    let beta_pids = (beta.pane_pid(&b_build), beta.pane_pid(&b_review));
    kill_and_wait_respawn(&alpha, &redis, &a_build);
    assert_eq!(respawned(&redis), [alpha.id(&a_build)]);
    assert_eq!(restarts(&redis, &alpha.id(&a_build)), 1);
    assert_eq!(restarts(&redis, &beta.id(&b_build)), 0);
    assert_eq!(
        (beta.pane_pid(&b_build), beta.pane_pid(&b_review)),
        beta_pids
    );

    // And the other way round.
    let alpha_pids = (alpha.pane_pid(&a_build), alpha.pane_pid(&a_review));
    kill_and_wait_respawn(&beta, &redis, &b_review);
    assert_eq!(respawned(&redis), [alpha.id(&a_build), beta.id(&b_review)]);
    assert_eq!(restarts(&redis, &beta.id(&b_review)), 1);
    assert_eq!(restarts(&redis, &alpha.id(&a_review)), 0);
    assert_eq!(
        (alpha.pane_pid(&a_build), alpha.pane_pid(&a_review)),
        alpha_pids
    );

    // `restart` from beta reaches alpha's coordinator through the bus.
    let beta_pids = (beta.pane_pid(&b_build), beta.pane_pid(&b_review));
    let old = alpha.pane_pid(&a_review);
    let out = beta
        .panebus(&redis, &["restart", &alpha.id(&a_review)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("alpha's pane restarted", WAIT, || {
        alpha.pane_pid(&a_review) != old
    });
    alpha.wait_managed(&redis, &a_review);
    assert_eq!(
        (beta.pane_pid(&b_build), beta.pane_pid(&b_review)),
        beta_pids
    );

    // With alpha's coordinator down, a dead alpha worker stays dead: beta's coordinator
    // sees its heartbeat expire on the bus and still leaves it alone. A new coordinator on
    // alpha then respawns it.
    alpha_coord.0.kill().unwrap();
    alpha_coord.0.wait().unwrap();
    let keys = Keys::new(NS);
    wait_for("alpha's lease lapses", WAIT, || {
        !redis
            .conn()
            .exists::<_, bool>(keys.lease("alpha", SESSION))
            .unwrap()
    });
    let dead = alpha.pane_pid(&a_build);
    signal_pid(dead, libc::SIGKILL);
    wait_for("the dead worker's heartbeat expires", WAIT, || {
        !redis
            .conn()
            .exists::<_, bool>(keys.heartbeat(&alpha.id(&a_build)))
            .unwrap()
    });
    // Longer than beta's heartbeat grace and check interval.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(alpha.pane(&a_build, "#{pane_dead}"), "1");
    let before = respawned(&redis).len();
    assert!(
        events(&redis)
            .iter()
            .filter(|(_, worker, _)| worker == &alpha.id(&a_build))
            .all(|(kind, _, _)| kind != "heartbeat_missed" && kind != "pane_quarantined"),
        "beta's coordinator acted on alpha's worker"
    );
    let _alpha_coord = alpha.coordinator(&redis, "alpha-2.log");
    wait_for(
        "alpha's new coordinator respawns its dead pane",
        WAIT,
        || alpha.pane(&a_build, "#{pane_dead}") == "0" && alpha.pane_pid(&a_build) != dead,
    );
    alpha.wait_managed(&redis, &a_build);
    let after = respawned(&redis);
    assert_eq!(
        after.len(),
        before + 1,
        "{after:?}\n{}",
        alpha.log("alpha-2.log")
    );
    assert_eq!(after.last().unwrap(), &alpha.id(&a_build));
    assert!(after
        .iter()
        .all(|w| w.starts_with("alpha/") || w == &beta.id(&b_review)));
    assert_eq!(
        reached(alpha.json(&redis, &["broadcast", "ping", "--wait"])),
        all
    );
}
