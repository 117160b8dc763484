//! `%output` payload escaping: tmux writes every byte below 0x20 and the backslash as `\ooo`
//! (exactly three octal digits) and every other byte raw (control.c `control_append_data`).
//!
//! [`decode_output`] is on the parser's hot path: it copies runs between backslashes with
//! `memchr`, so plain text costs one `memcpy`. [`encode_output`] is tmux's direction, used by
//! tests and benchmarks to build streams.

use memchr::memchr;

/// Appends the raw bytes that the escaped `%output` payload `escaped` stands for to `out`.
///
/// `\` followed by three octal digits (first one `0`–`3`) is one byte; everything else,
/// including a backslash that does not start such an escape, is copied as is. `out` is not
/// cleared, so one buffer can be reused across records.
pub fn decode_output(escaped: &[u8], out: &mut Vec<u8>) {
    out.reserve(escaped.len());
    let mut rest = escaped;
    while let Some(at) = memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..at]);
        let tail = &rest[at..];
        match octal_escape(tail) {
            Some(byte) => {
                out.push(byte);
                rest = &tail[4..];
            }
            None => {
                out.push(b'\\');
                rest = &tail[1..];
            }
        }
    }
    out.extend_from_slice(rest);
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
