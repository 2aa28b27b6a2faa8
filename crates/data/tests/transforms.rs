//! tread's preprocessing against torchvision's, on the reference values in
//! `fixtures/transforms` (made once by `make_fixture.py` with torchvision's
//! `ToTensor → Resize((224, 224)) → Normalize`, antialias on).

use std::path::Path;
use tread_data::Preprocess;

/// The promise in the README: within 1e-3 of torchvision after normalising.
const TOLERANCE: f32 = 1e-3;
/// The fixture keeps every 17th value of each 3×224×224 output.
const STRIDE: usize = 17;

fn reference(name: &str) -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transforms")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn max_difference(input: &str, expected: &str) -> f32 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transforms");
    let bytes = std::fs::read(dir.join(input)).unwrap_or_else(|e| panic!("{input}: {e}"));
    let preprocess = Preprocess::default();
    let mut out = vec![0.0; preprocess.tensor_len()];
    if let Err(e) = preprocess.load(&bytes, &mut out) {
        panic!("{input}: {e}");
    }
    let expected = reference(expected);
    assert_eq!(
        expected.len(),
        out.len().div_ceil(STRIDE),
        "{input}: fixture length"
    );
    out.iter()
        .step_by(STRIDE)
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn downscale_matches_torchvision() {
    for (input, expected) in [
        ("rgb_320x240.png", "rgb_320x240.f32"),
        ("rgb_640x480.png", "rgb_640x480.f32"),
    ] {
        let diff = max_difference(input, expected);
        assert!(diff < TOLERANCE, "{input}: max difference {diff}");
    }
}

#[test]
fn upscale_matches_torchvision() {
    let diff = max_difference("rgb_100x150.png", "rgb_100x150.f32");
    assert!(diff < TOLERANCE, "max difference {diff}");
}

#[test]
fn grayscale_is_replicated_like_pil_convert_rgb() {
    let diff = max_difference("gray_257x181.png", "gray_257x181.f32");
    assert!(diff < TOLERANCE, "max difference {diff}");
}

#[test]
fn alpha_is_dropped_like_pil_convert_rgb() {
    let diff = max_difference("rgba_224x224.png", "rgba_224x224.f32");
    assert!(diff < TOLERANCE, "max difference {diff}");
}
