//! Phase prompt templates: where they are found and how they are filled in.
//!
//! Each phase has a Markdown template, `review.md`, `plan.md`, `work.md` and `compound.md`,
//! looked up in order in `$PANEBUS_PROMPTS_DIR`, then `$XDG_CONFIG_HOME/panebus/prompts/`
//! (`~/.config/panebus/prompts/` when XDG_CONFIG_HOME is unset), then the defaults compiled
//! into the binary from `prompts/`. A user overrides one phase by dropping one file.
//!
//! Placeholders `{{task}}`, `{{working_dir}}`, `{{review}}`, `{{plan}}` and `{{work}}` are
//! replaced in ONE pass, so text coming from the task or from an agent's output is never
//! expanded again. Earlier outputs are embedded as excerpts of at most [`EXCERPT_LIMIT`]
//! bytes (head and tail), which keeps every prompt under the one-argument limit of the
//! `prompt` handler.

use std::path::{Path, PathBuf};

use super::record::{Phase, WorkflowRecord};

/// Most bytes of one earlier phase's output embedded in a prompt.
pub const EXCERPT_LIMIT: usize = 32 * 1024;

/// The built-in template of `phase`.
pub fn builtin(phase: Phase) -> &'static str {
    match phase {
        Phase::Review => include_str!("../../prompts/review.md"),
        Phase::Plan => include_str!("../../prompts/plan.md"),
        Phase::Work => include_str!("../../prompts/work.md"),
        Phase::Compound => include_str!("../../prompts/compound.md"),
    }
}

/// The directories searched for templates, in order, from the given variables.
pub fn search_dirs(
    prompts_dir: Option<&str>,
    xdg_config_home: Option<&str>,
    home: Option<&str>,
) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = prompts_dir.filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    match (xdg_config_home.filter(|d| !d.is_empty()), home) {
        (Some(config), _) => dirs.push(Path::new(config).join("panebus/prompts")),
        (None, Some(home)) if !home.is_empty() => {
            dirs.push(Path::new(home).join(".config/panebus/prompts"))
        }
        _ => {}
    }
    dirs
}

/// The four templates in use and where each came from.
#[derive(Debug, Clone)]
pub struct Templates {
    texts: Vec<(Phase, String, String)>,
}

impl Templates {
    /// Loads the templates from the process environment's search path.
    pub fn from_env() -> std::io::Result<Self> {
        let var = |name: &str| std::env::var(name).ok();
        Templates::load(&search_dirs(
            var("PANEBUS_PROMPTS_DIR").as_deref(),
            var("XDG_CONFIG_HOME").as_deref(),
            var("HOME").as_deref(),
        ))
    }

    /// Loads each phase's template from the first directory holding it, else the built-in.
    /// A file that exists but cannot be read is an error (not silently replaced).
    pub fn load(dirs: &[PathBuf]) -> std::io::Result<Self> {
        let mut texts = Vec::new();
        for phase in Phase::ALL {
            let file = format!("{}.md", phase.name());
            let found = dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file());
            let (text, source) = match found {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot read prompt template {}: {e}", path.display()),
                        )
                    })?;
                    (text, path.display().to_string())
                }
                None => (builtin(phase).to_string(), "built-in".to_string()),
            };
            texts.push((phase, text, source));
        }
        Ok(Templates { texts })
    }

    /// Where the template of `phase` came from (a path, or "built-in").
    pub fn source(&self, phase: Phase) -> &str {
        self.entry(phase).2.as_str()
    }

    fn entry(&self, phase: Phase) -> &(Phase, String, String) {
        self.texts
            .iter()
            .find(|(p, _, _)| *p == phase)
            .expect("all phases are loaded")
    }

    /// The prompt for `phase` of `record`.
    pub fn render(&self, phase: Phase, record: &WorkflowRecord) -> String {
        let value = |name: &str| -> Option<String> {
            Some(match name {
                "task" => record.task.clone(),
                "working_dir" => record.working_dir.clone(),
                "review" => excerpt(record.output(Phase::Review)),
                "plan" => excerpt(record.output(Phase::Plan)),
                "work" => excerpt(record.output(Phase::Work)),
                _ => return None,
            })
        };
        substitute(&self.entry(phase).1, value)
    }
}

/// Replaces `{{name}}` with `value(name)` in one left-to-right pass; unknown names stay.
fn substitute(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => match value(after[..end].trim()) {
                Some(v) => {
                    out.push_str(&v);
                    rest = &after[end + 2..];
                }
                None => {
                    out.push_str("{{");
                    rest = after;
                }
            },
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `text` if it fits in [`EXCERPT_LIMIT`] bytes, else its head and tail with a marker
/// saying how much was left out (cut on character boundaries).
pub fn excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_LIMIT {
        return text.to_string();
    }
    let head_end = floor_char_boundary(text, EXCERPT_LIMIT * 3 / 4);
    let tail_start = ceil_char_boundary(text, text.len() - EXCERPT_LIMIT / 4);
    format!(
        "{}\n[... {} bytes left out ...]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Whether the work phase's output asks for the compound phase: its LAST line of the form
/// `COMPOUND: yes` or `COMPOUND: no` (case-insensitive, Markdown emphasis allowed) decides;
/// without such a line the compound phase is skipped.
pub fn wants_compound(work_output: &str) -> bool {
    for line in work_output.lines().rev() {
        let line = line
            .trim()
            .trim_matches(|c| c == '*' || c == '_' || c == '`');
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("compound") {
            continue;
        }
        let value = value
            .trim()
            .trim_matches(|c: char| !c.is_ascii_alphabetic())
            .to_ascii_lowercase();
        match value.as_str() {
            "yes" => return true,
            "no" => return false,
            _ => continue,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_is_one_pass_and_keeps_unknown_names() {
        let out = substitute("a {{task}} b {{ plan }} {{other}} {{", |name| match name {
            "task" => Some("{{plan}}".to_string()),
            "plan" => Some("P".to_string()),
            _ => None,
        });
        assert_eq!(out, "a {{plan}} b P {{other}} {{");
    }

    #[test]
    fn compound_marker_last_one_wins() {
        assert!(wants_compound("work\nCOMPOUND: yes\n"));
        assert!(!wants_compound("work\nCOMPOUND: no"));
        assert!(wants_compound("COMPOUND: no\nlater\n**Compound: YES**\n\n"));
        assert!(!wants_compound("COMPOUND: yes\nCOMPOUND: no"));
        assert!(!wants_compound("no marker at all"));
        assert!(!wants_compound("COMPOUND: maybe"));
    }

    #[test]
    fn long_outputs_are_cut_to_head_and_tail() {
        let text = format!("{}{}", "é".repeat(EXCERPT_LIMIT), "END");
        let cut = excerpt(&text);
        assert!(cut.len() < EXCERPT_LIMIT + 100);
        assert!(cut.ends_with("END"));
        assert!(cut.contains("bytes left out"));
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn search_order_is_env_then_xdg_then_home() {
        assert_eq!(
            search_dirs(Some("/p"), Some("/x"), Some("/h")),
            [PathBuf::from("/p"), PathBuf::from("/x/panebus/prompts")]
        );
        assert_eq!(
            search_dirs(None, None, Some("/h")),
            [PathBuf::from("/h/.config/panebus/prompts")]
        );
    }

    #[test]
    fn a_file_in_the_first_directory_overrides_one_phase() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        std::fs::write(first.path().join("plan.md"), "PLAN {{task}}").unwrap();
        std::fs::write(second.path().join("plan.md"), "ignored").unwrap();
        std::fs::write(second.path().join("work.md"), "WORK {{plan}}").unwrap();
        let templates =
            Templates::load(&[first.path().to_path_buf(), second.path().to_path_buf()]).unwrap();
        let mut record = WorkflowRecord::new("w".into(), "T".into(), "/".into(), 1000);
        record.phase_mut(Phase::Plan).output = Some("the plan".into());
        assert_eq!(templates.render(Phase::Plan, &record), "PLAN T");
        assert_eq!(templates.render(Phase::Work, &record), "WORK the plan");
        assert_eq!(templates.source(Phase::Review), "built-in");
        assert!(templates.render(Phase::Review, &record).contains("T"));
    }
}
