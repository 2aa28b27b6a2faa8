//! Listing pages walked ahead of their request. A client that follows
//! continuation tokens parses each page before it asks for the next
//! (aws-sdk-s3: ~3 ms per 1000 keys), and the server used to walk the next
//! page only then (~3.5 ms): the two one after the other, each leaving the
//! other core idle. Once a page is answered truncated, the next one is
//! walked on the blocking pool while the client parses, and is handed to
//! the request that asks for exactly it if it is still what a walk would
//! give then:
//!
//! - every directory the walk read still has the inode, modification and
//!   change times it had (a key created, replaced by rename or deleted in
//!   it, by this gateway, another gateway or a NAS user, changes them),
//!   and none of them had changed in the [`SETTLED`](crate::meta::SETTLED)
//!   before the walk (so a coarse file-system clock cannot give a later
//!   change the time it has);
//! - it was walked less than [`FRESH`] ago, which bounds what no directory
//!   shows: a file rewritten in place by a NAS user, as a listing already
//!   racing that write could show it.
//!
//! Pages are walked ahead only where those stamps vouch for them: on a
//! local file system (a NAS server stamps times by its own clock, and an
//! NFS client caches attributes), with metadata in extended attributes
//! (a sidecar record changes no directory of the key), and never through
//! a symbolic link (its target changes elsewhere). Otherwise, and whenever
//! a page is not current, the request walks as it would have.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinHandle;

use super::list::{Page, PageRequest, list_page};
use crate::bucket::NasBucket;
use crate::meta::{ctime_ns, mtime_ns, settled_by};

/// How long a page walked ahead may wait for its request.
const FRESH: Duration = Duration::from_secs(1);

/// Pages walked ahead and not yet asked for, at most: one per client
/// listing at once, the oldest dropped first.
const MOST_PENDING: usize = 64;

/// The most directories a page walked ahead may have read (a page of 1000
/// keys reads ten or so); past it the page is walked again when asked for.
pub(super) const MOST_STAMPS: usize = 256;

/// A directory as a walk read it: what changes when its entries do.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct DirStamp {
    path: PathBuf,
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl DirStamp {
    /// `dir` as it is now, if it can be read.
    pub(super) fn of(dir: &Path) -> Option<Self> {
        let attrs = std::fs::metadata(dir).ok()?;
        Some(Self {
            path: dir.to_path_buf(),
            dev: attrs.dev(),
            ino: attrs.ino(),
            mtime_ns: mtime_ns(&attrs),
            ctime_ns: ctime_ns(&attrs),
        })
    }

    /// Whether the directory had not changed for
    /// [`SETTLED`](crate::meta::SETTLED) at `walked` and has not changed since.
    fn still_holds(&self, walked: SystemTime) -> bool {
        settled_by(self.mtime_ns.max(self.ctime_ns), walked)
            && Self::of(&self.path).is_some_and(|now| now == *self)
    }
}

/// A page being walked, or walked, before anyone asked for it.
struct Pending {
    bucket: Arc<NasBucket>,
    request: PageRequest,
    started: Instant,
    walked: SystemTime,
    page: JoinHandle<Page>,
}

/// The pages walked ahead of their requests.
#[derive(Default)]
pub(super) struct ReadAhead {
    pending: Mutex<Vec<Pending>>,
}

impl ReadAhead {
    /// Starts walking the page `request` asks of `bucket`, where its
    /// directories can vouch for it (see the module doc).
    pub(super) fn start(&self, bucket: Arc<NasBucket>, request: PageRequest) {
        if !bucket.is_local || !bucket.meta.travels_with_file() {
            return;
        }
        let (b, r) = (bucket.clone(), request.clone());
        let walked = SystemTime::now();
        let page = tokio::task::spawn_blocking(move || list_page(&b, &r));
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|p| p.started.elapsed() < FRESH);
        if pending.len() >= MOST_PENDING {
            pending.remove(0);
        }
        pending.push(Pending {
            bucket,
            request,
            started: Instant::now(),
            walked,
            page,
        });
    }

    /// Whether every page started has been walked.
    #[cfg(test)]
    fn all_walked(&self) -> bool {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.iter().all(|p| p.page.is_finished())
    }

    /// The page `request` asks of `bucket`, if it was walked ahead and is
    /// still what a walk would give.
    pub(super) async fn take(
        &self,
        bucket: &Arc<NasBucket>,
        request: &PageRequest,
    ) -> Option<Page> {
        let ahead = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.retain(|p| p.started.elapsed() < FRESH);
            let at = pending
                .iter()
                .position(|p| Arc::ptr_eq(&p.bucket, bucket) && p.request == *request)?;
            pending.remove(at)
        };
        let page = ahead.page.await.ok()?;
        let walked = ahead.walked;
        // A stat per directory read: a few for a page of 1000 keys, up to
        // MOST_STAMPS; off the async threads either way.
        let current = super::blocking(move || {
            // A walk that read no directory (its prefix's was missing) has
            // nothing to tell whether that directory has appeared since.
            let holds = !page.unverifiable
                && !page.dirs.is_empty()
                && page.dirs.iter().all(|d| d.still_holds(walked));
            Ok(holds.then_some(page))
        });
        let page = current.await.ok().flatten();
        let fresh = ahead.started.elapsed() < FRESH;
        tracing::debug!(
            current = page.is_some(),
            fresh,
            "a listing page was walked ahead"
        );
        page.filter(|_| fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::BucketRecord;
    use crate::meta::SETTLED;

    /// A bucket holding `keys` (one byte each) and symbolic `links` (name,
    /// target), left alone for longer than [`SETTLED`], so that its pages
    /// may be walked ahead.
    async fn settled_bucket(
        keys: &[&str],
        links: &[(&str, &str)],
    ) -> (tempfile::TempDir, Arc<NasBucket>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("vol");
        for key in keys {
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            std::fs::write(path, b"x").expect("write");
        }
        for (name, target) in links {
            std::os::unix::fs::symlink(target, root.join(name)).expect("link");
        }
        let record = BucketRecord {
            name: "b".into(),
            volume: "v".into(),
            nas_path: String::new(),
            root: root.clone(),
            volume_root: root,
            ownership: Default::default(),
            data_dir: dir.path().join("data"),
            created: String::new(),
            location: None,
        };
        let bucket = NasBucket::open(&record, Arc::default(), Arc::default()).expect("bucket");
        tokio::time::sleep(SETTLED + Duration::from_millis(100)).await;
        (dir, Arc::new(bucket))
    }

    /// The page of `max` keys after `after`.
    fn after(after: &str, max: usize) -> PageRequest {
        PageRequest {
            prefix: String::new(),
            delimiter: None,
            after: after.into(),
            skip_prefix: None,
            max,
        }
    }

    #[tokio::test]
    async fn a_page_walked_ahead_is_handed_once_to_the_request_for_it() {
        let (_dir, bucket) = settled_bucket(&["d1/a", "d1/b", "d2/a", "d2/b"], &[]).await;
        let ahead = ReadAhead::default();
        ahead.start(bucket.clone(), after("d1/b", 2));
        assert!(ahead.take(&bucket, &after("d1/b", 3)).await.is_none());
        let page = ahead.take(&bucket, &after("d1/b", 2)).await;
        assert_eq!(page.expect("walked ahead").keys(), ["d2/a", "d2/b"]);
        assert!(ahead.take(&bucket, &after("d1/b", 2)).await.is_none());
    }

    #[tokio::test]
    async fn a_page_whose_directory_changed_is_walked_again() {
        let (dir, bucket) = settled_bucket(&["d1/a", "d1/b", "d2/a", "d2/b"], &[]).await;
        let ahead = ReadAhead::default();
        ahead.start(bucket.clone(), after("d1/b", 2));
        while !ahead.all_walked() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A key created on the page by a NAS user after the walk.
        std::fs::write(dir.path().join("vol/d2/a0"), b"x").expect("write");
        assert!(ahead.take(&bucket, &after("d1/b", 2)).await.is_none());
    }

    #[tokio::test]
    async fn a_page_whose_prefix_had_no_directory_is_walked_again() {
        let (dir, bucket) = settled_bucket(&["d1/a", "d2/a", "d2/b"], &[]).await;
        let d2 = dir.path().join("vol/d2");
        std::fs::remove_dir_all(&d2).expect("remove");
        let ahead = ReadAhead::default();
        let in_d2 = PageRequest {
            prefix: "d2/".into(),
            ..after("d2/a", 1)
        };
        ahead.start(bucket.clone(), in_d2.clone());
        while !ahead.all_walked() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        std::fs::create_dir(&d2).expect("recreate");
        std::fs::write(d2.join("b"), b"x").expect("write");
        assert!(ahead.take(&bucket, &in_d2).await.is_none());
    }

    #[tokio::test]
    async fn a_page_through_a_symbolic_link_is_walked_again() {
        let (_dir, bucket) =
            settled_bucket(&["d1/a", "d1/b", "d2/a"], &[("d2/l", "../d1/a")]).await;
        let ahead = ReadAhead::default();
        ahead.start(bucket.clone(), after("d1/b", 2));
        // The link's target may change in d1, which this page did not read.
        assert!(ahead.take(&bucket, &after("d1/b", 2)).await.is_none());
    }

    #[tokio::test]
    async fn a_page_walked_ahead_too_long_ago_is_walked_again() {
        let (_dir, bucket) = settled_bucket(&["d1/a", "d1/b", "d2/a", "d2/b"], &[]).await;
        let ahead = ReadAhead::default();
        ahead.start(bucket.clone(), after("d1/b", 2));
        tokio::time::sleep(FRESH + Duration::from_millis(100)).await;
        assert!(ahead.take(&bucket, &after("d1/b", 2)).await.is_none());
    }
}
