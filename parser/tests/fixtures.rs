//! Real tmux 3.3a transcripts through the parser.
//!
//! `fixtures/control/NN-name.C.raw` and `NN-name.CC.raw` are the exact bytes a `tmux -C`
//! client (pipes) and a `tmux -CC` client (pty) printed for one scripted scenario, recorded by
//! `scripts/record-fixtures.sh` against a private server. Every file must parse with zero
//! errors however it is chunked; the two framings of one scenario must tell the same story
//! (same events, up to timestamps, block numbers, client names and where tmux cut `%output`
//! records); the `-C` form must match its hand-reviewed golden dump `NN-name.C.dump`; and each
//! scenario has assertions about what tmux did in it.

use std::fs;
use std::path::{Path, PathBuf};

use tmux_control_parser::{
    dump, Layout, OwnedEvent, OwnedSubscriptionTarget, PaneId, Parser, Reply, SessionId, WindowId,
};

/// Every recorded scenario, as the `NN-name` stem of its files.
const SCENARIOS: [&str; 15] = [
    "01-attach",
    "02-replies",
    "03-output",
    "04-long-line",
    "05-windows",
    "06-panes",
    "07-exit-remain-off",
    "08-exit-remain-on",
    "09-subscriptions",
    "10-sessions",
    "11-flow-control",
    "12-hook",
    "13-detach",
    "14-kill-server",
    "15-server-killed",
];

/// The two ways a control client frames its output.
const FRAMINGS: [&str; 2] = ["C", "CC"];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/control")
}

fn read_fixture(file: &str) -> Vec<u8> {
    let path = fixtures_dir().join(file);
    fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read {}: {err}; record it with scripts/record-fixtures.sh",
            path.display()
        )
    })
}

fn raw(scenario: &str, framing: &str) -> Vec<u8> {
    read_fixture(&format!("{scenario}.{framing}.raw"))
}

/// Feeds `bytes` in chunks of the given sizes (cycled), draining events after every feed.
/// Panics on any parse error, naming the byte offset and the chunking.
fn parse_chunked(name: &str, bytes: &[u8], sizes: &[usize]) -> Vec<OwnedEvent> {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    let mut rest = bytes;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        parser.feed(chunk);
        while let Some(event) = parser.next_event() {
            match event {
                Ok(event) => events.push(event.to_owned_event()),
                Err(err) => panic!(
                    "{name}: parse error at byte {} with chunk sizes {:?}…: {:?}",
                    err.offset(),
                    &sizes[..sizes.len().min(4)],
                    err.kind()
                ),
            }
        }
        rest = tail;
    }
    if let Err(err) = parser.finish() {
        panic!("{name}: stream does not end cleanly: {err:?}");
    }
    events
}

fn parse_whole(name: &str, bytes: &[u8]) -> Vec<OwnedEvent> {
    parse_chunked(name, bytes, &[bytes.len().max(1)])
}

fn parse(scenario: &str, framing: &str) -> Vec<OwnedEvent> {
    parse_whole(&format!("{scenario}.{framing}"), &raw(scenario, framing))
}

/// Chunk sizes from a small xorshift generator, so failures reproduce from the seed.
fn random_sizes(seed: u64, max: usize, count: usize) -> Vec<usize> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % max as u64) as usize + 1
        })
        .collect()
}

/// The command replies (flag 1), in order.
fn replies(events: &[OwnedEvent]) -> Vec<&Reply> {
    events
        .iter()
        .filter_map(|event| match event {
            OwnedEvent::Reply(reply) if reply.guard.flags == 1 => Some(reply),
            _ => None,
        })
        .collect()
}

/// Everything that is not a reply block.
fn notifications(events: &[OwnedEvent]) -> Vec<&OwnedEvent> {
    events
        .iter()
        .filter(|event| !matches!(event, OwnedEvent::Reply(_)))
        .collect()
}

fn body(reply: &Reply) -> Vec<&[u8]> {
    reply.lines.iter().map(Vec::as_slice).collect()
}

/// All output of `pane` (`%output` and `%extended-output`), decoded and concatenated.
fn output_of(events: &[OwnedEvent], pane: u32) -> Vec<u8> {
    let mut data = Vec::new();
    for event in events {
        match event {
            OwnedEvent::Output { pane: p, data: d }
            | OwnedEvent::ExtendedOutput {
                pane: p, data: d, ..
            } if *p == PaneId(pane) => data.extend_from_slice(d),
            _ => {}
        }
    }
    data
}

/// The panes of every `%layout-change` LAYOUT (and VISIBLE) of `window`, in order.
fn layouts(events: &[OwnedEvent], window: u32) -> Vec<(Vec<u32>, Vec<u32>, String)> {
    events
        .iter()
        .filter_map(|event| match event {
            OwnedEvent::LayoutChange {
                window: w,
                layout,
                visible_layout,
                flags,
            } if *w == WindowId(window) => {
                let panes = |text: &str| -> Vec<u32> {
                    Layout::parse(text)
                        .unwrap_or_else(|err| panic!("layout {text:?}: {err}"))
                        .pane_ids()
                        .into_iter()
                        .map(|pane| pane.0)
                        .collect()
                };
                Some((panes(layout), panes(visible_layout), flags.clone()))
            }
            _ => None,
        })
        .collect()
}

fn subscription(name: &str, fields: [&str; 4], value: &[u8]) -> OwnedEvent {
    let number = |field: &str, sigil: char| -> Option<u32> {
        field
            .strip_prefix(sigil)
            .map(|n| n.parse().expect("numeric id"))
    };
    OwnedEvent::SubscriptionChanged {
        name: name.as_bytes().to_vec(),
        target: OwnedSubscriptionTarget {
            session: number(fields[0], '$').map(SessionId),
            window: number(fields[1], '@').map(WindowId),
            index: fields[2].parse().ok(),
            pane: number(fields[3], '%').map(PaneId),
            raw_fields: fields.map(str::to_string),
        },
        value: value.to_vec(),
    }
}

/// What two recordings of one scenario must agree on: every event, with block time and
/// number, client names and `%extended-output` ages masked, and runs of output records of one
/// pane joined (tmux cuts records wherever its reads happened to end).
fn stable_view(events: &[OwnedEvent]) -> Vec<String> {
    let mut view: Vec<String> = Vec::new();
    let mut run: Option<(String, u32, Vec<u8>)> = None;
    let flush = |run: &mut Option<(String, u32, Vec<u8>)>, view: &mut Vec<String>| {
        if let Some((kind, pane, data)) = run.take() {
            view.push(format!(
                "{kind} %{pane} {}",
                String::from_utf8_lossy(&data).escape_debug()
            ));
        }
    };
    for event in events {
        let (kind, pane, data) = match event {
            OwnedEvent::Output { pane, data } => ("output", pane.0, data),
            OwnedEvent::ExtendedOutput { pane, data, .. } => ("extended-output", pane.0, data),
            other => {
                flush(&mut run, &mut view);
                view.push(match other {
                    OwnedEvent::Reply(reply) => format!(
                        "reply flags={} error={} lines={}",
                        reply.guard.flags,
                        reply.is_error,
                        reply.lines.len()
                    ),
                    OwnedEvent::ClientSessionChanged { session, name, .. } => format!(
                        "client-session-changed CLIENT ${} {}",
                        session.0,
                        String::from_utf8_lossy(name)
                    ),
                    OwnedEvent::ClientDetached { .. } => "client-detached CLIENT".to_string(),
                    other => dump::event_line(&other.as_event()),
                });
                continue;
            }
        };
        match &mut run {
            Some((k, p, d)) if *k == kind && *p == pane => d.extend_from_slice(data),
            _ => {
                flush(&mut run, &mut view);
                run = Some((kind.to_string(), pane, data.clone()));
            }
        }
    }
    flush(&mut run, &mut view);
    view
}

#[test]
fn every_fixture_parses_without_errors_and_ends_with_exit() {
    for scenario in SCENARIOS {
        for framing in FRAMINGS {
            let events = parse(scenario, framing);
            assert!(
                matches!(events.last(), Some(OwnedEvent::Exit { .. })),
                "{scenario}.{framing}: last event is {:?}, not %exit",
                events.last()
            );
            let exits = events
                .iter()
                .filter(|event| matches!(event, OwnedEvent::Exit { .. }))
                .count();
            assert_eq!(exits, 1, "{scenario}.{framing}: one %exit");
            let attach = events
                .iter()
                .find_map(|event| match event {
                    OwnedEvent::Reply(reply) => Some(reply),
                    _ => None,
                })
                .expect("the attach block");
            assert_eq!(
                attach.guard.flags, 0,
                "{scenario}.{framing}: attach block flag"
            );
        }
    }
}

#[test]
fn chunking_does_not_change_the_events() {
    for scenario in SCENARIOS {
        for framing in FRAMINGS {
            let name = format!("{scenario}.{framing}");
            let bytes = raw(scenario, framing);
            let whole = parse_whole(&name, &bytes);
            assert_eq!(
                parse_chunked(&name, &bytes, &[1]),
                whole,
                "{name}: 1-byte chunks"
            );
            for seed in 1..=4 {
                for max in [7, 64, 4096] {
                    let sizes = random_sizes(seed, max, 257);
                    assert_eq!(
                        parse_chunked(&name, &bytes, &sizes),
                        whole,
                        "{name}: random chunks, seed {seed}, max {max}"
                    );
                }
            }
        }
    }
}

#[test]
fn c_and_cc_recordings_tell_the_same_story() {
    for scenario in SCENARIOS {
        let plain = stable_view(&parse(scenario, "C"));
        let framed = stable_view(&parse(scenario, "CC"));
        assert_eq!(plain, framed, "{scenario}: -C and -CC differ");
    }
}

#[test]
fn golden_dumps_match() {
    for scenario in SCENARIOS {
        let events = parse(scenario, "C");
        let mut dump_text = String::new();
        for event in &events {
            dump_text.push_str(&dump::event_line(&event.as_event()));
            dump_text.push('\n');
        }
        let golden = String::from_utf8(read_fixture(&format!("{scenario}.C.dump")))
            .expect("dumps are ASCII");
        assert!(
            dump_text == golden,
            "{scenario}: the normalized dump changed; if the parser is right, regenerate with \
             `cargo run -q -p tmux-control-parser --example dump -- fixtures/control/{scenario}.C.raw \
             > fixtures/control/{scenario}.C.dump` and review the diff\n--- golden\n{golden}\n--- now\n{dump_text}"
        );
    }
}

#[test]
fn attach_burst_names_the_session_and_sizing_changes_the_layout() {
    for framing in FRAMINGS {
        let events = parse("01-attach", framing);
        let notes = notifications(&events);
        assert_eq!(
            notes,
            vec![
                &OwnedEvent::SessionChanged {
                    session: SessionId(0),
                    name: b"pb".to_vec()
                },
                &OwnedEvent::LayoutChange {
                    window: WindowId(0),
                    layout: "a87d,100x30,0,0,0".into(),
                    visible_layout: "a87d,100x30,0,0,0".into(),
                    flags: "*".into()
                },
                &OwnedEvent::Exit { reason: None },
            ],
            "01-attach.{framing}"
        );
        assert!(
            matches!(&events[0], OwnedEvent::Reply(r) if r.guard.flags == 0 && r.lines.is_empty())
        );
        let layout = Layout::parse("a87d,100x30,0,0,0").expect("recorded layout");
        assert_eq!((layout.root.width, layout.root.height), (100, 30));
        assert_eq!(layout.pane_ids(), vec![PaneId(0)]);
        assert_eq!(replies(&events).len(), 1);
    }
}

#[test]
fn reply_bodies_are_kept_intact() {
    let ok = |lines: &[&[u8]]| (false, lines.iter().map(|l| l.to_vec()).collect::<Vec<_>>());
    let err = |line: &[u8]| (true, vec![line.to_vec()]);
    let expected: Vec<(bool, Vec<Vec<u8>>)> = vec![
        ok(&[b""]),
        ok(&[]),
        ok(&[b"line one", b"line two", b"", b"line four"]),
        ok(&[b"%end 1795000000 1 1"]),
        ok(&[b"%begin 1 2 1", b"%error 1 2 1", b"%exit", b"%output %0 x"]),
        ok(&[]),
        ok(&[b"%0 @0 pb", b"%1 @1 pb"]),
        ok(&[b"tab\there esc\x1b[1mbold\x1b[0m raw\xff caf\xc3\xa9"]),
        err(b"can't find pane: %99"),
        err(b"parse error: unknown command: no-such-command"),
        err(b"parse error: ambiguous command: b, could be: bind-key, break-pane"),
        err(b"parse error: syntax error"),
        err(b"parse error: command display-message: too many arguments (need at most 1)"),
        ok(&[b"first"]),
        ok(&[b"second"]),
        err(b"can't find pane: %99"),
        ok(&[b"", b""]),
    ];
    for framing in FRAMINGS {
        let events = parse("02-replies", framing);
        let got: Vec<(bool, Vec<Vec<u8>>)> = replies(&events)
            .into_iter()
            .map(|reply| (reply.is_error, reply.lines.clone()))
            .collect();
        assert_eq!(got, expected, "02-replies.{framing}");
        for reply in replies(&events) {
            assert_eq!(reply.guard.flags, 1);
        }
        assert_eq!(
            notifications(&events),
            vec![
                &OwnedEvent::SessionChanged {
                    session: SessionId(0),
                    name: b"pb".to_vec()
                },
                &OwnedEvent::WindowAdd(WindowId(1)),
                &OwnedEvent::Exit { reason: None },
            ],
            "02-replies.{framing}: %-lines in bodies must not leak out as notifications"
        );
    }
}

#[test]
fn pane_output_decodes_to_the_exact_bytes_written() {
    let payload = read_fixture("03-output.payload");
    for framing in FRAMINGS {
        let events = parse("03-output", framing);
        assert_eq!(output_of(&events, 0), payload, "03-output.{framing}");
        assert!(notifications(&events)
            .iter()
            .all(|event| !matches!(event, OwnedEvent::Bare(_) | OwnedEvent::Unknown(_))));
    }
}

#[test]
fn long_lines_reassemble_from_split_records() {
    let payload = read_fixture("04-long-line.payload");
    let lines: Vec<&[u8]> = payload
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|line| line.len() > 6000));
    for framing in FRAMINGS {
        let events = parse("04-long-line", framing);
        let output = output_of(&events, 0);
        assert_eq!(output, payload, "04-long-line.{framing}");
        let records: Vec<&[u8]> = events
            .iter()
            .filter_map(|event| match event {
                OwnedEvent::Output { data, .. } => Some(data.as_slice()),
                _ => None,
            })
            .collect();
        assert!(
            records.len() > 3,
            "04-long-line.{framing}: {} records",
            records.len()
        );
        for line in &lines {
            assert!(
                records.iter().all(|record| record.len() < line.len()),
                "04-long-line.{framing}: a {}-byte line arrived in one record",
                line.len()
            );
        }
        assert!(
            records
                .iter()
                .any(|record| std::str::from_utf8(record).is_err()),
            "04-long-line.{framing}: expected tmux to cut a record inside a UTF-8 character"
        );
        assert!(std::str::from_utf8(lines[1]).is_ok());
    }
}

#[test]
fn window_notifications_and_vis_encoded_names() {
    let expected = vec![
        OwnedEvent::SessionChanged {
            session: SessionId(0),
            name: b"pb".to_vec(),
        },
        OwnedEvent::WindowAdd(WindowId(1)),
        OwnedEvent::WindowRenamed {
            window: WindowId(1),
            name: "tab\there\nnewline and caf\u{e9}".into(),
        },
        OwnedEvent::WindowRenamed {
            window: WindowId(1),
            name: b"back\\slash and spaces  ".to_vec(),
        },
        OwnedEvent::SessionWindowChanged {
            session: SessionId(0),
            window: WindowId(1),
        },
        OwnedEvent::SessionWindowChanged {
            session: SessionId(0),
            window: WindowId(2),
        },
        OwnedEvent::WindowAdd(WindowId(2)),
        OwnedEvent::SessionWindowChanged {
            session: SessionId(0),
            window: WindowId(1),
        },
        OwnedEvent::UnlinkedWindowClose(WindowId(2)),
        OwnedEvent::UnlinkedWindowAdd(WindowId(3)),
        OwnedEvent::SessionsChanged,
        OwnedEvent::UnlinkedWindowRenamed {
            window: WindowId(3),
            name: "elsewhere \u{2713}".into(),
        },
        OwnedEvent::WindowAdd(WindowId(3)),
        OwnedEvent::SessionWindowChanged {
            session: SessionId(0),
            window: WindowId(3),
        },
        OwnedEvent::SessionsChanged,
        OwnedEvent::WindowClose(WindowId(3)),
        OwnedEvent::UnlinkedWindowClose(WindowId(1)),
        OwnedEvent::Exit { reason: None },
    ];
    for framing in FRAMINGS {
        let events = parse("05-windows", framing);
        let notes: Vec<OwnedEvent> = notifications(&events).into_iter().cloned().collect();
        assert_eq!(notes, expected, "05-windows.{framing}");
    }
}

#[test]
fn pane_splits_zoom_modes_and_kills_show_in_layouts() {
    let pane_ids = |ids: &[u32]| ids.to_vec();
    for framing in FRAMINGS {
        let events = parse("06-panes", framing);
        let got = layouts(&events, 0);
        let expected = vec![
            (pane_ids(&[0, 1]), pane_ids(&[0, 1]), "*".to_string()),
            (pane_ids(&[0, 1, 2]), pane_ids(&[0, 1, 2]), "*".to_string()),
            (pane_ids(&[0, 1, 2]), pane_ids(&[0]), "*Z".to_string()),
            (pane_ids(&[0, 1, 2]), pane_ids(&[0, 1, 2]), "*".to_string()),
            (pane_ids(&[0, 2]), pane_ids(&[0, 2]), "*".to_string()),
            (pane_ids(&[2, 0]), pane_ids(&[2, 0]), "*".to_string()),
        ];
        assert_eq!(got, expected, "06-panes.{framing}");
        let others: Vec<&OwnedEvent> = notifications(&events)
            .into_iter()
            .filter(|event| !matches!(event, OwnedEvent::LayoutChange { .. }))
            .collect();
        let active = |pane| OwnedEvent::WindowPaneChanged {
            window: WindowId(0),
            pane: PaneId(pane),
        };
        assert_eq!(
            others,
            vec![
                &OwnedEvent::SessionChanged {
                    session: SessionId(0),
                    name: b"pb".to_vec()
                },
                &active(2),
                &active(0),
                &OwnedEvent::PaneModeChanged(PaneId(0)),
                &OwnedEvent::PaneModeChanged(PaneId(0)),
                &active(2),
                &OwnedEvent::Exit { reason: None },
            ],
            "06-panes.{framing}"
        );
        let listing = replies(&events)
            .into_iter()
            .find(|reply| reply.lines.len() == 3)
            .expect("the list-panes reply");
        assert_eq!(body(listing), vec![&b"%0"[..], b"%1", b"%2"]);
    }
}

#[test]
fn exit_with_remain_on_exit_off_closes_the_pane_or_window() {
    for framing in FRAMINGS {
        let events = parse("07-exit-remain-off", framing);
        let got = layouts(&events, 0);
        assert_eq!(
            got.iter()
                .map(|(panes, _, _)| panes.clone())
                .collect::<Vec<_>>(),
            vec![vec![0, 1], vec![0]],
            "07-exit-remain-off.{framing}"
        );
        let windows: Vec<&OwnedEvent> = notifications(&events)
            .into_iter()
            .filter(|event| {
                matches!(
                    event,
                    OwnedEvent::WindowAdd(_) | OwnedEvent::UnlinkedWindowClose(_)
                )
            })
            .collect();
        assert_eq!(
            windows,
            vec![
                &OwnedEvent::WindowAdd(WindowId(1)),
                &OwnedEvent::UnlinkedWindowClose(WindowId(1))
            ]
        );
    }
}

#[test]
fn exit_with_remain_on_exit_on_is_seen_by_subscription_and_respawned() {
    let dead = |value: &[u8]| subscription("dead", ["$0", "@0", "0", "%1"], value);
    for framing in FRAMINGS {
        let events = parse("08-exit-remain-on", framing);
        let pane1: Vec<&OwnedEvent> = events
            .iter()
            .filter(|event| {
                matches!(event, OwnedEvent::SubscriptionChanged { target, .. } if target.pane == Some(PaneId(1)))
            })
            .collect();
        assert_eq!(
            pane1,
            vec![
                &dead(b"%1 dead=0"),
                &dead(b"%1 dead=1"),
                &dead(b"%1 dead=0")
            ],
            "08-exit-remain-on.{framing}"
        );
        let bodies: Vec<(bool, Vec<&[u8]>)> = replies(&events)
            .into_iter()
            .map(|reply| (reply.is_error, body(reply)))
            .collect();
        assert!(
            bodies.contains(&(false, vec![&b"1"[..]])),
            "pane_dead was 1"
        );
        assert!(bodies.contains(&(
            true,
            vec![&b"respawn pane failed: pane pb:0.0 still active"[..]]
        )));
        assert!(
            bodies.contains(&(false, vec![&b"%1 0"[..]])),
            "respawned pane keeps %1"
        );
        assert_eq!(output_of(&events, 1), b"respawned\r\n");
    }
}

#[test]
fn subscriptions_have_pane_window_and_session_forms() {
    let expected = vec![
        subscription("all-panes", ["$0", "@0", "0", "%0"], b"%0 80x24"),
        subscription("all-windows", ["$0", "@0", "0", "-"], b"cat"),
        subscription("one-pane", ["$0", "@0", "0", "%0"], b"0 : colon inside"),
        subscription("one-window", ["$0", "@0", "0", "-"], b"0 1"),
        subscription("session", ["$0", "-", "-", "-"], b"pb 1"),
        subscription("all-windows", ["$0", "@0", "0", "-"], b"first window"),
        subscription("all-panes", ["$0", "@1", "1", "%1"], b"%1 80x24"),
        subscription("all-windows", ["$0", "@1", "1", "-"], b"cat"),
        subscription("session", ["$0", "-", "-", "-"], b"pb 2"),
        subscription("all-panes", ["$0", "@0", "0", "%0"], b"%0 80x12"),
        subscription("all-panes", ["$0", "@0", "0", "%2"], b"%2 80x11"),
        subscription("one-window", ["$0", "@0", "0", "-"], b"0 2"),
    ];
    for framing in FRAMINGS {
        let events = parse("09-subscriptions", framing);
        let got: Vec<OwnedEvent> = events
            .iter()
            .filter(|event| matches!(event, OwnedEvent::SubscriptionChanged { .. }))
            .cloned()
            .collect();
        assert_eq!(got, expected, "09-subscriptions.{framing}");
    }
}

#[test]
fn session_renames_switches_and_other_clients() {
    for framing in FRAMINGS {
        let events = parse("10-sessions", framing);
        let notes = notifications(&events);
        let client = notes
            .iter()
            .find_map(|event| match event {
                OwnedEvent::ClientDetached { client } => Some(client.clone()),
                _ => None,
            })
            .expect("%client-detached");
        assert!(client.starts_with(b"client-"), "{client:?}");
        let tab_here = b"tab\there".to_vec();
        assert_eq!(
            notes,
            vec![
                &OwnedEvent::SessionChanged {
                    session: SessionId(0),
                    name: b"pb".to_vec()
                },
                &OwnedEvent::SessionRenamed {
                    session: SessionId(0),
                    name: "caf\u{e9} session".into()
                },
                &OwnedEvent::SessionRenamed {
                    session: SessionId(0),
                    name: tab_here.clone()
                },
                &OwnedEvent::UnlinkedWindowAdd(WindowId(1)),
                &OwnedEvent::SessionsChanged,
                &OwnedEvent::SessionChanged {
                    session: SessionId(1),
                    name: b"second".to_vec()
                },
                &OwnedEvent::ClientSessionChanged {
                    client: client.clone(),
                    session: SessionId(0),
                    name: tab_here.clone()
                },
                &OwnedEvent::ClientDetached {
                    client: client.clone()
                },
                &OwnedEvent::SessionChanged {
                    session: SessionId(0),
                    name: tab_here.clone()
                },
                &OwnedEvent::SessionsChanged,
                &OwnedEvent::UnlinkedWindowClose(WindowId(1)),
                &OwnedEvent::Exit { reason: None },
            ],
            "10-sessions.{framing}"
        );
    }
}

#[test]
fn flow_control_pause_and_continue_inside_reply_blocks() {
    for framing in FRAMINGS {
        let name = format!("11-flow-control.{framing}");
        let events = parse("11-flow-control", framing);
        for (marker, what) in [
            (OwnedEvent::Pause(PaneId(0)), "%pause"),
            (OwnedEvent::Continue(PaneId(0)), "%continue"),
        ] {
            let at = events
                .iter()
                .position(|event| *event == marker)
                .unwrap_or_else(|| panic!("{name}: no {what} event"));
            match &events[at + 1] {
                OwnedEvent::Reply(reply) => assert!(
                    reply.lines.is_empty(),
                    "{name}: {what} left in the body of its reply: {:?}",
                    reply.lines
                ),
                other => panic!("{name}: {what} not followed by its reply block: {other:?}"),
            }
        }
        let extended: Vec<u8> = events
            .iter()
            .filter_map(|event| match event {
                OwnedEvent::ExtendedOutput { pane, data, .. } if *pane == PaneId(0) => {
                    Some(data.clone())
                }
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            extended, b"before pause\r\nbefore pause\r\nafter continue\r\nafter continue\r\n",
            "{name}: output while paused is dropped"
        );
        let plain: Vec<u8> = events
            .iter()
            .filter_map(|event| match event {
                OwnedEvent::Output { pane, data } if *pane == PaneId(0) => Some(data.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            plain, b"plain again\r\nplain again\r\nback on\r\nback on\r\n",
            "{name}: output while off is dropped"
        );
    }
}

#[test]
fn hook_output_arrives_as_bare_and_unknown_lines() {
    for framing in FRAMINGS {
        let events = parse("12-hook", framing);
        let notes = notifications(&events);
        let at = notes
            .iter()
            .position(|event| **event == OwnedEvent::Bare(b"hook: pane %1 exited".to_vec()))
            .unwrap_or_else(|| panic!("12-hook.{framing}: no bare hook line in {notes:?}"));
        assert_eq!(
            notes[at + 1],
            &OwnedEvent::Unknown(b"%pb-exited %1".to_vec()),
            "12-hook.{framing}"
        );
        assert_eq!(
            layouts(&events, 0)
                .into_iter()
                .map(|(panes, _, _)| panes)
                .collect::<Vec<_>>(),
            vec![vec![0, 1], vec![0]]
        );
    }
}

#[test]
fn detach_kill_server_and_server_crash_end_with_exit() {
    for framing in FRAMINGS {
        let events = parse("13-detach", framing);
        let tail: Vec<&OwnedEvent> = events.iter().rev().take(3).collect();
        assert_eq!(tail[0], &OwnedEvent::Exit { reason: None });
        assert!(matches!(tail[1], OwnedEvent::Reply(r) if r.lines.is_empty() && !r.is_error));
        assert!(
            matches!(tail[2], OwnedEvent::Reply(r) if body(r) == vec![&b"about to detach"[..]])
        );

        let events = parse("14-kill-server", framing);
        let tail: Vec<&OwnedEvent> = events.iter().rev().take(2).collect();
        assert_eq!(
            tail,
            vec![
                &OwnedEvent::Exit { reason: None },
                &OwnedEvent::SessionsChanged
            ]
        );

        let events = parse("15-server-killed", framing);
        assert_eq!(
            events.last(),
            Some(&OwnedEvent::Exit {
                reason: Some(b"server exited unexpectedly".to_vec())
            })
        );
        let pid = replies(&events)[0].lines[0].clone();
        assert!(
            !pid.is_empty() && pid.iter().all(u8::is_ascii_digit),
            "{pid:?}"
        );
    }
}
