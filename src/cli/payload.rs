//! `--payload`: the JSON object sent with a command, checked before anything is enqueued.
//!
//! The value is the JSON text itself, `@PATH` to read it from a file, or `-` to read it
//! from stdin (handy for text that is awkward to quote in a shell). It must be a JSON
//! object; a malformed or non-object payload fails here with the parser's position, and
//! the size limit is enforced by the bus when the command is enqueued.

use std::io::Read;

use anyhow::Context;
use serde_json::{Map, Value};

use super::exit::Failure;

/// Reads and checks a `--payload` argument; no argument means an empty object.
pub fn read(argument: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    let Some(argument) = argument else {
        return Ok(Map::new());
    };
    let bytes = if argument == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read --payload from stdin — pipe a JSON object into panebus")?;
        bytes
    } else if let Some(path) = argument.strip_prefix('@') {
        std::fs::read(path).with_context(|| {
            format!("cannot read --payload file `{path}` — check the path after `@`")
        })?
    } else {
        return Ok(parse(argument)?);
    };
    Ok(parse(&utf8(bytes)?)?)
}

/// Payload bytes as text: JSON is UTF-8, so anything else is an invalid payload (exit 6),
/// not an I/O error.
fn utf8(bytes: Vec<u8>) -> Result<String, Failure> {
    String::from_utf8(bytes).map_err(|err| Failure::InvalidPayload {
        reason: format!(
            "not UTF-8 text (the first invalid byte is at offset {}); JSON must be UTF-8",
            err.utf8_error().valid_up_to()
        ),
    })
}

/// Parses payload text into a JSON object.
pub fn parse(text: &str) -> Result<Map<String, Value>, Failure> {
    let value: Value = serde_json::from_str(text).map_err(|err| Failure::InvalidPayload {
        reason: format!("malformed JSON ({err})"),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Failure::InvalidPayload {
            reason: format!(
                "expected a JSON object, got {}",
                crate::schema::json_kind(&other)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_pass_through_literally() {
        let map = parse(r#"{"text": "a; b\n#{pane_id} $(rm -rf /) \"q\" 'q'"}"#).unwrap();
        assert_eq!(map["text"], "a; b\n#{pane_id} $(rm -rf /) \"q\" 'q'");
    }

    #[test]
    fn malformed_json_names_the_position() {
        let err = parse(r#"{"text": "#).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid --payload: malformed JSON"),
            "{err}"
        );
        assert!(err.contains("line 1"), "{err}");
        assert!(err.contains("pass a JSON object"), "{err}");
    }

    #[test]
    fn non_objects_are_rejected() {
        let err = parse("[1, 2]").unwrap_err().to_string();
        assert!(
            err.contains("expected a JSON object, got an array"),
            "{err}"
        );
        assert!(parse("\"text\"").is_err());
    }

    #[test]
    fn missing_payload_is_an_empty_object() {
        assert!(read(None).unwrap().is_empty());
    }

    #[test]
    fn payload_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, r#"{"text": "from a file"}"#).unwrap();
        let map = read(Some(&format!("@{}", path.display()))).unwrap();
        assert_eq!(map["text"], "from a file");
        let missing = read(Some("@/nonexistent/panebus.json")).unwrap_err();
        assert!(format!("{missing:#}").contains("cannot read --payload file"));
    }
}
