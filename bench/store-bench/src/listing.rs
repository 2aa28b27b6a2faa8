//! The time to LIST many keys under a prefix, against a directory walk.
//!
//! The keys are written straight into the volume as files (as a NAS user
//! would), `list/dNN/kNNN`, [`PER_DIR`] to a directory. The first listing
//! finds no cached ETags and computes them (MD5 of each file, then cached in
//! an xattr): that is a cold sample, taken once per fresh tree, on
//! [`COLD_TREES`] trees under prefixes of their own (`list/`, then
//! `list-cold-2/`…). Later listings of `list/` are warm. All of them
//! start a second after the files were written. The raw walk
//! is a recursive `std::fs::read_dir` that also stats every file (a listing
//! must report size and modification time); a walk without the stat is kept
//! for information.

use std::fs;
use std::path::Path;

use anyhow::{Context, ensure};

use crate::Bench;
use crate::measure::{Figure, Span};

/// The prefix listed.
pub const PREFIX: &str = "list/";
/// Files per directory.
pub const PER_DIR: usize = 100;
/// Keys per ListObjectsV2 page.
const PAGE: i32 = 1000;
/// Fresh trees listed cold, one sample each: the cold listing of a fresh
/// tree moved from 192 to 463 ms between runs on one machine, so one
/// sample says little.
const COLD_TREES: usize = 3;

/// Figures in milliseconds.
#[derive(Debug, Default)]
pub struct ListResults {
    /// Keys listed.
    pub keys: usize,
    /// First ListObjectsV2 pass of each fresh tree (ETags computed and cached).
    pub tread_cold: Figure,
    /// Later ListObjectsV2 passes.
    pub tread_warm: Figure,
    /// Recursive read_dir plus a stat of each file.
    pub raw_walk: Figure,
    /// Recursive read_dir alone (file type from the directory entry), for information.
    pub raw_readdir: Figure,
}

/// Counts files under `dir`, statting each when `stat` is set.
fn walk(dir: &Path, stat: bool) -> anyhow::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            n += walk(&entry.path(), stat)?;
        } else {
            if stat {
                std::hint::black_box(entry.metadata()?.len());
            }
            n += 1;
        }
    }
    Ok(n)
}

/// Lists every key under `prefix`, page by page; returns the count.
async fn list_all(b: &Bench, prefix: &str) -> anyhow::Result<usize> {
    let mut token = None;
    let mut n = 0;
    loop {
        let out =
            b.s3.list_objects_v2()
                .bucket(&b.bucket)
                .prefix(prefix)
                .max_keys(PAGE)
                .set_continuation_token(token)
                .send()
                .await
                .context("ListObjectsV2")?;
        n += out.contents().len();
        token = out.next_continuation_token().map(str::to_string);
        if !out.is_truncated().unwrap_or(false) || token.is_none() {
            return Ok(n);
        }
    }
}

fn populate(root: &Path, keys: usize) -> anyhow::Result<()> {
    for i in 0..keys {
        let dir = root.join(format!("d{:02}", i / PER_DIR));
        if i % PER_DIR == 0 {
            fs::create_dir_all(&dir)?;
        }
        fs::write(
            dir.join(format!("k{:03}", i % PER_DIR)),
            format!("object {i}\n"),
        )?;
    }
    Ok(())
}

/// Writes a fresh tree of `b.list_keys` files under `prefix` in the volume
/// and leaves it alone for a moment, as a dataset being listed usually is:
/// the store walks a page ahead of its request only where the directories
/// have not changed for a second (crates/store/src/backend/read_ahead.rs).
async fn fresh_tree(b: &Bench, prefix: &str) -> anyhow::Result<()> {
    let (root, keys) = (b.volume.join(prefix), b.list_keys);
    tokio::task::spawn_blocking(move || populate(&root, keys)).await??;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Ok(())
}

/// One timed listing of the tree under `prefix` (`which`: cold or warm),
/// into `fig`.
async fn timed_listing(
    b: &Bench,
    prefix: &str,
    which: &str,
    fig: &mut Figure,
) -> anyhow::Result<()> {
    let span = Span::start(b.tread_pid);
    let n = list_all(b, prefix).await?;
    let u = span.stop();
    let keys = b.list_keys;
    ensure!(
        n == keys,
        "a {which} listing found {n} keys, expected {keys}"
    );
    fig.push(u.wall * 1e3, u);
    Ok(())
}

/// Measures the raw walks, a cold and `b.reps` warm listings of one fresh
/// tree, then a cold listing of each further fresh tree.
pub async fn run(b: &Bench) -> anyhow::Result<ListResults> {
    let root = b.volume.join(PREFIX);
    let keys = b.list_keys;
    fresh_tree(b, PREFIX).await?;
    let mut r = ListResults {
        keys,
        ..Default::default()
    };

    for _ in 0..b.reps {
        for (stat, fig) in [(true, &mut r.raw_walk), (false, &mut r.raw_readdir)] {
            let root = root.clone();
            let span = Span::start(None);
            let n = tokio::task::spawn_blocking(move || walk(&root, stat)).await??;
            let u = span.stop();
            ensure!(n == keys, "the walk found {n} files, expected {keys}");
            fig.push(u.wall * 1e3, u);
        }
    }

    timed_listing(b, PREFIX, "cold", &mut r.tread_cold).await?;
    for _ in 0..b.reps {
        timed_listing(b, PREFIX, "warm", &mut r.tread_warm).await?;
    }
    for tree in 2..=COLD_TREES {
        let prefix = format!("list-cold-{tree}/");
        fresh_tree(b, &prefix).await?;
        timed_listing(b, &prefix, "cold", &mut r.tread_cold).await?;
    }
    Ok(r)
}
