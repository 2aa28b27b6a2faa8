//! Times the forward and backward pass of each distinct layer of
//! resnet-small (`tread_nn`'s default network) on random data, at the
//! network's shapes for one input size and batch: where a training step's
//! time goes, layer by layer, so that a kernel change can be measured where
//! it acts. Each layer is timed alone on inputs it has just seen, so the sum
//! is below a step's time (`tread-bench-train --model resnet-small`), which
//! also pays residual sums, the head, the optimiser and colder caches.

use anyhow::Context;
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tread_nn::Tensor;
use tread_nn::layer::{Layer, Mode};
use tread_nn::layers::batchnorm::BatchNorm2d;
use tread_nn::layers::conv::{Conv2d, ConvSpec};
use tread_nn::layers::pool::MaxPool2d;

/// Same allocator as the `tread` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Per-layer benchmark of resnet-small.
#[derive(Parser)]
struct Args {
    /// Input side of the network.
    #[arg(long, default_value_t = 112)]
    size: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Timed passes per layer (the median is printed), after two untimed.
    #[arg(long, default_value_t = 15)]
    reps: usize,
}

/// One layer to time: its name, how often the network runs a layer of this
/// shape, the input shape, and whether backward computes the input's
/// gradient (not for the first layer, whose input is the image).
struct Case {
    name: String,
    count: usize,
    layer: Box<dyn Layer>,
    input: [usize; 4],
    input_grad: bool,
}

fn main() -> anyhow::Result<()> {
    tread_nn::fpenv::flush_denormals_to_zero();
    let args = Args::parse();
    anyhow::ensure!(args.size >= 32, "--size must be at least 32");
    anyhow::ensure!(
        args.reps >= 1 && args.batch >= 1,
        "--reps and --batch must be at least 1"
    );
    let mut total = 0.0;
    for mut case in cases(args.batch, args.size) {
        let (forward, backward) = time(&mut case, args.reps)?;
        total += (forward + backward) * case.count as f64;
        println!(
            "{:34} x{}  forward {:7.2} ms  backward {:7.2} ms",
            case.name, case.count, forward, backward
        );
    }
    println!("sum over the network: {total:.1} ms");
    Ok(())
}

/// The distinct layers of resnet-small (widths 24, 24, 48, 96, 192; see
/// `tread_nn::network`) at the shapes a batch meets them.
fn cases(batch: usize, size: usize) -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut conv = |i, o, k, s| -> Box<dyn Layer> {
        let spec = ConvSpec {
            in_channels: i,
            out_channels: o,
            kernel: k,
            stride: s,
            padding: k / 2,
            bias: false,
            relu: false,
        };
        Box::new(Conv2d::new(spec, &mut rng))
    };
    let bn = |c, relu| -> Box<dyn Layer> { Box::new(BatchNorm2d::new(c, relu)) };
    let case = |name: String, count, layer, input, input_grad| Case {
        name,
        count,
        layer,
        input,
        input_grad,
    };
    let stem = size.div_ceil(2);
    let mut side = stem.div_ceil(2);
    let mut cases = vec![
        case(
            format!("stem conv 3→24 /2 @{size}"),
            1,
            conv(3, 24, 3, 2),
            [batch, 3, size, size],
            false,
        ),
        case(
            format!("stem bn+relu 24 @{stem}"),
            1,
            bn(24, true),
            [batch, 24, stem, stem],
            true,
        ),
        case(
            format!("max pool 3/2 @{stem}"),
            1,
            Box::new(MaxPool2d::new(3, 2, 1)),
            [batch, 24, stem, stem],
            true,
        ),
        case(
            format!("layer1 conv 24→24 @{side}"),
            2,
            conv(24, 24, 3, 1),
            [batch, 24, side, side],
            true,
        ),
        case(
            format!("layer1 bn 24 @{side}"),
            2,
            bn(24, true),
            [batch, 24, side, side],
            true,
        ),
    ];
    for (i, (c_in, c_out)) in [(24, 48), (48, 96), (96, 192)].into_iter().enumerate() {
        let (layer, out) = (i + 2, side.div_ceil(2));
        cases.extend([
            case(
                format!("layer{layer} conv {c_in}→{c_out} /2 @{side}"),
                1,
                conv(c_in, c_out, 3, 2),
                [batch, c_in, side, side],
                true,
            ),
            case(
                format!("layer{layer} conv {c_out}→{c_out} @{out}"),
                1,
                conv(c_out, c_out, 3, 1),
                [batch, c_out, out, out],
                true,
            ),
            case(
                format!("layer{layer} shortcut 1×1 /2 @{side}"),
                1,
                conv(c_in, c_out, 1, 2),
                [batch, c_in, side, side],
                true,
            ),
            case(
                format!("layer{layer} bn {c_out} @{out}"),
                3,
                bn(c_out, true),
                [batch, c_out, out, out],
                true,
            ),
        ]);
        side = out;
    }
    cases
}

/// Median forward and backward milliseconds of one case.
fn time(case: &mut Case, reps: usize) -> anyhow::Result<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let shape = case
        .layer
        .output_shape(&case.input)
        .map_err(anyhow::Error::msg)?;
    let input = random(&case.input, &mut rng)?;
    let grad_output = random(&shape, &mut rng)?;
    let mut output = Tensor::zeros(&shape);
    let mut grad_input = Tensor::zeros(&case.input);
    let (mut forward, mut backward) = (Vec::new(), Vec::new());
    for rep in 0..reps + 2 {
        let started = Instant::now();
        case.layer.forward(&input, &mut output, Mode::Train);
        let forward_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let grad = case.input_grad.then_some(&mut grad_input);
        case.layer.backward(&input, &output, &grad_output, grad);
        if rep >= 2 {
            forward.push(forward_s * 1e3);
            backward.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((median(forward)?, median(backward)?))
}

fn random(shape: &[usize], rng: &mut ChaCha8Rng) -> anyhow::Result<Tensor> {
    let len = shape.iter().product();
    let values = (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Ok(Tensor::from_vec(shape, values)?)
}

fn median(mut values: Vec<f64>) -> anyhow::Result<f64> {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len() / 2)
        .copied()
        .context("no timed passes")
}
