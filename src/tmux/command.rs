//! The only place in PaneBus that writes tmux command lines.
//!
//! Every command PaneBus sends over the control channel is built by one of the typed
//! constructors on [`TmuxCommand`]. Each constructor knows which of its arguments tmux
//! format-expands (`-c` directories, window names, pane titles, `-F` formats,
//! `display-message`) and which it takes literally (option values, `-e` values, argv,
//! `send-keys -l`), so callers pass plain text and cannot forget an escaping step.
//!
//! Encoding rules (docs/tmux-control-mode.md §8, measured on tmux 3.3a):
//! * every caller-provided string becomes exactly one argument: it is single-quoted, a `'`
//!   is written `'\''`, and bytes below 0x20 and DEL are moved outside the quotes as `\ooo`,
//!   so a line never holds a raw LF/CR and a `;` is never unquoted;
//! * text that tmux format-expands also has its `#` doubled (so `#{…}` and `#(…)` stay
//!   text and never run a shell command in the server), and `display-message` text has its
//!   `%` doubled because it goes through strftime first;
//! * names (window names, pane titles) lose their control characters, since tmux 3.3a
//!   stores `new-window -n` names raw and a raw LF would split later notification lines;
//! * NUL cannot be represented in a tmux command at all and is rejected;
//! * `--` precedes the first positional argument wherever the command has one.
//!
//! Format *templates* (the `#{pane_id}` parts) are [`Format`] values whose template pieces
//! are `&'static str`, i.e. written in PaneBus's source, never taken from user input.

use std::fmt;
use std::path::{Path, PathBuf};

use tmux_control_parser::{PaneId, SessionId, WindowId};

/// Why a command could not be built. Nothing is sent when building fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{what} contains a NUL byte, which a tmux command cannot carry; remove it")]
    Nul { what: &'static str },
    #[error(
        "invalid tmux option name {name:?}: use letters, digits, '-' and '_' \
         (user options start with '@')"
    )]
    OptionName { name: String },
    #[error("invalid subscription name {name:?}: use letters, digits, '-' and '_'")]
    SubscriptionName { name: String },
    #[error(
        "invalid environment variable name {name:?}: use letters, digits and '_', \
         not starting with a digit"
    )]
    EnvName { name: String },
    #[error("working directory {path:?} is not valid UTF-8; tmux commands are text")]
    NonUtf8Path { path: PathBuf },
}

/// A tmux object a command acts on. Rendered as its id (`%3`, `@2`, `$1`), never a name,
/// so targets are exact and cannot be confused by user-chosen names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Pane(PaneId),
    Window(WindowId),
    Session(SessionId),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Pane(p) => write!(f, "%{}", p.0),
            Target::Window(w) => write!(f, "@{}", w.0),
            Target::Session(s) => write!(f, "${}", s.0),
        }
    }
}

impl From<PaneId> for Target {
    fn from(p: PaneId) -> Self {
        Target::Pane(p)
    }
}

impl From<WindowId> for Target {
    fn from(w: WindowId) -> Self {
        Target::Window(w)
    }
}

impl From<SessionId> for Target {
    fn from(s: SessionId) -> Self {
        Target::Session(s)
    }
}

/// Where a pane or session option lives. Never global: PaneBus does not touch `-g` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionScope {
    /// `-p -t %P`: a pane option.
    Pane(PaneId),
    /// `-w -t @W`: a window option.
    Window(WindowId),
    /// `-t $S`: a session option.
    Session(SessionId),
}

impl OptionScope {
    fn push(&self, b: &mut Builder) {
        match self {
            OptionScope::Pane(p) => b.flag("-p").target(Target::Pane(*p)),
            OptionScope::Window(w) => b.flag("-w").target(Target::Window(*w)),
            OptionScope::Session(s) => b.target(Target::Session(*s)),
        };
    }
}

/// A validated option name: a user option (`@panebus_worker`) or a built-in one
/// (`remain-on-exit`). tmux format-expands option names, so only `[A-Za-z0-9_-]` is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OptionName(String);

impl OptionName {
    pub fn new(name: &str) -> Result<Self, CommandError> {
        let body = name.strip_prefix('@').unwrap_or(name);
        if body.is_empty() || !body.bytes().all(is_name_byte) {
            return Err(CommandError::OptionName {
                name: name.to_owned(),
            });
        }
        Ok(OptionName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The hooks PaneBus sets (always pane- or session-scoped, never `-g`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    PaneDied,
    PaneExited,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::PaneDied => "pane-died",
            Hook::PaneExited => "pane-exited",
        }
    }
}

/// A tmux format: template pieces written in PaneBus's source (`#{pane_id}`) joined with
/// literal text that must come out unchanged after expansion (its `#`, and `%` where
/// strftime applies, are escaped when the command is rendered).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Format {
    parts: Vec<FormatPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FormatPart {
    Template(&'static str),
    Literal(String),
}

impl Format {
    /// A format made of one template written in PaneBus's source.
    pub fn template(template: &'static str) -> Self {
        Format {
            parts: vec![FormatPart::Template(template)],
        }
    }

    /// A format that expands to exactly `text`.
    pub fn literal(text: &str) -> Self {
        Format {
            parts: vec![FormatPart::Literal(text.to_owned())],
        }
    }

    /// The value of an option, `#{name}` (the name is validated, so this is safe).
    pub fn option(name: &OptionName) -> Self {
        Format::default().then_option(name)
    }

    /// Appends a template piece.
    pub fn then(mut self, template: &'static str) -> Self {
        self.parts.push(FormatPart::Template(template));
        self
    }

    /// Appends text that expands to itself.
    pub fn then_literal(mut self, text: &str) -> Self {
        self.parts.push(FormatPart::Literal(text.to_owned()));
        self
    }

    /// Appends `#{name}` for a validated option name.
    pub fn then_option(mut self, name: &OptionName) -> Self {
        // A validated name holds only `@`, letters, digits, `-` and `_`: as a literal it
        // renders unchanged, so the result is exactly `#{name}`.
        self.parts.push(FormatPart::Template("#{"));
        self.parts.push(FormatPart::Literal(name.0.clone()));
        self.parts.push(FormatPart::Template("}"));
        self
    }

    /// The format text tmux should receive (before argument quoting).
    fn render(&self, what: &'static str, strftime: bool) -> Result<String, CommandError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                FormatPart::Template(t) => out.push_str(t),
                FormatPart::Literal(text) => {
                    check_nul(what, text)?;
                    let escaped = escape_format(text);
                    if strftime {
                        out.push_str(&escaped.replace('%', "%%"));
                    } else {
                        out.push_str(&escaped);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// How to start the process of a pane: working directory, extra environment, argv.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spawn {
    /// Start directory (`-c`); `None` keeps tmux's default.
    pub cwd: Option<PathBuf>,
    /// Extra environment (`-e NAME=value`), in order.
    pub env: Vec<(String, String)>,
    /// The program and its arguments, passed to execvp as separate arguments. Empty means
    /// tmux's default (the pane's previous command for respawn-pane, the shell otherwise).
    pub argv: Vec<String>,
}

impl Spawn {
    /// A spawn of `argv` with no directory or environment changes.
    pub fn argv<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Spawn {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Spawn::default()
        }
    }

    fn push(&self, b: &mut Builder) -> Result<(), CommandError> {
        if let Some(dir) = &self.cwd {
            let dir = dir_text(dir)?;
            b.opt_expanded("-c", "start directory", dir)?;
        }
        for (name, value) in &self.env {
            if name.is_empty()
                || name.as_bytes()[0].is_ascii_digit()
                || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
            {
                return Err(CommandError::EnvName { name: name.clone() });
            }
            b.opt("-e", "environment value", &format!("{name}={value}"))?;
        }
        b.end_of_flags();
        // With exactly one argument tmux runs it through `default-shell -c`, which would
        // shell-parse user text; `env --` keeps it a single execvp argument.
        if self.argv.len() == 1 {
            b.arg("argv", "env")?;
            b.arg("argv", "--")?;
        }
        for a in &self.argv {
            b.arg("argv", a)?;
        }
        Ok(())
    }
}

fn dir_text(dir: &Path) -> Result<&str, CommandError> {
    dir.to_str().ok_or_else(|| CommandError::NonUtf8Path {
        path: dir.to_owned(),
    })
}

/// What a `refresh-client -B` subscription watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionScope {
    /// `%*`: every pane of every window in the client's session.
    AllPanes,
    Pane(PaneId),
    /// `@*`: every window in the client's session.
    AllWindows,
    Window(WindowId),
    /// The client's session.
    Session,
}

impl fmt::Display for SubscriptionScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscriptionScope::AllPanes => f.write_str("%*"),
            SubscriptionScope::Pane(p) => write!(f, "%{}", p.0),
            SubscriptionScope::AllWindows => f.write_str("@*"),
            SubscriptionScope::Window(w) => write!(f, "@{}", w.0),
            SubscriptionScope::Session => Ok(()),
        }
    }
}

/// `refresh-client -A '%P:STATE'`: per-pane output control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaneOutput {
    On,
    Off,
    Pause,
    Continue,
}

impl PaneOutput {
    fn name(self) -> &'static str {
        match self {
            PaneOutput::On => "on",
            PaneOutput::Off => "off",
            PaneOutput::Pause => "pause",
            PaneOutput::Continue => "continue",
        }
    }
}

/// `refresh-client -f` flags (tmux 3.2+). `set: false` clears the flag (`!flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientFlag {
    NoOutput,
    /// Pause a pane whose output is this many seconds behind.
    PauseAfter(u32),
    WaitExit,
    IgnoreSize,
    ActivePane,
}

impl ClientFlag {
    fn render(self, set: bool) -> String {
        let bang = if set { "" } else { "!" };
        match self {
            ClientFlag::NoOutput => format!("{bang}no-output"),
            ClientFlag::PauseAfter(secs) if set => format!("pause-after={secs}"),
            ClientFlag::PauseAfter(_) => "!pause-after".to_owned(),
            ClientFlag::WaitExit => format!("{bang}wait-exit"),
            ClientFlag::IgnoreSize => format!("{bang}ignore-size"),
            ClientFlag::ActivePane => format!("{bang}active-pane"),
        }
    }
}

/// Which way `split-window` splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Side by side (`-h`).
    Horizontal,
    /// One above the other (tmux's default).
    Vertical,
}

/// One tmux command, rendered as one line without its line end. Built only by the typed
/// constructors below, so its text is always safely quoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TmuxCommand {
    name: &'static str,
    line: String,
}

impl TmuxCommand {
    /// The command name (`respawn-pane`), for logs and errors.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The line to send, without the trailing LF. It never contains LF, CR or NUL.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// `respawn-pane -k -t %P [-c dir] [-e NAME=value]… -- argv…`: restarts the pane's
    /// process in place; the pane keeps its id.
    pub fn respawn_pane(pane: PaneId, spawn: &Spawn) -> Result<Self, CommandError> {
        let mut b = Builder::new("respawn-pane");
        b.flag("-k").target(Target::Pane(pane));
        spawn.push(&mut b)?;
        Ok(b.build())
    }

    /// `new-window -d -P -F fmt -t $S: [-n name] [-c dir] [-e …]… -- argv…`; the reply is
    /// one line, `fmt` expanded for the new pane.
    pub fn new_window(
        session: SessionId,
        name: Option<&str>,
        spawn: &Spawn,
        print: &Format,
    ) -> Result<Self, CommandError> {
        let mut b = Builder::new("new-window");
        b.flag("-d")
            .flag("-P")
            .format_opt("-F", "print format", print)?;
        // `$S:` is "the next free index in session S".
        b.word("-t").word(&quote(&format!("${}:", session.0)));
        if let Some(name) = name {
            b.opt_expanded("-n", "window name", &clean_name(name))?;
        }
        spawn.push(&mut b)?;
        Ok(b.build())
    }

    /// `split-window -d -P -F fmt -t %P [-h] [-c dir] [-e …]… -- argv…`.
    pub fn split_window(
        pane: PaneId,
        split: Split,
        spawn: &Spawn,
        print: &Format,
    ) -> Result<Self, CommandError> {
        let mut b = Builder::new("split-window");
        b.flag("-d")
            .flag("-P")
            .format_opt("-F", "print format", print)?;
        b.target(Target::Pane(pane));
        if split == Split::Horizontal {
            b.flag("-h");
        }
        spawn.push(&mut b)?;
        Ok(b.build())
    }

    /// `kill-pane -t %P`.
    pub fn kill_pane(pane: PaneId) -> Self {
        let mut b = Builder::new("kill-pane");
        b.target(Target::Pane(pane));
        b.build()
    }

    /// `set-option [-p|-w] -t T -- NAME VALUE`: VALUE is stored exactly.
    pub fn set_option(
        scope: OptionScope,
        name: &OptionName,
        value: &str,
    ) -> Result<Self, CommandError> {
        let mut b = Builder::new("set-option");
        scope.push(&mut b);
        b.end_of_flags();
        b.arg("option name", name.as_str())?;
        b.arg("option value", value)?;
        Ok(b.build())
    }

    /// `set-option [-p|-w] -F -t T -- NAME FORMAT`: stores FORMAT expanded once, now.
    pub fn set_option_format(
        scope: OptionScope,
        name: &OptionName,
        value: &Format,
    ) -> Result<Self, CommandError> {
        let mut b = Builder::new("set-option");
        scope.push(&mut b);
        b.flag("-F");
        b.end_of_flags();
        b.arg("option name", name.as_str())?;
        let text = value.render("option value", false)?;
        b.word(&quote(&text));
        Ok(b.build())
    }

    /// `set-option [-p|-w] -u -t T -- NAME`: removes the option from that scope.
    pub fn unset_option(scope: OptionScope, name: &OptionName) -> Result<Self, CommandError> {
        let mut b = Builder::new("set-option");
        scope.push(&mut b);
        b.flag("-u");
        b.end_of_flags();
        b.arg("option name", name.as_str())?;
        Ok(b.build())
    }

    /// `show-options [-p|-w] -q -v -t T -- NAME`: the value alone, an empty reply if unset.
    pub fn show_option(scope: OptionScope, name: &OptionName) -> Result<Self, CommandError> {
        let mut b = Builder::new("show-options");
        scope.push(&mut b);
        b.flag("-q").flag("-v");
        b.end_of_flags();
        b.arg("option name", name.as_str())?;
        Ok(b.build())
    }

    /// `set-hook [-p] -t T -- HOOK 'COMMAND'`: the hook runs `command` (itself built here).
    pub fn set_hook(target: HookTarget, hook: Hook, command: &TmuxCommand) -> Self {
        let mut b = Builder::new("set-hook");
        target.push(&mut b);
        b.end_of_flags();
        b.word(hook.name());
        b.word(&quote(command.line()));
        b.build()
    }

    /// `set-hook [-p] -u -t T -- HOOK`.
    pub fn unset_hook(target: HookTarget, hook: Hook) -> Self {
        let mut b = Builder::new("set-hook");
        target.push(&mut b);
        b.flag("-u");
        b.end_of_flags();
        b.word(hook.name());
        b.build()
    }

    /// `list-panes -s -t $S -F fmt`: one line per pane of the session.
    pub fn list_panes(session: SessionId, format: &Format) -> Result<Self, CommandError> {
        let mut b = Builder::new("list-panes");
        b.flag("-s").target(Target::Session(session));
        b.format_opt("-F", "list format", format)?;
        Ok(b.build())
    }

    /// `list-windows -t $S -F fmt`: one line per window of the session.
    pub fn list_windows(session: SessionId, format: &Format) -> Result<Self, CommandError> {
        let mut b = Builder::new("list-windows");
        b.target(Target::Session(session));
        b.format_opt("-F", "list format", format)?;
        Ok(b.build())
    }

    /// `display-message -p [-t T] -- fmt`: prints the expanded format as the reply body.
    /// Literal parts of `format` also survive the strftime pass (their `%` is doubled); a
    /// template that wants a literal `%` writes `%%` itself.
    pub fn display_message(target: Option<Target>, format: &Format) -> Result<Self, CommandError> {
        let mut b = Builder::new("display-message");
        b.flag("-p");
        if let Some(t) = target {
            b.target(t);
        }
        b.end_of_flags();
        let text = format.render("message", true)?;
        b.word(&quote(&text));
        Ok(b.build())
    }

    /// `capture-pane -p -t %P -S -N`: the visible screen plus `history_lines` of history.
    pub fn capture_pane(pane: PaneId, history_lines: u32) -> Self {
        let mut b = Builder::new("capture-pane");
        b.flag("-p").target(Target::Pane(pane));
        b.flag("-S").word(&quote(&format!("-{history_lines}")));
        b.build()
    }

    /// `refresh-client -B NAME:WHAT:FORMAT`: adds or replaces a subscription, reported as
    /// `%subscription-changed NAME …` at most once a second when the value changes.
    pub fn subscribe(
        name: &str,
        scope: SubscriptionScope,
        format: &Format,
    ) -> Result<Self, CommandError> {
        check_subscription_name(name)?;
        let mut b = Builder::new("refresh-client");
        // The subscription format is expanded by tmux at each tick; its literal parts are
        // escaped like any other format's.
        let text = format.render("subscription format", false)?;
        b.flag("-B").word(&quote(&format!("{name}:{scope}:{text}")));
        Ok(b.build())
    }

    /// `refresh-client -B NAME`: removes a subscription.
    pub fn unsubscribe(name: &str) -> Result<Self, CommandError> {
        check_subscription_name(name)?;
        let mut b = Builder::new("refresh-client");
        b.flag("-B").word(&quote(name));
        Ok(b.build())
    }

    /// `refresh-client -A '%P:STATE'` (the `%P` token must be quoted, §5).
    pub fn pane_output(pane: PaneId, state: PaneOutput) -> Self {
        let mut b = Builder::new("refresh-client");
        b.flag("-A")
            .word(&quote(&format!("%{}:{}", pane.0, state.name())));
        b.build()
    }

    /// `refresh-client -C WxH`: the size this client gives its windows.
    pub fn client_size(width: u16, height: u16) -> Self {
        let mut b = Builder::new("refresh-client");
        b.flag("-C").word(&quote(&format!("{width}x{height}")));
        b.build()
    }

    /// `refresh-client -f FLAG,…`: sets (`true`) or clears (`false`) client flags.
    pub fn client_flags(flags: &[(ClientFlag, bool)]) -> Self {
        let list: Vec<String> = flags.iter().map(|(f, set)| f.render(*set)).collect();
        let mut b = Builder::new("refresh-client");
        b.flag("-f").word(&quote(&list.join(",")));
        b.build()
    }

    /// `send-keys -l -t %P -- TEXT`: types TEXT literally (no key-name lookup).
    pub fn send_text(pane: PaneId, text: &str) -> Result<Self, CommandError> {
        let mut b = Builder::new("send-keys");
        b.flag("-l").target(Target::Pane(pane));
        b.end_of_flags();
        b.arg("keys", text)?;
        Ok(b.build())
    }

    /// `send-keys -H -t %P -- XX…`: sends raw bytes (any byte, NUL included).
    pub fn send_bytes(pane: PaneId, bytes: &[u8]) -> Self {
        let mut b = Builder::new("send-keys");
        b.flag("-H").target(Target::Pane(pane));
        b.end_of_flags();
        for byte in bytes {
            b.word(&format!("{byte:02x}"));
        }
        b.build()
    }

    /// `detach-client`: detaches this control client; tmux then ends the stream with `%exit`.
    pub fn detach_client() -> Self {
        Builder::new("detach-client").build()
    }

    /// `rename-window -t @W -- NAME` (control characters removed, `#` escaped).
    pub fn rename_window(window: WindowId, name: &str) -> Result<Self, CommandError> {
        let mut b = Builder::new("rename-window");
        b.target(Target::Window(window));
        b.end_of_flags();
        b.arg_expanded("window name", &clean_name(name))?;
        Ok(b.build())
    }

    /// `select-pane -t %P -T TITLE` (control characters removed, `#` escaped).
    pub fn set_pane_title(pane: PaneId, title: &str) -> Result<Self, CommandError> {
        let mut b = Builder::new("select-pane");
        b.target(Target::Pane(pane));
        b.opt_expanded("-T", "pane title", &clean_name(title))?;
        Ok(b.build())
    }
}

impl fmt::Display for TmuxCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// Where a hook is set: on one pane (`-p -t %P`) or on a session (`-t $S`), never global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookTarget {
    Pane(PaneId),
    Session(SessionId),
}

impl HookTarget {
    fn push(&self, b: &mut Builder) {
        match self {
            HookTarget::Pane(p) => b.flag("-p").target(Target::Pane(*p)),
            HookTarget::Session(s) => b.target(Target::Session(*s)),
        };
    }
}

/// Accumulates one command line. Private: only the typed constructors use it.
struct Builder {
    name: &'static str,
    line: String,
}

impl Builder {
    fn new(name: &'static str) -> Self {
        Builder {
            name,
            line: name.to_owned(),
        }
    }

    /// Appends an already-encoded word.
    fn word(&mut self, encoded: &str) -> &mut Self {
        self.line.push(' ');
        self.line.push_str(encoded);
        self
    }

    /// Appends a fixed flag such as `-k`.
    fn flag(&mut self, flag: &'static str) -> &mut Self {
        self.word(flag)
    }

    fn target(&mut self, target: Target) -> &mut Self {
        self.word("-t").word(&quote(&target.to_string()))
    }

    fn end_of_flags(&mut self) -> &mut Self {
        self.word("--")
    }

    /// A flag whose value tmux takes literally.
    fn opt(
        &mut self,
        flag: &'static str,
        what: &'static str,
        value: &str,
    ) -> Result<(), CommandError> {
        check_nul(what, value)?;
        self.word(flag).word(&quote(value));
        Ok(())
    }

    /// A flag whose value tmux format-expands; `value` must come out unchanged.
    fn opt_expanded(
        &mut self,
        flag: &'static str,
        what: &'static str,
        value: &str,
    ) -> Result<(), CommandError> {
        check_nul(what, value)?;
        self.word(flag).word(&quote(&escape_format(value)));
        Ok(())
    }

    /// A flag whose value is a format.
    fn format_opt(
        &mut self,
        flag: &'static str,
        what: &'static str,
        format: &Format,
    ) -> Result<&mut Self, CommandError> {
        let text = format.render(what, false)?;
        self.word(flag).word(&quote(&text));
        Ok(self)
    }

    /// A positional argument tmux takes literally.
    fn arg(&mut self, what: &'static str, value: &str) -> Result<(), CommandError> {
        check_nul(what, value)?;
        self.word(&quote(value));
        Ok(())
    }

    /// A positional argument tmux format-expands.
    fn arg_expanded(&mut self, what: &'static str, value: &str) -> Result<(), CommandError> {
        check_nul(what, value)?;
        self.word(&quote(&escape_format(value)));
        Ok(())
    }

    fn build(&mut self) -> TmuxCommand {
        TmuxCommand {
            name: self.name,
            line: std::mem::take(&mut self.line),
        }
    }
}

fn check_nul(what: &'static str, text: &str) -> Result<(), CommandError> {
    if text.contains('\0') {
        Err(CommandError::Nul { what })
    } else {
        Ok(())
    }
}

fn check_subscription_name(name: &str) -> Result<(), CommandError> {
    if name.is_empty() || !name.bytes().all(is_name_byte) {
        return Err(CommandError::SubscriptionName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Encodes `text` as exactly one tmux argument that the command parser turns back into
/// `text`: single quotes (no escapes, no `$`/`~` expansion, `;` `#` `{` `%` inert), `'` as
/// `'\''`, and control bytes outside the quotes as `\ooo` so the line stays one line.
/// The result always starts with `'`, so no token-start rule (comment, directive,
/// assignment, block) can apply. `text` must not contain NUL.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                out.push('\'');
                out.push_str(&format!("\\{:03o}", c as u32));
                out.push('\'');
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Escapes `text` so tmux's format expansion gives `text` back. Each run of `#` is doubled
/// (`##` expands to `#`), except a run directly before `[`: tmux copies `#[` and `##…[`
/// through unchanged (style markers), so doubling there would add characters.
pub fn escape_format(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('#') {
        out.push_str(&rest[..start]);
        let run = rest[start..].bytes().take_while(|&b| b == b'#').count();
        let after = &rest[start + run..];
        let hashes = &rest[start..start + run];
        out.push_str(hashes);
        if !after.starts_with('[') {
            out.push_str(hashes);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Removes control characters (C0, DEL and C1) from a name: tmux 3.3a stores some names
/// raw, and a raw LF in a name splits later notification and listing lines.
pub fn clean_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_plain_and_quotes() {
        assert_eq!(quote("abc"), "'abc'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("a;b #{x} $HOME ~"), "'a;b #{x} $HOME ~'");
    }

    #[test]
    fn quote_moves_control_bytes_outside() {
        assert_eq!(quote("a\nb"), "'a'\\012'b'");
        assert_eq!(quote("\r\x7f"), "''\\015''\\177''");
        assert!(!quote("x\ny\rz").contains(['\n', '\r']));
    }

    #[test]
    fn escape_format_doubles_hash_except_before_bracket() {
        assert_eq!(escape_format("#{pane_id}"), "##{pane_id}");
        assert_eq!(escape_format("#(touch f)"), "##(touch f)");
        assert_eq!(escape_format("a##b#"), "a####b##");
        assert_eq!(escape_format("#[fg=red]##[x"), "#[fg=red]##[x");
        assert_eq!(escape_format("no hash"), "no hash");
    }

    #[test]
    fn clean_name_strips_controls() {
        assert_eq!(clean_name("a\nb\tc\x1b[1m\u{85}d"), "abc[1md");
    }

    #[test]
    fn nul_is_rejected() {
        let err = TmuxCommand::send_text(PaneId(1), "a\0b").unwrap_err();
        assert_eq!(err, CommandError::Nul { what: "keys" });
        assert!(err.to_string().contains("NUL"));
        assert!(TmuxCommand::display_message(None, &Format::literal("\0")).is_err());
    }

    #[test]
    fn option_names_are_validated() {
        assert!(OptionName::new("@panebus_worker").is_ok());
        assert!(OptionName::new("remain-on-exit").is_ok());
        for bad in ["", "@", "@a b", "@#{x}", "@a;b", "@a'b"] {
            assert!(OptionName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn respawn_line() {
        let spawn = Spawn {
            cwd: Some(PathBuf::from("/tmp/a#b")),
            env: vec![("PB_X".into(), "v;1".into())],
            argv: vec!["sh".into(), "-c".into(), "echo $X".into()],
        };
        let cmd = TmuxCommand::respawn_pane(PaneId(3), &spawn).unwrap();
        assert_eq!(
            cmd.line(),
            "respawn-pane -k -t '%3' -c '/tmp/a##b' -e 'PB_X=v;1' -- 'sh' '-c' 'echo $X'"
        );
    }

    #[test]
    fn single_argv_is_not_shell_parsed() {
        let cmd = TmuxCommand::respawn_pane(PaneId(0), &Spawn::argv(["true; rm x"])).unwrap();
        assert_eq!(
            cmd.line(),
            "respawn-pane -k -t '%0' -- 'env' '--' 'true; rm x'"
        );
    }

    #[test]
    fn env_names_are_validated() {
        let spawn = Spawn {
            env: vec![("A=B".into(), "x".into())],
            ..Spawn::default()
        };
        assert!(matches!(
            TmuxCommand::respawn_pane(PaneId(0), &spawn),
            Err(CommandError::EnvName { .. })
        ));
    }

    #[test]
    fn new_window_line() {
        let print = Format::template("#{window_id} #{pane_id}");
        let cmd = TmuxCommand::new_window(
            SessionId(1),
            Some("w\n#(x)"),
            &Spawn::argv(["a", "b"]),
            &print,
        )
        .unwrap();
        assert_eq!(
            cmd.line(),
            "new-window -d -P -F '#{window_id} #{pane_id}' -t '$1:' -n 'w##(x)' -- 'a' 'b'"
        );
    }

    #[test]
    fn display_message_escapes_percent_in_literals_only() {
        let f = Format::template("%%pb #{pane_id} ").then_literal("100% #x");
        let cmd = TmuxCommand::display_message(Some(Target::Pane(PaneId(2))), &f).unwrap();
        assert_eq!(
            cmd.line(),
            "display-message -p -t '%2' -- '%%pb #{pane_id} 100%% ##x'"
        );
    }

    #[test]
    fn option_format_reads_option() {
        let name = OptionName::new("@panebus_status").unwrap();
        let cmd = TmuxCommand::display_message(None, &Format::option(&name)).unwrap();
        assert_eq!(cmd.line(), "display-message -p -- '#{@panebus_status}'");
    }

    #[test]
    fn scoped_options_and_hooks_are_never_global() {
        let name = OptionName::new("@panebus_worker").unwrap();
        let set = TmuxCommand::set_option(OptionScope::Pane(PaneId(4)), &name, "-v").unwrap();
        assert_eq!(
            set.line(),
            "set-option -p -t '%4' -- '@panebus_worker' '-v'"
        );
        let set = TmuxCommand::set_option(OptionScope::Session(SessionId(0)), &name, "x").unwrap();
        assert_eq!(set.line(), "set-option -t '$0' -- '@panebus_worker' 'x'");
        let show = TmuxCommand::show_option(OptionScope::Pane(PaneId(4)), &name).unwrap();
        assert_eq!(
            show.line(),
            "show-options -p -t '%4' -q -v -- '@panebus_worker'"
        );
        let inner = TmuxCommand::display_message(None, &Format::template("%%pb-died #{hook_pane}"))
            .unwrap();
        let hook = TmuxCommand::set_hook(HookTarget::Pane(PaneId(4)), Hook::PaneDied, &inner);
        assert_eq!(
            hook.line(),
            "set-hook -p -t '%4' -- pane-died 'display-message -p -- '\\''%%pb-died #{hook_pane}'\\'''"
        );
        for cmd in [set, show, hook] {
            assert!(!cmd.line().contains(" -g"));
        }
    }

    #[test]
    fn refresh_client_forms() {
        let f = Format::template("#{pane_id}:#{pane_pid}");
        assert_eq!(
            TmuxCommand::subscribe("pb", SubscriptionScope::AllPanes, &f)
                .unwrap()
                .line(),
            "refresh-client -B 'pb:%*:#{pane_id}:#{pane_pid}'"
        );
        assert!(TmuxCommand::subscribe("a:b", SubscriptionScope::Session, &f).is_err());
        assert_eq!(
            TmuxCommand::pane_output(PaneId(7), PaneOutput::Off).line(),
            "refresh-client -A '%7:off'"
        );
        assert_eq!(
            TmuxCommand::client_size(80, 24).line(),
            "refresh-client -C '80x24'"
        );
        assert_eq!(
            TmuxCommand::client_flags(&[
                (ClientFlag::NoOutput, true),
                (ClientFlag::WaitExit, false)
            ])
            .line(),
            "refresh-client -f 'no-output,!wait-exit'"
        );
    }

    #[test]
    fn send_bytes_is_hex() {
        assert_eq!(
            TmuxCommand::send_bytes(PaneId(1), &[0x41, 0, 0xff]).line(),
            "send-keys -H -t '%1' -- 41 00 ff"
        );
    }

    #[test]
    fn names_are_cleaned_and_escaped() {
        let cmd = TmuxCommand::rename_window(WindowId(2), "x\n;#{pane_id}").unwrap();
        assert_eq!(cmd.line(), "rename-window -t '@2' -- 'x;##{pane_id}'");
        let cmd = TmuxCommand::set_pane_title(PaneId(2), "t'\r").unwrap();
        assert_eq!(cmd.line(), "select-pane -t '%2' -T 't'\\'''");
    }

    #[test]
    fn capture_pane_line() {
        assert_eq!(
            TmuxCommand::capture_pane(PaneId(5), 50).line(),
            "capture-pane -p -t '%5' -S '-50'"
        );
    }
}
