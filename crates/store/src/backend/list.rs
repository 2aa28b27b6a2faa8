//! ListObjects (v1) and ListObjectsV2 over a directory tree, in S3's order:
//! UTF-8 byte order of whole keys, which a plain directory walk does not give
//! (`a-b` sorts before `a/b`). Each directory's entries are sorted by their key
//! form (`name` for files, `name/` for directories) and walked depth-first,
//! which yields global key order because every key under a directory shares
//! its `name/` prefix.

use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::read_ahead::{DirStamp, MOST_STAMPS};
use super::{NasStore, blocking, store_owner};
use crate::bucket::NasBucket;
use crate::error::StoreError;
use crate::key::HIDDEN_DIR;

/// The most keys a page holds, as in S3.
const MAX_KEYS: usize = 1000;

/// Characters left as they are by `encoding-type=url`.
const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// One listed object.
struct Listed {
    key: String,
    size: u64,
    etag: String,
    modified: std::time::SystemTime,
}

/// What a listing page asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PageRequest {
    pub(super) prefix: String,
    pub(super) delimiter: Option<String>,
    /// Only keys after this one.
    pub(super) after: String,
    /// Also skip every key starting with this (a common prefix already returned).
    pub(super) skip_prefix: Option<String>,
    pub(super) max: usize,
}

/// One page of results, in key order.
#[derive(Default)]
pub(super) struct Page {
    objects: Vec<Listed>,
    prefixes: Vec<String>,
    truncated: bool,
    /// Whether the last item returned was a common prefix, not a key.
    last_is_prefix: bool,
    /// The directories read, as they were: whether a page walked ahead is
    /// still current.
    pub(super) dirs: Vec<DirStamp>,
    /// The walk met what its directories cannot vouch for: a symbolic link
    /// (its target changes elsewhere), a directory it could not stat, more
    /// directories than [`MOST_STAMPS`]. Such a page is never walked ahead.
    pub(super) unverifiable: bool,
}

impl Page {
    fn count(&self) -> usize {
        self.objects.len() + self.prefixes.len()
    }

    /// The last key or common prefix returned, and whether it was a prefix.
    fn last(&self) -> Option<(&str, bool)> {
        if self.last_is_prefix {
            self.prefixes.last().map(|p| (p.as_str(), true))
        } else {
            self.objects.last().map(|o| (o.key.as_str(), false))
        }
    }

    /// The keys listed, in order.
    #[cfg(test)]
    pub(super) fn keys(&self) -> Vec<&str> {
        self.objects.iter().map(|o| o.key.as_str()).collect()
    }
}

struct Walk<'a> {
    bucket: &'a NasBucket,
    req: &'a PageRequest,
    page: Page,
    /// Real paths of the symlinked directories the walk is inside, to stop
    /// links that lead back into one another.
    entered: Vec<PathBuf>,
}

enum Entry {
    /// A file; its directory entry (for a cheap stat relative to the open
    /// directory) unless it is a symlink, which must be followed.
    File(String, Option<fs::DirEntry>),
    /// A directory, with its real path when reached through a symbolic link.
    Dir(String, Option<PathBuf>),
}

impl Entry {
    /// The order of the entries' keys: a directory's is `name/`. Compared
    /// in place, as a listing sorts every entry it reads.
    fn key_order(a: &Entry, b: &Entry) -> Ordering {
        fn form(e: &Entry) -> impl Iterator<Item = u8> + '_ {
            let (name, slash) = match e {
                Entry::File(n, _) => (n, None),
                Entry::Dir(n, _) => (n, Some(b'/')),
            };
            name.bytes().chain(slash)
        }
        form(a).cmp(form(b))
    }
}

impl Walk<'_> {
    /// Whether nothing under key prefix `full` can be on this page.
    fn skips_subtree(&self, full: &str) -> bool {
        let p = &self.req.prefix;
        let overlaps_prefix = full.starts_with(p.as_str()) || p.starts_with(full);
        let wholly_before = *full < *self.req.after && !self.req.after.starts_with(full);
        let already_returned = self
            .req
            .skip_prefix
            .as_ref()
            .is_some_and(|s| full.starts_with(s.as_str()));
        !overlaps_prefix || wholly_before || already_returned
    }

    /// The common prefix `key` rolls up into, if a delimiter applies.
    fn common_prefix(&self, key: &str) -> Option<String> {
        let d = self.req.delimiter.as_deref().filter(|d| !d.is_empty())?;
        let rest = key.strip_prefix(self.req.prefix.as_str())?;
        rest.find(d)
            .map(|i| key[..self.req.prefix.len() + i + d.len()].to_string())
    }

    /// Adds a key or prefix; returns false once the page is full.
    fn emit(&mut self, item: Result<Listed, String>) -> bool {
        let name = match &item {
            Ok(o) => &o.key,
            Err(p) => p,
        };
        if self.page.last().is_some_and(|(l, _)| l == name) {
            return true;
        }
        if self.page.count() >= self.req.max {
            self.page.truncated = true;
            return false;
        }
        self.page.last_is_prefix = item.is_err();
        match item {
            Ok(o) => self.page.objects.push(o),
            Err(p) => self.page.prefixes.push(p),
        }
        true
    }

    fn read_entries(&mut self, dir: &Path) -> Vec<Entry> {
        // Before reading it: a change during the read then shows.
        match DirStamp::of(dir) {
            Some(stamp) if self.page.dirs.len() < MOST_STAMPS => self.page.dirs.push(stamp),
            _ => self.page.unverifiable = true,
        }
        let Ok(rd) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut saw_link = false;
        let mut entries: Vec<Entry> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                // Wherever a NAS user made one, in whatever case.
                if name.eq_ignore_ascii_case(HIDDEN_DIR) {
                    return None;
                }
                let ft = e.file_type().ok()?;
                if ft.is_symlink() {
                    saw_link = true;
                    let real = fs::canonicalize(e.path()).ok()?;
                    if !self.bucket.may_serve(&real) {
                        return None;
                    }
                    if !real.is_dir() {
                        return Some(Entry::File(name, None));
                    }
                    // A link back to a directory the walk is already inside would never end.
                    let inside_already = fs::canonicalize(dir)
                        .map_or(true, |d| d.starts_with(&real))
                        || self.entered.iter().any(|e| e.starts_with(&real));
                    return (!inside_already).then_some(Entry::Dir(name, Some(real)));
                }
                if ft.is_dir() {
                    Some(Entry::Dir(name, None))
                } else if ft.is_file() {
                    // Relative to the open directory: no second walk of the whole path.
                    Some(Entry::File(name, Some(e)))
                } else {
                    None
                }
            })
            .collect();
        self.page.unverifiable |= saw_link;
        // Names in a directory differ, so no two entries compare equal.
        entries.sort_unstable_by(Entry::key_order);
        entries
    }

    /// Walks `dir`, whose keys start with `base`; returns false once the page is full.
    fn walk(&mut self, dir: &Path, base: &str) -> bool {
        let entries = self.read_entries(dir);
        // An empty directory, or one PUT as `base`, is the directory-marker object `base`.
        let is_marker = !base.is_empty() && (entries.is_empty() || self.bucket.is_marked(dir));
        if is_marker && !self.visit_file(base.to_string(), None, || dir.to_path_buf()) {
            return false;
        }
        for entry in entries {
            let keep_going = match entry {
                Entry::Dir(name, real) => {
                    let full = format!("{base}{name}/");
                    if self.skips_subtree(&full) {
                        continue;
                    }
                    match self.common_prefix(&full) {
                        Some(cp) => self.emit(Err(cp)),
                        None => {
                            let through_link = real.is_some();
                            self.entered.extend(real);
                            let more = self.walk(&dir.join(&name), &full);
                            if through_link {
                                self.entered.pop();
                            }
                            more
                        }
                    }
                }
                Entry::File(name, entry) => {
                    self.visit_file(format!("{base}{name}"), entry, || dir.join(&name))
                }
            };
            if !keep_going {
                return false;
            }
        }
        true
    }

    /// Lists the file `key`, stats it through its directory `entry` when
    /// there is one, else through the path `path` makes, made at most once
    /// and only when needed.
    fn visit_file(
        &mut self,
        key: String,
        entry: Option<fs::DirEntry>,
        path: impl Fn() -> PathBuf,
    ) -> bool {
        let req = self.req;
        if !key.starts_with(req.prefix.as_str())
            || key <= req.after
            || req
                .skip_prefix
                .as_ref()
                .is_some_and(|s| key.starts_with(s.as_str()))
        {
            return true;
        }
        if let Some(cp) = self.common_prefix(&key) {
            return self.emit(Err(cp));
        }
        // Stat only what passed the filters above: relative to the open
        // directory when we can; a path made for the stat is kept for the hash.
        let mut made = None;
        let regular = entry.is_some();
        let attrs = match entry {
            Some(e) => e.metadata(),
            None => fs::metadata(made.insert(path())),
        };
        let Ok(attrs) = attrs else {
            return true;
        };
        let (size, etag) = if attrs.is_dir() {
            (0, "d41d8cd98f00b204e9800998ecf8427e".to_string())
        } else if let Some(etag) = self.bucket.listed.get(&attrs) {
            (attrs.len(), etag)
        } else {
            let path = made.unwrap_or_else(path);
            match self
                .bucket
                .meta
                .load_or_compute_listed(&path, regular, Path::new(&key), &attrs)
            {
                Ok(m) => {
                    self.bucket.listed.put(&attrs, &m.etag);
                    (attrs.len(), m.etag)
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, "cannot read a file while listing; skipping it");
                    return true;
                }
            }
        };
        let modified = attrs.modified().unwrap_or(std::time::UNIX_EPOCH);
        self.emit(Ok(Listed {
            key,
            size,
            etag,
            modified,
        }))
    }
}

pub(super) fn list_page(bucket: &NasBucket, req: &PageRequest) -> Page {
    // Asked for no keys: nothing is left out, so nothing is truncated (as S3).
    if req.max == 0 {
        return Page::default();
    }
    // Start at the deepest directory the prefix names, so a narrow prefix reads little.
    let dir_part = match req.prefix.rfind('/') {
        Some(i) => &req.prefix[..=i],
        None => "",
    };
    let mut walk = Walk {
        bucket,
        req,
        page: Page {
            objects: Vec::with_capacity(req.max),
            ..Page::default()
        },
        entered: Vec::new(),
    };
    let start = if dir_part.is_empty() {
        Some(bucket.root.clone())
    } else {
        crate::key::ObjectKey::parse(dir_part).ok().and_then(|k| {
            let dir = bucket.path_of(&k);
            // The prefix itself may name a symbolic link out of the volume.
            bucket.check_inside_bucket(&dir, &k).ok().map(|()| dir)
        })
    };
    if let Some(dir) = start.filter(|d| d.is_dir()) {
        // A prefix through a symbolic link: retargeting it changes no
        // directory the walk reads.
        walk.page.unverifiable |= fs::canonicalize(&dir).map_or(true, |real| real != dir);
        walk.walk(&dir, dir_part);
    }
    walk.page
}

/// The marker itself, if it is a common prefix that a listing with `prefix`
/// and `delimiter` returns: the page after it then skips everything under it.
pub(super) fn marker_as_common_prefix(
    marker: &str,
    prefix: &str,
    delimiter: Option<&str>,
) -> Option<String> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = marker.strip_prefix(prefix)?;
    (rest.find(d).map(|i| i + d.len()) == Some(rest.len())).then(|| marker.to_string())
}

fn encode(s: String, url: bool) -> String {
    if url {
        utf8_percent_encode(&s, URL_ENCODE).to_string()
    } else {
        s
    }
}

/// The delimiter a listing echoes: an empty one is none, and S3 leaves it out.
fn echoed_delimiter(delimiter: Option<String>, url: bool) -> Option<String> {
    delimiter.filter(|d| !d.is_empty()).map(|d| encode(d, url))
}

struct Listing {
    page: Page,
    url: bool,
}

impl Listing {
    /// The page's objects, each with the store's owner when `owned`.
    fn contents(&mut self, owned: bool) -> Vec<Object> {
        std::mem::take(&mut self.page.objects)
            .into_iter()
            .map(|o| Object {
                key: Some(encode(o.key, self.url)),
                size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
                e_tag: Some(ETag::Strong(o.etag)),
                last_modified: Some(Timestamp::from(o.modified)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                owner: owned.then(store_owner),
                ..Default::default()
            })
            .collect()
    }
    fn prefixes(&mut self) -> Vec<CommonPrefix> {
        std::mem::take(&mut self.page.prefixes)
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(encode(p, self.url)),
            })
            .collect()
    }
}

/// The page `req` asks of `bucket`, walked ahead if it was; the page after
/// it, as `next` names it, is then walked ahead of its request.
async fn list(
    store: &NasStore,
    bucket: &str,
    req: PageRequest,
    encoding: Option<&EncodingType>,
    next: impl FnOnce(&Page) -> Option<PageRequest>,
) -> Result<Listing, StoreError> {
    let bucket = store.bucket(bucket)?;
    let url = match encoding {
        None => false,
        Some(e) if e.as_str() == EncodingType::URL => true,
        Some(e) => {
            return Err(StoreError::InvalidArgument(format!(
                "invalid encoding type {:?}; use url",
                e.as_str()
            )));
        }
    };
    let read_ahead = &store.inner.read_ahead;
    let page = match read_ahead.take(&bucket, &req).await {
        Some(page) => page,
        None => {
            let b = bucket.clone();
            blocking(move || Ok(list_page(&b, &req))).await?
        }
    };
    if let Some(next) = page.truncated.then(|| next(&page)).flatten() {
        read_ahead.start(bucket, next);
    }
    Ok(Listing { page, url })
}

fn max_keys(requested: Option<i32>) -> Result<usize, StoreError> {
    match requested {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(StoreError::InvalidArgument(
            "max-keys must not be negative".into(),
        )),
        Some(n) => Ok(usize::try_from(n).unwrap_or(MAX_KEYS).min(MAX_KEYS)),
    }
}

fn decode_token(token: &str) -> Result<(String, bool), StoreError> {
    let invalid = || StoreError::InvalidArgument("the continuation token is not valid".into());
    let raw = TOKEN.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    match text.split_once(':') {
        Some(("k", key)) => Ok((key.to_string(), false)),
        Some(("p", prefix)) => Ok((prefix.to_string(), true)),
        _ => Err(invalid()),
    }
}

fn encode_token((last, is_prefix): (&str, bool)) -> String {
    TOKEN.encode(format!("{}:{last}", if is_prefix { "p" } else { "k" }))
}

/// What a ListObjectsV2 request with `token` asks for.
fn v2_page(input: &ListObjectsV2Input, token: Option<&str>) -> Result<PageRequest, StoreError> {
    let (token_after, skip_prefix) = match token {
        Some(t) => {
            let (last, is_prefix) = decode_token(t)?;
            (last.clone(), is_prefix.then_some(last))
        }
        None => (String::new(), None),
    };
    Ok(PageRequest {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after: token_after.max(input.start_after.clone().unwrap_or_default()),
        skip_prefix,
        max: max_keys(input.max_keys)?,
    })
}

pub(super) async fn list_objects_v2(
    store: &NasStore,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let page_req = v2_page(&input, input.continuation_token.as_deref())?;
    let max = page_req.max;
    let next_page = |page: &Page| {
        let token = page.last().map(encode_token)?;
        v2_page(&input, Some(&token)).ok()
    };
    let mut listing = list(
        store,
        &input.bucket,
        page_req,
        input.encoding_type.as_ref(),
        next_page,
    )
    .await?;
    let url = listing.url;
    let next = listing
        .page
        .truncated
        .then(|| listing.page.last().map(encode_token))
        .flatten();
    let key_count = i32::try_from(listing.page.count()).unwrap_or(i32::MAX);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encode(input.prefix.unwrap_or_default(), url)),
        delimiter: echoed_delimiter(input.delimiter, url),
        start_after: input.start_after.map(|s| encode(s, url)),
        max_keys: Some(i32::try_from(max).unwrap_or(i32::MAX)),
        key_count: Some(key_count),
        continuation_token: input.continuation_token,
        is_truncated: Some(listing.page.truncated),
        next_continuation_token: next,
        contents: Some(listing.contents(input.fetch_owner == Some(true))),
        common_prefixes: Some(listing.prefixes()),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// What a ListObjects (v1) request with `marker` asks for.
fn v1_page(input: &ListObjectsInput, marker: String) -> Result<PageRequest, StoreError> {
    let prefix = input.prefix.clone().unwrap_or_default();
    // A marker equal to a common prefix we returned means "after that whole prefix".
    let skip_prefix = marker_as_common_prefix(&marker, &prefix, input.delimiter.as_deref());
    Ok(PageRequest {
        prefix,
        delimiter: input.delimiter.clone(),
        after: marker,
        skip_prefix,
        max: max_keys(input.max_keys)?,
    })
}

pub(super) async fn list_objects(
    store: &NasStore,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let page_req = v1_page(&input, input.marker.clone().unwrap_or_default())?;
    let max = page_req.max;
    // A client without a delimiter gets no NextMarker and goes on from the last key.
    let next_page = |page: &Page| v1_page(&input, page.last()?.0.to_string()).ok();
    let mut listing = list(
        store,
        &input.bucket,
        page_req,
        input.encoding_type.as_ref(),
        next_page,
    )
    .await?;
    let url = listing.url;
    let next_marker = listing
        .page
        .truncated
        .then(|| listing.page.last().map(|(l, _)| encode(l.to_string(), url)))
        .flatten();
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(encode(input.prefix.unwrap_or_default(), url)),
        delimiter: echoed_delimiter(input.delimiter, url),
        // v1 always echoes the marker, empty when none was given.
        marker: Some(encode(input.marker.unwrap_or_default(), url)),
        max_keys: Some(i32::try_from(max).unwrap_or(i32::MAX)),
        is_truncated: Some(listing.page.truncated),
        next_marker,
        // v1 always names each object's owner.
        contents: Some(listing.contents(true)),
        common_prefixes: Some(listing.prefixes()),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}
