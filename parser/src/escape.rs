//! `%output` payload escaping: tmux writes every byte below 0x20 and the backslash as `\ooo`
//! (exactly three octal digits) and every other byte raw (control.c `control_append_data`).
//!
//! [`decode_output`] is on the parser's hot path. It works in 16-byte blocks: each block is
//! copied to the output as is, then checked for a backslash (one SSE2 compare); plain text
//! costs one block copy per 16 bytes, and an escape one word-sized decode, after which the
//! next block starts right behind it. The output never runs ahead of the input (an escape
//! shrinks 4 bytes to 1), so the speculative block copy always fits in a buffer as long as the
//! input. (The previous version, a `memchr` call per run between escapes, spent ~1.4 times as
//! many instructions on the benchmark's escape-dense stream, one escape every ~25 bytes: the
//! call setup outweighs the short runs it skips.)
//! [`encode_output`] is tmux's direction, used by tests and benchmarks to build streams.

use memchr::memchr;

/// Bytes checked for a backslash at a time.
const BLOCK: usize = 16;

/// Appends the raw bytes that the escaped `%output` payload `escaped` stands for to `out`.
///
/// `\` followed by three octal digits (first one `0`–`3`) is one byte; everything else,
/// including a backslash that does not start such an escape, is copied as is. `out` is not
/// cleared, so one buffer can be reused across records.
pub fn decode_output(escaped: &[u8], out: &mut Vec<u8>) {
    match memchr(b'\\', escaped) {
        Some(first) => {
            let start = out.len();
            out.resize(start + escaped.len(), 0);
            let len = decode_output_into(escaped, first, &mut out[start..]);
            out.truncate(start + len);
        }
        None => out.extend_from_slice(escaped),
    }
}

/// Decodes `escaped`, whose first backslash is at `first`, into the start of `out` and
/// returns the decoded length. `out` must be at least as long as `escaped`.
pub(crate) fn decode_output_into(escaped: &[u8], first: usize, out: &mut [u8]) -> usize {
    let out = &mut out[..escaped.len()];
    out[..first].copy_from_slice(&escaped[..first]);
    let (mut read, mut written) = (first, first);
    while read < escaped.len() {
        if let Some(block) = escaped[read..].first_chunk::<BLOCK>() {
            out[written..written + BLOCK].copy_from_slice(block);
            let backslashes = backslash_mask(block);
            if backslashes == 0 {
                read += BLOCK;
                written += BLOCK;
                continue;
            }
            let plain = backslashes.trailing_zeros() as usize;
            read += plain;
            written += plain;
        } else if escaped[read] != b'\\' {
            out[written] = escaped[read];
            read += 1;
            written += 1;
            continue;
        }
        let tail = &escaped[read..];
        match octal_escape(tail) {
            Some(byte) => {
                out[written] = byte;
                read += 4;
            }
            None => {
                out[written] = b'\\';
                read += 1;
            }
        }
        written += 1;
    }
    written
}

/// Bit `i` is set when `block[i]` is a backslash: one SSE2 compare on x86_64 (SSE2 is part
/// of the x86_64 baseline, so no runtime detection is needed).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn backslash_mask(block: &[u8; BLOCK]) -> u32 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is enabled on every x86_64 target, `block` is 16 readable bytes, and
    // `_mm_loadu_si128` has no alignment requirement.
    unsafe {
        let bytes = _mm_loadu_si128(block.as_ptr().cast());
        _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8))) as u32
    }
}

/// Bit `i` is set when `block[i]` is a backslash (portable version; on x86_64 it is only the
/// reference the SSE2 version is tested against).
#[cfg(any(not(target_arch = "x86_64"), test))]
fn backslash_mask_portable(block: &[u8; BLOCK]) -> u32 {
    block
        .iter()
        .enumerate()
        .fold(0, |mask, (i, &byte)| mask | (u32::from(byte == b'\\') << i))
}

#[cfg(not(target_arch = "x86_64"))]
use backslash_mask_portable as backslash_mask;

/// The byte encoded by `\ooo` at the start of `tail` (which starts with the backslash).
///
/// The four bytes are checked and decoded as one little-endian word: each digit byte must be
/// 0x30–0x37 (`0`–`7`, which masked with 0xf8 reads 0x30), the first one 0x30–0x33 (`0`–`3`,
/// masked with 0xfc), and the byte is the low bits of the three digits, 2 + 3 + 3.
#[inline(always)]
fn octal_escape(tail: &[u8]) -> Option<u8> {
    let word = u32::from_le_bytes(*tail.first_chunk::<4>()?);
    if word & 0xf8f8_fc00 != 0x3030_3000 {
        return None;
    }
    Some((((word >> 2) & 0xc0) | ((word >> 13) & 0x38) | ((word >> 24) & 0x07)) as u8)
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The decoding rule, one byte at a time.
    fn reference_decode(escaped: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut read = 0;
        while read < escaped.len() {
            match &escaped[read..] {
                [b'\\', a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7', ..] => {
                    out.push(((a - b'0') << 6) | ((b - b'0') << 3) | (c - b'0'));
                    read += 4;
                }
                [byte, ..] => {
                    out.push(*byte);
                    read += 1;
                }
                [] => unreachable!("read < len"),
            }
        }
        out
    }

    proptest! {
        /// Stray and cut escapes anywhere in and across the 16-byte blocks, after a prefix.
        #[test]
        fn block_decoder_matches_the_reference(
            prefix in proptest::collection::vec(any::<u8>(), 0..4),
            escaped in proptest::collection::vec(
                prop_oneof![Just(b'\\'), Just(b'0'), Just(b'3'), Just(b'4'), Just(b'7'), Just(b'8'), any::<u8>()],
                0..80,
            ),
        ) {
            let mut out = prefix.clone();
            decode_output(&escaped, &mut out);
            prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
            prop_assert_eq!(&out[prefix.len()..], &reference_decode(&escaped)[..]);
        }
    }

    #[test]
    fn octal_escape_accepts_exactly_three_octal_digits_up_to_377() {
        for value in 0..=255u8 {
            let escape = format!("\\{value:03o}");
            assert_eq!(octal_escape(escape.as_bytes()), Some(value), "{escape}");
        }
        for bad in [
            &b"\\400"[..],
            b"\\08",
            b"\\8",
            b"\\01",
            b"\\0a7",
            b"\\/77",
            b"\\",
        ] {
            assert_eq!(octal_escape(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn backslash_mask_matches_the_portable_version() {
        let mut block = [b'a'; BLOCK];
        for pattern in [0u32, 1, 0x8000, 0xffff, 0x5a5a, 0x0180, 0x1234] {
            for (i, byte) in block.iter_mut().enumerate() {
                *byte = if pattern >> i & 1 == 1 {
                    b'\\'
                } else {
                    b'\\' + 1 + i as u8
                };
            }
            assert_eq!(backslash_mask(&block), pattern);
            assert_eq!(backslash_mask_portable(&block), pattern);
        }
    }
}
