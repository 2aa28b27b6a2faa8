//! A labelled image set: every image under a prefix, its class named by the
//! first path segment below the prefix, as torchvision's `ImageFolder`.

use crate::objects::ObjectInfo;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// File name endings read as images (torchvision's `IMG_EXTENSIONS` that
/// the `image` crate decodes).
const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "ppm"];

/// One labelled image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Key relative to the dataset prefix (`defective/0001.jpg`).
    pub key: String,
    /// Index into [`Dataset::classes`].
    pub class: usize,
    /// Size in bytes.
    pub size: u64,
    /// ETag (S3) or content MD5 (local).
    pub etag: String,
}

/// An object left out of the dataset, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excluded {
    /// Key relative to the prefix.
    pub key: String,
    /// Why it is not a sample.
    pub reason: &'static str,
}

/// The images under a prefix, grouped into classes.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Class names in sorted order; a class's index is its position.
    pub classes: Vec<String>,
    /// Samples sorted by key.
    pub samples: Vec<Sample>,
    /// Objects that are not samples (no class folder, not an image name).
    pub excluded: Vec<Excluded>,
}

/// Why a listing is not a usable dataset.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DatasetError {
    /// No images in class folders under the prefix.
    #[error(
        "no images under {0}: expected class folders such as {0}good/x.jpg and {0}defective/y.jpg"
    )]
    Empty(String),
    /// All images are in one class.
    #[error("only one class ({class}) under {uri}: a classifier needs at least two class folders")]
    OneClass {
        /// The dataset's URI.
        uri: String,
        /// The only class found.
        class: String,
    },
}

/// The class a key belongs to: its first path segment, when the key has
/// one below it (`good/x.jpg` → `good`; `x.jpg` → none).
pub fn class_of(key: &str) -> Option<&str> {
    match key.split_once('/') {
        Some((class, rest)) if !class.is_empty() && !rest.is_empty() => Some(class),
        _ => None,
    }
}

fn is_image_name(key: &str) -> bool {
    key.rsplit_once('.')
        .is_some_and(|(_, ext)| IMAGE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)))
}

impl Dataset {
    /// Groups a listing (as [`crate::objects::ObjectDir::list`] returns it)
    /// into classes. `uri` names the prefix in errors.
    pub fn from_listing(uri: &str, objects: Vec<ObjectInfo>) -> Result<Self, DatasetError> {
        let mut excluded = Vec::new();
        let mut labelled = Vec::new();
        for object in objects {
            match (class_of(&object.key), is_image_name(&object.key)) {
                (None, _) => excluded.push(Excluded {
                    key: object.key,
                    reason: "not in a class folder",
                }),
                (Some(_), false) => excluded.push(Excluded {
                    key: object.key,
                    reason: "not an image file name",
                }),
                (Some(class), true) => labelled.push((class.to_string(), object)),
            }
        }
        let mut classes: Vec<String> = labelled.iter().map(|(c, _)| c.clone()).collect();
        classes.sort();
        classes.dedup();
        match classes.len() {
            0 => return Err(DatasetError::Empty(uri.to_string())),
            1 => {
                return Err(DatasetError::OneClass {
                    uri: uri.to_string(),
                    class: classes.remove(0),
                });
            }
            _ => {}
        }
        let mut samples: Vec<Sample> = labelled
            .into_iter()
            .map(|(class, o)| Sample {
                class: classes.binary_search(&class).unwrap_or_default(),
                key: o.key,
                size: o.size,
                etag: o.etag,
            })
            .collect();
        samples.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            classes,
            samples,
            excluded,
        })
    }

    /// Number of samples per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for s in &self.samples {
            counts[s.class] += 1;
        }
        counts
    }

    /// `sha256:` over the sorted samples' keys, ETags and sizes: names
    /// exactly the data a model saw, and changes when any image does.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for s in &self.samples {
            hasher.update(format!("{}\t{}\t{}\n", s.key, s.etag, s.size).as_bytes());
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 10,
            etag: format!("etag-{key}"),
        }
    }

    #[test]
    fn first_segment_is_the_class() {
        assert_eq!(class_of("defective/x.jpg"), Some("defective"));
        assert_eq!(class_of("good/sub/dir/x.png"), Some("good"));
        assert_eq!(class_of("x.jpg"), None);
        assert_eq!(class_of("/x.jpg"), None);
    }

    #[test]
    fn classes_are_sorted_and_indexed() -> Result<(), DatasetError> {
        let listing = [
            "zebra/1.jpg",
            "good/2.PNG",
            "defective/3.jpeg",
            "good/a/4.webp",
            "readme.txt",
            "good/notes.txt",
        ];
        let ds = Dataset::from_listing("s3://b/p/", listing.iter().map(|k| object(k)).collect())?;
        assert_eq!(ds.classes, ["defective", "good", "zebra"]);
        assert_eq!(ds.class_counts(), [1, 2, 1]);
        let labels: Vec<_> = ds
            .samples
            .iter()
            .map(|s| (s.key.as_str(), s.class))
            .collect();
        assert_eq!(
            labels,
            [
                ("defective/3.jpeg", 0),
                ("good/2.PNG", 1),
                ("good/a/4.webp", 1),
                ("zebra/1.jpg", 2)
            ]
        );
        let excluded: Vec<_> = ds.excluded.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(excluded, ["readme.txt", "good/notes.txt"]);
        Ok(())
    }

    #[test]
    fn one_class_or_none_is_an_error() {
        let one = Dataset::from_listing("d/", vec![object("good/1.jpg")]).err();
        assert!(matches!(one, Some(DatasetError::OneClass { .. })));
        let none = Dataset::from_listing("d/", vec![object("1.jpg")]).err();
        assert_eq!(none, Some(DatasetError::Empty("d/".into())));
    }

    #[test]
    fn digest_names_keys_etags_and_sizes() -> Result<(), DatasetError> {
        let listing = || vec![object("a/1.jpg"), object("b/2.jpg")];
        let base = Dataset::from_listing("d/", listing())?.digest();
        let mut changed = listing();
        changed[1].etag = "other".into();
        assert_ne!(base, Dataset::from_listing("d/", changed)?.digest());
        let mut reordered = listing();
        reordered.reverse();
        assert_eq!(base, Dataset::from_listing("d/", reordered)?.digest());
        Ok(())
    }
}
