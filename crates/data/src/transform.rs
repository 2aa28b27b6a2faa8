//! Image decoding and the preprocessing the networks expect.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
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
    /// A JPEG whose data stops before its end-of-image marker: the file was
    /// cut short. The decoder would fill the missing part with grey.
    #[error(
        "not a readable image: the JPEG is truncated (its data stops before the end-of-image marker); send the whole file"
    )]
    Truncated,
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
/// before allocating their pixels, and truncated JPEGs, which the decoder
/// would complete with grey.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ImageInputError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(image::ImageError::IoError)?;
    let jpeg = reader.format() == Some(ImageFormat::Jpeg);
    let decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageInputError::TooLarge { width, height });
    }
    if width == 0 || height == 0 {
        return Err(ImageInputError::Empty);
    }
    if jpeg && !jpeg_is_complete(bytes) {
        return Err(ImageInputError::Truncated);
    }
    Ok(DynamicImage::from_decoder(decoder)?)
}

/// Whether JPEG `bytes` run to their end-of-image marker (EOI, `FF D9`).
///
/// The decoder fills a picture whose data stops early with grey and
/// reports no error, so a cut-off upload would be classified, and a
/// cut-off training file learned from. This walks the marker segments,
/// skipping their payloads (an EXIF thumbnail holds its own EOI), and the
/// entropy-coded data after each start of scan, where `FF 00` is a
/// stuffed byte and `FF D0`–`FF D7` are restart markers. Bytes after the
/// EOI are allowed: cameras append data there and decoders ignore it.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const MARK: u8 = 0xFF;
    const SOS: u8 = 0xDA;
    const EOI: u8 = 0xD9;
    let next_mark = |from: usize| {
        bytes
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == MARK))
            .map(|at| from + at)
    };
    // After the start-of-image marker.
    let mut pos = 2;
    loop {
        let Some(mut at) = next_mark(pos) else {
            return false;
        };
        // Any number of FF fill bytes may precede a marker.
        while bytes.get(at + 1) == Some(&MARK) {
            at += 1;
        }
        let Some(&marker) = bytes.get(at + 1) else {
            return false;
        };
        pos = at + 2;
        match marker {
            EOI => return true,
            // Markers without a payload (TEM, RSTn, SOI) and stray stuffing.
            0x00 | 0x01 | 0xD0..=0xD8 => {}
            _ => {
                let Some(&[high, low]) = bytes.get(pos..pos + 2) else {
                    return false;
                };
                pos += usize::from(u16::from_be_bytes([high, low]));
                if marker == SOS {
                    // The scan runs to the next marker that is neither a
                    // stuffed byte nor a restart.
                    loop {
                        let Some(at) = next_mark(pos) else {
                            return false;
                        };
                        match bytes.get(at + 1) {
                            None => return false,
                            Some(0x00 | 0xD0..=0xD7) => pos = at + 2,
                            Some(_) => {
                                pos = at;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
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
    use image::RgbImage;

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

    /// A noisy JPEG, so that most of its bytes are scan data.
    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let image = RgbImage::from_fn(width, height, |x, y| {
            let noise = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) as u8;
            image::Rgb([noise, x as u8 ^ noise, y as u8])
        });
        let written = image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg);
        assert!(written.is_ok());
        bytes
    }

    // See: issue 14. The decoder answers a cut-off JPEG with grey rows.
    #[test]
    fn r14_a_truncated_jpeg_is_refused_and_a_whole_one_is_not() {
        let whole = jpeg(96, 64);
        assert!(decode(&whole).is_ok());
        for cut in [
            whole.len() / 2,
            whole.len() * 3 / 4,
            whole.len() - 2,
            whole.len() - 1,
        ] {
            assert!(
                matches!(decode(&whole[..cut]), Err(ImageInputError::Truncated)),
                "cut at {cut} of {}",
                whole.len()
            );
        }
        // Bytes after the end marker are ignored, as decoders do.
        let mut trailing = whole.clone();
        trailing.extend_from_slice(b"\0\0camera trailer");
        assert!(decode(&trailing).is_ok());
        // An APP1 segment (where EXIF keeps a thumbnail) holding its own
        // end marker does not make a truncated file look whole.
        let app1 = [0xFF, 0xE1, 0x00, 0x08, 0xFF, 0xD8, 0xFF, 0xD9, 0xFF, 0xD9];
        let with_thumbnail: Vec<u8> = whole[..2]
            .iter()
            .chain(&app1)
            .chain(&whole[2..])
            .copied()
            .collect();
        assert!(decode(&with_thumbnail).is_ok());
        let cut = with_thumbnail.len() * 3 / 4;
        assert!(matches!(
            decode(&with_thumbnail[..cut]),
            Err(ImageInputError::Truncated)
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
