//! vis(3) encoding of window, session and buffer names.
//!
//! tmux passes names through `utf8_stravis(VIS_OCTAL|VIS_CSTYLE|VIS_TAB|VIS_NL)`: valid UTF-8
//! sequences, printable ASCII and space stay raw, the backslash becomes `\\`, C-style escapes
//! are used for `\n \t \r \b \a \v \f \0`, and every other byte becomes `\ooo`. Decoding is
//! lenient (like `strunvis`): an escape it does not know is kept as written, never an error.

use std::borrow::Cow;

use memchr::memchr;

/// Decodes a vis-encoded name; borrows when there is nothing to decode.
pub fn vis_decode(encoded: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr(b'\\', encoded) else {
        return Cow::Borrowed(encoded);
    };
    let mut out = Vec::with_capacity(encoded.len());
    out.extend_from_slice(&encoded[..first]);
    let mut i = first;
    while i < encoded.len() {
        let byte = encoded[i];
        if byte != b'\\' {
            out.push(byte);
            i += 1;
            continue;
        }
        let Some(&next) = encoded.get(i + 1) else {
            out.push(b'\\');
            break;
        };
        let simple = match next {
            b'\\' => Some(b'\\'),
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'b' => Some(0x08),
            b'a' => Some(0x07),
            b'v' => Some(0x0b),
            b'f' => Some(0x0c),
            b's' => Some(b' '),
            b'E' | b'e' => Some(0x1b),
            // tmux 3.3a (VIS_DQ) writes `$` as `\$` before a letter, `_` or `{`, and may
            // escape the other shell-special quote characters the same way.
            b'$' => Some(b'$'),
            b'"' => Some(b'"'),
            b'`' => Some(b'`'),
            _ => None,
        };
        if let Some(decoded) = simple {
            out.push(decoded);
            i += 2;
            continue;
        }
        if is_octal(next) {
            let digits = encoded[i + 1..]
                .iter()
                .take(3)
                .take_while(|b| is_octal(**b))
                .count();
            let value = encoded[i + 1..i + 1 + digits]
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            if let Ok(decoded) = u8::try_from(value) {
                out.push(decoded);
                i += 1 + digits;
                continue;
            }
        }
        out.extend_from_slice(&[b'\\', next]);
        i += 2;
    }
    Cow::Owned(out)
}

fn is_octal(byte: u8) -> bool {
    (b'0'..=b'7').contains(&byte)
}

/// Encodes `raw` as tmux encodes names (`VIS_OCTAL|VIS_CSTYLE|VIS_TAB|VIS_NL`, UTF-8 kept).
pub fn vis_encode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let width = utf8_sequence_len(&raw[i..]);
        if width > 1 {
            out.extend_from_slice(&raw[i..i + width]);
            i += width;
            continue;
        }
        let byte = raw[i];
        let next = raw.get(i + 1).copied();
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b' '..=b'~' => out.push(byte),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x0b => out.extend_from_slice(b"\\v"),
            0x0c => out.extend_from_slice(b"\\f"),
            0 if !next.is_some_and(is_octal) => out.extend_from_slice(b"\\0"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'0' + (byte >> 6),
                b'0' + ((byte >> 3) & 7),
                b'0' + (byte & 7),
            ]),
        }
        i += 1;
    }
    out
}

/// Length of the valid multi-byte UTF-8 sequence at the start of `bytes`, else 1 (or 0 if
/// empty). Single ASCII bytes report 1 so the caller handles them itself.
fn utf8_sequence_len(bytes: &[u8]) -> usize {
    let Some(&lead) = bytes.first() else {
        return 0;
    };
    let width = match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return 1,
    };
    match bytes.get(..width).map(std::str::from_utf8) {
        Some(Ok(_)) => width,
        _ => 1,
    }
}
