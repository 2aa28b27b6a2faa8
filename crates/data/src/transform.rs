//! Image decoding and the preprocessing the networks expect.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageReader};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use thiserror::Error;

/// Images with more pixels are refused before decoding, so a small file
/// that claims a huge size (a decompression bomb) costs nothing. PIL warns
/// at 89 MP; real photos for classifiers are far below this.
pub const MAX_PIXELS: u64 = 40_000_000;

/// Why an image could not be turned into a tensor.
#[derive(Debug, Error)]
pub enum ImageInputError {
    /// The bytes are not an image in a supported format, or are damaged.
    #[error("not a readable image (JPEG, PNG, WebP, BMP or GIF): {0}")]
    Decode(#[from] image::ImageError),
    /// The image claims more pixels than [`MAX_PIXELS`].
    #[error("image is {width}×{height}, more than the {MAX_PIXELS} pixels allowed")]
    TooLarge {
        /// Claimed width.
        width: u32,
        /// Claimed height.
        height: u32,
    },
    /// The image has no pixels.
    #[error("image has no pixels")]
    Empty,
    /// The resizer refused the geometry.
    #[error("cannot resize the image: {0}")]
    Resize(String),
}

/// What turns an image into a network input: torchvision's
/// `ToTensor → Resize((size, size)) → Normalize(mean, std)`. Stored in
/// `model.json` so serving preprocesses as training did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Side of the square input, in pixels.
    pub size: u32,
    /// Per-channel mean subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f32; 3],
}

impl Default for Preprocess {
    /// The recipe's 224×224 with ImageNet statistics.
    fn default() -> Self {
        Self {
            size: 224,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

/// Decodes JPEG, PNG, WebP, BMP or GIF bytes, refusing oversized images
/// before allocating their pixels.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ImageInputError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(image::ImageError::IoError)?;
    let decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageInputError::TooLarge { width, height });
    }
    if width == 0 || height == 0 {
        return Err(ImageInputError::Empty);
    }
    Ok(DynamicImage::from_decoder(decoder)?)
}

impl Preprocess {
    /// Values per preprocessed image (3 × size × size).
    pub fn tensor_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Decodes and preprocesses one image into `out` (CHW, [`Self::tensor_len`]).
    pub fn load(&self, bytes: &[u8], out: &mut [f32]) -> Result<(), ImageInputError> {
        self.apply(&decode(bytes)?, out)
    }

    /// Preprocesses a decoded image into `out` (CHW, [`Self::tensor_len`]).
    ///
    /// As the recipe does, pixels become floats in [0, 1] *before* the
    /// resize: resizing 8-bit pixels first rounds away ~9e-3 after
    /// normalisation, beyond the 1e-3 we promise against torchvision.
    /// Grayscale is replicated and alpha dropped, as PIL's
    /// `convert("RGB")` does.
    pub fn apply(&self, image: &DynamicImage, out: &mut [f32]) -> Result<(), ImageInputError> {
        let converted;
        let rgb = match image {
            DynamicImage::ImageRgb8(rgb) => rgb,
            other => {
                converted = other.to_rgb8();
                &converted
            }
        };
        let (width, height) = rgb.dimensions();
        // Pixels stay in 0–255 through the resize, which is linear, and
        // the division by 255 joins the normalisation: one pass fewer.
        let mut pixels: Vec<f32> = rgb.as_raw().iter().map(|&v| f32::from(v)).collect();
        let side = self.size;
        let resized = if (width, height) == (side, side) {
            pixels
        } else {
            resize(&mut pixels, width, height, side)?
        };
        let plane = side as usize * side as usize;
        for (c, channel) in out.chunks_exact_mut(plane).take(3).enumerate() {
            // (v/255 − mean)/std as v·scale − shift.
            let scale = 1.0 / (255.0 * self.std[c]);
            let shift = self.mean[c] / self.std[c];
            for (o, px) in channel.iter_mut().zip(resized.chunks_exact(3)) {
                *o = px[c] * scale - shift;
            }
        }
        Ok(())
    }
}

/// Antialiased bilinear resize of interleaved RGB floats to side × side:
/// fast_image_resize's convolution filter, which follows PIL's and
/// therefore torchvision's `antialias=True`.
fn resize(
    pixels: &mut [f32],
    width: u32,
    height: u32,
    side: u32,
) -> Result<Vec<f32>, ImageInputError> {
    let failed = |e: &dyn std::fmt::Display| ImageInputError::Resize(e.to_string());
    let source = Image::from_slice_u8(
        width,
        height,
        bytemuck::cast_slice_mut(pixels),
        PixelType::F32x3,
    )
    .map_err(|e| failed(&e))?;
    let mut resized = vec![0.0f32; 3 * side as usize * side as usize];
    let mut target = Image::from_slice_u8(
        side,
        side,
        bytemuck::cast_slice_mut(&mut resized),
        PixelType::F32x3,
    )
    .map_err(|e| failed(&e))?;
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&source, &mut target, &options)
        .map_err(|e| failed(&e))?;
    Ok(resized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, RgbImage};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let written = image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png);
        assert!(written.is_ok());
        bytes
    }

    /// A BMP header that claims `width`×`height` pixels and holds none.
    fn bmp_header(width: i32, height: i32) -> Vec<u8> {
        let mut b = b"BM".to_vec();
        b.extend_from_slice(&(54u32 + 4).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&54u32.to_le_bytes());
        b.extend_from_slice(&40u32.to_le_bytes());
        b.extend_from_slice(&width.to_le_bytes());
        b.extend_from_slice(&height.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&24u16.to_le_bytes());
        b.extend_from_slice(&[0; 24]);
        b.extend_from_slice(&[0; 4]);
        b
    }

    #[test]
    fn decompression_bomb_is_refused_before_decoding() {
        let err = decode(&bmp_header(20_000, 20_000)).err();
        assert!(
            matches!(
                err,
                Some(ImageInputError::TooLarge {
                    width: 20_000,
                    height: 20_000
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn garbage_and_truncated_images_are_errors() {
        assert!(matches!(
            decode(b"hello, not an image"),
            Err(ImageInputError::Decode(_))
        ));
        let whole = png(64, 48);
        assert!(decode(&whole).is_ok());
        assert!(matches!(
            decode(&whole[..whole.len() / 2]),
            Err(ImageInputError::Decode(_))
        ));
    }

    #[test]
    fn output_has_the_configured_side() -> Result<(), ImageInputError> {
        let preprocess = Preprocess {
            size: 32,
            ..Preprocess::default()
        };
        let mut out = vec![f32::NAN; preprocess.tensor_len()];
        preprocess.load(&png(50, 20), &mut out)?;
        assert!(out.iter().all(|v| v.is_finite()));
        Ok(())
    }
}
