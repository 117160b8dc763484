//! The control-mode client against a real tmux server on a private socket: attach, FIFO
//! reply matching, `%error` mapping, notifications, respawn, and every way the session can
//! end (session killed, server SIGKILLed, detach).

mod support;

use std::time::Duration;

use futures::future::join_all;
use panebus::tmux::model::{pane_died_hook, pane_subscription, PANE_SUBSCRIPTION};
use panebus::tmux::{
    ClientFlag, ConnectOptions, ControlClient, Format, Hook, HookTarget, ModelChange, Notification,
    OptionName, OptionScope, OwnedEvent, PaneId, PaneListing, PaneOutput, SessionModel, Spawn,
    Split, Target, TmuxCommand, TmuxError, TmuxServerRef, WindowId,
};
use support::TmuxServer;
use tmux_control_parser::Layout;
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(15);

fn options(server: &TmuxServer, session: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(TmuxServerRef::Path(server.socket.clone()), session);
    options.config_file = Some("/dev/null".into());
    options
}

async fn attach(server: &TmuxServer) -> (ControlClient, UnboundedReceiver<Notification>) {
    ControlClient::connect(options(server, "pb"))
        .await
        .expect("attach to the test session")
}

async fn display(client: &ControlClient, target: Option<Target>, template: &'static str) -> String {
    let cmd = TmuxCommand::display_message(target, &Format::template(template)).unwrap();
    let reply = client.run(&cmd).await.expect("display-message");
    reply.text_lines().join("\n")
}

/// Waits for the first notification `pick` accepts; panics after [`WAIT`].
async fn wait_for<T>(
    rx: &mut UnboundedReceiver<Notification>,
    mut pick: impl FnMut(&Notification) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let n = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(n)) => n,
            Ok(None) => panic!("notification stream ended; seen: {seen:?}"),
            Err(_) => panic!("timed out waiting for a notification; seen: {seen:?}"),
        };
        if let Some(found) = pick(&n) {
            return found;
        }
        seen.push(n);
    }
}

async fn wait_for_exit(rx: &mut UnboundedReceiver<Notification>) -> String {
    wait_for(rx, |n| match n {
        Notification::Exit { reason } => Some(reason.clone()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn attaches_and_reports_the_session() {
    let server = TmuxServer::start("pb");
    let (client, _rx) = attach(&server).await;
    assert_eq!(client.attached().name, "pb");
    let id = display(&client, None, "#{session_id}").await;
    assert_eq!(id, client.attached().session.to_string());
}

#[tokio::test]
async fn attach_to_a_missing_session_is_a_clear_error() {
    let server = TmuxServer::start("pb");
    let err = ControlClient::connect(options(&server, "nope"))
        .await
        .err()
        .expect("no session");
    match err {
        TmuxError::Attach { message, .. } => assert!(message.contains("nope"), "{message}"),
        other => panic!("expected Attach, got {other:?}"),
    }
}

#[tokio::test]
async fn create_option_makes_the_session() {
    let server = TmuxServer::start("pb");
    let mut opts = options(&server, "fresh");
    opts.create = true;
    let (client, _rx) = ControlClient::connect(opts).await.expect("new-session -A");
    assert_eq!(client.attached().name, "fresh");
    assert_eq!(display(&client, None, "#{session_name}").await, "fresh");
}

#[tokio::test]
async fn pipelined_replies_are_matched_in_order() {
    let server = TmuxServer::start("pb");
    let (client, _rx) = attach(&server).await;
    let commands: Vec<TmuxCommand> = (0..100)
        .map(|i| {
            TmuxCommand::display_message(None, &Format::literal(&format!("reply {i}"))).unwrap()
        })
        .collect();
    let replies = join_all(commands.iter().map(|c| client.run(c))).await;
    let mut last_number = 0;
    for (i, reply) in replies.into_iter().enumerate() {
        let reply = reply.expect("display-message succeeds");
        assert_eq!(reply.text_lines(), vec![format!("reply {i}")]);
        assert!(reply.guard.number > last_number, "block numbers increase");
        last_number = reply.guard.number;
    }
}

#[tokio::test]
async fn error_blocks_map_to_command_errors_and_the_channel_survives() {
    let server = TmuxServer::start("pb");
    let (client, _rx) = attach(&server).await;
    let cmd = TmuxCommand::kill_pane(PaneId(9999));
    match client.run(&cmd).await {
        Err(TmuxError::Command { command, message }) => {
            assert_eq!(command, cmd.line());
            assert!(message.contains("can't find pane"), "{message}");
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    assert_eq!(display(&client, None, "ok").await, "ok");
}

#[tokio::test]
async fn window_and_pane_notifications_arrive() {
    let server = TmuxServer::start("pb");
    let (client, mut rx) = attach(&server).await;
    let session = client.attached().session;
    let print = Format::template("#{window_id} #{pane_id}");
    let cmd = TmuxCommand::new_window(
        session,
        Some("work"),
        &Spawn::argv(["sleep", "100"]),
        &print,
    )
    .unwrap();
    let reply = client.run(&cmd).await.expect("new-window");
    let line = reply.text_lines().join("");
    let (window, pane) = line.split_once(' ').expect("window and pane ids");
    let window = WindowId(window.trim_start_matches('@').parse().unwrap());
    let pane = PaneId(pane.trim_start_matches('%').parse().unwrap());
    wait_for(&mut rx, |n| match n {
        Notification::Event(OwnedEvent::WindowAdd(w)) if *w == window => Some(()),
        _ => None,
    })
    .await;

    let cmd = TmuxCommand::split_window(
        pane,
        Split::Horizontal,
        &Spawn::argv(["sleep", "100"]),
        &Format::template("#{pane_id}"),
    )
    .unwrap();
    let second = client
        .run(&cmd)
        .await
        .expect("split-window")
        .text_lines()
        .join("");
    let second = PaneId(second.trim_start_matches('%').parse().unwrap());
    let panes_of = |layout: &str| Layout::parse(layout).expect("valid layout").pane_ids();
    wait_for(&mut rx, |n| match n {
        Notification::Event(OwnedEvent::LayoutChange {
            window: w, layout, ..
        }) if *w == window && panes_of(layout) == [pane, second] => Some(()),
        _ => None,
    })
    .await;

    client
        .run(&TmuxCommand::kill_pane(second))
        .await
        .expect("kill-pane");
    wait_for(&mut rx, |n| match n {
        Notification::Event(OwnedEvent::LayoutChange {
            window: w, layout, ..
        }) if *w == window && panes_of(layout) == [pane] => Some(()),
        _ => None,
    })
    .await;

    client
        .run(&TmuxCommand::kill_pane(pane))
        .await
        .expect("kill the window's last pane");
    wait_for(&mut rx, |n| match n {
        Notification::Event(OwnedEvent::UnlinkedWindowClose(w) | OwnedEvent::WindowClose(w))
            if *w == window =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
}

#[tokio::test]
async fn respawn_keeps_the_pane_id_and_changes_the_pid() {
    let server = TmuxServer::start("pb");
    let (client, _rx) = attach(&server).await;
    let pane = PaneId(0);
    let before = display(&client, Some(Target::Pane(pane)), "#{pane_id} #{pane_pid}").await;
    let spawn = Spawn {
        env: vec![("PB_MARK".into(), "x; y".into())],
        ..Spawn::argv(["sleep", "100"])
    };
    client
        .run(&TmuxCommand::respawn_pane(pane, &spawn).unwrap())
        .await
        .expect("respawn-pane -k");
    let after = display(&client, Some(Target::Pane(pane)), "#{pane_id} #{pane_pid}").await;
    let (id_before, pid_before) = before.split_once(' ').unwrap();
    let (id_after, pid_after) = after.split_once(' ').unwrap();
    assert_eq!(id_before, "%0");
    assert_eq!(id_after, id_before);
    assert_ne!(pid_after, pid_before);
    // Right after the fork the child is still called `tmux` until it execs.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let command = display(&client, Some(Target::Pane(pane)), "#{pane_current_command}").await;
        if command == "sleep" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pane runs {command:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn killing_the_session_ends_the_client() {
    let server = TmuxServer::start("pb");
    let (client, mut rx) = attach(&server).await;
    server.run(&["kill-session", "-t", "=pb"]);
    let reason = wait_for_exit(&mut rx).await;
    assert!(!reason.is_empty());
    assert!(rx.recv().await.is_none(), "Exit is the last notification");
    match client.run(&TmuxCommand::detach_client()).await {
        Err(TmuxError::Exited { reason: r }) => assert_eq!(r, reason),
        other => panic!("expected Exited, got {other:?}"),
    }
}

#[tokio::test]
async fn server_sigkill_fails_pending_requests_fast() {
    let server = TmuxServer::start("pb");
    let (client, mut rx) = attach(&server).await;
    let pid = client.server_pid().await.expect("server pid") as libc::pid_t;
    // Stop the server so a request is certainly pending when it dies.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let cmd = TmuxCommand::display_message(None, &Format::literal("never answered")).unwrap();
    let pending = client.run(&cmd);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    };
    let (result, ()) = tokio::time::timeout(WAIT, async { tokio::join!(pending, killer) })
        .await
        .expect("the pending request failed within the wait");
    match result {
        Err(TmuxError::Exited { reason }) => assert_eq!(reason, "server exited unexpectedly"),
        other => panic!("expected Exited, got {other:?}"),
    }
    assert_eq!(wait_for_exit(&mut rx).await, "server exited unexpectedly");
    assert!(matches!(
        client.run(&cmd).await,
        Err(TmuxError::Exited { .. })
    ));
}

#[tokio::test]
async fn detach_ends_the_session_cleanly() {
    let server = TmuxServer::start("pb");
    let (client, mut rx) = attach(&server).await;
    let reason = client.detach().await;
    assert_eq!(wait_for_exit(&mut rx).await, reason);
    // The session itself is untouched.
    assert_eq!(
        server
            .run(&["list-sessions", "-F", "#{session_name}"])
            .trim(),
        "pb"
    );
}

/// How tmux 3.3a's `rename-window` stores a name without control characters (measured):
/// `\` becomes `\\`, and `$` becomes `\$` when a letter, `_` or `{` follows it.
fn tmux_vis(name: &str) -> String {
    let mut out = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '$' if chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_' || *n == '{') =>
            {
                out.push_str("\\$")
            }
            c => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn hostile_window_names_do_not_inject_commands() {
    let server = TmuxServer::start("pb");
    let (client, _rx) = attach(&server).await;
    let marker = server.dir.path().join("injected");
    let hostile = [
        "a\nkill-server".to_owned(),
        "b ; kill-server".to_owned(),
        format!("c #(touch {})", marker.display()),
        format!(
            "d $(touch {}) `touch {}`",
            marker.display(),
            marker.display()
        ),
        "e '\\'' \" #{pane_id} %1 { } ~ $HOME \r\t".to_owned(),
    ];
    let session = client.attached().session;
    for name in &hostile {
        let print = Format::template("#{window_id}");
        let cmd =
            TmuxCommand::new_window(session, Some(name), &Spawn::argv(["sleep", "100"]), &print)
                .unwrap();
        let reply = client
            .run(&cmd)
            .await
            .expect("new-window with a hostile name");
        assert_eq!(reply.lines.len(), 1, "exactly one reply line");
        let window: u32 = reply.text_lines()[0]
            .trim_start_matches('@')
            .parse()
            .unwrap();
        let shown = display(
            &client,
            Some(Target::Window(WindowId(window))),
            "#{window_name}",
        )
        .await;
        let expected: String = name.chars().filter(|c| !c.is_control()).collect();
        assert_eq!(shown, expected);

        let renamed = format!("{name} renamed");
        client
            .run(&TmuxCommand::rename_window(WindowId(window), &renamed).unwrap())
            .await
            .expect("rename-window with a hostile name");
        let shown = display(
            &client,
            Some(Target::Window(WindowId(window))),
            "#{window_name}",
        )
        .await;
        assert_eq!(shown, tmux_vis(&format!("{expected} renamed")));
    }
    // Give any job tmux might have started a moment to run before checking for its effect.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "a #() or $() in a name ran a command");
    assert_eq!(display(&client, None, "alive").await, "alive");
}

#[tokio::test]
async fn model_follows_a_real_session() {
    let server = TmuxServer::start("pb");
    let (client, mut rx) = attach(&server).await;
    let session = client.attached().session;
    let pane = PaneId(0);
    let worker = OptionName::new("@panebus_worker").unwrap();
    let scope = OptionScope::Pane(pane);
    for cmd in [
        TmuxCommand::set_option(scope, &worker, "devbox/%0").unwrap(),
        TmuxCommand::set_option(scope, &OptionName::new("remain-on-exit").unwrap(), "on").unwrap(),
        TmuxCommand::set_pane_title(pane, "worker\none").unwrap(),
        pane_died_hook(HookTarget::Pane(pane)),
        pane_subscription(),
    ] {
        if let Err(err) = client.run(&cmd).await {
            panic!("{}: {err}", cmd.line());
        }
    }

    let listing = PaneListing::new(vec![worker.clone()]);
    let relist = |model: &mut SessionModel, lines: Vec<Vec<u8>>| {
        let (records, errors) = listing.parse(&lines);
        assert!(errors.is_empty(), "{errors:?}");
        model.replace_panes(records)
    };
    let list_cmd = listing.command(session).unwrap();
    let mut model = SessionModel::new(session);
    let changes = relist(&mut model, client.run(&list_cmd).await.unwrap().lines);
    assert_eq!(changes, vec![ModelChange::PaneAdded(pane)]);
    let state = &model.panes[&pane];
    assert_eq!(
        state.options.get("@panebus_worker").map(String::as_str),
        Some("devbox/%0")
    );
    assert_eq!(state.title, "workerone");
    assert!(!state.dead);
    let first_pid = state.pid.expect("listed pid");

    let server_pid = client.server_pid().await.unwrap() as libc::pid_t;
    let spawn = Spawn::argv(["sh", "-c", "sleep 0.2; exit 3"]);
    client
        .run(&TmuxCommand::respawn_pane(pane, &spawn).unwrap())
        .await
        .expect("respawn");
    wait_for_death(&mut model, &mut rx, pane, server_pid, Some(3), None).await;
    let state = &model.panes[&pane];
    assert!(state.dead);
    assert_eq!(state.dead_status, Some(3));
    assert_ne!(
        state.pid,
        Some(first_pid),
        "the model saw the respawned pid"
    );
    // A relisting agrees with what the notifications built.
    let before = model.clone();
    let changes = relist(&mut model, client.run(&list_cmd).await.unwrap().lines);
    assert_eq!(changes, vec![]);
    assert_eq!(model.panes[&pane].pid, before.panes[&pane].pid);

    let spawn = Spawn::argv(["sh", "-c", "sleep 0.2; kill -TERM $$"]);
    client
        .run(&TmuxCommand::respawn_pane(pane, &spawn).unwrap())
        .await
        .expect("respawn");
    wait_for_death(
        &mut model,
        &mut rx,
        pane,
        server_pid,
        None,
        Some(libc::SIGTERM),
    )
    .await;
}

/// Applies notifications to `model` until it reports `pane` dead with this status and signal,
/// recovering tmux 3.3a's lost SIGCHLD (docs/tmux-control-mode.md §6) the way the
/// coordinator does: a report with neither gets the server a SIGCHLD.
async fn wait_for_death(
    model: &mut SessionModel,
    rx: &mut UnboundedReceiver<Notification>,
    pane: PaneId,
    server_pid: libc::pid_t,
    status: Option<i32>,
    signal: Option<i32>,
) {
    let unknown = ModelChange::PaneDied {
        pane,
        status: None,
        signal: None,
    };
    let expected = ModelChange::PaneDied {
        pane,
        status,
        signal,
    };
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {expected:?}; changes seen: {seen:?}"))
            .expect("stream open");
        let changes = model.apply(&n);
        if changes.contains(&unknown) {
            assert_eq!(unsafe { libc::kill(server_pid, libc::SIGCHLD) }, 0);
        }
        let done = changes.contains(&expected);
        seen.extend(changes);
        if done {
            return;
        }
    }
}

#[tokio::test]
async fn an_oversized_reply_fails_only_its_own_command() {
    let server = TmuxServer::start("pb");
    let mut opts = options(&server, "pb");
    opts.max_reply_bytes = 64;
    let (client, _rx) = ControlClient::connect(opts).await.expect("attach");
    let big = TmuxCommand::display_message(None, &Format::literal(&"x".repeat(200))).unwrap();
    let small = TmuxCommand::display_message(None, &Format::literal("small")).unwrap();
    let (big_reply, small_reply) = tokio::join!(client.run(&big), client.run(&small));
    match big_reply {
        Err(TmuxError::ReplyTooLarge { command, .. }) => assert_eq!(command, big.line()),
        other => panic!("expected ReplyTooLarge, got {other:?}"),
    }
    assert_eq!(small_reply.expect("small reply").text_lines(), ["small"]);
}

#[tokio::test]
async fn every_command_form_is_accepted_by_tmux() {
    let server = TmuxServer::start("pb");
    let (client, _rx) = attach(&server).await;
    let session = client.attached().session;
    let pane = PaneId(0);
    let status = OptionName::new("@panebus_status").unwrap();
    let run = |cmd: TmuxCommand| {
        let client = &client;
        async move {
            match client.run(&cmd).await {
                Ok(reply) => reply.text_lines(),
                Err(err) => panic!("{}: {err}", cmd.line()),
            }
        }
    };

    // Typing into a plain `cat` shows the text; raw bytes go through send-keys -H.
    run(TmuxCommand::respawn_pane(pane, &Spawn::argv(["cat"])).unwrap()).await;
    run(TmuxCommand::send_text(pane, "-typed; $HOME #{x}").unwrap()).await;
    run(TmuxCommand::send_bytes(pane, b"\rraw\r")).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let screen = run(TmuxCommand::capture_pane(pane, 10)).await.join("\n");
        if screen.contains("-typed; $HOME #{x}") && screen.contains("raw") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "screen: {screen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for scope in [
        OptionScope::Pane(pane),
        OptionScope::Window(WindowId(0)),
        OptionScope::Session(session),
    ] {
        run(TmuxCommand::set_option(scope, &status, "busy").unwrap()).await;
        assert_eq!(
            run(TmuxCommand::show_option(scope, &status).unwrap()).await,
            ["busy"]
        );
        run(TmuxCommand::unset_option(scope, &status).unwrap()).await;
        assert!(run(TmuxCommand::show_option(scope, &status).unwrap())
            .await
            .is_empty());
    }
    for target in [HookTarget::Pane(pane), HookTarget::Session(session)] {
        run(pane_died_hook(target)).await;
        run(TmuxCommand::unset_hook(target, Hook::PaneDied)).await;
    }
    let hooks = server.run(&["show-hooks", "-g"]);
    assert!(
        !hooks.contains("pb-died"),
        "no global hook was set: {hooks}"
    );

    run(TmuxCommand::set_pane_title(pane, "title #{pane_id}").unwrap()).await;
    assert_eq!(
        display(&client, Some(Target::Pane(pane)), "#{pane_title}").await,
        "title #{pane_id}"
    );
    let windows =
        run(TmuxCommand::list_windows(session, &Format::template("#{window_id}")).unwrap()).await;
    assert_eq!(windows, ["@0"]);
    run(TmuxCommand::client_size(120, 40)).await;
    assert_eq!(
        display(
            &client,
            Some(Target::Window(WindowId(0))),
            "#{window_width}x#{window_height}"
        )
        .await,
        "120x40"
    );
    run(TmuxCommand::client_flags(&[
        (ClientFlag::NoOutput, true),
        (ClientFlag::PauseAfter(5), true),
    ]))
    .await;
    run(TmuxCommand::client_flags(&[
        (ClientFlag::NoOutput, false),
        (ClientFlag::PauseAfter(0), false),
    ]))
    .await;
    for state in [
        PaneOutput::Off,
        PaneOutput::On,
        PaneOutput::Pause,
        PaneOutput::Continue,
    ] {
        run(TmuxCommand::pane_output(pane, state)).await;
    }
    run(pane_subscription()).await;
    run(TmuxCommand::unsubscribe(PANE_SUBSCRIPTION).unwrap()).await;
    let option = OptionName::new("@pb_fmt").unwrap();
    run(TmuxCommand::set_option_format(
        OptionScope::Pane(pane),
        &option,
        &Format::template("#{pane_id}").then_literal(" #{literal}"),
    )
    .unwrap())
    .await;
    assert_eq!(
        run(TmuxCommand::show_option(OptionScope::Pane(pane), &option).unwrap()).await,
        ["%0 #{literal}"]
    );
}
