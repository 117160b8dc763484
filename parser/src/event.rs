//! The typed events the parser yields, one per protocol line (or per reply block).
//!
//! Events borrow from the parser's buffers (`'a`), so steady-state `%output` handling
//! allocates nothing; call [`Event::to_owned_event`] to keep one past the next `feed`.
//! Ids keep tmux's numbering without the sigil (`%5` is `PaneId(5)`).

use std::borrow::Cow;
use std::fmt;

/// A pane id, `%N` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaneId(pub u32);

/// A window id, `@N` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowId(pub u32);

/// A session id, `$N` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

impl fmt::Display for PaneId {
    /// `%N`, as tmux writes it and as `-t` accepts it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

impl fmt::Display for WindowId {
    /// `@N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

impl fmt::Display for SessionId {
    /// `$N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.0)
    }
}

/// The `%begin TIME NUMBER FLAGS` triple that opens a reply block and must be repeated,
/// exactly, by the `%end`/`%error` that closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guard {
    pub time: u64,
    pub number: u32,
    pub flags: u32,
}

/// A complete reply block: the output of one command sent on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub guard: Guard,
    /// `true` when the block closed with `%error`.
    pub is_error: bool,
    /// Body lines, raw bytes, without line ends (nothing in a body is escaped).
    pub lines: Vec<Vec<u8>>,
}

/// One item of a `%subscription-changed` line: `$S @W IDX %P`, with `None` where tmux sent `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionTarget<'a> {
    pub session: Option<SessionId>,
    pub window: Option<WindowId>,
    /// The winlink index as sent (`-` is `None`).
    pub index: Option<u32>,
    pub pane: Option<PaneId>,
    /// The raw fields as sent, for the normalized dump (`$1`, `@2`, `0`, `%3` or `-`).
    pub raw_fields: [&'a str; 4],
}

/// A typed control-mode event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A `%begin … %end|%error` block, matched by its exact guard triple.
    Reply(Reply),
    /// `%output %P DATA`, octal-decoded to raw bytes (not necessarily valid UTF-8, and a
    /// record may end mid-character).
    Output {
        pane: PaneId,
        data: &'a [u8],
    },
    /// `%extended-output %P AGE … : DATA` (pause-after mode).
    ExtendedOutput {
        pane: PaneId,
        age_ms: u64,
        data: &'a [u8],
    },
    Pause(PaneId),
    Continue(PaneId),
    /// `%layout-change @W LAYOUT VISIBLE FLAGS`; parse `layout` with [`crate::Layout::parse`].
    LayoutChange {
        window: WindowId,
        layout: &'a str,
        visible_layout: &'a str,
        flags: &'a str,
    },
    WindowAdd(WindowId),
    WindowClose(WindowId),
    UnlinkedWindowAdd(WindowId),
    UnlinkedWindowClose(WindowId),
    /// Name vis-decoded.
    WindowRenamed {
        window: WindowId,
        name: Cow<'a, [u8]>,
    },
    UnlinkedWindowRenamed {
        window: WindowId,
        name: Cow<'a, [u8]>,
    },
    WindowPaneChanged {
        window: WindowId,
        pane: PaneId,
    },
    SessionChanged {
        session: SessionId,
        name: Cow<'a, [u8]>,
    },
    SessionRenamed {
        session: SessionId,
        name: Cow<'a, [u8]>,
    },
    SessionsChanged,
    SessionWindowChanged {
        session: SessionId,
        window: WindowId,
    },
    ClientSessionChanged {
        client: &'a [u8],
        session: SessionId,
        name: Cow<'a, [u8]>,
    },
    ClientDetached {
        client: &'a [u8],
    },
    PaneModeChanged(PaneId),
    /// `%subscription-changed NAME $S @W IDX %P … : VALUE`; VALUE is raw (not escaped).
    SubscriptionChanged {
        name: &'a [u8],
        target: SubscriptionTarget<'a>,
        value: &'a [u8],
    },
    /// `%message TEXT` (3.4+), vis-decoded. tmux encodes it with `VIS_NOSLASH`, so a literal
    /// backslash is sent unescaped and one followed by e.g. `n` reads as a newline.
    Message(Cow<'a, [u8]>),
    /// `%config-error TEXT` (3.4+), raw: tmux writes the message unencoded.
    ConfigError(Cow<'a, [u8]>),
    /// `%paste-buffer-changed NAME` (3.4+); buffer names are written raw.
    PasteBufferChanged(Cow<'a, [u8]>),
    /// `%paste-buffer-deleted NAME` (3.4+).
    PasteBufferDeleted(Cow<'a, [u8]>),
    /// `%exit [REASON]`: the last line of a control client.
    Exit {
        reason: Option<&'a [u8]>,
    },
    /// A `%word …` line this parser does not know (newer tmux); the whole line.
    Unknown(&'a [u8]),
    /// A non-`%` line outside a block (hook `display -p` output on tmux 3.3a); the whole line.
    Bare(&'a [u8]),
}

/// An [`Event`] that owns its data, for keeping or sending across tasks
/// (see [`Event::to_owned_event`]); [`OwnedEvent::as_event`] borrows it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedEvent {
    Reply(Reply),
    Output {
        pane: PaneId,
        data: Vec<u8>,
    },
    ExtendedOutput {
        pane: PaneId,
        age_ms: u64,
        data: Vec<u8>,
    },
    Pause(PaneId),
    Continue(PaneId),
    LayoutChange {
        window: WindowId,
        layout: String,
        visible_layout: String,
        flags: String,
    },
    WindowAdd(WindowId),
    WindowClose(WindowId),
    UnlinkedWindowAdd(WindowId),
    UnlinkedWindowClose(WindowId),
    WindowRenamed {
        window: WindowId,
        name: Vec<u8>,
    },
    UnlinkedWindowRenamed {
        window: WindowId,
        name: Vec<u8>,
    },
    WindowPaneChanged {
        window: WindowId,
        pane: PaneId,
    },
    SessionChanged {
        session: SessionId,
        name: Vec<u8>,
    },
    SessionRenamed {
        session: SessionId,
        name: Vec<u8>,
    },
    SessionsChanged,
    SessionWindowChanged {
        session: SessionId,
        window: WindowId,
    },
    ClientSessionChanged {
        client: Vec<u8>,
        session: SessionId,
        name: Vec<u8>,
    },
    ClientDetached {
        client: Vec<u8>,
    },
    PaneModeChanged(PaneId),
    SubscriptionChanged {
        name: Vec<u8>,
        target: OwnedSubscriptionTarget,
        value: Vec<u8>,
    },
    Message(Vec<u8>),
    ConfigError(Vec<u8>),
    PasteBufferChanged(Vec<u8>),
    PasteBufferDeleted(Vec<u8>),
    Exit {
        reason: Option<Vec<u8>>,
    },
    Unknown(Vec<u8>),
    Bare(Vec<u8>),
}

/// The owned form of [`SubscriptionTarget`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSubscriptionTarget {
    pub session: Option<SessionId>,
    pub window: Option<WindowId>,
    pub index: Option<u32>,
    pub pane: Option<PaneId>,
    pub raw_fields: [String; 4],
}

impl Event<'_> {
    /// Copies the event out of the parser's buffers.
    pub fn to_owned_event(&self) -> OwnedEvent {
        let owned = |bytes: &[u8]| bytes.to_vec();
        match self {
            Event::Reply(reply) => OwnedEvent::Reply(reply.clone()),
            Event::Output { pane, data } => OwnedEvent::Output {
                pane: *pane,
                data: owned(data),
            },
            Event::ExtendedOutput { pane, age_ms, data } => OwnedEvent::ExtendedOutput {
                pane: *pane,
                age_ms: *age_ms,
                data: owned(data),
            },
            Event::Pause(pane) => OwnedEvent::Pause(*pane),
            Event::Continue(pane) => OwnedEvent::Continue(*pane),
            Event::LayoutChange {
                window,
                layout,
                visible_layout,
                flags,
            } => OwnedEvent::LayoutChange {
                window: *window,
                layout: layout.to_string(),
                visible_layout: visible_layout.to_string(),
                flags: flags.to_string(),
            },
            Event::WindowAdd(window) => OwnedEvent::WindowAdd(*window),
            Event::WindowClose(window) => OwnedEvent::WindowClose(*window),
            Event::UnlinkedWindowAdd(window) => OwnedEvent::UnlinkedWindowAdd(*window),
            Event::UnlinkedWindowClose(window) => OwnedEvent::UnlinkedWindowClose(*window),
            Event::WindowRenamed { window, name } => OwnedEvent::WindowRenamed {
                window: *window,
                name: owned(name),
            },
            Event::UnlinkedWindowRenamed { window, name } => OwnedEvent::UnlinkedWindowRenamed {
                window: *window,
                name: owned(name),
            },
            Event::WindowPaneChanged { window, pane } => OwnedEvent::WindowPaneChanged {
                window: *window,
                pane: *pane,
            },
            Event::SessionChanged { session, name } => OwnedEvent::SessionChanged {
                session: *session,
                name: owned(name),
            },
            Event::SessionRenamed { session, name } => OwnedEvent::SessionRenamed {
                session: *session,
                name: owned(name),
            },
            Event::SessionsChanged => OwnedEvent::SessionsChanged,
            Event::SessionWindowChanged { session, window } => OwnedEvent::SessionWindowChanged {
                session: *session,
                window: *window,
            },
            Event::ClientSessionChanged {
                client,
                session,
                name,
            } => OwnedEvent::ClientSessionChanged {
                client: owned(client),
                session: *session,
                name: owned(name),
            },
            Event::ClientDetached { client } => OwnedEvent::ClientDetached {
                client: owned(client),
            },
            Event::PaneModeChanged(pane) => OwnedEvent::PaneModeChanged(*pane),
            Event::SubscriptionChanged {
                name,
                target,
                value,
            } => OwnedEvent::SubscriptionChanged {
                name: owned(name),
                target: OwnedSubscriptionTarget {
                    session: target.session,
                    window: target.window,
                    index: target.index,
                    pane: target.pane,
                    raw_fields: target.raw_fields.map(str::to_string),
                },
                value: owned(value),
            },
            Event::Message(text) => OwnedEvent::Message(owned(text)),
            Event::ConfigError(text) => OwnedEvent::ConfigError(owned(text)),
            Event::PasteBufferChanged(name) => OwnedEvent::PasteBufferChanged(owned(name)),
            Event::PasteBufferDeleted(name) => OwnedEvent::PasteBufferDeleted(owned(name)),
            Event::Exit { reason } => OwnedEvent::Exit {
                reason: reason.map(owned),
            },
            Event::Unknown(line) => OwnedEvent::Unknown(owned(line)),
            Event::Bare(line) => OwnedEvent::Bare(owned(line)),
        }
    }
}

impl OwnedEvent {
    /// Borrows the event back as an [`Event`] (e.g. to print it with [`crate::dump`]).
    pub fn as_event(&self) -> Event<'_> {
        match self {
            OwnedEvent::Reply(reply) => Event::Reply(reply.clone()),
            OwnedEvent::Output { pane, data } => Event::Output { pane: *pane, data },
            OwnedEvent::ExtendedOutput { pane, age_ms, data } => Event::ExtendedOutput {
                pane: *pane,
                age_ms: *age_ms,
                data,
            },
            OwnedEvent::Pause(pane) => Event::Pause(*pane),
            OwnedEvent::Continue(pane) => Event::Continue(*pane),
            OwnedEvent::LayoutChange {
                window,
                layout,
                visible_layout,
                flags,
            } => Event::LayoutChange {
                window: *window,
                layout,
                visible_layout,
                flags,
            },
            OwnedEvent::WindowAdd(window) => Event::WindowAdd(*window),
            OwnedEvent::WindowClose(window) => Event::WindowClose(*window),
            OwnedEvent::UnlinkedWindowAdd(window) => Event::UnlinkedWindowAdd(*window),
            OwnedEvent::UnlinkedWindowClose(window) => Event::UnlinkedWindowClose(*window),
            OwnedEvent::WindowRenamed { window, name: n } => Event::WindowRenamed {
                window: *window,
                name: borrowed(n),
            },
            OwnedEvent::UnlinkedWindowRenamed { window, name: n } => Event::UnlinkedWindowRenamed {
                window: *window,
                name: borrowed(n),
            },
            OwnedEvent::WindowPaneChanged { window, pane } => Event::WindowPaneChanged {
                window: *window,
                pane: *pane,
            },
            OwnedEvent::SessionChanged { session, name: n } => Event::SessionChanged {
                session: *session,
                name: borrowed(n),
            },
            OwnedEvent::SessionRenamed { session, name: n } => Event::SessionRenamed {
                session: *session,
                name: borrowed(n),
            },
            OwnedEvent::SessionsChanged => Event::SessionsChanged,
            OwnedEvent::SessionWindowChanged { session, window } => Event::SessionWindowChanged {
                session: *session,
                window: *window,
            },
            OwnedEvent::ClientSessionChanged {
                client,
                session,
                name: n,
            } => Event::ClientSessionChanged {
                client,
                session: *session,
                name: borrowed(n),
            },
            OwnedEvent::ClientDetached { client } => Event::ClientDetached { client },
            OwnedEvent::PaneModeChanged(pane) => Event::PaneModeChanged(*pane),
            OwnedEvent::SubscriptionChanged {
                name,
                target,
                value,
            } => Event::SubscriptionChanged {
                name,
                target: SubscriptionTarget {
                    session: target.session,
                    window: target.window,
                    index: target.index,
                    pane: target.pane,
                    raw_fields: [
                        &target.raw_fields[0],
                        &target.raw_fields[1],
                        &target.raw_fields[2],
                        &target.raw_fields[3],
                    ],
                },
                value,
            },
            OwnedEvent::Message(text) => Event::Message(borrowed(text)),
            OwnedEvent::ConfigError(text) => Event::ConfigError(borrowed(text)),
            OwnedEvent::PasteBufferChanged(n) => Event::PasteBufferChanged(borrowed(n)),
            OwnedEvent::PasteBufferDeleted(n) => Event::PasteBufferDeleted(borrowed(n)),
            OwnedEvent::Exit { reason } => Event::Exit {
                reason: reason.as_deref(),
            },
            OwnedEvent::Unknown(line) => Event::Unknown(line),
            OwnedEvent::Bare(line) => Event::Bare(line),
        }
    }
}

fn borrowed(bytes: &[u8]) -> Cow<'_, [u8]> {
    Cow::Borrowed(bytes)
}
