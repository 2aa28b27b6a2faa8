//! The batch loader over a real directory of PNG files and one corrupt file.

use image::{ImageFormat, RgbImage};
use tread_data::{Dataset, Loader, LoaderOptions, ObjectDir, Preprocess};

fn write_dataset(root: &std::path::Path) {
    for (class, colour) in [("blue", [0, 0, 200]), ("red", [200, 0, 0])] {
        std::fs::create_dir_all(root.join(class)).expect("class dir");
        for i in 0..5 {
            let image = RgbImage::from_pixel(20 + i, 16, image::Rgb(colour));
            image
                .save_with_format(root.join(format!("{class}/{i}.png")), ImageFormat::Png)
                .expect("write png");
        }
    }
    std::fs::write(root.join("red/broken.png"), b"\x89PNG\r\n\x1a\n truncated").expect("write");
}

fn open_loader(cache_bytes: u64) -> (tempfile::TempDir, tokio::runtime::Runtime, Loader, Dataset) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_dataset(dir.path());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let objects = ObjectDir::Local(dir.path().to_path_buf());
    let listing = runtime.block_on(objects.list()).expect("list");
    let dataset = Dataset::from_listing("test/", listing).expect("dataset");
    let preprocess = Preprocess {
        size: 8,
        ..Preprocess::default()
    };
    let options = LoaderOptions {
        cache_bytes,
        concurrency: 4,
        ..LoaderOptions::default()
    };
    let loader = Loader::new(
        objects,
        dataset.samples.clone(),
        preprocess,
        options,
        runtime.handle().clone(),
    );
    (dir, runtime, loader, dataset)
}

#[test]
fn batches_follow_the_order_and_skip_the_corrupt_image() {
    let (_dir, _runtime, loader, dataset) = open_loader(1 << 20);
    let order: Vec<usize> = (0..dataset.samples.len()).rev().collect();
    let batches: Vec<_> = loader.batches(order.clone(), 4).collect();
    let indices: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    let broken = dataset
        .samples
        .iter()
        .position(|s| s.key == "red/broken.png")
        .expect("listed");
    let expected: Vec<usize> = order.into_iter().filter(|&i| i != broken).collect();
    assert_eq!(indices, expected);
    for batch in &batches {
        assert_eq!(batch.images.shape(), [batch.labels.len(), 3, 8, 8]);
        for (label, index) in batch.labels.iter().zip(&batch.indices) {
            assert_eq!(*label, dataset.samples[*index].class);
        }
    }
    assert_eq!(
        loader.failures().keys().collect::<Vec<_>>(),
        ["red/broken.png"]
    );
}

#[test]
fn preload_fills_the_cache_up_to_its_budget() {
    let one_image = (3 * 8 * 8 * size_of::<f32>()) as u64;
    let (_dir, _runtime, loader, dataset) = open_loader(1 << 20);
    loader.preload((0..dataset.samples.len()).collect(), 4);
    assert_eq!(loader.cached(), 10, "every readable image is in memory");
    let (_dir, _runtime, small, dataset) = open_loader(3 * one_image);
    small.preload((0..dataset.samples.len()).collect(), 4);
    assert_eq!(small.cached(), 3, "the budget caps the cache");
}
