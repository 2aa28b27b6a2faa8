//! Samples, their median, and the CPU time spent by the server and by this
//! process while they were taken.

use std::fs;
use std::time::Instant;

use serde_json::{Value, json};

/// Linux reports `/proc/<pid>/stat` times in USER_HZ, 100 on every architecture we run on.
const USER_HZ: f64 = 100.0;

/// Wall time and CPU time of what was measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Wall-clock seconds.
    pub wall: f64,
    /// CPU seconds of the server under test (tread or nginx), if known.
    pub server_cpu: f64,
    /// CPU seconds of this process (the client, or the raw baseline itself).
    pub client_cpu: f64,
}

impl Usage {
    fn add(&mut self, other: Usage) {
        self.wall += other.wall;
        self.server_cpu += other.server_cpu;
        self.client_cpu += other.client_cpu;
    }
}

/// A measurement in progress: started clocks of the wall and both processes.
pub struct Span {
    started: Instant,
    server: Option<u32>,
    server_cpu: (f64, f64),
    client_cpu: (f64, f64),
}

impl Span {
    /// Starts measuring; `server` is the pid whose CPU time (with its direct
    /// children, for nginx's workers) is charged to the server.
    pub fn start(server: Option<u32>) -> Self {
        Self {
            server_cpu: server.map_or((0.0, 0.0), tree_cpu),
            client_cpu: self_cpu(),
            server,
            started: Instant::now(),
        }
    }

    /// Stops measuring.
    pub fn stop(self) -> Usage {
        let wall = self.started.elapsed().as_secs_f64();
        Usage {
            wall,
            server_cpu: cpu_delta(self.server_cpu, self.server.map_or((0.0, 0.0), tree_cpu)),
            client_cpu: cpu_delta(self.client_cpu, self_cpu()),
        }
    }
}

/// The samples of one figure (in its row's unit) and the usage summed over them.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// Each sample, in the order taken.
    pub samples: Vec<f64>,
    /// Usage summed over all samples.
    pub usage: Usage,
}

impl Figure {
    /// Adds one sample and the usage it took.
    pub fn push(&mut self, value: f64, usage: Usage) {
        self.samples.push(value);
        self.usage.add(usage);
    }

    /// The median sample (the mean of the middle two for an even count).
    pub fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        }
    }

    /// The smallest sample.
    pub fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The largest sample.
    pub fn max(&self) -> f64 {
        self.samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// Server and client CPU as a share of one core over the measured wall time.
    pub fn cpu_shares(&self) -> (f64, f64) {
        let w = self.usage.wall.max(1e-9);
        (self.usage.server_cpu / w, self.usage.client_cpu / w)
    }

    /// Everything known about this figure.
    pub fn json(&self) -> Value {
        let (server, client) = self.cpu_shares();
        json!({
            "median": self.median(),
            "min": self.min(),
            "max": self.max(),
            "samples": self.samples,
            "wall_s": self.usage.wall,
            "server_cpu_s": self.usage.server_cpu,
            "client_cpu_s": self.usage.client_cpu,
            "server_cores_busy": server,
            "client_cores_busy": client,
        })
    }
}

/// Decimal megabytes per second.
pub fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds.max(1e-9)
}

/// `len` deterministic pseudo-random bytes (xorshift), so nothing compresses
/// or dedups them.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// CPU seconds of `pid` two ways: the scheduler's nanosecond counters of its
/// live threads (`/proc/<pid>/task/*/schedstat`: precise, but a thread that
/// exits takes its time with it), and utime + stime of `/proc/<pid>/stat`
/// (counts exited threads, in 10 ms ticks).
fn pid_cpu(pid: &str) -> (f64, f64) {
    let sched_ns: u64 = fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let ticks = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| parse_stat_ticks(&t))
        .unwrap_or(0.0);
    (sched_ns as f64 / 1e9, ticks / USER_HZ)
}

/// utime + stime, in ticks, of `/proc/<pid>/stat` text.
fn parse_stat_ticks(text: &str) -> Option<f64> {
    // The command name may hold spaces; the fields we want follow its ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds (both ways) of `pid` and its direct children (nginx's master and workers).
fn tree_cpu(pid: u32) -> (f64, f64) {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(pid_cpu)
        .fold(pid_cpu(&pid.to_string()), |(a, b), (c, d)| (a + c, b + d))
}

fn self_cpu() -> (f64, f64) {
    pid_cpu("self")
}

/// CPU seconds between two readings: the precise counters, unless threads
/// that exited in between make the tick counters clearly larger.
fn cpu_delta(before: (f64, f64), after: (f64, f64)) -> f64 {
    let sched = after.0 - before.0;
    let ticks = after.1 - before.1;
    if ticks > sched + 2.0 / USER_HZ {
        ticks
    } else {
        sched.max(0.0)
    }
}
