//! Hand-written protocol lines for every event type, checked against the normalized dump and
//! the typed events: reply blocks (fake `%end` inside, `%pause` inside, bodies with `%`, empty
//! lines, ESC and non-UTF-8), every notification of the fact sheet, unknown and bare lines,
//! malformed lines (an error, then parsing goes on), `-CC` framing and the line cap.

mod common;

use common::{dump_chunks, dump_whole, hex};
use tmux_control_parser::{
    Event, Guard, PaneId, ParseErrorKind, Parser, SessionId, SubscriptionTarget, WindowId,
};

fn one(line: &[u8]) -> String {
    let lines = dump_whole(line);
    assert_eq!(lines.len(), 1, "{line:?} gave {lines:?}");
    lines.into_iter().next().unwrap()
}

#[test]
fn output_is_octal_decoded_to_raw_bytes() {
    assert_eq!(
        one(b"%output %12 a\\134b\\015\\012\\033[1m\xc3\n"),
        format!("output %12 {}", hex(b"a\\b\r\n\x1b[1m\xc3"))
    );
    assert_eq!(one(b"%output %0 \n"), "output %0 -");
    assert_eq!(
        one(b"%output %0 plain\n"),
        format!("output %0 {}", hex(b"plain"))
    );
}

#[test]
fn output_keeps_a_backslash_that_is_not_an_escape() {
    assert_eq!(
        one(b"%output %1 \\9\\01x\\\n"),
        format!("output %1 {}", hex(b"\\9\\01x\\"))
    );
}

#[test]
fn extended_output_splits_at_the_first_colon_separator() {
    assert_eq!(
        one(b"%extended-output %3 150 : a : b\\012\n"),
        format!("extended-output %3 150 {}", hex(b"a : b\n"))
    );
    assert_eq!(
        one(b"%extended-output %3 7 reserved more : x\n"),
        format!("extended-output %3 7 {}", hex(b"x"))
    );
    assert_eq!(one(b"%extended-output %3 7 : \n"), "extended-output %3 7 -");
}

#[test]
fn pause_continue_and_pane_mode() {
    assert_eq!(one(b"%pause %4\n"), "pause %4");
    assert_eq!(one(b"%continue %4\n"), "continue %4");
    assert_eq!(one(b"%pane-mode-changed %9\n"), "pane-mode-changed %9");
}

#[test]
fn layout_change_with_and_without_flags() {
    assert_eq!(
        one(b"%layout-change @2 b25d,80x24,0,0,2 b25d,80x24,0,0,2 *Z\n"),
        "layout-change @2 b25d,80x24,0,0,2 b25d,80x24,0,0,2 *Z"
    );
    assert_eq!(
        one(b"%layout-change @2 b25d,80x24,0,0,2 b25d,80x24,0,0,2 \n"),
        "layout-change @2 b25d,80x24,0,0,2 b25d,80x24,0,0,2 -"
    );
    let mut parser = Parser::new();
    parser.feed(b"%layout-change @2 L V \n");
    assert_eq!(
        parser.next_event().unwrap().unwrap(),
        Event::LayoutChange {
            window: WindowId(2),
            layout: "L",
            visible_layout: "V",
            flags: ""
        }
    );
}

#[test]
fn window_notifications_including_unlinked_forms() {
    assert_eq!(one(b"%window-add @1\n"), "window-add @1");
    assert_eq!(one(b"%window-close @1\n"), "window-close @1");
    assert_eq!(one(b"%unlinked-window-add @5\n"), "unlinked-window-add @5");
    assert_eq!(
        one(b"%unlinked-window-close @5\n"),
        "unlinked-window-close @5"
    );
    assert_eq!(
        one(b"%window-pane-changed @1 %7\n"),
        "window-pane-changed @1 %7"
    );
}

#[test]
fn names_are_vis_decoded_and_run_to_the_end_of_the_line() {
    assert_eq!(
        one(b"%window-renamed @1 tab\\there\\nnewline and caf\xc3\xa9 \\\\\n"),
        format!(
            "window-renamed @1 {}",
            hex("tab\there\nnewline and café \\".as_bytes())
        )
    );
    assert_eq!(
        one(b"%unlinked-window-renamed @3 x y\n"),
        format!("unlinked-window-renamed @3 {}", hex(b"x y"))
    );
    assert_eq!(
        one(b"%unlinked-window-renamed @3\n"),
        "unlinked-window-renamed @3 -"
    );
}

#[test]
fn session_notifications() {
    assert_eq!(
        one(b"%session-changed $1 pb main\n"),
        format!("session-changed $1 {}", hex(b"pb main"))
    );
    assert_eq!(
        one(b"%session-renamed $1 n\\033\n"),
        format!("session-renamed $1 {}", hex(b"n\x1b"))
    );
    assert_eq!(one(b"%sessions-changed\n"), "sessions-changed");
    assert_eq!(
        one(b"%session-window-changed $1 @4\n"),
        "session-window-changed $1 @4"
    );
}

#[test]
fn client_names_with_dashes_and_slashes() {
    assert_eq!(
        one(b"%client-session-changed client-5389 $2 other\n"),
        format!(
            "client-session-changed {} $2 {}",
            hex(b"client-5389"),
            hex(b"other")
        )
    );
    assert_eq!(
        one(b"%client-detached /dev/pts/3\n"),
        format!("client-detached {}", hex(b"/dev/pts/3"))
    );
    let mut parser = Parser::new();
    parser.feed(b"%client-session-changed client-1 $2 s\n");
    assert!(matches!(
        parser.next_event().unwrap().unwrap(),
        Event::ClientSessionChanged {
            client: b"client-1",
            session: SessionId(2),
            ..
        }
    ));
}

#[test]
fn subscription_changed_forms() {
    let mut parser = Parser::new();
    parser.feed(b"%subscription-changed pb $1 @2 3 %4 : dead=1 : x\n");
    assert_eq!(
        parser.next_event().unwrap().unwrap(),
        Event::SubscriptionChanged {
            name: b"pb",
            target: SubscriptionTarget {
                session: Some(SessionId(1)),
                window: Some(WindowId(2)),
                index: Some(3),
                pane: Some(PaneId(4)),
                raw_fields: ["$1", "@2", "3", "%4"],
            },
            value: b"dead=1 : x",
        }
    );
    assert_eq!(
        one(b"%subscription-changed w $1 @2 0 - : v\n"),
        format!("subscription-changed {} $1 @2 0 - {}", hex(b"w"), hex(b"v"))
    );
    assert_eq!(
        one(b"%subscription-changed s $1 - - - : \n"),
        format!("subscription-changed {} $1 - - - -", hex(b"s"))
    );
    assert_eq!(
        one(b"%subscription-changed p $1 @2 0 %3 future fields : v\n"),
        format!(
            "subscription-changed {} $1 @2 0 %3 {}",
            hex(b"p"),
            hex(b"v")
        )
    );
}

#[test]
fn newer_notifications() {
    assert_eq!(
        one(b"%message pb-died %5 \\0010\n"),
        format!("message {}", hex(b"pb-died %5 \x010"))
    );
    assert_eq!(
        one(b"%config-error /etc/tmux.conf:1: bad \\n\n"),
        format!("config-error {}", hex(b"/etc/tmux.conf:1: bad \\n"))
    );
    assert_eq!(
        one(b"%paste-buffer-changed buffer0\n"),
        format!("paste-buffer-changed {}", hex(b"buffer0"))
    );
    assert_eq!(
        one(b"%paste-buffer-deleted buffer0\n"),
        format!("paste-buffer-deleted {}", hex(b"buffer0"))
    );
}

#[test]
fn exit_with_and_without_reason() {
    assert_eq!(one(b"%exit\n"), "exit");
    assert_eq!(
        one(b"%exit server exited unexpectedly\n"),
        format!("exit {}", hex(b"server exited unexpectedly"))
    );
}

#[test]
fn unknown_words_and_bare_lines_pass_through() {
    assert_eq!(
        one(b"%future-thing 1 2\n"),
        format!("unknown {}", hex(b"%future-thing 1 2"))
    );
    assert_eq!(one(b"%\n"), format!("unknown {}", hex(b"%")));
    assert_eq!(
        one(b"%pb-died %5 3 1234\n"),
        format!("unknown {}", hex(b"%pb-died %5 3 1234"))
    );
    assert_eq!(
        one(b"hook output\n"),
        format!("bare {}", hex(b"hook output"))
    );
    assert_eq!(one(b"\n"), "bare -");
}

#[test]
fn reply_block_body_is_raw_and_matched_by_exact_triple() {
    let input = b"%begin 1795000000 10 1\n%1\n\n\x1b[31m\xff\n%end 1795000000 11 1\n%end 1795000001 10 1\n%error 1795000000 10 1 x\n%end 1795000000 10 1\n";
    let body: &[&[u8]] = &[
        b"%1",
        b"",
        b"\x1b[31m\xff",
        b"%end 1795000000 11 1",
        b"%end 1795000001 10 1",
        b"%error 1795000000 10 1 x",
    ];
    let mut parser = Parser::new();
    parser.feed(input);
    match parser.next_event().unwrap().unwrap() {
        Event::Reply(reply) => {
            assert_eq!(
                reply.guard,
                Guard {
                    time: 1_795_000_000,
                    number: 10,
                    flags: 1
                }
            );
            assert!(!reply.is_error);
            assert_eq!(reply.lines, body);
        }
        other => panic!("expected a reply, got {other:?}"),
    }
    assert!(parser.next_event().is_none());
}

#[test]
fn error_block_and_empty_blocks() {
    assert_eq!(
        dump_whole(b"%begin 5 6 1\nparse error: unknown command: x\n%error 5 6 1\n%begin 5 7 0\n%end 5 7 0\n%begin 5 8 1\n\n%end 5 8 1\n"),
        vec![
            format!("block 5 6 1 error 1 {}", hex(b"parse error: unknown command: x")),
            "block 5 7 0 end 0 -".to_string(),
            "block 5 8 1 end 1 -".to_string(),
        ]
    );
}

#[test]
fn pause_inside_a_block_is_its_own_event_and_not_body() {
    assert_eq!(
        dump_whole(b"%begin 5 6 1\n%pause %3\nbody\n%continue %3\n%pause %x\n%end 5 6 1\n"),
        vec![
            "pause %3".to_string(),
            "continue %3".to_string(),
            format!("block 5 6 1 end 2 {}", hex(b"body\n%pause %x")),
        ]
    );
}

#[test]
fn notifications_inside_a_block_other_than_pause_are_body() {
    assert_eq!(
        dump_whole(b"%begin 5 6 1\n%output %1 x\n%exit\n%end 5 6 1\n"),
        vec![format!("block 5 6 1 end 2 {}", hex(b"%output %1 x\n%exit"))]
    );
}

#[test]
fn malformed_known_lines_are_errors_and_parsing_continues() {
    let input: &[u8] = b"%output %x y\n%output 1 y\n%window-add 3\n%window-add @99999999999\n%sessions-changed extra\n%begin 1 2\n%end 1 2 3\n%layout-change @1\n%client-detached\n%subscription-changed a $1 @1 0 %1 no separator\n%exit\n";
    let lines = dump_whole(input);
    let mut offsets = Vec::new();
    let mut offset = 0;
    for line in input.split_inclusive(|b| *b == b'\n') {
        offsets.push(format!("error at byte {offset}"));
        offset += line.len();
    }
    offsets.pop();
    offsets.push("exit".to_string());
    assert_eq!(lines, offsets);
}

#[test]
fn malformed_error_names_the_notification_and_offset() {
    let mut parser = Parser::new();
    parser.feed(b"%exit\n%output %abc data\n%sessions-changed\n");
    assert_eq!(
        parser.next_event().unwrap().unwrap(),
        Event::Exit { reason: None }
    );
    let err = parser.next_event().unwrap().unwrap_err();
    assert_eq!(err.offset(), 6);
    assert!(matches!(
        err.kind(),
        ParseErrorKind::Malformed {
            notification: "output",
            ..
        }
    ));
    assert!(err.to_string().contains("%output"), "{err}");
    assert_eq!(
        parser.next_event().unwrap().unwrap(),
        Event::SessionsChanged
    );
}

#[test]
fn cc_framing_is_stripped() {
    let input =
        b"\x1bP1000p%begin 1 2 0\r\n%end 1 2 0\r\n%output %1 a\\015\\012\r\n%exit\r\n\x1b\\";
    let expected = vec![
        "block 1 2 0 end 0 -".to_string(),
        format!("output %1 {}", hex(b"a\r\n")),
        "exit".to_string(),
    ];
    assert_eq!(dump_whole(input), expected);
    let byte_by_byte: Vec<&[u8]> = input.chunks(1).collect();
    let mut parser = Parser::new();
    assert_eq!(dump_chunks(&mut parser, byte_by_byte), expected);
    assert!(parser.finish().is_ok());
}

#[test]
fn crlf_is_stripped_when_the_first_line_has_it() {
    assert_eq!(
        dump_whole(b"%begin 1 2 0\r\n%end 1 2 0\r\n%output %1 a\r\r\n%exit\r\n"),
        vec![
            "block 1 2 0 end 0 -".to_string(),
            format!("output %1 {}", hex(b"a\r")),
            "exit".to_string()
        ]
    );
}

#[test]
fn cr_is_kept_when_the_first_line_has_none() {
    assert_eq!(
        dump_whole(b"%begin 1 2 0\n%end 1 2 0\n%output %1 a\r\n%exit\r\n"),
        vec![
            "block 1 2 0 end 0 -".to_string(),
            format!("output %1 {}", hex(b"a\r")),
            format!("unknown {}", hex(b"%exit\r")),
        ]
    );
}

#[test]
fn over_long_line_is_reported_at_its_offset_and_skipped() {
    let mut parser = Parser::with_max_line_len(16);
    let long = [b'x'; 40];
    let lines = dump_chunks(
        &mut parser,
        [
            &b"%exit\n%output %1 "[..],
            &long[..],
            &long[..],
            b"\n%output %1 short\n",
        ],
    );
    assert_eq!(
        lines,
        vec![
            "exit".to_string(),
            "error at byte 6".to_string(),
            format!("output %1 {}", hex(b"short")),
        ]
    );
    let lines = dump_whole(b"%output %1 0123456789abcdef\n%exit\n");
    assert_eq!(lines.len(), 2);
    let mut parser = Parser::with_max_line_len(8);
    assert_eq!(
        dump_chunks(&mut parser, [&b"%output %1 0123456789\n%exit\n"[..]]),
        vec!["error at byte 0".to_string(), "exit".to_string()]
    );
}

#[test]
fn over_long_block_is_an_error_carrying_its_guard() {
    let mut parser = Parser::new().with_max_block_len(10);
    parser.feed(b"%begin 1 2 1\n0123456789\nabc\n%end 1 2 1\n%exit\n");
    let err = parser.next_event().unwrap().unwrap_err();
    assert_eq!(err.offset(), 0);
    assert!(matches!(
        err.kind(),
        ParseErrorKind::BlockTooLong {
            guard: Guard { number: 2, .. },
            limit: 10
        }
    ));
    assert_eq!(
        parser.next_event().unwrap().unwrap(),
        Event::Exit { reason: None }
    );
}

#[test]
fn finish_reports_truncated_line_and_open_block() {
    let mut parser = Parser::new();
    parser.feed(b"%exit\n%outp");
    assert_eq!(
        parser.next_event().unwrap().unwrap(),
        Event::Exit { reason: None }
    );
    assert!(parser.next_event().is_none());
    let err = parser.finish().unwrap_err();
    assert_eq!(
        (err.offset(), err.kind()),
        (6, &ParseErrorKind::UnterminatedLine)
    );

    let mut parser = Parser::new();
    parser.feed(b"%exit\n%begin 1 2 3\nbody\n");
    assert!(parser.next_event().is_some());
    assert!(parser.next_event().is_none());
    let err = parser.finish().unwrap_err();
    assert_eq!(err.offset(), 6);
    assert!(matches!(err.kind(), ParseErrorKind::UnclosedBlock { .. }));
}

#[test]
fn stray_block_end_is_an_error() {
    let mut parser = Parser::new();
    parser.feed(b"%end 1 2 3\n%exit\n");
    let err = parser.next_event().unwrap().unwrap_err();
    assert!(matches!(err.kind(), ParseErrorKind::StrayBlockEnd { .. }));
    assert_eq!(
        parser.next_event().unwrap().unwrap(),
        Event::Exit { reason: None }
    );
}

#[test]
fn owned_events_round_trip_through_as_event() {
    let input = b"%begin 1 2 1\nx\n%end 1 2 1\n%output %1 a\\012\n%window-renamed @1 a\\tb\n%subscription-changed n $1 @2 0 %3 : v\n%exit why\nbare\n%new 1\n";
    let mut parser = Parser::new();
    parser.feed(input);
    let mut count = 0;
    while let Some(event) = parser.next_event() {
        let event = event.unwrap();
        let owned = event.to_owned_event();
        assert_eq!(owned.as_event(), event);
        count += 1;
    }
    assert_eq!(count, 7);
}
