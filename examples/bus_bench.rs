//! Bus figures for BENCHMARKS.md, each next to a raw Redis loop doing the same steps
//! (dispatchers `LPUSH`; each consumer `BLMOVE` queue → processing, then `LREM`):
//!
//! - latency: dispatch → worker received, and dispatch → result (round trip), one command
//!   at a time through one in-process worker, p50/p99/p999;
//! - throughput: commands/s through 1, 4 and 16 workers with a no-op handler, fed by 4
//!   concurrent dispatchers (raw and PaneBus runs alternate, best of 3 each), with the
//!   Redis CPU time spent per command;
//! - queue depth: one worker draining a queue pre-filled with N commands, and the enqueue
//!   latency into a queue that deep.
//!
//! Starts its own redis-server (no persistence) on a free loopback port:
//!
//! ```sh
//! cargo run --release --example bus_bench                     # 5000 samples, 20000 commands
//! cargo run --release --example bus_bench -- 5000 20000 1,4,16 1000,10000
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use panebus::bus::Bus;
use panebus::config::Config;
use panebus::schema::Command;
use panebus::worker::{handler_fn, StopTokens, Worker};
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[path = "support/private_redis.rs"]
mod private_redis;
use private_redis::PrivateRedis;

fn config(url: &str, namespace: &str) -> Config {
    let mut c = Config::from_lookup(|_| None).unwrap();
    c.redis_url = url.to_string();
    c.namespace = namespace.to_string();
    c.node = "bench".into();
    c.max_queue_depth = 10_000_000;
    c
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Redis's own CPU time (user + system) so far.
fn redis_cpu(url: &str) -> Duration {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("cpu").query(&mut conn).unwrap();
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Duration::from_secs_f64(field("used_cpu_user") + field("used_cpu_sys"))
}

struct Percentiles {
    n: usize,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
}

impl Percentiles {
    fn of(mut samples: Vec<Duration>) -> Percentiles {
        samples.sort();
        let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
        Percentiles {
            n: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: *samples.last().unwrap(),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "p50 {:.3} ms, p99 {:.3} ms, p999 {:.3} ms, max {:.3} ms ({} samples)",
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            ms(self.max),
            self.n
        )
    }
}

/// Starts `n` in-process workers whose `noop` handler counts runs and reports when it
/// was called on `received` (if given).
async fn start_workers(
    config: &Config,
    n: usize,
    counter: Arc<AtomicU64>,
    received: Option<mpsc::UnboundedSender<Instant>>,
) -> (Vec<String>, StopTokens, Vec<tokio::task::JoinHandle<()>>) {
    let tokens = StopTokens::new();
    let bus = Bus::connect(config).await.unwrap();
    let mut ids = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..n {
        let counter = counter.clone();
        let received = received.clone();
        let builder = Worker::builder(config.clone())
            .pane(format!("%{i}"))
            .stop_tokens(tokens.clone())
            .handler(
                "noop",
                handler_fn(move |_cmd, _ctx| {
                    if let Some(tx) = &received {
                        let _ = tx.send(Instant::now());
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    async { Ok(Value::Null) }
                }),
            );
        ids.push(builder.worker_id());
        tasks.push(tokio::spawn(async move {
            builder.run().await.expect("worker runs");
        }));
    }
    for id in &ids {
        while !bus.is_registered(id).await.unwrap() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (ids, tokens, tasks)
}

async fn stop_workers(tokens: StopTokens, tasks: Vec<tokio::task::JoinHandle<()>>) {
    tokens.stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Dispatch → handler called, and dispatch → result stored and seen by the dispatcher,
/// one command at a time; 10 % warm-up discarded.
async fn panebus_latency(url: &str, samples: usize) -> (Percentiles, Percentiles) {
    let config = config(url, "lat");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ids, tokens, tasks) =
        start_workers(&config, 1, Arc::new(AtomicU64::new(0)), Some(tx)).await;
    let bus = Bus::connect(&config).await.unwrap();
    let mut blocking = bus.blocking_connection().await.unwrap();
    let (mut received, mut round_trip) = (Vec::new(), Vec::new());
    for i in 0..samples + samples / 10 {
        let cmd = Command::new("noop", json!({}), "bench");
        let started = Instant::now();
        bus.enqueue(&ids[0], &cmd, false).await.unwrap();
        let r = bus
            .wait_result(&mut blocking, &cmd.id, Duration::from_secs(10))
            .await
            .unwrap();
        let done = started.elapsed();
        let got = rx.recv().await.unwrap();
        assert!(r.ok);
        if i >= samples / 10 {
            received.push(got - started);
            round_trip.push(done);
        }
    }
    stop_workers(tokens, tasks).await;
    (Percentiles::of(received), Percentiles::of(round_trip))
}

/// One consumer of the raw loop: `BLMOVE` queue → processing on a connection of its own
/// (without a response timeout, which a parked BLMOVE must not have), `LREM` from the
/// processing list on another.
struct RawConsumer {
    blocking: redis::aio::MultiplexedConnection,
    conn: redis::aio::MultiplexedConnection,
    queue: String,
    processing: String,
}

impl RawConsumer {
    async fn open(client: &redis::Client, queue: &str, processing: &str) -> RawConsumer {
        let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        RawConsumer {
            blocking: client
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
                .unwrap(),
            conn: client.get_multiplexed_async_connection().await.unwrap(),
            queue: queue.to_string(),
            processing: processing.to_string(),
        }
    }

    /// The next command, waiting up to `block_secs`.
    async fn take(&mut self, block_secs: f64) -> Option<String> {
        redis::cmd("BLMOVE")
            .arg(&self.queue)
            .arg(&self.processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(block_secs)
            .query_async(&mut self.blocking)
            .await
            .unwrap()
    }

    async fn ack(&mut self, item: String) {
        let _: i64 = redis::cmd("LREM")
            .arg(&self.processing)
            .arg(1)
            .arg(item)
            .query_async(&mut self.conn)
            .await
            .unwrap();
    }
}

/// The raw loop's dispatch → BLMOVE returned, one command at a time.
async fn raw_latency(url: &str, samples: usize) -> Percentiles {
    let client = redis::Client::open(url).unwrap();
    let payload = Command::new("noop", json!({}), "bench").to_json();
    let queue = "rawlat:{w}:queue";
    let (tx, mut rx) = mpsc::unbounded_channel();
    let total = samples + samples / 10;
    let mut consumer = RawConsumer::open(&client, queue, "rawlat:{w}:processing").await;
    let consumer = tokio::spawn(async move {
        for _ in 0..total {
            let item = consumer.take(10.0).await.expect("a command within 10 s");
            let _ = tx.send(Instant::now());
            consumer.ack(item).await;
        }
    });
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut received = Vec::new();
    for i in 0..total {
        let started = Instant::now();
        let _: i64 = redis::cmd("LPUSH")
            .arg(queue)
            .arg(&payload)
            .query_async(&mut conn)
            .await
            .unwrap();
        let got = rx.recv().await.unwrap();
        if i >= samples / 10 {
            received.push(got - started);
        }
    }
    consumer.await.unwrap();
    Percentiles::of(received)
}

const DISPATCHERS: usize = 4;

/// Commands/s through `workers` PaneBus workers, and Redis CPU per command.
async fn panebus_throughput(url: &str, workers: usize, total: usize, round: usize) -> (f64, f64) {
    let config = config(url, &format!("tp{workers}-{round}"));
    let counter = Arc::new(AtomicU64::new(0));
    let (ids, tokens, tasks) = start_workers(&config, workers, counter.clone(), None).await;
    let cpu_before = redis_cpu(url);
    let started = Instant::now();
    let mut dispatchers = Vec::new();
    for d in 0..DISPATCHERS {
        let bus = Bus::connect(&config).await.unwrap();
        let ids = ids.clone();
        dispatchers.push(tokio::spawn(async move {
            for i in (d..total).step_by(DISPATCHERS) {
                let cmd = Command::new("noop", json!({"i": i}), "bench");
                bus.enqueue(&ids[i % ids.len()], &cmd, false).await.unwrap();
            }
        }));
    }
    for d in dispatchers {
        d.await.unwrap();
    }
    wait_drained(&config, &ids, &counter, total).await;
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let cpu_us = (redis_cpu(url) - cpu_before).as_secs_f64() * 1e6 / total as f64;
    stop_workers(tokens, tasks).await;
    (rate, cpu_us)
}

/// Waits until every command ran (counted in-process, so waiting adds no Redis traffic)
/// and then every ack landed.
async fn wait_drained(config: &Config, ids: &[String], counter: &AtomicU64, total: usize) {
    let bus = Bus::connect(config).await.unwrap();
    while (counter.load(Ordering::Relaxed) as usize) < total {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    loop {
        let mut pending = 0;
        for id in ids {
            pending += bus.processing_len(id).await.unwrap();
        }
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Starts the raw loop's consumers: per worker, BLMOVE then LREM until `total` are done.
async fn raw_consumers(
    client: &redis::Client,
    prefix: &str,
    workers: usize,
    total: usize,
) -> (Arc<AtomicU64>, Vec<tokio::task::JoinHandle<()>>) {
    let done = Arc::new(AtomicU64::new(0));
    let mut consumers = Vec::new();
    for w in 0..workers {
        let done = done.clone();
        let mut consumer = RawConsumer::open(
            client,
            &format!("{prefix}:{{w{w}}}:queue"),
            &format!("{prefix}:{{w{w}}}:processing"),
        )
        .await;
        consumers.push(tokio::spawn(async move {
            while (done.load(Ordering::Relaxed) as usize) < total {
                if let Some(item) = consumer.take(0.1).await {
                    consumer.ack(item).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    (done, consumers)
}

/// The same traffic as bare Redis steps.
async fn raw_throughput(url: &str, workers: usize, total: usize, round: usize) -> (f64, f64) {
    let client = redis::Client::open(url).unwrap();
    let prefix = format!("raw{workers}-{round}");
    let payload = Command::new("noop", json!({"i": 0}), "bench").to_json();
    let (_, consumers) = raw_consumers(&client, &prefix, workers, total).await;
    let cpu_before = redis_cpu(url);
    let started = Instant::now();
    let mut dispatchers = Vec::new();
    for d in 0..DISPATCHERS {
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let payload = payload.clone();
        let prefix = prefix.clone();
        dispatchers.push(tokio::spawn(async move {
            for i in (d..total).step_by(DISPATCHERS) {
                let queue = format!("{prefix}:{{w{}}}:queue", i % workers);
                let _: i64 = redis::cmd("LPUSH")
                    .arg(queue)
                    .arg(&payload)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }));
    }
    for d in dispatchers {
        d.await.unwrap();
    }
    for c in consumers {
        c.await.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let cpu_us = (redis_cpu(url) - cpu_before).as_secs_f64() * 1e6 / total as f64;
    (rate, cpu_us)
}

/// One worker draining a queue pre-filled with `depth` commands (commands/s), and the
/// enqueue latency into that queue before it drains.
async fn panebus_drain(url: &str, depth: usize, round: usize) -> (f64, Percentiles) {
    let config = config(url, &format!("depth{depth}-{round}"));
    let bus = Bus::connect(&config).await.unwrap();
    // Fill the queue of the worker that starts next (forced: it is not registered yet).
    let id = Worker::builder(config.clone()).pane("%0").worker_id();
    let mut enqueue = Vec::with_capacity(depth);
    for i in 0..depth {
        let cmd = Command::new("noop", json!({"i": i}), "bench");
        let started = Instant::now();
        bus.enqueue(&id, &cmd, true).await.unwrap();
        enqueue.push(started.elapsed());
    }
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let (ids, tokens, tasks) = start_workers(&config, 1, counter.clone(), None).await;
    wait_drained(&config, &ids, &counter, depth).await;
    let rate = depth as f64 / started.elapsed().as_secs_f64();
    stop_workers(tokens, tasks).await;
    (rate, Percentiles::of(enqueue))
}

/// The raw loop draining a queue pre-filled with `depth` elements.
async fn raw_drain(url: &str, depth: usize, round: usize) -> f64 {
    let client = redis::Client::open(url).unwrap();
    let prefix = format!("rawdepth{depth}-{round}");
    let payload = Command::new("noop", json!({"i": 0}), "bench").to_json();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for _ in 0..depth {
        let _: i64 = redis::cmd("LPUSH")
            .arg(format!("{prefix}:{{w0}}:queue"))
            .arg(&payload)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let (_, consumers) = raw_consumers(&client, &prefix, 1, depth).await;
    for c in consumers {
        c.await.unwrap();
    }
    depth as f64 / started.elapsed().as_secs_f64()
}

fn list(arg: Option<String>, default: &[usize]) -> Vec<usize> {
    arg.map(|a| {
        a.split(',')
            .map(|n| n.parse().expect("a comma-separated list of numbers"))
            .collect()
    })
    .unwrap_or_else(|| default.to_vec())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let samples: usize = args
        .next()
        .map(|a| a.parse().expect("samples: a number"))
        .unwrap_or(5000);
    let total: usize = args
        .next()
        .map(|a| a.parse().expect("commands: a number"))
        .unwrap_or(20_000);
    let worker_counts = list(args.next(), &[1, 4, 16]);
    let depths = list(args.next(), &[1000, 10_000]);
    let redis = PrivateRedis::start(&[]);
    println!("load average at start: {}", load());

    let (received, round_trip) = panebus_latency(&redis.url, samples).await;
    let raw = raw_latency(&redis.url, samples).await;
    println!("latency dispatch -> received, panebus: {received}");
    println!("latency dispatch -> received, raw LPUSH -> BLMOVE: {raw}");
    println!("latency dispatch -> result (round trip), panebus: {round_trip}");

    // Alternate the two loops and keep the best of three runs of each: on a shared machine
    // the best run is the one least disturbed by other processes.
    for &workers in &worker_counts {
        let (mut raw, mut ours) = ((0f64, 0f64), (0f64, 0f64));
        for round in 0..3 {
            let r = raw_throughput(&redis.url, workers, total, round).await;
            if r.0 > raw.0 {
                raw = r;
            }
            let p = panebus_throughput(&redis.url, workers, total, round).await;
            if p.0 > ours.0 {
                ours = p;
            }
        }
        println!(
            "throughput, {workers} worker(s), {total} commands, {DISPATCHERS} dispatchers, best of 3: panebus {:.0}/s, raw LPUSH/BLMOVE/LREM {:.0}/s ({:.0} % of raw); redis CPU per command: panebus {:.1} us, raw {:.1} us",
            ours.0,
            raw.0,
            ours.0 / raw.0 * 100.0,
            ours.1,
            raw.1
        );
    }

    for &depth in &depths {
        let (mut raw, mut ours) = (0f64, 0f64);
        let mut enqueue = None;
        for round in 0..3 {
            raw = raw.max(raw_drain(&redis.url, depth, round).await);
            let (rate, lat) = panebus_drain(&redis.url, depth, round).await;
            if rate > ours {
                ours = rate;
                enqueue = Some(lat);
            }
        }
        println!(
            "drain a queue of {depth}, 1 worker, best of 3: panebus {ours:.0}/s, raw {raw:.0}/s ({:.0} % of raw); enqueue latency while it fills: {}",
            ours / raw * 100.0,
            enqueue.unwrap()
        );
    }
    println!("load average at end: {}", load());
}
