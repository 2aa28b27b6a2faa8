//! Times training steps of tread's engine on random data, the same work as
//! `bench/train/pytorch_seed_cnn.py` does in PyTorch, and prints one JSON
//! line in the same shape so `bench/train.sh` can divide the two.

use anyhow::Context;
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tread_nn::loss::cross_entropy;
use tread_nn::{Adam, Architecture, Mode, Network, Tensor};

/// Same allocator as the `tread` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Training-step benchmark.
#[derive(Parser)]
struct Args {
    /// Network.
    #[arg(long, default_value = "seed-cnn")]
    model: Architecture,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Input side.
    #[arg(long, default_value_t = 224)]
    size: usize,
}

fn main() -> anyhow::Result<()> {
    tread_nn::fpenv::flush_denormals_to_zero();
    let args = Args::parse();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let len = args.batch * 3 * args.size * args.size;
    let images = Tensor::from_vec(
        &[args.batch, 3, args.size, args.size],
        (0..len).map(|_| rng.random_range(-2.0f32..2.0)).collect(),
    )?;
    let labels: Vec<usize> = (0..args.batch).map(|_| rng.random_range(0..2)).collect();
    let mut network = Network::new(args.model, 2, args.size, 0)?;
    let mut adam = Adam::new(1e-3);
    let mut grad = Tensor::default();
    let (mut times, mut losses) = (Vec::new(), Vec::new());
    for step in 0..args.warmup + args.steps {
        let started = Instant::now();
        let logits = network.forward(&images, Mode::Train)?;
        losses.push(cross_entropy(logits, &labels, &mut grad));
        network.backward(&images, &grad);
        network.apply(&mut adam);
        if step >= args.warmup {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = *sorted.get(sorted.len() / 2).context("no timed steps")?;
    let report = serde_json::json!({
        "framework": "tread",
        "model": args.model.name(),
        "size": args.size,
        "batch": args.batch,
        "steps": args.steps,
        "median_step_s": median,
        "images_per_s": args.batch as f64 / median,
        "step_s": times,
        "losses": losses,
        "peak_rss_mb": peak_rss_mb(),
        "threads": rayon_threads(),
    });
    println!("{report}");
    Ok(())
}

/// Peak resident memory from /proc (Linux), 0 elsewhere.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
