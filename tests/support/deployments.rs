//! Redis deployments for tests, on free loopback ports, killed on Drop: a TLS redis-server
//! with a test CA made by the openssl CLI, a six-node Redis Cluster (three primaries, one
//! replica each), a single cluster-mode node owning every slot, and a primary + replica +
//! sentinel (plain, with passwords on the data nodes and the sentinel, or TLS-only). [`Panebus`] and [`ChildGuard`] are re-exported from their own modules for the
//! tests that reach them through this one.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// tests/sentinel.rs imports the runner from here.
#[allow(unused_imports)]
pub use super::panebus::Panebus;
pub use super::process::ChildGuard;

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().unwrap().port()
}

fn redis_cli(args: &[&str]) -> Output {
    Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli")
}

/// `redis-cli -p PORT ARGS` on a plain loopback server; stdout trimmed.
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_with(&[], port, args)
}

/// `redis-cli FLAGS -p PORT ARGS` (e.g. TLS flags); stdout trimmed.
fn cli_with(flags: &[String], port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend_from_slice(&["-h", "127.0.0.1", "-p", &port]);
    all.extend_from_slice(args);
    let out = redis_cli(&all);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits up to `within` for the results of `ids` (each must be a success); returns the ids
/// still without one: after a failover, a lost command shows here.
pub async fn missing_results(
    bus: &panebus::bus::Bus,
    ids: &[String],
    within: Duration,
) -> HashSet<String> {
    let deadline = Instant::now() + within;
    let mut missing: HashSet<String> = ids.iter().cloned().collect();
    while !missing.is_empty() && Instant::now() < deadline {
        let mut found = Vec::new();
        for id in &missing {
            if let Ok(Some(result)) = bus.result(id).await {
                assert!(result.ok, "{result:?}");
                found.push(id.clone());
            }
        }
        for id in found {
            missing.remove(&id);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    missing
}
/// [`super::wait::wait_for`] with the timeout in whole seconds, as the Sentinel tests
/// call it.
pub fn wait_for(what: &str, secs: u64, done: impl FnMut() -> bool) {
    super::wait::wait_for(what, Duration::from_secs(secs), done)
}

fn spawn_server(dir: &Path, args: &[String]) -> ChildGuard {
    ChildGuard(super::spawn_redis_server(dir, args))
}

/// Starts one server on `N` freshly probed free ports (`spawn` gets them), and again on
/// other ports, up to five times, if it exits or `ready` does not hold within 10 s: a
/// probed port is free only until another process (a parallel test) binds it first.
fn start_on_free_ports<const N: usize>(
    what: &str,
    spawn: impl Fn([u16; N]) -> ChildGuard,
    ready: impl Fn([u16; N]) -> bool,
) -> (ChildGuard, [u16; N]) {
    for _ in 0..5 {
        let ports: [u16; N] = std::array::from_fn(|_| free_port());
        let mut server = spawn(ports);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.0.try_wait() {
                break;
            }
            if ready(ports) {
                return (server, ports);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("{what} did not start on five sets of free ports (is redis-server installed?)");
}

// ---- TLS ----

/// A test CA and a server certificate for 127.0.0.1/localhost signed by it, plus a second,
/// unrelated CA (the "wrong" one), all made with the openssl CLI.
pub struct TestCerts {
    pub dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Signs `NAME.csr` with the test CA into `NAME.pem`, with the extensions of `NAME.ext`.
fn sign(dir: &Path, name: &str) {
    let (csr, pem, ext) = (
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ],
    );
}

impl TestCerts {
    pub fn generate() -> TestCerts {
        let dir = tempfile::tempdir().expect("tempdir for certificates");
        let d = dir.path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        for (name, cn) in [("ca", "panebus test CA"), ("wrong-ca", "some other CA")] {
            let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
            args.extend_from_slice(&ec);
            let key = format!("{name}.key");
            let pem = format!("{name}.pem");
            let subj = format!("/CN={cn}");
            args.extend_from_slice(&["-keyout", &key, "-out", &pem, "-subj", &subj]);
            openssl(d, &args);
        }
        // A key and certificate request for `name`, signed by the CA with `extensions`.
        let issue = |name: &str, subject: &str, extensions: &str| {
            let mut args = vec!["req", "-nodes"];
            args.extend_from_slice(&ec);
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            args.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", subject]);
            openssl(d, &args);
            std::fs::write(d.join(format!("{name}.ext")), extensions).unwrap();
            sign(d, name);
        };
        issue(
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        );
        issue(
            "client",
            "/CN=panebus test client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
        TestCerts { dir }
    }

    /// A client certificate and key signed by the test CA, for mutual TLS.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("client.pem"),
            self.dir.path().join("client.key"),
        )
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn wrong_ca(&self) -> PathBuf {
        self.dir.path().join("wrong-ca.pem")
    }
}

/// A redis-server that speaks only TLS (`--port 0`), with a password.
pub struct TlsRedis {
    _server: ChildGuard,
    _dir: tempfile::TempDir,
    pub port: u16,
    pub password: String,
}

impl TlsRedis {
    /// Client certificates optional.
    pub fn start(certs: &TestCerts, password: &str) -> TlsRedis {
        TlsRedis::start_with(certs, password, "optional")
    }

    /// `auth_clients`: `--tls-auth-clients` (`yes` demands a client certificate).
    pub fn start_with(certs: &TestCerts, password: &str, auth_clients: &str) -> TlsRedis {
        let dir = tempfile::tempdir().expect("tempdir for redis");
        let c = certs.dir.path();
        let spawn = |[port]: [u16; 1]| {
            let args: Vec<String> = [
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                &c.join("server.pem").display().to_string(),
                "--tls-key-file",
                &c.join("server.key").display().to_string(),
                "--tls-ca-cert-file",
                &certs.ca().display().to_string(),
                "--tls-auth-clients",
                auth_clients,
                "--requirepass",
                password,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            spawn_server(dir.path(), &args)
        };
        let ca = certs.ca().display().to_string();
        let (client_cert, client_key) = certs.client();
        let (client_cert, client_key) = (
            client_cert.display().to_string(),
            client_key.display().to_string(),
        );
        let answers = |[port]: [u16; 1]| {
            let out = redis_cli(&[
                "--tls",
                "--cacert",
                &ca,
                "--cert",
                &client_cert,
                "--key",
                &client_key,
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--no-auth-warning",
                "-a",
                password,
                "ping",
            ]);
            String::from_utf8_lossy(&out.stdout).trim() == "PONG"
        };
        let (server, [port]) = start_on_free_ports("TLS redis-server", spawn, answers);
        TlsRedis {
            _server: server,
            _dir: dir,
            port,
            password: password.to_string(),
        }
    }

    /// `rediss://:PASSWORD@127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("rediss://:{}@127.0.0.1:{}/0", self.password, self.port)
    }
}

// ---- Cluster ----

/// A redis-server in cluster mode owning every slot: it refuses (CROSSSLOT) any command,
/// script or MULTI whose keys are in more than one slot, as a real cluster does, with no
/// other node to start.
pub fn single_node_cluster() -> super::RedisServer {
    let redis = super::RedisServer::start_with(&["--cluster-enabled", "yes"]);
    let mut conn = redis.conn();
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(panebus::bus::slots::SLOTS - 1)
        .query(&mut conn)
        .unwrap();
    super::wait::wait_for(
        "the cluster node to own every slot",
        Duration::from_secs(20),
        || {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap();
            info.contains("cluster_state:ok")
        },
    );
    redis
}

/// Six cluster-enabled redis-servers made into one cluster: three primaries with one
/// replica each.
pub struct RedisCluster {
    nodes: Vec<ChildGuard>,
    pub ports: Vec<u16>,
    /// redis-cli flags reaching the nodes (TLS ones for a TLS cluster).
    cli_flags: Vec<String>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// A plain cluster.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(None)
    }

    /// A cluster whose nodes speak only TLS, among themselves too, with the test CA.
    pub fn start_tls(certs: &TestCerts) -> RedisCluster {
        RedisCluster::start_with(Some(certs))
    }

    fn start_with(certs: Option<&TestCerts>) -> RedisCluster {
        let dir = tempfile::tempdir().expect("tempdir for the cluster");
        let (tls_args, cli_flags): (Vec<String>, Vec<String>) = match certs {
            None => (Vec::new(), Vec::new()),
            Some(certs) => {
                let c = certs.dir.path();
                let file = |name: &str| c.join(name).display().to_string();
                (
                    vec![
                        "--tls-cluster".into(),
                        "yes".into(),
                        "--tls-replication".into(),
                        "yes".into(),
                        "--tls-cert-file".into(),
                        file("server.pem"),
                        "--tls-key-file".into(),
                        file("server.key"),
                        "--tls-ca-cert-file".into(),
                        file("ca.pem"),
                        "--tls-auth-clients".into(),
                        "optional".into(),
                    ],
                    vec!["--tls".into(), "--cacert".into(), file("ca.pem")],
                )
            }
        };
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for i in 0..6 {
            let node_dir = dir.path().join(format!("n{i}"));
            std::fs::create_dir(&node_dir).unwrap();
            // The cluster bus port defaults to port + 10000, which may be taken or past
            // 65535 for a kernel-chosen port: choose it as well.
            let spawn = |[port, bus_port]: [u16; 2]| {
                let (plain_port, tls_port) = if certs.is_some() {
                    (0, port)
                } else {
                    (port, 0)
                };
                let mut args: Vec<String> = [
                    "--port",
                    &plain_port.to_string(),
                    "--tls-port",
                    &tls_port.to_string(),
                    "--cluster-port",
                    &bus_port.to_string(),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                args.extend(tls_args.iter().cloned());
                spawn_server(&node_dir, &args)
            };
            let (node, [port, _]) =
                start_on_free_ports(&format!("cluster node {i}"), spawn, |[port, _]| {
                    cli_with(&cli_flags, port, &["ping"]) == "PONG"
                });
            nodes.push(node);
            ports.push(port);
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut args: Vec<&str> = cli_flags.iter().map(String::as_str).collect();
        args.extend_from_slice(&["--cluster", "create"]);
        args.extend(addrs.iter().map(String::as_str));
        args.extend_from_slice(&["--cluster-replicas", "1", "--cluster-yes"]);
        let out = redis_cli(&args);
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster {
            nodes,
            ports,
            cli_flags,
            _dir: dir,
        };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node reports `cluster_state:ok` and agrees on the slot owners.
    pub fn wait_ok(&self) {
        for &port in &self.ports {
            wait_for(&format!("cluster_state:ok on {port}"), 30, || {
                self.cli(port, &["cluster", "info"])
                    .contains("cluster_state:ok")
            });
        }
    }

    /// `redis-cli -p PORT ARGS` against one node; stdout trimmed.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli_with(&self.cli_flags, port, args)
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` (`rediss+cluster` for TLS).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.ports[..3]
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let scheme = if self.cli_flags.is_empty() {
            "redis+cluster"
        } else {
            "rediss+cluster"
        };
        format!("{scheme}://{}", hosts.join(","))
    }

    /// The port of the primary that owns `key`'s slot, from `CLUSTER NODES`.
    pub fn primary_of(&self, key: &str) -> u16 {
        let slot: u16 = self
            .cli(self.ports[0], &["cluster", "keyslot", key])
            .parse()
            .expect("CLUSTER KEYSLOT answers a number");
        self.nodes_table()
            .into_iter()
            .find(|n| n.primary && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|n| n.port)
            .expect("some primary owns every slot")
    }

    /// The port of a replica of the primary at `primary_port`. Waits for the node asked
    /// to learn it: `cluster_state:ok` can come before gossip has told every node which
    /// node replicates which.
    pub fn replica_of(&self, primary_port: u16) -> u16 {
        let mut replica = None;
        wait_for(
            &format!("a replica of {primary_port} in CLUSTER NODES"),
            30,
            || {
                let table = self.nodes_table();
                let primary = table
                    .iter()
                    .find(|n| n.port == primary_port)
                    .expect("known node");
                replica = table
                    .iter()
                    .find(|n| n.master_id.as_deref() == Some(primary.id.as_str()))
                    .map(|n| n.port);
                replica.is_some()
            },
        );
        replica.expect("found by the wait")
    }

    fn nodes_table(&self) -> Vec<NodeRow> {
        let text = self
            .ports
            .iter()
            .map(|&p| self.cli(p, &["cluster", "nodes"]))
            .find(|t| !t.is_empty())
            .expect("a node answers CLUSTER NODES");
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let port = f
                    .get(1)?
                    .split('@')
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()?;
                let flags = f.get(2)?;
                let primary = flags.contains("master") && !flags.contains("fail");
                let master_id = (f.get(3)? != &"-").then(|| f[3].to_string());
                let slots = f
                    .iter()
                    .skip(8)
                    .filter_map(|r| {
                        let (a, b) = r.split_once('-').unwrap_or((r, r));
                        Some((a.parse().ok()?, b.parse().ok()?))
                    })
                    .collect();
                Some(NodeRow {
                    id: f[0].to_string(),
                    port,
                    primary,
                    master_id,
                    slots,
                })
            })
            .collect()
    }

    /// The pid of the node on `port`.
    pub fn pid(&self, port: u16) -> u32 {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        self.nodes[i].pid()
    }
}

struct NodeRow {
    id: String,
    port: u16,
    primary: bool,
    master_id: Option<String>,
    slots: Vec<(u16, u16)>,
}

// ---- Sentinel ----

/// How the servers of a [`SentinelSetup`] are protected; the default is not at all.
#[derive(Default, Clone, Copy)]
pub struct SentinelSecurity<'a> {
    /// `requirepass` and `masterauth` of the primary and the replica (the sentinel gets it
    /// as `sentinel auth-pass`).
    pub data_password: Option<&'a str>,
    /// `requirepass` of the sentinel itself.
    pub sentinel_password: Option<&'a str>,
    /// TLS only, everywhere (clients, replication, the sentinel's links), with the test CA.
    pub certs: Option<&'a TestCerts>,
}

/// A primary (`min-replicas-to-write 1`), one replica of it, and one sentinel monitoring
/// them as service `SERVICE`, optionally with passwords and TLS ([`SentinelSecurity`]).
pub struct SentinelSetup {
    _servers: Vec<ChildGuard>,
    _dir: tempfile::TempDir,
    pub primary_port: u16,
    pub replica_port: u16,
    pub sentinel_port: u16,
    /// redis-cli flags reaching the data nodes (TLS, password).
    data_flags: Vec<String>,
    /// redis-cli flags reaching the sentinel.
    sentinel_flags: Vec<String>,
    data_password: Option<String>,
    tls: bool,
    /// The port of a killed primary, held so that no other test's server binds it while
    /// this sentinel still watches it (it would make that server a replica).
    dead_primary_port: Option<std::os::fd::OwnedFd>,
}

pub const SERVICE: &str = "pbservice";

/// `redis-cli` flags for TLS with the test CA and for a password.
fn cli_flags(certs: Option<&TestCerts>, password: Option<&str>) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(certs) = certs {
        flags.extend(["--tls".into(), "--cacert".into(), file_arg(&certs.ca())]);
    }
    if let Some(password) = password {
        flags.extend(["--no-auth-warning".into(), "-a".into(), password.into()]);
    }
    flags
}

/// `text` with every byte but unreserved ones percent-encoded, fit for a URL's user info.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn file_arg(path: &Path) -> String {
    path.display().to_string()
}

impl SentinelSetup {
    /// No passwords, no TLS.
    pub fn start() -> SentinelSetup {
        SentinelSetup::start_with(SentinelSecurity::default())
    }

    pub fn start_with(security: SentinelSecurity) -> SentinelSetup {
        let dir = tempfile::tempdir().expect("tempdir for sentinel");
        let mut servers = Vec::new();
        let primary_dir = dir.path().join("primary");
        let replica_dir = dir.path().join("replica");
        std::fs::create_dir(&primary_dir).unwrap();
        std::fs::create_dir(&replica_dir).unwrap();
        let data_flags = cli_flags(security.certs, security.data_password);
        let sentinel_flags = cli_flags(security.certs, security.sentinel_password);
        // The listening port (TLS-only with certificates) and the protection of a data node.
        let data_args = |port: u16| {
            let mut args: Vec<String> = Vec::new();
            match security.certs {
                None => args.extend(["--port".into(), port.to_string()]),
                Some(certs) => {
                    let c = certs.dir.path();
                    args.extend([
                        "--port".into(),
                        "0".into(),
                        "--tls-port".into(),
                        port.to_string(),
                        "--tls-replication".into(),
                        "yes".into(),
                        "--tls-cert-file".into(),
                        file_arg(&c.join("server.pem")),
                        "--tls-key-file".into(),
                        file_arg(&c.join("server.key")),
                        "--tls-ca-cert-file".into(),
                        file_arg(&certs.ca()),
                        "--tls-auth-clients".into(),
                        "optional".into(),
                    ]);
                }
            }
            if let Some(password) = security.data_password {
                // masterauth on both: after a failover the old primary syncs from the new one.
                args.extend([
                    "--requirepass".into(),
                    password.into(),
                    "--masterauth".into(),
                    password.into(),
                ]);
            }
            args
        };
        let data_answers = |[port]: [u16; 1]| cli_with(&data_flags, port, &["ping"]) == "PONG";
        // As Redis recommends under Sentinel: a primary that lost its replica (the moment
        // the replica is promoted) refuses writes instead of accepting writes that the
        // failover then throws away.
        let (primary, [primary_port]) = start_on_free_ports(
            "sentinel primary",
            |[port]| {
                let mut args = data_args(port);
                args.extend([
                    "--min-replicas-to-write".into(),
                    "1".into(),
                    "--min-replicas-max-lag".into(),
                    "10".into(),
                ]);
                spawn_server(&primary_dir, &args)
            },
            data_answers,
        );
        servers.push(primary);
        let (replica, [replica_port]) = start_on_free_ports(
            "sentinel replica",
            |[port]| {
                let mut args = data_args(port);
                args.extend([
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    primary_port.to_string(),
                ]);
                spawn_server(&replica_dir, &args)
            },
            data_answers,
        );
        servers.push(replica);
        wait_for("replica in sync", 15, || {
            cli_with(&data_flags, replica_port, &["info", "replication"])
                .contains("master_link_status:up")
        });
        let conf = dir.path().join("sentinel.conf");
        let mut protection = String::new();
        if let Some(certs) = security.certs {
            let c = certs.dir.path();
            // tls-replication makes the sentinel reach the data nodes over TLS too.
            protection.push_str(&format!(
                "tls-replication yes\ntls-cert-file {}\ntls-key-file {}\n\
                 tls-ca-cert-file {}\ntls-auth-clients optional\n",
                file_arg(&c.join("server.pem")),
                file_arg(&c.join("server.key")),
                file_arg(&certs.ca())
            ));
        }
        if let Some(password) = security.sentinel_password {
            protection.push_str(&format!("requirepass {password}\n"));
        }
        if let Some(password) = security.data_password {
            protection.push_str(&format!("sentinel auth-pass {SERVICE} {password}\n"));
        }
        let (sentinel, [sentinel_port]) = start_on_free_ports(
            "sentinel",
            |[port]| {
                let listen = match security.certs {
                    None => format!("port {port}\n"),
                    Some(_) => format!("port 0\ntls-port {port}\n"),
                };
                // Sentinel rewrites its configuration file: a fresh one for each attempt.
                std::fs::write(
                    &conf,
                    format!(
                        "{listen}bind 127.0.0.1\ndir {}\n\
                         sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n\
                         sentinel down-after-milliseconds {SERVICE} 1000\n\
                         sentinel failover-timeout {SERVICE} 3000\n\
                         sentinel parallel-syncs {SERVICE} 1\n{protection}",
                        dir.path().display()
                    ),
                )
                .unwrap();
                ChildGuard(
                    Command::new("redis-server")
                        .arg(&conf)
                        .arg("--sentinel")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("spawn redis-server --sentinel"),
                )
            },
            |[port]| cli_with(&sentinel_flags, port, &["ping"]) == "PONG",
        );
        servers.push(sentinel);
        let setup = SentinelSetup {
            _servers: servers,
            _dir: dir,
            primary_port,
            replica_port,
            sentinel_port,
            data_flags,
            sentinel_flags,
            data_password: security.data_password.map(str::to_string),
            tls: security.certs.is_some(),
            dead_primary_port: None,
        };
        wait_for("sentinel knows the replica", 20, || {
            setup
                .cli(sentinel_port, &["sentinel", "replicas", SERVICE])
                .contains(&replica_port.to_string())
        });
        setup
    }

    /// `redis-cli -p PORT ARGS` against a data node or the sentinel, with its TLS flags and
    /// password; stdout trimmed.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let flags = if port == self.sentinel_port {
            &self.sentinel_flags
        } else {
            &self.data_flags
        };
        cli_with(flags, port, args)
    }

    /// `redis+sentinel://[:DATA_PASSWORD@]127.0.0.1:SENTINEL/SERVICE/0`
    /// (`rediss+sentinel://` with TLS), the password percent-encoded.
    pub fn url(&self) -> String {
        self.url_with_password(self.data_password.as_deref())
    }

    /// [`SentinelSetup::url`] with `password` as the data nodes' password.
    pub fn url_with_password(&self, password: Option<&str>) -> String {
        let scheme = if self.tls {
            "rediss+sentinel"
        } else {
            "redis+sentinel"
        };
        let auth = password
            .map(|p| format!(":{}@", percent_encode(p)))
            .unwrap_or_default();
        format!(
            "{scheme}://{auth}127.0.0.1:{}/{SERVICE}/0",
            self.sentinel_port
        )
    }

    /// Kills the first primary (SIGKILL), as a crash would.
    pub fn kill_primary(&mut self) {
        let primary = &mut self._servers[0].0;
        let _ = primary.kill();
        let _ = primary.wait();
        self.dead_primary_port = hold_port(self.primary_port);
    }

    /// The port the sentinel names as primary now.
    pub fn current_primary(&self) -> u16 {
        self.cli(
            self.sentinel_port,
            &["sentinel", "get-master-addr-by-name", SERVICE],
        )
        .lines()
        .nth(1)
        .and_then(|p| p.trim().parse().ok())
        .expect("the sentinel names a primary")
    }
}

/// Binds 127.0.0.1:`port` without listening: connecting is refused, as to a dead server,
/// and nobody else can bind it while the returned socket lives.
fn hold_port(port: u16) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a new socket, owned at once; bind gets a sockaddr_in of the right size.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return None;
        }
        let socket = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let bound = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        (bound == 0).then_some(socket)
    }
}
