//! Fuzz target `layout`: arbitrary text through `Layout::parse`.
//!
//! A layout string arrives from tmux in `%layout-change` and in `#{window_layout}` replies;
//! parsing it must never panic or overflow the stack, whatever the nesting. Also checked: a
//! layout that parses names at least one pane, and parsing the same text twice agrees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tmux_control_parser::Layout;

fuzz_target!(|text: &str| {
    let first = Layout::parse(text);
    if let Ok(layout) = &first {
        assert!(
            !layout.pane_ids().is_empty(),
            "a parsed layout has no panes"
        );
    }
    assert_eq!(first, Layout::parse(text));
});
