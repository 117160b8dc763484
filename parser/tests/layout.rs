//! Layout strings: checksum verification, the cell tree, pane ids, newest tmux's signed
//! offsets and floating cells, and rejection of malformed strings without panicking.

use proptest::prelude::*;
use tmux_control_parser::{Layout, LayoutError, LayoutKind, PaneId};

#[test]
fn single_pane() {
    let layout = Layout::parse("b25f,80x24,0,0,2").unwrap();
    assert_eq!(layout.checksum, 0xb25f);
    assert_eq!((layout.root.width, layout.root.height), (80, 24));
    assert_eq!(layout.root.kind, LayoutKind::Pane(PaneId(2)));
    assert_eq!(layout.pane_ids(), vec![PaneId(2)]);
}

#[test]
fn nested_splits() {
    let layout =
        Layout::parse("adc3,159x48,0,0{79x48,0,0,0,79x48,80,0[79x24,80,0,1,79x23,80,25,2]}")
            .unwrap();
    assert_eq!(layout.pane_ids(), vec![PaneId(0), PaneId(1), PaneId(2)]);
    let LayoutKind::LeftRight(columns) = &layout.root.kind else {
        panic!("root should be left-right: {layout:?}");
    };
    assert_eq!(columns.len(), 2);
    let LayoutKind::TopBottom(rows) = &columns[1].kind else {
        panic!("second column should be top-bottom: {layout:?}");
    };
    assert_eq!((rows[1].x, rows[1].y, rows[1].height), (80, 25, 23));
}

#[test]
fn floating_cells_and_signed_offsets() {
    let layout = Layout::parse("7e6e,80x24,0,0,2<20x5,-3,4,7>").unwrap();
    assert_eq!(layout.floating.len(), 1);
    assert_eq!((layout.floating[0].x, layout.floating[0].y), (-3, 4));
    assert_eq!(layout.pane_ids(), vec![PaneId(2), PaneId(7)]);
}

#[test]
fn checksum_mismatch_is_reported() {
    assert_eq!(
        Layout::parse("b25e,80x24,0,0,2"),
        Err(LayoutError::Checksum {
            written: 0xb25e,
            computed: 0xb25f
        })
    );
}

#[test]
fn syntax_errors_name_the_position() {
    for bad in ["", "b25f", "zzzz,80x24,0,0,2", "b25f80x24,0,0,2"] {
        assert!(
            matches!(Layout::parse(bad), Err(LayoutError::Syntax { at: 0 })),
            "{bad:?}"
        );
    }
    let text = with_checksum("80x24,0,0{40x24,0,0,1");
    assert!(
        matches!(Layout::parse(&text), Err(LayoutError::Syntax { .. })),
        "{text}"
    );
    let text = with_checksum("80x24,0,0,1 trailing");
    assert_eq!(Layout::parse(&text), Err(LayoutError::Syntax { at: 16 }));
}

#[test]
fn deep_nesting_is_rejected_not_a_stack_overflow() {
    let depth = 10_000;
    let body = format!("{}1x1,0,0,1{}", "1x1,0,0[".repeat(depth), "]".repeat(depth));
    assert_eq!(
        Layout::parse(&with_checksum(&body)),
        Err(LayoutError::TooDeep)
    );
}

fn with_checksum(cells: &str) -> String {
    let checksum = cells.bytes().fold(0u16, |csum, byte| {
        ((csum >> 1) | ((csum & 1) << 15)).wrapping_add(u16::from(byte))
    });
    format!("{checksum:04x},{cells}")
}

proptest! {
    #[test]
    fn arbitrary_cells_never_panic(cells in "[0-9x,{}\\[\\]<>-]{0,60}") {
        let _ = Layout::parse(&with_checksum(&cells));
    }
}
