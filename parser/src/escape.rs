//! `%output` payload escaping: tmux writes every byte below 0x20 and the backslash as `\ooo`
//! (exactly three octal digits) and every other byte raw (control.c `control_append_data`).
//!
//! [`decode_output`] is on the parser's hot path: it copies runs between backslashes with
//! `memchr` + `memcpy`, so plain text costs one copy. (A SWAR word-at-a-time variant was
//! measured and was not faster on escape-dense terminal output.) [`encode_output`] is tmux's direction, used by
//! tests and benchmarks to build streams.

use memchr::memchr;

/// Appends the raw bytes that the escaped `%output` payload `escaped` stands for to `out`.
///
/// `\` followed by three octal digits (first one `0`–`3`) is one byte; everything else,
/// including a backslash that does not start such an escape, is copied as is. `out` is not
/// cleared, so one buffer can be reused across records.
pub fn decode_output(escaped: &[u8], out: &mut Vec<u8>) {
    match memchr(b'\\', escaped) {
        Some(first) => decode_output_from(escaped, first, out),
        None => out.extend_from_slice(escaped),
    }
}

/// [`decode_output`] when the caller already found the first backslash at `first`.
///
/// Escapes come in runs (`\015\012`, `\033[`), so after one escape the next byte is checked
/// directly before falling back to a `memchr` search.
pub(crate) fn decode_output_from(escaped: &[u8], first: usize, out: &mut Vec<u8>) {
    out.reserve(escaped.len());
    out.extend_from_slice(&escaped[..first]);
    let mut rest = &escaped[first..];
    loop {
        match octal_escape(rest) {
            Some(byte) => {
                out.push(byte);
                rest = &rest[4..];
            }
            None => {
                out.push(b'\\');
                rest = &rest[1..];
            }
        }
        if rest.first() == Some(&b'\\') {
            continue;
        }
        match memchr(b'\\', rest) {
            Some(at) => {
                out.extend_from_slice(&rest[..at]);
                rest = &rest[at..];
            }
            None => {
                out.extend_from_slice(rest);
                return;
            }
        }
    }
}

/// The byte encoded by `\ooo` at the start of `tail` (which starts with the backslash).
#[inline]
fn octal_escape(tail: &[u8]) -> Option<u8> {
    match tail {
        [_, a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7', ..] => {
            Some(((a - b'0') << 6) | ((b - b'0') << 3) | (c - b'0'))
        }
        _ => None,
    }
}

/// Escapes `raw` the way tmux writes a `%output` payload.
pub fn encode_output(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 4);
    for &byte in raw {
        if byte < 0x20 || byte == b'\\' {
            out.extend_from_slice(&[
                b'\\',
                b'0' + (byte >> 6),
                b'0' + ((byte >> 3) & 7),
                b'0' + (byte & 7),
            ]);
        } else {
            out.push(byte);
        }
    }
    out
}
