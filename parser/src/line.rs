//! The grammar of one protocol line outside a reply block (nom), plus the guard lines.
//!
//! A line is `%word` and its fields; [`parse_line`] dispatches on the word and returns the
//! typed [`Event`], borrowing from the line (and, for `%output` data that holds escapes, from
//! the caller's reusable decode buffer). Words it does not know become [`Event::Unknown`], lines
//! without `%` become [`Event::Bare`]; a known word with bad fields is an `Err` naming the word.

use std::borrow::Cow;

use memchr::{memchr, memmem};
use nom::branch::alt;
use nom::bytes::complete::take_till1;
use nom::character::complete::{char, u32 as dec_u32, u64 as dec_u64};
use nom::combinator::{all_consuming, map, opt, rest, value};
use nom::sequence::{preceded, separated_pair, terminated, tuple};
use nom::IResult;

use crate::escape::decode_output_into;
use crate::event::{Event, Guard, PaneId, SessionId, SubscriptionTarget, WindowId};
use crate::vis::vis_decode;

type Input<'a> = &'a [u8];

fn pane_id(input: Input<'_>) -> IResult<Input<'_>, PaneId> {
    map(preceded(char('%'), dec_u32), PaneId)(input)
}

fn window_id(input: Input<'_>) -> IResult<Input<'_>, WindowId> {
    map(preceded(char('@'), dec_u32), WindowId)(input)
}

fn session_id(input: Input<'_>) -> IResult<Input<'_>, SessionId> {
    map(preceded(char('$'), dec_u32), SessionId)(input)
}

/// A non-empty run of bytes up to the next space.
fn space_free(input: Input<'_>) -> IResult<Input<'_>, Input<'_>> {
    take_till1(|b| b == b' ')(input)
}

/// A field that is either `-` (absent) or parsed by `field`.
fn dash_or<'a, T: Clone>(
    field: impl FnMut(Input<'a>) -> IResult<Input<'a>, T>,
) -> impl FnMut(Input<'a>) -> IResult<Input<'a>, Option<T>> {
    alt((value(None, char('-')), map(field, Some)))
}

/// Runs `grammar` over the whole of `fields`.
fn whole<'a, T>(
    fields: Input<'a>,
    grammar: impl FnMut(Input<'a>) -> IResult<Input<'a>, T>,
) -> Option<T> {
    all_consuming(grammar)(fields)
        .ok()
        .map(|(_, parsed)| parsed)
}

/// `ID` or `ID NAME…`: the name runs to the end of the line (it may contain spaces).
fn id_then_name<'a, T>(
    fields: Input<'a>,
    id: impl FnMut(Input<'a>) -> IResult<Input<'a>, T>,
) -> Option<(T, Input<'a>)> {
    whole(
        fields,
        tuple((
            id,
            map(opt(preceded(char(' '), rest)), Option::unwrap_or_default),
        )),
    )
}

/// Parses the `TIME NUMBER FLAGS` of a `%begin`/`%end`/`%error` line.
pub(crate) fn guard(fields: Input<'_>) -> Option<Guard> {
    whole(
        fields,
        map(
            tuple((dec_u64, char(' '), dec_u32, char(' '), dec_u32)),
            |(time, _, number, _, flags)| Guard {
                time,
                number,
                flags,
            },
        ),
    )
}

/// Splits `%word rest` into the word (without `%`) and the fields after the first space.
pub(crate) fn split_word(line: &[u8]) -> (&[u8], &[u8]) {
    let body = &line[1..];
    match memchr(b' ', body) {
        Some(space) => (&body[..space], &body[space + 1..]),
        None => (body, &[]),
    }
}

/// `%pause %P` / `%continue %P`, the two notifications that may occur inside a block.
pub(crate) fn flow_control(line: &[u8]) -> Option<Event<'static>> {
    if !line.starts_with(b"%pause %") && !line.starts_with(b"%continue %") {
        return None;
    }
    let (word, fields) = split_word(line);
    let pane = whole(fields, pane_id)?;
    Some(if word == b"pause" {
        Event::Pause(pane)
    } else {
        Event::Continue(pane)
    })
}

/// Why a line was rejected: the `%word` whose fields did not parse.
pub(crate) struct Malformed(pub &'static str);

/// Parses one complete line found outside a reply block (without its line end).
///
/// `%begin`/`%end`/`%error` are handled by the caller before this is reached.
pub(crate) fn parse_line<'a>(
    line: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<Event<'a>, Malformed> {
    if let Some(fields) = line.strip_prefix(b"%output ") {
        let (pane, data) = output_fields(fields).ok_or(Malformed("output"))?;
        return Ok(Event::Output {
            pane,
            data: decoded(data, scratch),
        });
    }
    if line.first() != Some(&b'%') {
        return Ok(Event::Bare(line));
    }
    let (word, fields) = split_word(line);
    let has_fields = word.len() + 1 < line.len();
    macro_rules! need {
        ($name:literal, $parsed:expr) => {
            match $parsed {
                Some(parsed) => parsed,
                None => return Err(Malformed($name)),
            }
        };
    }
    let event = match word {
        b"output" => {
            let (pane, data) = need!("output", output_fields(fields));
            Event::Output {
                pane,
                data: decoded(data, scratch),
            }
        }
        b"extended-output" => {
            let (pane, age_ms, data) = need!("extended-output", extended_output_fields(fields));
            Event::ExtendedOutput {
                pane,
                age_ms,
                data: decoded(data, scratch),
            }
        }
        b"pause" => Event::Pause(need!("pause", whole(fields, pane_id))),
        b"continue" => Event::Continue(need!("continue", whole(fields, pane_id))),
        b"layout-change" => need!("layout-change", layout_change(fields)),
        b"window-add" => Event::WindowAdd(need!("window-add", whole(fields, window_id))),
        b"window-close" => Event::WindowClose(need!("window-close", whole(fields, window_id))),
        b"unlinked-window-add" => {
            Event::UnlinkedWindowAdd(need!("unlinked-window-add", whole(fields, window_id)))
        }
        b"unlinked-window-close" => {
            Event::UnlinkedWindowClose(need!("unlinked-window-close", whole(fields, window_id)))
        }
        b"window-renamed" => {
            let (window, name) = need!("window-renamed", id_then_name(fields, window_id));
            Event::WindowRenamed {
                window,
                name: vis_decode(name),
            }
        }
        b"unlinked-window-renamed" => {
            let (window, name) = need!("unlinked-window-renamed", id_then_name(fields, window_id));
            Event::UnlinkedWindowRenamed {
                window,
                name: vis_decode(name),
            }
        }
        b"window-pane-changed" => {
            let (window, pane) = need!(
                "window-pane-changed",
                whole(fields, separated_pair(window_id, char(' '), pane_id))
            );
            Event::WindowPaneChanged { window, pane }
        }
        b"session-changed" => {
            let (session, name) = need!("session-changed", id_then_name(fields, session_id));
            Event::SessionChanged {
                session,
                name: vis_decode(name),
            }
        }
        b"session-renamed" => {
            let (session, name) = need!("session-renamed", id_then_name(fields, session_id));
            Event::SessionRenamed {
                session,
                name: vis_decode(name),
            }
        }
        b"sessions-changed" if !has_fields => Event::SessionsChanged,
        b"sessions-changed" => return Err(Malformed("sessions-changed")),
        b"session-window-changed" => {
            let (session, window) = need!(
                "session-window-changed",
                whole(fields, separated_pair(session_id, char(' '), window_id))
            );
            Event::SessionWindowChanged { session, window }
        }
        b"client-session-changed" => {
            let (client, session, name) =
                need!("client-session-changed", client_session_changed(fields));
            Event::ClientSessionChanged {
                client,
                session,
                name: vis_decode(name),
            }
        }
        b"client-detached" if !fields.is_empty() => Event::ClientDetached { client: fields },
        b"client-detached" => return Err(Malformed("client-detached")),
        b"pane-mode-changed" => {
            Event::PaneModeChanged(need!("pane-mode-changed", whole(fields, pane_id)))
        }
        b"subscription-changed" => need!("subscription-changed", subscription_changed(fields)),
        b"message" => Event::Message(vis_decode(fields)),
        b"config-error" => Event::ConfigError(Cow::Borrowed(fields)),
        b"paste-buffer-changed" => Event::PasteBufferChanged(Cow::Borrowed(fields)),
        b"paste-buffer-deleted" => Event::PasteBufferDeleted(Cow::Borrowed(fields)),
        b"exit" => Event::Exit {
            reason: (!fields.is_empty()).then_some(fields),
        },
        _ => Event::Unknown(line),
    };
    Ok(event)
}

/// The payload of `%output`/`%extended-output`: borrowed from the line when it holds no
/// escape, else decoded into the reused `scratch` buffer. `scratch` keeps its length between
/// records (it only grows), so the decoder writes into initialized room without zeroing it
/// per record.
#[inline]
fn decoded<'a>(data: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    match memchr(b'\\', data) {
        None => data,
        Some(first) => {
            if scratch.len() < data.len() {
                scratch.resize(data.len(), 0);
            }
            let len = decode_output_into(data, first, scratch);
            &scratch[..len]
        }
    }
}

/// `%P DATA` (tmux always writes the space; a record with no data and no space is accepted).
#[inline]
fn output_fields(fields: &[u8]) -> Option<(PaneId, &[u8])> {
    let (data, pane) = pane_id(fields).ok()?;
    match data {
        [] => Some((pane, data)),
        [b' ', data @ ..] => Some((pane, data)),
        _ => None,
    }
}

/// `CLIENT $S NAME`; the client name (a tty path or `client-PID`) has no spaces.
fn client_session_changed(fields: &[u8]) -> Option<(&[u8], SessionId, &[u8])> {
    let space = memchr(b' ', fields)?;
    let client = &fields[..space];
    if client.is_empty() {
        return None;
    }
    let (session, name) = id_then_name(&fields[space + 1..], session_id)?;
    Some((client, session, name))
}

/// `%P AGE [reserved…] : DATA`, split at the first ` : `.
fn extended_output_fields(fields: &[u8]) -> Option<(PaneId, u64, &[u8])> {
    let split = memmem::find(fields, b" : ")?;
    let (head, data) = (&fields[..split], &fields[split + 3..]);
    let (pane, age_ms) = whole(
        head,
        terminated(
            separated_pair(pane_id, char(' '), dec_u64),
            opt(preceded(char(' '), rest)),
        ),
    )?;
    Some((pane, age_ms, data))
}

/// `@W LAYOUT VISIBLE FLAGS`, FLAGS possibly empty (the line then ends with a space) or absent.
fn layout_change(fields: &[u8]) -> Option<Event<'_>> {
    let (window, _, layout, _, visible, flags) = whole(
        fields,
        tuple((
            window_id,
            char(' '),
            space_free,
            char(' '),
            space_free,
            map(opt(preceded(char(' '), rest)), Option::unwrap_or_default),
        )),
    )?;
    Some(Event::LayoutChange {
        window,
        layout: std::str::from_utf8(layout).ok()?,
        visible_layout: std::str::from_utf8(visible).ok()?,
        flags: std::str::from_utf8(flags).ok()?,
    })
}

/// `NAME $S @W IDX %P [reserved…] : VALUE`, split at the first ` : `; each of the four
/// target fields may be `-`.
fn subscription_changed(fields: &[u8]) -> Option<Event<'_>> {
    let split = memmem::find(fields, b" : ")?;
    let (head, value) = (&fields[..split], &fields[split + 3..]);
    let (name, rest_of_head) = head.split_at(memchr(b' ', head)?);
    let targets = &rest_of_head[1..];
    let (s, _, w, _, i, _, p, _) = whole(
        targets,
        tuple((
            space_free,
            char(' '),
            space_free,
            char(' '),
            space_free,
            char(' '),
            space_free,
            opt(preceded(char(' '), rest)),
        )),
    )?;
    let target = SubscriptionTarget {
        session: whole(s, dash_or(session_id))?,
        window: whole(w, dash_or(window_id))?,
        index: whole(i, dash_or(dec_u32))?,
        pane: whole(p, dash_or(pane_id))?,
        raw_fields: [
            std::str::from_utf8(s).ok()?,
            std::str::from_utf8(w).ok()?,
            std::str::from_utf8(i).ok()?,
            std::str::from_utf8(p).ok()?,
        ],
    };
    Some(Event::SubscriptionChanged {
        name,
        target,
        value,
    })
}

/// `%begin`, `%end` or `%error` with its guard, if `line` is one.
pub(crate) fn guard_line(line: &[u8]) -> Option<(GuardWord, Option<Guard>)> {
    let (word, fields) = match line {
        [b'%', b'b', b'e', b'g', b'i', b'n', ..] => (GuardWord::Begin, &line[6..]),
        [b'%', b'e', b'n', b'd', ..] => (GuardWord::End, &line[4..]),
        [b'%', b'e', b'r', b'r', b'o', b'r', ..] => (GuardWord::Error, &line[6..]),
        _ => return None,
    };
    match fields {
        [] => Some((word, None)),
        [b' ', fields @ ..] => Some((word, guard(fields))),
        _ => None,
    }
}

/// Which guard line [`guard_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuardWord {
    Begin,
    End,
    Error,
}

impl GuardWord {
    pub(crate) fn name(self) -> &'static str {
        match self {
            GuardWord::Begin => "begin",
            GuardWord::End => "end",
            GuardWord::Error => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_requires_three_numbers() {
        assert_eq!(
            guard(b"1795000000 12 1"),
            Some(Guard {
                time: 1_795_000_000,
                number: 12,
                flags: 1
            })
        );
        assert_eq!(guard(b"1 2"), None);
        assert_eq!(guard(b"1 2 3 4"), None);
        assert_eq!(guard(b"1 99999999999 0"), None);
    }
}
