//! `%output` octal escaping and vis(3) name encoding: known tmux outputs and round trips.

use proptest::prelude::*;
use tmux_control_parser::{decode_output, encode_output, vis_decode, vis_encode};

#[test]
fn encode_output_matches_tmux() {
    assert_eq!(
        encode_output(b"a\\b\r\n\x1b[0m\x7f\xc3\xa9\0"),
        b"a\\134b\\015\\012\\033[0m\x7f\xc3\xa9\\000".to_vec()
    );
}

#[test]
fn decode_output_appends_and_keeps_stray_backslashes() {
    let mut out = b"kept:".to_vec();
    decode_output(b"\\101\\40\\400\\12x\\", &mut out);
    assert_eq!(out, b"kept:A\\40\\400\\12x\\".to_vec());
}

#[test]
fn vis_encode_matches_tmux_names() {
    assert_eq!(
        vis_encode("tab\there\nnewline and café \\ \x1b\r\0x\x007".as_bytes()),
        b"tab\\there\\nnewline and caf\xc3\xa9 \\\\ \\033\\r\\0x\\0007".to_vec()
    );
    assert_eq!(vis_encode(b"\xff\xc3"), b"\\377\\303".to_vec());
    assert_eq!(
        vis_encode(b"\x7f\x07\x08\x0b\x0c"),
        b"\\177\\a\\b\\v\\f".to_vec()
    );
}

#[test]
fn vis_decode_borrows_plain_names_and_keeps_unknown_escapes() {
    assert!(matches!(
        vis_decode(b"plain name"),
        std::borrow::Cow::Borrowed(_)
    ));
    assert_eq!(&*vis_decode(b"a\\qb\\"), b"a\\qb\\");
    assert_eq!(&*vis_decode(b"\\s\\E\\101\\0"), b" \x1bA\0");
}

#[test]
fn vis_decode_undoes_tmux_3_3a_dollar_escape() {
    // Measured: `rename-window 'x $HOME ${A} $(b)'` is reported as `x \$HOME \${A} $(b)`.
    assert_eq!(&*vis_decode(b"x \\$HOME \\${A} $(b)"), b"x $HOME ${A} $(b)");
}

proptest! {
    #[test]
    fn output_escaping_round_trips(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let escaped = encode_output(&raw);
        prop_assert!(!escaped.contains(&b'\n'));
        let mut decoded = Vec::new();
        decode_output(&escaped, &mut decoded);
        prop_assert_eq!(decoded, raw);
    }

    #[test]
    fn decode_output_never_panics(escaped in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut decoded = Vec::new();
        decode_output(&escaped, &mut decoded);
        prop_assert!(decoded.len() <= escaped.len());
    }

    #[test]
    fn vis_round_trips(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        let encoded = vis_encode(&raw);
        prop_assert!(!encoded.contains(&b'\n'));
        prop_assert_eq!(vis_decode(&encoded).into_owned(), raw);
    }

    #[test]
    fn vis_round_trips_text(text in "\\PC*") {
        let encoded = vis_encode(text.as_bytes());
        prop_assert_eq!(vis_decode(&encoded).into_owned(), text.as_bytes().to_vec());
    }
}
