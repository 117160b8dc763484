//! `panebus.toml`: the declarative description of the session `panebus up` builds.
//!
//! The file names the session and lists roles; each role becomes one tmux window with
//! `count` worker panes. Parsing is strict (unknown keys are errors, with the line and
//! column from the `toml` parser) and every value that later reaches tmux or an argv is
//! checked here, so a bad file fails before anything is started. Without a file,
//! [`Layout::default_for`] gives the seed's layout: N workers of role `worker`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Default session name of `panebus up`.
pub const DEFAULT_SESSION: &str = "panebus";
/// Default role of the workers `panebus up` starts.
pub const DEFAULT_ROLE: &str = "worker";
/// Most panes one role may ask for; tmux cannot fit many more in one window.
pub const MAX_PANES_PER_ROLE: u32 = 32;

/// A `panebus.toml` that cannot be used.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// The file could not be read.
    #[error("cannot read layout file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid layout file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// The file parses but a value cannot be used.
    #[error("invalid layout file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The file as written (the serde view).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutFile {
    #[serde(default)]
    session: SessionSection,
    #[serde(default, rename = "role")]
    roles: Vec<RoleSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionSection {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSection {
    name: String,
    #[serde(default = "one")]
    count: u32,
    command: Option<Vec<String>>,
    #[serde(default)]
    handlers: BTreeMap<String, String>,
    working_dir: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

/// One role of the layout: `count` panes running the same worker command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Role name, passed as `panebus worker --role NAME` and used as the window name.
    pub name: String,
    /// Number of panes.
    pub count: u32,
    /// A full argv replacing `panebus worker --role NAME`, if given.
    pub command: Option<Vec<String>>,
    /// Command type → handler program (`panebus worker --handler TYPE=PROGRAM`).
    pub handlers: BTreeMap<String, String>,
    /// Start directory of the panes.
    pub working_dir: Option<PathBuf>,
    /// Extra environment of the panes.
    pub env: BTreeMap<String, String>,
}

/// What `panebus up` builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Session name, if the file names one (the command line wins).
    pub session: Option<String>,
    /// Roles in file order.
    pub roles: Vec<Role>,
}

impl Layout {
    /// The layout without a file: `workers` panes of role `role`.
    pub fn default_for(role: &str, workers: u32) -> Result<Layout, String> {
        check_name("role name", role)?;
        check_count(workers)?;
        Ok(Layout {
            session: None,
            roles: vec![Role {
                name: role.to_string(),
                count: workers,
                command: None,
                handlers: BTreeMap::new(),
                working_dir: None,
                env: BTreeMap::new(),
            }],
        })
    }

    /// Reads and checks a layout file.
    pub fn load(path: &Path) -> Result<Layout, LayoutError> {
        let text = std::fs::read_to_string(path).map_err(|source| LayoutError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Layout::parse(&text, path)
    }

    /// Parses and checks layout text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Layout, LayoutError> {
        let file: LayoutFile = toml::from_str(text).map_err(|err| LayoutError::Syntax {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &err),
        })?;
        let invalid = |message: String| LayoutError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if let Some(name) = &file.session.name {
            check_session_name(name).map_err(invalid)?;
        }
        if file.roles.is_empty() {
            return Err(invalid(
                "no [[role]] tables: add at least one, e.g. [[role]] name = \"worker\" count = 2"
                    .to_string(),
            ));
        }
        let mut roles = Vec::with_capacity(file.roles.len());
        for (index, role) in file.roles.into_iter().enumerate() {
            let at = |message: String| {
                invalid(format!("role #{} ({:?}): {message}", index + 1, role.name))
            };
            check_name("role name", &role.name).map_err(at)?;
            if roles.iter().any(|r: &Role| r.name == role.name) {
                return Err(at("role names must be unique".to_string()));
            }
            check_count(role.count).map_err(at)?;
            if let Some(command) = &role.command {
                if command.first().map_or(true, |program| program.is_empty()) {
                    return Err(at(
                        "command must be a non-empty argv list, e.g. [\"my-agent\", \"--flag\"]"
                            .to_string(),
                    ));
                }
                if command[0].contains('=') {
                    return Err(at(
                        "the program (first word of command) cannot contain `=`".to_string()
                    ));
                }
                if !role.handlers.is_empty() {
                    return Err(at("handlers only apply to the default `panebus worker` command; with command = [...] pass them yourself".to_string()));
                }
            }
            for (kind, program) in &role.handlers {
                check_name("handler command type", kind).map_err(at)?;
                if program.trim().is_empty() {
                    return Err(at(format!("handler for {kind:?} names no program")));
                }
            }
            for key in role.env.keys() {
                check_env_name(key).map_err(at)?;
            }
            for value in role.env.values().chain(role.command.iter().flatten()) {
                if value.contains('\0') {
                    return Err(at("values cannot contain NUL bytes".to_string()));
                }
            }
            if let Some(dir) = &role.working_dir {
                if dir.as_os_str().is_empty() {
                    return Err(at("working_dir is empty".to_string()));
                }
            }
            roles.push(Role {
                name: role.name,
                count: role.count,
                command: role.command,
                handlers: role.handlers,
                working_dir: role.working_dir,
                env: role.env,
            });
        }
        Ok(Layout {
            session: file.session.name,
            roles,
        })
    }

    /// Total number of worker panes.
    pub fn pane_count(&self) -> u32 {
        self.roles.iter().map(|r| r.count).sum()
    }
}

/// The toml crate's message plus `line L, column C` (1-based) of the offending span.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end().to_string();
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Names that reach tmux (window names, `-t` targets) and argv: letters, digits, `_`, `-`.
/// tmux rewrites `.` and `:` in names and format-expands `#`, so anything wider would
/// need escaping in several places for no benefit.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} is not allowed: use 1-64 letters, digits, `_` or `-` (not starting with `-`)"
        ))
    }
}

/// Checks a tmux session name given on the command line or in the file.
pub fn check_session_name(name: &str) -> Result<(), String> {
    check_name("session name", name)
}

fn check_env_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "environment variable name {name:?} is not allowed: use letters, digits and `_`, not starting with a digit"
        ))
    }
}

fn check_count(count: u32) -> Result<(), String> {
    if (1..=MAX_PANES_PER_ROLE).contains(&count) {
        Ok(())
    } else {
        Err(format!(
            "count {count} is out of range: use 1 to {MAX_PANES_PER_ROLE}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Layout, LayoutError> {
        Layout::parse(text, Path::new("panebus.toml"))
    }

    #[test]
    fn full_file_parses() {
        let layout = parse(
            r#"
[session]
name = "agents"

[[role]]
name = "reviewer"
count = 2
working_dir = "/srv/repo"
env = { MODEL = "big", DEBUG = "1" }
handlers = { lint = "cargo clippy" }

[[role]]
name = "shell-job"
command = ["my-agent", "--flag", "a b"]
"#,
        )
        .unwrap();
        assert_eq!(layout.session.as_deref(), Some("agents"));
        assert_eq!(layout.roles.len(), 2);
        assert_eq!(layout.roles[0].count, 2);
        assert_eq!(layout.roles[0].env["MODEL"], "big");
        assert_eq!(layout.roles[0].handlers["lint"], "cargo clippy");
        assert_eq!(layout.roles[1].count, 1);
        assert_eq!(
            layout.roles[1].command.as_deref(),
            Some(&["my-agent".to_string(), "--flag".into(), "a b".into()][..])
        );
        assert_eq!(layout.pane_count(), 3);
    }

    #[test]
    fn unknown_key_is_rejected_with_its_line() {
        let err = parse("[[role]]\nname = \"w\"\ncuont = 2\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("cuont"), "{text}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let err = parse("[session]\nname = \"x\n").unwrap_err();
        assert!(err.to_string().contains("line 2, column"), "{err}");
    }

    #[test]
    fn hostile_names_are_rejected() {
        for name in ["a;b", "#{pane_id}", "x y", "a.b", "a:b", "-x", "", "$(id)"] {
            let text = format!("[[role]]\nname = {}\n", toml_string(name));
            let err = parse(&text).unwrap_err();
            assert!(err.to_string().contains("not allowed"), "{name}: {err}");
            let text = format!(
                "[session]\nname = {}\n[[role]]\nname = \"w\"\n",
                toml_string(name)
            );
            assert!(parse(&text).is_err(), "session {name}");
        }
    }

    fn toml_string(s: &str) -> String {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }

    #[test]
    fn bad_values_are_rejected() {
        let cases = [
            ("[[role]]\nname = \"w\"\ncount = 0\n", "out of range"),
            ("[[role]]\nname = \"w\"\ncount = 1000\n", "out of range"),
            ("[[role]]\nname = \"w\"\ncommand = []\n", "non-empty argv"),
            (
                "[[role]]\nname = \"w\"\nenv = { \"A B\" = \"1\" }\n",
                "environment variable name",
            ),
            ("[[role]]\nname = \"w\"\n[[role]]\nname = \"w\"\n", "unique"),
            ("[session]\nname = \"s\"\n", "no [[role]]"),
            (
                "[[role]]\nname = \"w\"\ncommand = [\"x\"]\nhandlers = { a = \"b\" }\n",
                "handlers only apply",
            ),
            ("[[role]]\nname = \"w\"\ncount = \"two\"\n", "line 3"),
            (
                "[[role]]\nname = \"w\"\ncommand = [\"A=1\", \"x\"]\n",
                "cannot contain `=`",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn example_file_is_valid() {
        let text = include_str!("../../panebus.example.toml");
        let layout = parse(text).unwrap();
        assert_eq!(layout.session.as_deref(), Some("agents"));
        assert_eq!(layout.pane_count(), 4);
    }

    #[test]
    fn default_layout() {
        let layout = Layout::default_for("worker", 2).unwrap();
        assert_eq!(layout.pane_count(), 2);
        assert!(Layout::default_for("a;b", 2).is_err());
        assert!(Layout::default_for("worker", 0).is_err());
    }
}
