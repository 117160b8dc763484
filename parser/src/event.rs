//! The typed events the parser yields, one per protocol line (or per reply block).
//!
//! Events borrow from the parser's buffers (`'a`), so steady-state `%output` handling
//! allocates nothing; call [`Event::to_owned_event`] to keep one past the next `feed`.
//! Ids keep tmux's numbering without the sigil (`%5` is `PaneId(5)`).

use std::borrow::Cow;

/// A pane id, `%N` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaneId(pub u32);

/// A window id, `@N` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowId(pub u32);

/// A session id, `$N` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

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
    /// `%message TEXT` (3.4+), vis-decoded.
    Message(Cow<'a, [u8]>),
    /// `%config-error TEXT` (3.4+).
    ConfigError(Cow<'a, [u8]>),
    PasteBufferChanged(Cow<'a, [u8]>),
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
