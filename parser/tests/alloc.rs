//! Steady-state `%output` handling allocates nothing: after a warm-up that grows the parser's
//! buffers, feeding and draining more output (plain, escaped, split mid-line and mid-escape)
//! makes zero heap allocations, counted by a global allocator wrapper for this test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tmux_control_parser::{encode_output, Event, Parser};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Feeds `stream` in 4 KiB chunks (so lines and escapes are split) and touches every byte.
fn run(parser: &mut Parser, stream: &[u8]) -> (usize, u64) {
    let mut events = 0;
    let mut checksum = 0u64;
    for chunk in stream.chunks(4096) {
        parser.feed(chunk);
        while let Some(event) = parser.next_event() {
            match event {
                Ok(Event::Output { data, .. }) => {
                    events += 1;
                    checksum = data
                        .iter()
                        .fold(checksum, |sum, b| sum.wrapping_add(u64::from(*b)));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    (events, checksum)
}

#[test]
fn steady_state_output_allocates_nothing() {
    let mut stream = Vec::new();
    for i in 0..2000u32 {
        let raw = format!("line {i} \x1b[1mbold\x1b[0m caf\u{e9} back\\slash\r\n");
        stream.extend_from_slice(format!("%output %{} ", i % 4).as_bytes());
        stream.extend(encode_output(raw.as_bytes()));
        stream.push(b'\n');
        stream.extend_from_slice(format!("%output %{} plain text {i}\n", i % 4).as_bytes());
    }
    let mut parser = Parser::new();
    let warm_up = run(&mut parser, &stream);
    assert_eq!(warm_up.0, 4000);

    let before = allocations();
    let steady = run(&mut parser, &stream);
    let after = allocations();
    assert_eq!(steady, warm_up);
    assert_eq!(
        after - before,
        0,
        "allocations while parsing warmed-up %output"
    );
}
