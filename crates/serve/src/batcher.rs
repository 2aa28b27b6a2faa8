//! Dynamic batching: requests that arrive together share one forward pass.
//! Each deployed model has one batcher thread that owns its engine, so
//! inference never runs on the async runtime's threads.

use crate::metrics::Metrics;
use crate::model::LoadedModel;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tread_nn::Tensor;

/// How requests are grouped into forward passes.
#[derive(Clone, Copy, Debug)]
pub struct BatchOptions {
    /// Most images in one forward pass.
    pub max_batch: usize,
    /// How long the first request of a batch may wait for others. Zero
    /// takes only what queued while the previous batch ran: no added
    /// latency when idle, full batches under load.
    pub max_wait: Duration,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            max_batch: 16,
            max_wait: Duration::ZERO,
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<f32>, String>>;

struct Job {
    input: Vec<f32>,
    reply: Reply,
}

/// The queue in front of one model's engine.
pub struct Batcher {
    queue: mpsc::Sender<Job>,
    input_len: usize,
}

impl Batcher {
    /// Starts the thread that runs `model`; it ends when the batcher is
    /// dropped and the queue has drained.
    pub fn start(
        model: LoadedModel,
        endpoint: String,
        options: BatchOptions,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let size = model.info.input.size as usize;
        let input_len = 3 * size * size;
        let (queue, jobs) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("infer-{endpoint}"))
            .spawn(move || run(model, jobs, options, &endpoint, &metrics))?;
        Ok(Self { queue, input_len })
    }

    /// Class probabilities of one preprocessed image (`[3, s, s]`, flat).
    pub async fn infer(&self, input: Vec<f32>) -> Result<Vec<f32>, String> {
        if input.len() != self.input_len {
            return Err(format!(
                "the input holds {} values; this model takes {}",
                input.len(),
                self.input_len
            ));
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { input, reply })
            .map_err(|_| "the model is shutting down".to_string())?;
        answer
            .await
            .map_err(|_| "the model stopped before answering".to_string())?
    }
}

fn run(
    mut model: LoadedModel,
    jobs: mpsc::Receiver<Job>,
    options: BatchOptions,
    endpoint: &str,
    metrics: &Metrics,
) {
    let size = model.info.input.size as usize;
    let classes = model.info.classes.len();
    let mut batch = Tensor::default();
    while let Ok(first) = jobs.recv() {
        let group = gather(first, &jobs, options);
        batch.resize(&[group.len(), 3, size, size]);
        for (slot, job) in batch
            .data_mut()
            .chunks_exact_mut(3 * size * size)
            .zip(&group)
        {
            slot.copy_from_slice(&job.input);
        }
        metrics.observe_batch(endpoint, group.len());
        match model.engine.probabilities(&batch, classes) {
            Ok(rows) => {
                for (job, row) in group.into_iter().zip(rows) {
                    let _ = job.reply.send(Ok(row));
                }
            }
            Err(e) => {
                tracing::error!(endpoint, error = %e, "inference failed");
                for job in group {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// The first job plus whatever else is queued, up to the batch limit,
/// waiting at most `max_wait` for more.
fn gather(first: Job, jobs: &mpsc::Receiver<Job>, options: BatchOptions) -> Vec<Job> {
    let deadline = Instant::now() + options.max_wait;
    let mut group = vec![first];
    while group.len() < options.max_batch.max(1) {
        let next = match jobs.try_recv() {
            Ok(job) => Ok(job),
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                jobs.recv_timeout(left)
            }
        };
        match next {
            Ok(job) => group.push(job),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    group
}
