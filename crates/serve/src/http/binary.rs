//! The Open Inference Protocol's binary tensor data extension, which
//! `tritonclient` uses by default: a request or answer body is a JSON
//! header of `Inference-Header-Content-Length` bytes followed by the raw
//! tensors, in the order of the inputs (outputs) whose parameters give a
//! `binary_data_size`. Tensors are little-endian and row-major; a BYTES
//! element is a 4-byte little-endian length, then its bytes.

use crate::http::error::ApiError;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// The header giving the length of the JSON part of a body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// A request body split into its JSON header and the binary tensors after
/// it, handed out in order.
pub struct Body {
    /// The JSON part.
    pub json: Bytes,
    rest: Bytes,
}

impl Body {
    /// Splits `body` at the length the request header gives; without the
    /// header the whole body is JSON.
    pub fn split(headers: &HeaderMap, body: Bytes) -> Result<Self, ApiError> {
        let Some(value) = headers.get(HEADER_LENGTH) else {
            return Ok(Self {
                json: body,
                rest: Bytes::new(),
            });
        };
        let length = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!("{HEADER_LENGTH} must be a number of bytes"))
            })?;
        if length > body.len() {
            return Err(ApiError::bad_request(format!(
                "{HEADER_LENGTH} is {length} but the body holds {} bytes",
                body.len()
            )));
        }
        let mut json = body;
        let rest = json.split_off(length);
        Ok(Self { json, rest })
    }

    /// The next `size` bytes of binary tensor data, for the input `name`.
    pub fn take(&mut self, name: &str, size: u64) -> Result<Bytes, ApiError> {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > self.rest.len() {
            return Err(ApiError::bad_request(format!(
                "input {name} declares binary_data_size {size} but only {} bytes follow the JSON (is {HEADER_LENGTH} set?)",
                self.rest.len()
            )));
        }
        Ok(self.rest.split_to(size))
    }

    /// Refuses bytes that no input claimed: a client and server that
    /// disagree on the layout would otherwise read the wrong tensors.
    pub fn finish(&self) -> Result<(), ApiError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "{} bytes after the JSON belong to no input's binary_data_size",
                self.rest.len()
            )))
        }
    }
}

/// Little-endian FP32, FP64 or FP16 tensor bytes as f32 values.
pub fn floats(datatype: &str, bytes: &[u8]) -> Result<Vec<f32>, String> {
    let width = match datatype {
        "FP32" => 4,
        "FP64" => 8,
        "FP16" => 2,
        other => return Err(format!("datatype {other} is not a float")),
    };
    if !bytes.len().is_multiple_of(width) {
        return Err(format!(
            "{} bytes is not a whole number of {datatype} values",
            bytes.len()
        ));
    }
    let values = bytes.chunks_exact(width).map(|c| match c {
        [a, b, c, d] => f32::from_le_bytes([*a, *b, *c, *d]),
        [a, b] => f16_to_f32(u16::from_le_bytes([*a, *b])),
        _ => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(c);
            f64::from_le_bytes(raw) as f32
        }
    });
    Ok(values.collect())
}

/// An IEEE 754 half-precision value, widened.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f32::from(bits & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(e - 15),
    }
}

/// The elements of a BYTES tensor: each a 4-byte little-endian length,
/// then that many bytes.
pub fn elements(mut bytes: Bytes) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let Some(prefix) = bytes.get(..4) else {
            return Err(format!(
                "element {} has a {}-byte length prefix; it needs 4",
                out.len(),
                bytes.len()
            ));
        };
        let mut raw = [0u8; 4];
        raw.copy_from_slice(prefix);
        let length = u32::from_le_bytes(raw) as usize;
        if length > bytes.len() - 4 {
            return Err(format!(
                "element {} claims {length} bytes but {} remain",
                out.len(),
                bytes.len() - 4
            ));
        }
        let mut element = bytes.split_off(4);
        bytes = element.split_off(length);
        out.push(element);
    }
    Ok(out)
}

/// FP32 values as little-endian bytes.
pub fn float_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Strings as a BYTES tensor: each length-prefixed.
pub fn element_bytes<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        // Class names are short; one over 4 GiB cannot come from a model card.
        let length = u32::try_from(item.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(item.as_bytes());
    }
    out
}

/// An answer: the JSON alone, or the JSON followed by the binary outputs
/// with the header saying where the JSON ends.
pub fn answer(json: &serde_json::Value, tensors: Vec<u8>) -> Response {
    if tensors.is_empty() {
        return axum::Json(json).into_response();
    }
    let mut body = json.to_string().into_bytes();
    let length = body.len();
    body.extend_from_slice(&tensors);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(HEADER_LENGTH, HeaderValue::from(length));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_elements_round_trip_and_truncations_are_refused() {
        let encoded = element_bytes(["good", "", "défaut"]);
        let decoded = elements(Bytes::from(encoded.clone())).unwrap_or_default();
        assert_eq!(decoded, [&b"good"[..], b"", "défaut".as_bytes()]);
        for cut in [1, 3, encoded.len() - 1] {
            assert!(
                elements(Bytes::copy_from_slice(&encoded[..cut])).is_err(),
                "{cut}"
            );
        }
    }

    #[test]
    fn floats_read_each_width() {
        let fp32 = float_bytes(&[1.5, -2.0]);
        assert_eq!(floats("FP32", &fp32), Ok(vec![1.5, -2.0]));
        let fp64: Vec<u8> = [0.25f64, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(floats("FP64", &fp64), Ok(vec![0.25, 3.0]));
        // 1.0, -2.0, 0.5, the smallest subnormal, infinity.
        let fp16: Vec<u8> = [0x3c00u16, 0xc000, 0x3800, 0x0001, 0x7c00]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            floats("FP16", &fp16),
            Ok(vec![1.0, -2.0, 0.5, 2f32.powi(-24), f32::INFINITY])
        );
        assert!(floats("FP32", &[0, 0, 0]).is_err());
        assert!(floats("INT8", &[0]).is_err());
    }

    #[test]
    fn a_body_splits_at_the_header_and_every_byte_must_be_claimed() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_LENGTH, HeaderValue::from(2));
        let body = Body::split(&headers, Bytes::from_static(b"{}abcdef"));
        let Ok(mut body) = body else {
            panic!("split failed");
        };
        assert_eq!(&body.json[..], b"{}");
        assert_eq!(body.take("x", 4).ok(), Some(Bytes::from_static(b"abcd")));
        assert!(body.finish().is_err());
        assert!(body.take("x", 3).is_err());
        headers.insert(HEADER_LENGTH, HeaderValue::from(99));
        assert!(Body::split(&headers, Bytes::from_static(b"{}")).is_err());
    }
}
