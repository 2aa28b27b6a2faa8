//! What is in a dataset: classes, counts, sizes, and which images do not
//! decode.

use crate::dataset::Dataset;
use crate::objects::ObjectDir;
use crate::transform::decode;
use futures::StreamExt;
use image::ColorType;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// Images fetched before they are decoded together.
const INSPECT_CHUNK: usize = 256;

/// The figures of one class.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ClassSummary {
    /// Class name.
    pub name: String,
    /// Images listed.
    pub images: usize,
    /// Bytes listed.
    pub bytes: u64,
}

/// Everything `tread data inspect` reports.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Inspection {
    /// Per class, in class order.
    pub classes: Vec<ClassSummary>,
    /// Smallest width and height seen.
    pub min_size: Option<(u32, u32)>,
    /// Largest width and height seen.
    pub max_size: Option<(u32, u32)>,
    /// Images by colour type as decoded (`Rgb8`, `L8`, …).
    pub color_types: BTreeMap<String, usize>,
    /// Images that could not be fetched or decoded, with the reason.
    pub unreadable: Vec<(String, String)>,
    /// Objects left out of the dataset, with the reason.
    pub excluded: Vec<(String, String)>,
    /// [`Dataset::digest`].
    pub digest: String,
}

enum Outcome {
    Decoded {
        width: u32,
        height: u32,
        color: ColorType,
    },
    Failed(String),
}

/// Fetches and decodes every image (`concurrency` requests in flight,
/// decoding on all cores).
pub async fn inspect(dir: &ObjectDir, dataset: &Dataset, concurrency: usize) -> Inspection {
    let mut classes: Vec<ClassSummary> = dataset
        .classes
        .iter()
        .map(|name| ClassSummary {
            name: name.clone(),
            ..ClassSummary::default()
        })
        .collect();
    for s in &dataset.samples {
        classes[s.class].images += 1;
        classes[s.class].bytes += s.size;
    }
    let mut inspection = Inspection {
        classes,
        excluded: dataset
            .excluded
            .iter()
            .map(|e| (e.key.clone(), e.reason.to_string()))
            .collect(),
        digest: dataset.digest(),
        ..Inspection::default()
    };
    // A chunk at a time, so memory holds one chunk of encoded images
    // rather than the whole dataset.
    let mut chunks = futures::stream::iter(&dataset.samples)
        .map(|s| async move { (s.key.clone(), dir.get(&s.key).await) })
        .buffered(concurrency.max(1))
        .chunks(INSPECT_CHUNK);
    while let Some(fetched) = chunks.next().await {
        let outcomes: Vec<(String, Outcome)> = fetched
            .into_par_iter()
            .map(|(key, bytes)| {
                let decoded = bytes
                    .map_err(|e| e.to_string())
                    .and_then(|b| decode(&b).map_err(|e| e.to_string()));
                let outcome = match decoded {
                    Ok(image) => Outcome::Decoded {
                        width: image.width(),
                        height: image.height(),
                        color: image.color(),
                    },
                    Err(reason) => Outcome::Failed(reason),
                };
                (key, outcome)
            })
            .collect();
        for (key, outcome) in outcomes {
            inspection.record(key, outcome);
        }
    }
    inspection
}

impl Inspection {
    fn record(&mut self, key: String, outcome: Outcome) {
        match outcome {
            Outcome::Decoded {
                width,
                height,
                color,
            } => {
                let (w0, h0) = self.min_size.unwrap_or((width, height));
                self.min_size = Some((w0.min(width), h0.min(height)));
                let (w1, h1) = self.max_size.unwrap_or((width, height));
                self.max_size = Some((w1.max(width), h1.max(height)));
                *self.color_types.entry(format!("{color:?}")).or_default() += 1;
            }
            Outcome::Failed(reason) => self.unreadable.push((key, reason)),
        }
    }

    /// A plain-text report.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let total: usize = self.classes.iter().map(|c| c.images).sum();
        out.push_str(&format!(
            "{total} images in {} classes\n",
            self.classes.len()
        ));
        for (index, c) in self.classes.iter().enumerate() {
            out.push_str(&format!(
                "  {index}  {:<16} {:>6} images  {:>8.1} MiB\n",
                c.name,
                c.images,
                c.bytes as f64 / f64::from(1 << 20)
            ));
        }
        if let (Some(min), Some(max)) = (self.min_size, self.max_size) {
            out.push_str(&format!(
                "sizes from {}×{} to {}×{}\n",
                min.0, min.1, max.0, max.1
            ));
        }
        let colors: Vec<String> = self
            .color_types
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        out.push_str(&format!("colour types: {}\n", colors.join(", ")));
        out.push_str(&format!("unreadable: {}\n", self.unreadable.len()));
        for (key, reason) in &self.unreadable {
            out.push_str(&format!("  {key}: {reason}\n"));
        }
        if !self.excluded.is_empty() {
            out.push_str(&format!("left out: {}\n", self.excluded.len()));
            for (key, reason) in &self.excluded {
                out.push_str(&format!("  {key}: {reason}\n"));
            }
        }
        out.push_str(&format!("digest {}\n", self.digest));
        out
    }
}
