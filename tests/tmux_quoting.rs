//! Property test of the command builder's quoting against a real tmux control channel:
//! any text without NUL (hostile fragments such as `;`, LF, CR, `#{…}`, `#(…)`, `$(…)`,
//! `$HOME`, `~`, quotes, `%`, `\`, braces, mixed with arbitrary Unicode) must arrive as
//! exactly one literal argument, produce exactly one reply block, and never run anything.

mod support;

use std::path::Path;
use std::time::Duration;

use panebus::tmux::{
    ConnectOptions, ControlClient, Format, OptionName, OptionScope, PaneId, TmuxCommand,
    TmuxServerRef,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use support::TmuxServer;

/// Hostile fragments; `FILE` is replaced by a path whose creation would prove injection.
const FRAGMENTS: &[&str] = &[
    ";",
    " ; ",
    "\\;",
    "\n",
    "\r",
    "\t",
    "\x1b[31m",
    "\x7f",
    "#{pane_id}",
    "#{?pane_dead,a,b}",
    "#(touch FILE)",
    "$(touch FILE)",
    "`touch FILE`",
    "$HOME",
    "${HOME}",
    "~",
    "~root",
    "'",
    "'\\''",
    "\"",
    "%",
    "%%",
    "%1",
    "%if 1",
    "%H:%M",
    "\\",
    "\\n",
    "\\012",
    "{",
    "}",
    "#",
    "##",
    "#[fg=red]",
    "##[x",
    "#,",
    "#}",
    "-",
    "--",
    "-t %0",
    "X=1",
    " ",
    "\u{e9}",
    "\u{1f600}",
    "\u{202e}",
];

fn hostile_text(file: String) -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(FRAGMENTS).prop_map(move |f| f.replace("FILE", &file));
    let any_char = any::<char>()
        .prop_filter("NUL cannot be sent", |c| *c != '\0')
        .prop_map(String::from);
    prop::collection::vec(prop_oneof![fragment, any_char], 0..16).prop_map(|parts| parts.concat())
}

/// The body of a reply as the text tmux printed (a printed LF splits it into lines).
async fn body(client: &ControlClient, cmd: &TmuxCommand) -> Result<String, TestCaseError> {
    let reply = client
        .run(cmd)
        .await
        .map_err(|err| TestCaseError::fail(format!("{}: {err}", cmd.line())))?;
    let lines: Vec<String> = reply
        .lines
        .iter()
        .map(|l| String::from_utf8(l.clone()).expect("tmux echoed valid UTF-8"))
        .collect();
    Ok(lines.join("\n"))
}

async fn round_trip(client: &ControlClient, text: &str, case: u32) -> Result<(), TestCaseError> {
    let pane = OptionScope::Pane(PaneId(0));
    let option = OptionName::new("@pb_test").unwrap();
    let show = TmuxCommand::show_option(pane, &option).unwrap();

    // A literal option value.
    let set = TmuxCommand::set_option(pane, &option, text).unwrap();
    assert!(
        !set.line().contains(['\n', '\r']),
        "one line: {:?}",
        set.line()
    );
    body(client, &set).await?;
    prop_assert_eq!(
        body(client, &show).await?,
        text,
        "set-option {:?}",
        set.line()
    );

    // The same text as the literal part of a format (`set-option -F` expands it once).
    let set = TmuxCommand::set_option_format(pane, &option, &Format::literal(text)).unwrap();
    body(client, &set).await?;
    prop_assert_eq!(
        body(client, &show).await?,
        text,
        "set-option -F {:?}",
        set.line()
    );

    // display-message runs strftime and then format expansion over its argument.
    let shown = TmuxCommand::display_message(None, &Format::literal(text)).unwrap();
    prop_assert_eq!(
        body(client, &shown).await?,
        text,
        "display {:?}",
        shown.line()
    );

    // Had any line above been split into two commands, the extra reply block would have
    // shifted the FIFO matching: this sentinel would receive someone else's reply.
    let sentinel = format!("sentinel {case}");
    let cmd = TmuxCommand::display_message(None, &Format::literal(&sentinel)).unwrap();
    prop_assert_eq!(body(client, &cmd).await?, sentinel);
    Ok(())
}

fn assert_not_created(file: &Path) {
    assert!(
        !file.exists(),
        "{} was created: a command was injected",
        file.display()
    );
}

#[test]
fn any_text_round_trips_as_one_literal_argument() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = TmuxServer::start("pb");
    let file = server.dir.path().join("injected");
    let mut options = ConnectOptions::new(TmuxServerRef::Path(server.socket.clone()), "pb");
    options.config_file = Some("/dev/null".into());
    let (client, _notifications) = runtime.block_on(ControlClient::connect(options)).unwrap();

    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0);
    runner
        .run(&hostile_text(file.display().to_string()), |text| {
            case.set(case.get() + 1);
            runtime.block_on(round_trip(&client, &text, case.get()))
        })
        .unwrap();

    // A `#(…)` job runs asynchronously in the server: give it time before looking.
    std::thread::sleep(Duration::from_millis(500));
    assert_not_created(&file);
    let alive = TmuxCommand::display_message(None, &Format::literal("alive")).unwrap();
    let reply = runtime
        .block_on(client.run(&alive))
        .expect("the control channel still works");
    assert_eq!(reply.text_lines(), ["alive"]);
}
