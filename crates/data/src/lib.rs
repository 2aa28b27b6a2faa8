//! tread's data part: datasets under an S3 prefix or a directory, the
//! preprocessing the networks expect, the batch loader, and the synthetic
//! tyre set that stands in for the recipe's photos.

pub mod augment;
pub mod dataset;
pub mod inspect;
pub mod loader;
pub mod objects;
pub mod split;
pub mod synth;
pub mod transform;

pub use augment::Augment;
pub use dataset::{Dataset, DatasetError, Sample};
pub use loader::{Batch, Loader, LoaderOptions};
pub use objects::{ObjectDir, ObjectInfo, ObjectsError, S3Access, read_uri, use_process_access};
pub use split::{SplitError, SplitSpec, epoch_order};
pub use transform::{ImageInputError, Preprocess, decode};
