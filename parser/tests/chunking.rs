//! Property tests: any chunking of a synthetic transcript gives the same events as feeding it
//! whole (plain `-C` and `-CC` framing), `%output` data survives the round trip through
//! tmux's escaping, and arbitrary or protocol-shaped garbage never makes the parser panic.

mod common;

use common::{dump_chunks, dump_whole, hex};
use proptest::prelude::*;
use tmux_control_parser::{encode_output, vis_encode, Event, Parser};

/// One synthetic protocol item: the wire bytes of its line(s) (LF-terminated) and the
/// normalized dump lines it must produce.
#[derive(Debug, Clone)]
struct Item {
    wire: Vec<u8>,
    expected: Vec<String>,
}

fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..40)
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (0u32..100, proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(pane, raw)| {
            let mut wire = format!("%output %{pane} ").into_bytes();
            wire.extend(encode_output(&raw));
            wire.push(b'\n');
            let expected = if raw.is_empty() {
                "-".to_string()
            } else {
                hex(&raw)
            };
            Item {
                wire,
                expected: vec![format!("output %{pane} {expected}")],
            }
        }),
        (
            any::<u32>(),
            proptest::collection::vec(line_bytes(), 0..5),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(number, body, is_error, with_pause)| {
                let time = 1_795_000_000u64;
                let mut wire = format!("%begin {time} {number} 1\n").into_bytes();
                // A fake end with another number is body, not the end of the block.
                let fake_end = format!("%end {time} {} 1", number.wrapping_add(1)).into_bytes();
                let mut lines: Vec<Vec<u8>> = body
                    .into_iter()
                    .filter(|line| !line.starts_with(b"%pause") && !line.starts_with(b"%continue"))
                    .collect();
                lines.push(fake_end);
                let mut expected = Vec::new();
                for (i, line) in lines.iter().enumerate() {
                    if with_pause && i == 0 {
                        wire.extend_from_slice(b"%pause %1\n");
                        expected.push("pause %1".to_string());
                    }
                    wire.extend_from_slice(line);
                    wire.push(b'\n');
                }
                let word = if is_error { "error" } else { "end" };
                wire.extend_from_slice(format!("%{word} {time} {number} 1\n").as_bytes());
                let joined = lines.join(&b'\n');
                expected.push(format!(
                    "block {time} {number} 1 {word} {} {}",
                    lines.len(),
                    hex(&joined)
                ));
                Item { wire, expected }
            }),
        (0u32..50, line_bytes()).prop_map(|(window, name)| {
            let mut wire = format!("%window-renamed @{window} ").into_bytes();
            wire.extend(vis_encode(&name));
            wire.push(b'\n');
            let name = if name.is_empty() {
                "-".to_string()
            } else {
                hex(&name)
            };
            Item {
                wire,
                expected: vec![format!("window-renamed @{window} {name}")],
            }
        }),
        (0u32..50, 0u32..50).prop_map(|(window, pane)| Item {
            wire: format!(
                "%layout-change @{window} b25f,80x24,0,0,{pane} b25f,80x24,0,0,{pane} \n"
            )
            .into_bytes(),
            expected: vec![format!(
                "layout-change @{window} b25f,80x24,0,0,{pane} b25f,80x24,0,0,{pane} -"
            )],
        }),
        (0u32..50, "[a-z]{1,8}", "[ -~]{0,20}").prop_map(|(session, name, value)| Item {
            wire: format!("%subscription-changed {name} ${session} - - - : {value}\n").into_bytes(),
            expected: vec![format!(
                "subscription-changed {} ${session} - - - {}",
                hex(name.as_bytes()),
                if value.is_empty() {
                    "-".to_string()
                } else {
                    hex(value.as_bytes())
                }
            )],
        }),
        (0u32..50).prop_map(|window| Item {
            wire: format!("%unlinked-window-close @{window}\n").into_bytes(),
            expected: vec![format!("unlinked-window-close @{window}")],
        }),
        "%[a-z]{1,12}-x [ -~]{0,10}".prop_map(|line| Item {
            wire: format!("{line}\n").into_bytes(),
            expected: vec![format!("unknown {}", hex(line.as_bytes()))],
        }),
        "[a-z][ -~]{0,20}".prop_map(|line| Item {
            wire: format!("{line}\n").into_bytes(),
            expected: vec![format!("bare {}", hex(line.as_bytes()))],
        }),
    ]
}

#[test]
#[should_panic(expected = "more than the space")]
fn committing_more_than_the_read_space_panics() {
    let mut parser = Parser::new();
    let room = parser.read_space(8).len();
    parser.commit(room + 1);
}

/// A transcript of items and random cut points into it.
fn transcript() -> impl Strategy<Value = (Vec<Item>, Vec<usize>)> {
    (
        proptest::collection::vec(item(), 1..20),
        proptest::collection::vec(any::<usize>(), 0..30),
    )
}

/// Cuts `bytes` at the (reduced, sorted) `cuts`.
fn chunked<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for point in points {
        chunks.push(&bytes[from..point]);
        from = point;
    }
    chunks.push(&bytes[from..]);
    chunks
}

/// The `-CC` form of a plain transcript: DCS prefix, CR LF line ends, ST at the end.
fn cc_framed(plain: &[u8]) -> Vec<u8> {
    let mut framed = b"\x1bP1000p".to_vec();
    for line in plain.split_inclusive(|b| *b == b'\n') {
        framed.extend_from_slice(&line[..line.len() - 1]);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"%exit\r\n\x1b\\");
    framed
}

proptest! {
    #[test]
    fn any_chunking_gives_the_events_of_the_whole((items, cuts) in transcript()) {
        let wire: Vec<u8> = items.iter().flat_map(|item| item.wire.clone()).collect();
        let expected: Vec<String> = items.iter().flat_map(|item| item.expected.clone()).collect();
        prop_assert_eq!(&dump_whole(&wire), &expected);
        let mut parser = Parser::new();
        prop_assert_eq!(&dump_chunks(&mut parser, chunked(&wire, &cuts)), &expected);
        prop_assert!(parser.finish().is_ok());
    }

    #[test]
    fn reading_into_read_space_gives_the_events_of_the_whole(
        (items, cuts) in transcript(),
        spare in 0usize..64,
    ) {
        let wire: Vec<u8> = items.iter().flat_map(|item| item.wire.clone()).collect();
        let expected: Vec<String> = items.iter().flat_map(|item| item.expected.clone()).collect();
        let mut parser = Parser::new();
        let mut lines = Vec::new();
        for chunk in chunked(&wire, &cuts) {
            let space = parser.read_space(chunk.len() + spare);
            prop_assert!(space.len() >= chunk.len() + spare);
            space[..chunk.len()].copy_from_slice(chunk);
            parser.commit(chunk.len());
            while let Some(event) = parser.next_event() {
                lines.push(tmux_control_parser::dump::event_line(&event.unwrap()));
            }
        }
        prop_assert_eq!(lines, expected);
        prop_assert!(parser.finish().is_ok());
    }

    #[test]
    fn cc_framing_gives_the_same_events_under_any_chunking((items, cuts) in transcript()) {
        let wire: Vec<u8> = items.iter().flat_map(|item| item.wire.clone()).collect();
        let mut expected: Vec<String> = items.iter().flat_map(|item| item.expected.clone()).collect();
        expected.push("exit".to_string());
        let framed = cc_framed(&wire);
        let mut parser = Parser::new();
        prop_assert_eq!(&dump_chunks(&mut parser, chunked(&framed, &cuts)), &expected);
        prop_assert!(parser.finish().is_ok());
    }

    #[test]
    fn output_data_is_the_raw_bytes(raw in proptest::collection::vec(any::<u8>(), 0..500), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
        let mut wire = b"%output %7 ".to_vec();
        wire.extend(encode_output(&raw));
        wire.push(b'\n');
        let mut parser = Parser::new();
        let mut seen = Vec::new();
        for chunk in chunked(&wire, &cuts) {
            parser.feed(chunk);
            while let Some(event) = parser.next_event() {
                match event.unwrap() {
                    Event::Output { data, .. } => seen.push(data.to_vec()),
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
        prop_assert_eq!(seen, vec![raw]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        max_line_len in 1usize..64,
    ) {
        for mut parser in [Parser::new(), Parser::with_max_line_len(max_line_len).with_max_block_len(max_line_len * 2)] {
            let lines = dump_chunks(&mut parser, chunked(&bytes, &cuts));
            prop_assert!(lines.len() <= bytes.len() + 1);
            let _ = parser.finish();
        }
    }

    #[test]
    fn protocol_shaped_garbage_never_panics(
        tokens in proptest::collection::vec(prop_oneof![
            Just(&b"%begin 1 2 3"[..]), Just(&b"%end 1 2 3"[..]), Just(&b"%error 1 2 3"[..]),
            Just(&b"%output %1 "[..]), Just(&b"\\0"[..]), Just(&b"\\134"[..]), Just(&b"\r\n"[..]),
            Just(&b"\n"[..]), Just(&b"\x1bP1000p"[..]), Just(&b"\x1b\\"[..]), Just(&b"%pause %"[..]),
            Just(&b"%layout-change @"[..]), Just(&b"%subscription-changed "[..]), Just(&b" : "[..]),
            Just(&b"%extended-output %"[..]), Just(&b"$"[..]), Just(&b"@"[..]), Just(&b"-"[..]),
            Just(&b"4294967296"[..]), Just(&b"7"[..]), Just(&b" "[..]), Just(&b"\xff"[..]),
            Just(&b"%client-session-changed "[..]), Just(&b"%window-renamed @1 "[..]),
        ], 0..80),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let bytes: Vec<u8> = tokens.concat();
        let mut parser = Parser::with_max_line_len(48);
        let lines = dump_chunks(&mut parser, chunked(&bytes, &cuts));
        prop_assert!(lines.len() <= bytes.len() + 1);
        let whole = dump_whole(&bytes);
        let mut rechunked = Parser::new();
        prop_assert_eq!(dump_chunks(&mut rechunked, chunked(&bytes, &cuts)), whole);
    }
}
