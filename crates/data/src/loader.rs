//! Batches of preprocessed images, fetched with many requests in flight,
//! decoded on every core, prepared while the previous batch trains.

use crate::dataset::Sample;
use crate::objects::ObjectDir;
use crate::transform::Preprocess;
use bytes::Bytes;
use futures::StreamExt;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tread_nn::Tensor;

/// How the loader fetches and what it keeps.
#[derive(Clone, Debug)]
pub struct LoaderOptions {
    /// GET requests in flight at once.
    pub concurrency: usize,
    /// Memory for decoded images kept across epochs, in bytes; images
    /// beyond it are fetched and decoded again each epoch.
    pub cache_bytes: u64,
    /// Batches prepared ahead of the one being consumed.
    pub prefetch: usize,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        Self {
            concurrency: 32,
            cache_bytes: 4 << 30,
            prefetch: 1,
        }
    }
}

/// A batch ready for the network.
#[derive(Debug)]
pub struct Batch {
    /// `[n, 3, size, size]`.
    pub images: Tensor,
    /// Class index of each image.
    pub labels: Vec<usize>,
    /// Dataset index of each image.
    pub indices: Vec<usize>,
}

/// Loads samples of one dataset as batches.
pub struct Loader {
    shared: Arc<Shared>,
    runtime: Handle,
}

struct Shared {
    dir: ObjectDir,
    samples: Vec<Sample>,
    preprocess: Preprocess,
    options: LoaderOptions,
    cache: Mutex<TensorCache>,
    failures: Mutex<BTreeMap<String, String>>,
    decoders: Option<rayon::ThreadPool>,
}

/// Decoded images by dataset index, up to a byte budget.
#[derive(Default)]
struct TensorCache {
    tensors: HashMap<usize, Arc<Vec<f32>>>,
    bytes: u64,
}

/// Where one image comes from: the cache, the store, or nowhere.
enum Fetched {
    Cached(Arc<Vec<f32>>),
    Bytes(Bytes),
    Failed,
}

impl Loader {
    /// A loader over `samples` (keys relative to `dir`). Requests run on
    /// `runtime`; batches are consumed from a plain thread.
    pub fn new(
        dir: ObjectDir,
        samples: Vec<Sample>,
        preprocess: Preprocess,
        options: LoaderOptions,
        runtime: Handle,
    ) -> Self {
        let shared = Shared {
            dir,
            samples,
            preprocess,
            options,
            cache: Mutex::default(),
            failures: Mutex::default(),
            decoders: decode_pool(),
        };
        Self {
            shared: Arc::new(shared),
            runtime,
        }
    }

    /// Batches of the samples at `order`, in that order, `batch_size` at a
    /// time (fewer where images fail or at the end). Work starts at once
    /// and runs ahead of the consumer by the prefetch depth.
    pub fn batches(&self, order: Vec<usize>, batch_size: usize) -> Batches {
        let (sender, receiver) = mpsc::channel(self.shared.options.prefetch.max(1));
        let shared = Arc::clone(&self.shared);
        let runtime = self.runtime.clone();
        std::thread::spawn(move || {
            runtime.block_on(produce(shared, order, batch_size.max(1), sender))
        });
        Batches { receiver }
    }

    /// Fetches and decodes the samples at `indices` into the cache (as far
    /// as it holds them) before training starts, so that every epoch,
    /// the first included, trains from memory.
    pub fn preload(&self, indices: Vec<usize>, batch_size: usize) {
        self.batches(indices, batch_size).for_each(drop);
    }

    /// Images skipped so far, by key, with the reason.
    pub fn failures(&self) -> BTreeMap<String, String> {
        self.shared
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Number of decoded images held in memory.
    pub fn cached(&self) -> usize {
        self.shared
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tensors
            .len()
    }
}

/// The batches of one pass, as they become ready.
pub struct Batches {
    receiver: mpsc::Receiver<Batch>,
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.receiver.blocking_recv()
    }
}

async fn produce(
    shared: Arc<Shared>,
    order: Vec<usize>,
    batch_size: usize,
    sender: mpsc::Sender<Batch>,
) {
    let concurrency = shared.options.concurrency.max(1);
    let mut fetched = futures::stream::iter(order)
        .map(|index| {
            // Spawned, so requests keep flowing on the runtime's workers
            // while this thread decodes the previous batch.
            let shared = Arc::clone(&shared);
            tokio::spawn(async move { (index, shared.fetch(index).await) })
        })
        .buffered(concurrency)
        .chunks(batch_size);
    while let Some(items) = fetched.next().await {
        let items = items.into_iter().filter_map(|joined| joined.ok()).collect();
        let batch = shared.assemble(items);
        if batch.labels.is_empty() {
            continue;
        }
        if sender.send(batch).await.is_err() {
            return;
        }
    }
}

/// Decoding gets threads of its own, in Linux's idle scheduling class. On
/// rayon's global pool, which the training kernels use, a worker busy
/// decoding holds up a whole parallel matrix product while the other core
/// waits; as idle-class threads, decoders take only the time the training
/// leaves free, and all of it when the training waits for its next batch.
fn decode_pool() -> Option<rayon::ThreadPool> {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("decode-{i}"))
        .start_handler(|_| {
            let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
            // Where the class is not available the decoders run at normal
            // priority, which is only slower.
            let _ = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle);
        })
        .build()
        .ok()
}

impl Shared {
    async fn fetch(&self, index: usize) -> Fetched {
        if let Some(tensor) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tensors
            .get(&index)
        {
            return Fetched::Cached(Arc::clone(tensor));
        }
        let key = &self.samples[index].key;
        if self
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
        {
            return Fetched::Failed;
        }
        match self.dir.get(key).await {
            Ok(bytes) => Fetched::Bytes(bytes),
            Err(e) => {
                self.fail(key, e.to_string());
                Fetched::Failed
            }
        }
    }

    /// Decodes what is not cached, on all cores, straight into the batch.
    fn assemble(&self, items: Vec<(usize, Fetched)>) -> Batch {
        let len = self.preprocess.tensor_len();
        let decode_all = || -> Vec<(usize, Option<Arc<Vec<f32>>>)> {
            items
                .into_par_iter()
                .map(|(index, fetched)| (index, self.decode(index, fetched, len)))
                .collect()
        };
        let decoded = match &self.decoders {
            Some(pool) => pool.install(decode_all),
            None => decode_all(),
        };
        let kept: Vec<(usize, Arc<Vec<f32>>)> = decoded
            .into_iter()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .collect();
        let side = self.preprocess.size as usize;
        let mut images = Tensor::zeros(&[kept.len(), 3, side, side]);
        for (slot, (_, tensor)) in images.data_mut().chunks_exact_mut(len).zip(&kept) {
            slot.copy_from_slice(tensor);
        }
        Batch {
            images,
            labels: kept.iter().map(|(i, _)| self.samples[*i].class).collect(),
            indices: kept.iter().map(|(i, _)| *i).collect(),
        }
    }

    fn decode(&self, index: usize, fetched: Fetched, len: usize) -> Option<Arc<Vec<f32>>> {
        let bytes = match fetched {
            Fetched::Cached(tensor) => return Some(tensor),
            Fetched::Failed => return None,
            Fetched::Bytes(bytes) => bytes,
        };
        let mut tensor = vec![0.0; len];
        if let Err(e) = self.preprocess.load(&bytes, &mut tensor) {
            self.fail(&self.samples[index].key, e.to_string());
            return None;
        }
        let tensor = Arc::new(tensor);
        self.remember(index, &tensor);
        Some(tensor)
    }

    fn remember(&self, index: usize, tensor: &Arc<Vec<f32>>) {
        let size = (tensor.len() * size_of::<f32>()) as u64;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.bytes + size <= self.options.cache_bytes && !cache.tensors.contains_key(&index) {
            cache.tensors.insert(index, Arc::clone(tensor));
            cache.bytes += size;
        }
    }

    fn fail(&self, key: &str, reason: String) {
        tracing::warn!(key, %reason, "skipping image");
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string(), reason);
    }
}
