//! Window layout strings (`#{window_layout}`, the LAYOUT of `%layout-change`) as a cell tree.
//!
//! Grammar (tmux layout-custom.c): `CSUM,CELL` where CSUM is 4 hex digits over the rest of
//! the string, and a cell is `WxH,X,Y,PANEID` (a pane), `WxH,X,Y{CELL,…}` (side by side) or
//! `WxH,X,Y[CELL,…]` (stacked). The newest tmux may write signed offsets and append floating
//! panes as `<CELL,…>`; both are accepted. The coordinator uses [`Layout::pane_ids`] to see
//! which panes a window still has.

use std::fmt;

use nom::branch::alt;
use nom::character::complete::{char, i32 as dec_i32, u32 as dec_u32};
use nom::combinator::map;
use nom::multi::separated_list1;
use nom::sequence::{delimited, preceded, tuple};
use nom::IResult;

use crate::event::PaneId;

/// Nesting deeper than this is rejected rather than risking the stack on hostile input
/// (a real window cannot hold enough panes to get near it).
const MAX_DEPTH: usize = 128;

/// A parsed layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The checksum as written (verified by [`Layout::parse`]).
    pub checksum: u16,
    pub root: LayoutCell,
    /// Floating panes (newest tmux), in the order written.
    pub floating: Vec<LayoutCell>,
}

/// One cell: its size, its offset in the window and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutCell {
    pub width: u32,
    pub height: u32,
    pub x: i32,
    pub y: i32,
    pub kind: LayoutKind,
}

/// What a cell holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutKind {
    Pane(PaneId),
    /// `{…}`: children side by side.
    LeftRight(Vec<LayoutCell>),
    /// `[…]`: children stacked.
    TopBottom(Vec<LayoutCell>),
}

/// Why a layout string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// The string does not follow the grammar; `at` is the byte offset where parsing stopped.
    Syntax { at: usize },
    /// Cells nest deeper than the parser accepts.
    TooDeep,
    /// The 4-hex-digit checksum does not match the rest of the string.
    Checksum { written: u16, computed: u16 },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Syntax { at } => write!(f, "invalid layout string at byte {at}"),
            LayoutError::TooDeep => write!(f, "layout nests deeper than {MAX_DEPTH} cells"),
            LayoutError::Checksum { written, computed } => write!(
                f,
                "layout checksum {written:04x} does not match its cells (computed {computed:04x})"
            ),
        }
    }
}

impl std::error::Error for LayoutError {}

impl Layout {
    /// Parses and checksum-verifies a layout string.
    pub fn parse(text: &str) -> Result<Layout, LayoutError> {
        let bytes = text.as_bytes();
        let checksum = match bytes {
            [a, b, c, d, b',', ..] if [a, b, c, d].iter().all(|x| x.is_ascii_hexdigit()) => {
                u16::from_str_radix(&text[..4], 16).map_err(|_| LayoutError::Syntax { at: 0 })?
            }
            _ => return Err(LayoutError::Syntax { at: 0 }),
        };
        let cells = &bytes[5..];
        let computed = layout_checksum(cells);
        if computed != checksum {
            return Err(LayoutError::Checksum {
                written: checksum,
                computed,
            });
        }
        let syntax = |rest: &[u8]| LayoutError::Syntax {
            at: bytes.len() - rest.len(),
        };
        let (rest, root) = cell(cells, 0).map_err(|err| match err {
            nom::Err::Failure(CellError::TooDeep) => LayoutError::TooDeep,
            nom::Err::Error(CellError::Syntax(rest))
            | nom::Err::Failure(CellError::Syntax(rest)) => syntax(rest),
            nom::Err::Error(CellError::TooDeep) | nom::Err::Incomplete(_) => syntax(cells),
        })?;
        let (rest, floating) = match rest {
            [] => (rest, Vec::new()),
            [b'<', ..] => floating(rest).map_err(|_| syntax(rest))?,
            _ => return Err(syntax(rest)),
        };
        if !rest.is_empty() {
            return Err(syntax(rest));
        }
        Ok(Layout {
            checksum,
            root,
            floating,
        })
    }

    /// Every pane in the layout, tiled panes in reading order, then floating ones.
    pub fn pane_ids(&self) -> Vec<PaneId> {
        let mut panes = Vec::new();
        self.root.collect_panes(&mut panes);
        for cell in &self.floating {
            cell.collect_panes(&mut panes);
        }
        panes
    }
}

impl LayoutCell {
    fn collect_panes(&self, panes: &mut Vec<PaneId>) {
        match &self.kind {
            LayoutKind::Pane(pane) => panes.push(*pane),
            LayoutKind::LeftRight(children) | LayoutKind::TopBottom(children) => {
                for child in children {
                    child.collect_panes(panes);
                }
            }
        }
    }
}

/// tmux's layout checksum: rotate right by one, add the byte.
pub(crate) fn layout_checksum(cells: &[u8]) -> u16 {
    cells.iter().fold(0u16, |csum, &byte| {
        ((csum >> 1) | ((csum & 1) << 15)).wrapping_add(u16::from(byte))
    })
}

/// Parse errors of the cell grammar: a syntax error at the remaining input, or too deep.
#[derive(Debug)]
enum CellError<'a> {
    Syntax(&'a [u8]),
    TooDeep,
}

impl<'a> nom::error::ParseError<&'a [u8]> for CellError<'a> {
    fn from_error_kind(input: &'a [u8], _: nom::error::ErrorKind) -> Self {
        CellError::Syntax(input)
    }

    fn append(_: &'a [u8], _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

type CellResult<'a, T> = IResult<&'a [u8], T, CellError<'a>>;

/// `<CELL,…>` floating panes.
fn floating(input: &[u8]) -> CellResult<'_, Vec<LayoutCell>> {
    delimited(
        char('<'),
        separated_list1(char(','), |input| cell(input, 0)),
        char('>'),
    )(input)
}

/// One cell at nesting `depth`.
fn cell(input: &[u8], depth: usize) -> CellResult<'_, LayoutCell> {
    if depth > MAX_DEPTH {
        return Err(nom::Err::Failure(CellError::TooDeep));
    }
    let (input, (width, _, height, _, x, _, y)) = tuple((
        dec_u32,
        char('x'),
        dec_u32,
        char(','),
        dec_i32,
        char(','),
        dec_i32,
    ))(input)?;
    let (input, kind) = alt((
        map(
            delimited(char('{'), |input| children(input, depth), char('}')),
            LayoutKind::LeftRight,
        ),
        map(
            delimited(char('['), |input| children(input, depth), char(']')),
            LayoutKind::TopBottom,
        ),
        map(preceded(char(','), dec_u32), |id| {
            LayoutKind::Pane(PaneId(id))
        }),
    ))(input)?;
    Ok((
        input,
        LayoutCell {
            width,
            height,
            x,
            y,
            kind,
        },
    ))
}

/// The comma-separated children of a split cell at `depth`.
fn children(input: &[u8], depth: usize) -> CellResult<'_, Vec<LayoutCell>> {
    separated_list1(char(','), |input| cell(input, depth + 1))(input)
}
