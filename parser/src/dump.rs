//! The normalized event dump (`docs/normalized-dump.md`): one line per event, payloads as
//! lowercase hex of the decoded bytes, so two parsers' views of one transcript can be diffed.
//!
//! Shared by the `dump` example, the chunking tests and the fixture tests.

use std::io::{self, Write};

use crate::event::Event;

/// Writes the normalized line for `event`, including its `\n`.
pub fn write_event(event: &Event<'_>, out: &mut impl Write) -> io::Result<()> {
    match event {
        Event::Reply(reply) => {
            let kind = if reply.is_error { "error" } else { "end" };
            let guard = &reply.guard;
            write!(
                out,
                "block {} {} {} {kind} {} ",
                guard.time,
                guard.number,
                guard.flags,
                reply.lines.len()
            )?;
            let body = reply.lines.join(&b'\n');
            write_hex(&body, out)?;
        }
        Event::Output { pane, data } => {
            write!(out, "output {} ", pane)?;
            write_hex(data, out)?;
        }
        Event::ExtendedOutput { pane, age_ms, data } => {
            write!(out, "extended-output {} {age_ms} ", pane)?;
            write_hex(data, out)?;
        }
        Event::Pause(pane) => write!(out, "pause {}", pane)?,
        Event::Continue(pane) => write!(out, "continue {}", pane)?,
        Event::LayoutChange {
            window,
            layout,
            visible_layout,
            flags,
        } => {
            let flags = if flags.is_empty() { "-" } else { flags };
            write!(
                out,
                "layout-change {} {layout} {visible_layout} {flags}",
                window
            )?;
        }
        Event::WindowAdd(window) => write!(out, "window-add {}", window)?,
        Event::WindowClose(window) => write!(out, "window-close {}", window)?,
        Event::UnlinkedWindowAdd(window) => write!(out, "unlinked-window-add {}", window)?,
        Event::UnlinkedWindowClose(window) => write!(out, "unlinked-window-close {}", window)?,
        Event::WindowRenamed { window, name } => {
            write!(out, "window-renamed {} ", window)?;
            write_hex(name, out)?;
        }
        Event::UnlinkedWindowRenamed { window, name } => {
            write!(out, "unlinked-window-renamed {} ", window)?;
            write_hex(name, out)?;
        }
        Event::WindowPaneChanged { window, pane } => {
            write!(out, "window-pane-changed {} {}", window, pane)?
        }
        Event::SessionChanged { session, name } => {
            write!(out, "session-changed {} ", session)?;
            write_hex(name, out)?;
        }
        Event::SessionRenamed { session, name } => {
            write!(out, "session-renamed {} ", session)?;
            write_hex(name, out)?;
        }
        Event::SessionsChanged => write!(out, "sessions-changed")?,
        Event::SessionWindowChanged { session, window } => {
            write!(out, "session-window-changed {} {}", session, window)?
        }
        Event::ClientSessionChanged {
            client,
            session,
            name,
        } => {
            write!(out, "client-session-changed ")?;
            write_hex(client, out)?;
            write!(out, " {} ", session)?;
            write_hex(name, out)?;
        }
        Event::ClientDetached { client } => {
            write!(out, "client-detached ")?;
            write_hex(client, out)?;
        }
        Event::PaneModeChanged(pane) => write!(out, "pane-mode-changed {}", pane)?,
        Event::SubscriptionChanged {
            name,
            target,
            value,
        } => {
            write!(out, "subscription-changed ")?;
            write_hex(name, out)?;
            let [session, window, index, pane] = target.raw_fields;
            write!(out, " {session} {window} {index} {pane} ")?;
            write_hex(value, out)?;
        }
        Event::Message(text) => {
            write!(out, "message ")?;
            write_hex(text, out)?;
        }
        Event::ConfigError(text) => {
            write!(out, "config-error ")?;
            write_hex(text, out)?;
        }
        Event::PasteBufferChanged(name) => {
            write!(out, "paste-buffer-changed ")?;
            write_hex(name, out)?;
        }
        Event::PasteBufferDeleted(name) => {
            write!(out, "paste-buffer-deleted ")?;
            write_hex(name, out)?;
        }
        Event::Exit { reason: None } => write!(out, "exit")?,
        Event::Exit {
            reason: Some(reason),
        } => {
            write!(out, "exit ")?;
            write_hex(reason, out)?;
        }
        Event::Unknown(line) => {
            write!(out, "unknown ")?;
            write_hex(line, out)?;
        }
        Event::Bare(line) => {
            write!(out, "bare ")?;
            write_hex(line, out)?;
        }
    }
    out.write_all(b"\n")
}

/// The normalized line for `event` as a string (without the `\n`), for tests and logs.
pub fn event_line(event: &Event<'_>) -> String {
    let mut line = Vec::new();
    write_event(event, &mut line).expect("writing to a Vec cannot fail");
    line.pop();
    String::from_utf8(line).expect("the normalized dump is ASCII")
}

/// Lowercase hex of `bytes`, or `-` when empty.
fn write_hex(bytes: &[u8], out: &mut impl Write) -> io::Result<()> {
    if bytes.is_empty() {
        return out.write_all(b"-");
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut chunk = [0u8; 512];
    for piece in bytes.chunks(chunk.len() / 2) {
        for (i, byte) in piece.iter().enumerate() {
            chunk[2 * i] = DIGITS[usize::from(byte >> 4)];
            chunk[2 * i + 1] = DIGITS[usize::from(byte & 15)];
        }
        out.write_all(&chunk[..2 * piece.len()])?;
    }
    Ok(())
}
