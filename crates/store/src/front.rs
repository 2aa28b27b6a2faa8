//! What tread does on the wire around s3s 0.14, where s3s differs from S3
//! and has no hook for it: a request id on every answer, a SigV4 request
//! timed by `Date` alone, a PUT sent chunked without its length, the file
//! name a browser form's key may use as `${filename}`, and 403 for a form
//! that breaks its signed policy. In front of all of it, CORS for requests
//! that carry an `Origin`, so that a page on another origin (tread's
//! console) can send presigned requests.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::Either;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use s3s::service::S3Service;
use s3s::stream::ByteStream;
use s3s::{Body, HttpError, HttpResponse};
use tower::Layer;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, Cors, CorsLayer, ExposeHeaders};

/// The most a PUT sent chunked without Content-Length may carry: it is
/// gathered in memory to learn its length, which s3s needs. S3 refuses
/// every such PUT; streaming clients (`curl -T -`) send small ones.
const UNSIZED_PUT_LIMIT: usize = 16 << 20;

/// How far into a browser form the file part's name is looked for. S3
/// wants the file as the form's last field, after fields far smaller than
/// this.
const FORM_HEAD_LIMIT: usize = 1 << 20;

/// The name a browser form gave its file, for `${filename}` in the form's key.
#[derive(Debug, Clone)]
pub(crate) struct FormFileName(pub String);

/// The s3s service with what S3 does and s3s 0.14 does not (see the module doc).
#[derive(Clone)]
pub(crate) struct Front(pub S3Service);

/// What the listener serves: [`Front`], behind CORS for the requests a
/// page sends (see [`CorsWhenAsked`]).
pub(crate) type Served = hyper_util::service::TowerToHyperService<CorsWhenAsked>;

/// [`Front`], as the listener serves it.
pub(crate) fn served(front: Front) -> Served {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(ExposeHeaders::any())
        .max_age(std::time::Duration::from_secs(3600));
    hyper_util::service::TowerToHyperService::new(CorsWhenAsked(cors.layer(front)))
}

/// CORS for requests with an `Origin` header, which a browser adds to every
/// cross-origin request and preflight; every origin may send them, as MinIO
/// allows by default: a browser adds no credentials of its own (no
/// cookies), so a request still needs a signature or a presigned URL,
/// exactly as from any other client. The headers a page reads from an
/// answer (the ETag of an uploaded part) are exposed. Requests without
/// `Origin` (SDKs, the CLI, curl) get no CORS headers, as from S3: adding
/// them cost a small GET about 5 % of the server's time; those go to the
/// [`Front`] inside the CORS layer directly.
#[derive(Clone)]
pub(crate) struct CorsWhenAsked(Cors<Front>);

type FrontFuture = <Front as tower::Service<Request<hyper::body::Incoming>>>::Future;

impl tower::Service<Request<hyper::body::Incoming>> for CorsWhenAsked {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = Either<tower_http::cors::ResponseFuture<FrontFuture>, FrontFuture>;

    /// Ready always, as both ways are: [`Front`] and CORS around it.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HttpError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<hyper::body::Incoming>) -> Self::Future {
        if req.headers().contains_key(header::ORIGIN) {
            Either::Left(self.0.call(req))
        } else {
            Either::Right(self.0.get_mut().call(req))
        }
    }
}

impl tower::Service<Request<hyper::body::Incoming>> for Front {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HttpError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<hyper::body::Incoming>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move {
            let id = format!("{:016X}", rand::random::<u64>());
            let mut req = req.map(Body::from);
            date_as_amz_date(req.headers_mut());
            let mut response = match form_boundary(&req) {
                Some(boundary) => {
                    let (req, file_name) = with_form_file_name(req, &boundary).await;
                    let mut response = service.call(req).await?;
                    policy_failure_as_denial(&mut response);
                    if let Some(name) = &file_name {
                        name_uploaded_key(&mut response, name);
                    }
                    response
                }
                None => match with_known_length(req).await {
                    Ok(req) => service.call(req).await?,
                    Err(refusal) => refusal,
                },
            };
            name_request(&mut response, &id);
            Ok(response)
        })
    }
}

/// SigV4 lets a request carry its time in `Date` instead of `X-Amz-Date`;
/// s3s reads only the latter. The copy is not among the signed headers, so
/// adding it changes nothing the signature covers, and the signature still
/// has to match `Date` as sent.
fn date_as_amz_date(headers: &mut HeaderMap) {
    let signed_v4 = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|a| a.as_bytes().starts_with(b"AWS4-HMAC-SHA256 "));
    if !signed_v4 || headers.contains_key("x-amz-date") {
        return;
    }
    let stamp = headers
        .get(header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(amz_date_of);
    if let Some(stamp) = stamp {
        headers.insert("x-amz-date", stamp);
    }
}

/// `date` (an HTTP date, or already SigV4's `YYYYMMDD'T'HHMMSS'Z'`) as SigV4's stamp.
fn amz_date_of(date: &str) -> Option<HeaderValue> {
    let basic = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    if time::PrimitiveDateTime::parse(date, basic).is_ok() {
        return HeaderValue::from_str(date).ok();
    }
    let when = time::OffsetDateTime::from(httpdate::parse_http_date(date).ok()?);
    HeaderValue::from_str(&when.format(basic).ok()?).ok()
}

/// The boundary of a browser form's upload (a POST of multipart/form-data).
fn form_boundary(req: &Request<Body>) -> Option<String> {
    if req.method() != Method::POST {
        return None;
    }
    let content_type = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mut params = content_type.split(';').map(str::trim);
    if !params.next()?.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

/// The form with its file part's name in the request's extensions: s3s
/// reads the form itself and drops that name. Reads ahead only to the
/// file part's headers, and hands the body on whole.
async fn with_form_file_name(
    req: Request<Body>,
    boundary: &str,
) -> (Request<Body>, Option<String>) {
    let (mut parts, mut body) = req.into_parts();
    let mut read: Vec<Result<Bytes, s3s::StdError>> = Vec::new();
    let mut head = Vec::new();
    let mut scan = FormScan::new(boundary);
    while head.len() < FORM_HEAD_LIMIT {
        let Some(chunk) = body.next().await else {
            break;
        };
        let Ok(bytes) = &chunk else {
            read.push(chunk);
            break;
        };
        head.extend_from_slice(bytes);
        read.push(chunk);
        if let Some(found) = scan.file_part_name(&head) {
            if let Some(name) = &found {
                parts.extensions.insert(FormFileName(name.clone()));
            }
            let rest = futures::stream::iter(read).chain(body);
            return (Request::from_parts(parts, body_of(rest)), found);
        }
    }
    let rest = futures::stream::iter(read).chain(body);
    (Request::from_parts(parts, body_of(rest)), None)
}

/// The key a form uploaded to, as the answer names it (the 201 document,
/// the 303 redirect), with `${filename}` as the file's name: s3s writes
/// those answers from the form's key as sent.
fn name_uploaded_key(response: &mut HttpResponse, file_name: &str) {
    const TEMPLATE: &str = "${filename}";
    match response.status() {
        StatusCode::CREATED => {
            let Some(document) = response.body().bytes() else {
                return;
            };
            let text = String::from_utf8_lossy(&document);
            if text.contains(TEMPLATE) {
                let named = text.replace(TEMPLATE, &quick_xml::escape::escape(file_name));
                set_document(response, named);
            }
        }
        StatusCode::SEE_OTHER => {
            let encoded_template: String =
                form_urlencoded::byte_serialize(TEMPLATE.as_bytes()).collect();
            let encoded_name: String =
                form_urlencoded::byte_serialize(file_name.as_bytes()).collect();
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(|l| l.replace(&encoded_template, &encoded_name))
                .and_then(|l| HeaderValue::from_str(&l).ok());
            if let Some(location) = location {
                response.headers_mut().insert(header::LOCATION, location);
            }
        }
        _ => {}
    }
}

/// A scan of a form's first bytes for its `file` part's header block,
/// resumed as more bytes arrive: each byte is looked at about once however
/// the body is cut into chunks (a client trickling a byte at a time must
/// not make the scan quadratic).
///
/// Written here rather than taken from a multipart crate: s3s parses the
/// form (and keeps its own parser private), and this needs one header of
/// one part from a prefix of the body, without consuming it.
struct FormScan {
    /// `--<boundary>\r\n`, which opens each part.
    delimiter: Vec<u8>,
    /// Where the header block of the part being read starts, once its
    /// delimiter is found.
    part_headers: Option<usize>,
    /// How far the bytes have been searched for what comes next.
    searched: usize,
}

impl FormScan {
    fn new(boundary: &str) -> Self {
        Self {
            delimiter: format!("--{boundary}\r\n").into_bytes(),
            part_headers: None,
            searched: 0,
        }
    }

    /// Where `head` (the bytes so far; each call passes a longer one)
    /// holds the whole header block of the `file` part: the file name it
    /// gives, if any. `None` while that block is not all in.
    fn file_part_name(&mut self, head: &[u8]) -> Option<Option<String>> {
        loop {
            let Some(start) = self.part_headers else {
                let at = find_from(head, &mut self.searched, &self.delimiter)?;
                self.part_headers = Some(at + self.delimiter.len());
                self.searched = at + self.delimiter.len();
                continue;
            };
            let end = find_from(head, &mut self.searched, b"\r\n\r\n")?;
            let block = String::from_utf8_lossy(&head[start..end]);
            if let Some(disposition) = content_disposition(&block)
                && disposition_param(disposition, "name").as_deref() == Some("file")
            {
                return Some(disposition_param(disposition, "filename"));
            }
            self.part_headers = None;
            self.searched = end + 4;
        }
    }
}

/// Where `needle` starts in `head` from `searched` on; if it is not there
/// yet, `searched` moves to where a later copy could start.
fn find_from(head: &[u8], searched: &mut usize, needle: &[u8]) -> Option<usize> {
    let from = (*searched).min(head.len());
    match head[from..].windows(needle.len()).position(|w| w == needle) {
        Some(at) => Some(from + at),
        None => {
            *searched = head.len().saturating_sub(needle.len() - 1).max(from);
            None
        }
    }
}

/// The value of a part's Content-Disposition header, from its header block.
fn content_disposition(block: &str) -> Option<&str> {
    block.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-disposition")
            .then_some(value)
    })
}

/// The value of parameter `name` of a Content-Disposition value.
fn disposition_param(disposition: &str, name: &str) -> Option<String> {
    disposition.split(';').skip(1).find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_string())
    })
}

/// A PUT sent chunked without Content-Length, gathered so that its length
/// is known (s3s needs it); any other request as it came. A body over
/// [`UNSIZED_PUT_LIMIT`] is refused with 411, as S3 refuses them all.
async fn with_known_length(req: Request<Body>) -> Result<Request<Body>, HttpResponse> {
    let unsized_put = req.method() == Method::PUT
        && !req.headers().contains_key(header::CONTENT_LENGTH)
        && !req.headers().contains_key("x-amz-decoded-content-length")
        && req.body().remaining_length().exact().is_none();
    if !unsized_put {
        return Ok(req);
    }
    let (mut parts, mut body) = req.into_parts();
    let mut gathered = Vec::new();
    while let Some(chunk) = body.next().await {
        let Ok(bytes) = chunk else {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "the request body ended with an error",
            ));
        };
        if gathered.len() + bytes.len() > UNSIZED_PUT_LIMIT {
            return Err(refusal(
                StatusCode::LENGTH_REQUIRED,
                "MissingContentLength",
                "a body over 16 MiB sent without Content-Length: send its Content-Length, or use a multipart upload",
            ));
        }
        gathered.extend_from_slice(&bytes);
    }
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(gathered.len()));
    Ok(Request::from_parts(parts, Body::from(gathered)))
}

/// A body yielding `chunks`.
fn body_of(
    chunks: impl futures::Stream<Item = Result<Bytes, s3s::StdError>> + Send + Sync + 'static,
) -> Body {
    Body::http_body(http_body_util::StreamBody::new(
        chunks.map(|chunk| chunk.map(http_body::Frame::data)),
    ))
}

/// An error answer tread gives before s3s sees the request.
fn refusal(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = HttpResponse::new(Body::from(document));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    response
}

/// S3 answers a form whose fields break its signed policy 403 AccessDenied
/// ("Invalid according to Policy"); s3s answers 400 InvalidPolicyDocument,
/// which S3 keeps for a policy it cannot read.
fn policy_failure_as_denial(response: &mut HttpResponse) {
    if response.status() != StatusCode::BAD_REQUEST {
        return;
    }
    let Some(document) = response.body().bytes() else {
        return;
    };
    let text = String::from_utf8_lossy(&document);
    let broken = ["<Message>Policy condition", "<Message>Bucket in form field"]
        .iter()
        .any(|m| text.contains(m));
    if !text.contains("<Code>InvalidPolicyDocument</Code>") || !broken {
        return;
    }
    let denied = text
        .replace(
            "<Code>InvalidPolicyDocument</Code>",
            "<Code>AccessDenied</Code>",
        )
        .replace(
            "<Message>",
            "<Message>Invalid according to Policy: Policy Condition failed: ",
        );
    *response.status_mut() = StatusCode::FORBIDDEN;
    set_document(response, denied);
}

/// Puts request id `id` in the answer's headers and in its error document.
fn name_request(response: &mut HttpResponse, id: &str) {
    let Ok(value) = HeaderValue::from_str(id) else {
        return;
    };
    let headers = response.headers_mut();
    headers.insert("x-amz-request-id", value.clone());
    headers.insert("x-amz-id-2", value);
    let failed = response.status().is_client_error() || response.status().is_server_error();
    let named = failed
        .then(|| response.body().bytes())
        .flatten()
        .and_then(|body| with_request_id(&body, id));
    if let Some(document) = named {
        set_document(response, document);
    }
}

/// Replaces the answer's body with `document`, and its length with the document's.
fn set_document(response: &mut HttpResponse, document: String) {
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(document.len()));
    *response.body_mut() = Body::from(document);
}

/// The error document with `<RequestId>` before its end. s3s 0.14 writes
/// error documents itself, without one unless the backend set it, and has
/// no hook between them and the wire: this inserts it into the one element
/// of a document s3s has just written.
fn with_request_id(document: &[u8], id: &str) -> Option<String> {
    let text = std::str::from_utf8(document).ok()?;
    let end = text.rfind("</Error>")?;
    if text.contains("<RequestId>") {
        return None;
    }
    Some(format!(
        "{}<RequestId>{id}</RequestId>{}",
        &text[..end],
        &text[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &str = "--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/${filename}\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cat photo.jpg\"\r\n\
        Content-Type: image/jpeg\r\n\r\nthe file's bytes";

    #[test]
    fn the_file_parts_name_is_found_once_its_headers_are_all_in() {
        let form = FORM.as_bytes();
        let headers_end = FORM
            .find("\r\n\r\nthe file")
            .expect("the file part's headers")
            + 4;
        let whole = |form: &[u8], boundary| FormScan::new(boundary).file_part_name(form);
        for cut in [10, 80, headers_end - 1] {
            assert_eq!(whole(&form[..cut], "XyZ"), None, "cut at {cut}");
        }
        let found = Some(Some("cat photo.jpg".to_string()));
        assert_eq!(whole(&form[..headers_end], "XyZ"), found);
        let nameless = FORM.replace("; filename=\"cat photo.jpg\"", "");
        assert_eq!(whole(nameless.as_bytes(), "XyZ"), Some(None));
        assert_eq!(whole(form, "other"), None, "another boundary");
        let mut trickled = FormScan::new("XyZ");
        let first_found = (1..=form.len()).find(|&n| trickled.file_part_name(&form[..n]).is_some());
        assert_eq!(
            first_found,
            Some(headers_end),
            "a byte at a time, found as the block ends"
        );
    }

    #[test]
    fn the_answer_to_a_form_names_the_key_with_the_files_name() {
        let mut created = HttpResponse::new(Body::from(
            "<PostResponse><Location>/b/up/${filename}</Location><Key>up/${filename}</Key></PostResponse>"
                .to_string(),
        ));
        *created.status_mut() = StatusCode::CREATED;
        name_uploaded_key(&mut created, "a&b.jpg");
        let document = created.body().bytes().expect("a document");
        assert_eq!(
            document,
            "<PostResponse><Location>/b/up/a&amp;b.jpg</Location><Key>up/a&amp;b.jpg</Key></PostResponse>"
        );
        let mut redirect = HttpResponse::new(Body::empty());
        *redirect.status_mut() = StatusCode::SEE_OTHER;
        redirect.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_static("https://app/done?bucket=b&key=up%2F%24%7Bfilename%7D&etag=x"),
        );
        name_uploaded_key(&mut redirect, "a b.jpg");
        assert_eq!(
            redirect.headers()[header::LOCATION],
            "https://app/done?bucket=b&key=up%2Fa+b.jpg&etag=x"
        );
    }

    #[test]
    fn a_date_header_becomes_sigv4s_stamp() {
        let stamp = |d: &str| amz_date_of(d).map(|v| v.to_str().expect("ascii").to_string());
        assert_eq!(
            stamp("Sun, 06 Dec 2026 04:05:06 GMT").as_deref(),
            Some("20261206T040506Z")
        );
        assert_eq!(
            stamp("20261206T040506Z").as_deref(),
            Some("20261206T040506Z")
        );
        assert_eq!(stamp("yesterday"), None);
    }
}
