//! The tmux plugin (`panebus.tmux`) against a real private tmux server and redis-server.
//!
//! The dispatch key is exercised end to end: a real tmux client is attached through a pty
//! (`script`), the test types `prefix B p`, the hostile text and Enter into it exactly as a
//! person would, and the command that lands in the worker's Redis queue must carry the
//! typed text byte for byte — with nothing executed by tmux or a shell on the way.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use panebus::bus::Bus;
use panebus::config::Config;
use panebus::schema::Command as BusCommand;
use support::wait::wait_for;
use support::{RedisServer, TmuxServer};

const NODE: &str = "plugintest";

fn plugin_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("panebus.tmux")
}

fn config_for(redis: &RedisServer) -> Config {
    let url = redis.url();
    Config::from_lookup(|name| match name {
        "PANEBUS_REDIS_URL" => Some(url.clone()),
        "PANEBUS_NODE" => Some(NODE.to_string()),
        _ => None,
    })
    .unwrap()
}

/// A tmux client attached through a pty; killed on drop.
struct Client {
    child: Child,
}

impl Client {
    fn attach(tmux: &TmuxServer, session: &str) -> Client {
        let command = format!("tmux -S '{}' attach -t '{session}'", tmux.socket.display());
        let child = Command::new("script")
            .args(["-qfc", &command, "/dev/null"])
            .env("TERM", "xterm")
            .env_remove("TMUX")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run script(1) (util-linux) to give tmux a terminal");
        let client = Client { child };
        wait_for("the client to attach", Duration::from_secs(10), || {
            !tmux.run(&["list-clients"]).trim().is_empty()
        });
        client
    }

    fn type_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn key_table(tmux: &TmuxServer) -> String {
    tmux.run(&["list-clients", "-F", "#{client_key_table}"])
        .trim()
        .to_string()
}

/// Whether a `panebus prompt-box` runs under this tmux server (the popup is open).
fn prompt_box_running(socket: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    let socket = socket.to_string_lossy().into_owned();
    entries.flatten().any(|entry| {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        String::from_utf8_lossy(&cmdline).contains("prompt-box")
            && String::from_utf8_lossy(&environ).contains(&format!("TMUX={socket},"))
    })
}

fn load_plugin(tmux: &TmuxServer) {
    tmux.run(&[
        "set-option",
        "-g",
        "@panebus-bin",
        env!("CARGO_BIN_EXE_panebus"),
    ]);
    tmux.run(&["run-shell", &plugin_path().to_string_lossy()]);
}

#[test]
fn plugin_binds_its_keys_in_its_own_table_and_honours_options() {
    let tmux = TmuxServer::start("s");
    tmux.run(&["set-option", "-g", "@panebus-key", "F"]);
    tmux.run(&["set-option", "-g", "@panebus-key-ping", "x"]);
    load_plugin(&tmux);
    let prefix = tmux.run(&["list-keys", "-T", "prefix", "F"]);
    assert!(prefix.contains("switch-client -T panebus"), "{prefix}");
    let table = tmux.run(&["list-keys", "-T", "panebus"]);
    for key in ["p", "x", "r", "u", "l", "n"] {
        assert!(
            table.contains(&format!("-T panebus {key} ")),
            "key {key} missing:\n{table}"
        );
    }
    assert!(table.contains(r#"prompt-box \"\$pane\""#), "{table}");
    assert!(table.contains("restart '#{pane_id}'"), "{table}");
    assert!(table.contains(r#"last-result \"\$pane\""#), "{table}");
    assert!(
        !table.contains("%%"),
        "no command-prompt templates: {table}"
    );
    let right = tmux.run(&["show-option", "-gqv", "status-right"]);
    assert!(
        !right.contains("@panebus_status"),
        "off by default: {right}"
    );
}

#[test]
fn status_option_prepends_the_segment_once() {
    let tmux = TmuxServer::start("s");
    tmux.run(&["set-option", "-g", "@panebus-status", "on"]);
    load_plugin(&tmux);
    load_plugin(&tmux);
    let right = tmux.run(&["show-option", "-gqv", "status-right"]);
    assert!(right.starts_with("#{@panebus_status} "), "{right}");
    assert_eq!(right.matches("@panebus_status").count(), 1, "{right}");
}

#[test]
fn next_attention_selects_the_next_pane_needing_it() {
    let tmux = TmuxServer::start("s");
    let first = tmux.run(&["display-message", "-p", "-t", "s:", "#{pane_id}"]);
    let first = first.trim();
    let second = tmux.run(&["split-window", "-d", "-t", first, "-P", "-F", "#{pane_id}"]);
    let third = tmux.run(&["split-window", "-d", "-t", first, "-P", "-F", "#{pane_id}"]);
    let (second, third) = (second.trim(), third.trim());
    tmux.run(&["select-pane", "-t", first]);
    tmux.run(&["set-option", "-p", "-t", first, "@panebus_state", "ok"]);
    tmux.run(&["set-option", "-p", "-t", second, "@panebus_state", "ok"]);
    tmux.run(&[
        "set-option",
        "-p",
        "-t",
        third,
        "@panebus_state",
        "quarantined",
    ]);
    let helper = format!("'{}' next-attention", plugin_path().display());
    tmux.run(&["run-shell", "-t", first, &helper]);
    let active = tmux.run(&["display-message", "-p", "-t", "s:", "#{pane_id}"]);
    assert_eq!(active.trim(), third);
    tmux.run(&["set-option", "-p", "-t", third, "@panebus_state", "ok"]);
    tmux.run(&["run-shell", "-t", third, &helper]);
    let active = tmux.run(&["display-message", "-p", "-t", "s:", "#{pane_id}"]);
    assert_eq!(active.trim(), third, "nothing needs attention: stays put");
}

/// Typed through a real client into the popup; the payload must arrive unchanged. It has
/// every character class that breaks naive quoting: tmux `;`, `#{}`, `#()`, `%%`/`%1`
/// (command-prompt templates), shell `$()`, `$VAR`, quotes, backslash sequences, `~`,
/// a tab, and non-ASCII text.
#[test]
fn dispatch_key_delivers_hostile_text_byte_for_byte() {
    let redis = RedisServer::start();
    let tmux = TmuxServer::start("s");
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("pwned");
    let hostile = format!(
        "a \"q\" 'x' $HOME ; kill-server ; #{{pane_id}} #(touch {m}) $(touch {m}) `touch {m}` \\ ~ %1 %% %%% \\n \\\\ \\007 \tend é 日本 {{}} !",
        m = marker.display()
    );

    let config = config_for(&redis);
    tmux.run(&[
        "set-environment",
        "-t",
        "s",
        "PANEBUS_REDIS_URL",
        &redis.url(),
    ]);
    tmux.run(&["set-environment", "-t", "s", "PANEBUS_NODE", NODE]);
    let pane = tmux.run(&["display-message", "-p", "-t", "s:", "#{pane_id}"]);
    let pane = pane.trim().to_string();
    let worker = config.worker_id(&pane);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = runtime.block_on(Bus::connect(&config)).unwrap();
    let mut info = panebus::worker::identity::initial_info(&config, &pane, "worker", vec![], None);
    runtime
        .block_on(bus.register(&mut info, Duration::from_secs(600)))
        .unwrap();

    load_plugin(&tmux);
    let mut client = Client::attach(&tmux, "s");
    client.type_bytes(b"\x02");
    wait_for("the prefix table", Duration::from_secs(10), || {
        key_table(&tmux) == "prefix"
    });
    client.type_bytes(b"B");
    wait_for("the panebus table", Duration::from_secs(10), || {
        key_table(&tmux) == "panebus"
    });
    client.type_bytes(b"p");
    wait_for("the prompt popup", Duration::from_secs(20), || {
        prompt_box_running(&tmux.socket)
    });
    client.type_bytes(hostile.as_bytes());
    client.type_bytes(b"\r");

    let queue_key = bus.keys().queue(&worker);
    let mut conn = redis.conn();
    let mut queued: Vec<String> = Vec::new();
    wait_for(
        "the prompt in the worker's queue",
        Duration::from_secs(20),
        || {
            queued = redis::cmd("LRANGE")
                .arg(&queue_key)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap();
            !queued.is_empty()
        },
    );
    assert_eq!(queued.len(), 1, "{queued:?}");
    let command: BusCommand = serde_json::from_str(&queued[0]).unwrap();
    assert_eq!(command.kind, "prompt");
    let text = command.payload["text"].as_str().unwrap();
    assert_eq!(text.as_bytes(), hostile.as_bytes());
    assert!(!marker.exists(), "a command in the text was executed");
    assert!(
        !tmux.run(&["list-sessions"]).is_empty(),
        "the server survived"
    );
    wait_for("the popup to close", Duration::from_secs(10), || {
        !prompt_box_running(&tmux.socket)
    });
}
