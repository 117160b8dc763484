//! Parser throughput on a large, `%output`-heavy control-mode stream, against a baseline.
//!
//! The stream is generated here (deterministic): records from 8 panes of realistic terminal
//! output — text, `\015\012` line ends, `\033[…m` colours, UTF-8 cut anywhere, `\134`
//! backslashes — with a reply block and a layout change now and then. `parser` feeds it in
//! 64 KiB chunks and reads every event, touching the data; `baseline` is the least work any
//! parser must do on the same bytes: a memchr line split plus octal decoding of `%output`
//! lines, with no buffering and no event types. Run: `cargo bench -p tmux-control-parser`.
//!
//! Each is measured twice: wall-clock time (criterion's default) and the benchmark thread's
//! CPU time (`CLOCK_THREAD_CPUTIME_ID`), because on a shared 2-core machine other processes
//! steal the CPU and wall-clock figures then understate what the code can do.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use memchr::memchr;
use tmux_control_parser::{encode_output, Event, Parser};

/// Size of the generated stream.
const STREAM_LEN: usize = 32 << 20;
/// Read size used when feeding the parser, like a pipe reader's buffer.
const CHUNK_LEN: usize = 64 << 10;

/// A small xorshift generator, so the stream is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Raw terminal output: words, colours, UTF-8, backslashes, CR LF line ends.
fn terminal_output(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "cargo",
        "build",
        "Compiling",
        "warning:",
        "error[E0277]:",
        "src/main.rs:42:7",
        "the",
        "trait",
        "bound",
        "is",
        "not",
        "satisfied",
        "-->",
        "|",
        "=",
        "help:",
        "café",
        "naïve",
        "日本語",
        "✓",
        "🦀",
        "C:\\path\\to",
        "100%",
        "{",
        "}",
        "fn",
        "main()",
        "let",
        "x",
        "y",
    ];
    const COLOURS: &[&str] = &[
        "\x1b[1m",
        "\x1b[0m",
        "\x1b[31m",
        "\x1b[32;1m",
        "\x1b[38;5;208m",
    ];
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        match rng.below(20) {
            0 => out.extend_from_slice(COLOURS[rng.below(COLOURS.len())].as_bytes()),
            1 => out.extend_from_slice(b"\r\n"),
            2 => out.push(b'\t'),
            _ => {
                out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                out.push(b' ');
            }
        }
    }
    out.truncate(len);
    out
}

/// The benchmark stream: mostly `%output` records, cut at arbitrary byte positions.
fn stream() -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(STREAM_LEN + 8192);
    let mut number = 100u32;
    while out.len() < STREAM_LEN {
        match rng.below(500) {
            0 => {
                number += 1;
                out.extend_from_slice(format!("%begin 1795000000 {number} 1\n").as_bytes());
                for pane in 0..8 {
                    out.extend_from_slice(format!("%{pane}\n").as_bytes());
                }
                out.extend_from_slice(format!("%end 1795000000 {number} 1\n").as_bytes());
            }
            1 => out.extend_from_slice(
                b"%layout-change @1 adc3,159x48,0,0{79x48,0,0,0,79x48,80,0[79x24,80,0,1,79x23,80,25,2]} adc3,159x48,0,0{79x48,0,0,0,79x48,80,0[79x24,80,0,1,79x23,80,25,2]} *\n",
            ),
            _ => {
                let pane = rng.below(8);
                let len = 16 + rng.below(2730);
                out.extend_from_slice(format!("%output %{pane} ").as_bytes());
                out.extend(encode_output(&terminal_output(&mut rng, len)));
                out.push(b'\n');
            }
        }
    }
    out
}

/// Runs the parser over the stream; returns a value that depends on every event.
fn parse(stream: &[u8]) -> usize {
    let mut parser = Parser::new();
    let mut touched = 0usize;
    for chunk in stream.chunks(CHUNK_LEN) {
        parser.feed(chunk);
        while let Some(event) = parser.next_event() {
            touched += match event.expect("the generated stream is valid") {
                Event::Output { pane, data } => {
                    pane.0 as usize + data.len() + usize::from(data.last().copied().unwrap_or(0))
                }
                Event::Reply(reply) => reply.lines.len(),
                Event::LayoutChange { layout, .. } => layout.len(),
                other => panic!("unexpected event {other:?}"),
            };
        }
    }
    touched
}

/// The floor: split lines with memchr and octal-decode `%output` payloads in place.
fn baseline(stream: &[u8]) -> usize {
    let mut decoded = Vec::with_capacity(16 << 10);
    let mut touched = 0usize;
    let mut rest = stream;
    while let Some(lf) = memchr(b'\n', rest) {
        let line = &rest[..lf];
        rest = &rest[lf + 1..];
        let Some(payload) = line.strip_prefix(b"%output %") else {
            touched += line.len();
            continue;
        };
        let Some(space) = memchr(b' ', payload) else {
            continue;
        };
        let mut data = &payload[space + 1..];
        decoded.clear();
        while let Some(backslash) = memchr(b'\\', data) {
            decoded.extend_from_slice(&data[..backslash]);
            let digits = &data[backslash + 1..backslash + 4];
            decoded.push((digits[0] - b'0') << 6 | (digits[1] - b'0') << 3 | (digits[2] - b'0'));
            data = &data[backslash + 4..];
        }
        decoded.extend_from_slice(data);
        touched += decoded.len() + usize::from(decoded.last().copied().unwrap_or(0));
    }
    touched
}

/// CPU time consumed by the calling thread.
struct ThreadCpuTime;

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }

    fn end(&self, started: Duration) -> Duration {
        thread_cpu_time() - started
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuTimeFormatter
    }
}

/// Shows CPU time in ms and throughput in MiB/s (the units of criterion's wall-clock output).
struct CpuTimeFormatter;

impl ValueFormatter for CpuTimeFormatter {
    fn scale_values(&self, _typical_ns: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|ns| *ns /= 1e6);
        "ms (cpu)"
    }

    fn scale_throughputs(
        &self,
        _typical_ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let units = match throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) | Throughput::Elements(n) => {
                *n as f64
            }
        };
        values
            .iter_mut()
            .for_each(|ns| *ns = units / (*ns / 1e9) / (1024.0 * 1024.0));
        "MiB/s (cpu)"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench_group<M: Measurement>(c: &mut Criterion<M>, name: &str, stream: &[u8]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(20);
    group.bench_function("parser", |b| b.iter(|| parse(black_box(stream))));
    group.bench_function("baseline", |b| b.iter(|| baseline(black_box(stream))));
    group.finish();
}

fn wall_clock(c: &mut Criterion) {
    bench_group(c, "wall-clock", &stream());
}

fn cpu_time(c: &mut Criterion<ThreadCpuTime>) {
    bench_group(c, "thread-cpu-time", &stream());
}

criterion_group!(wall, wall_clock);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu_time
}
criterion_main!(wall, cpu);
