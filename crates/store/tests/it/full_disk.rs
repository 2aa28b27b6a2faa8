//! A full volume: the upload fails with a clear error, no partial object or
//! temp file stays, the previous version survives, and the server goes on.
//!
//! The volume is a 3 MiB tmpfs, which needs root (CI runs as root). Where
//! mounting is not permitted the test says so and does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use tread_store::{FileOwnership, StoreOptions};

use crate::common::{BUCKET, TestStore, bytes, get, put, status};

/// Unmounts the tmpfs when the test ends, before the temp dir is removed.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_small_tmpfs(at: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(at)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn a_full_volume_refuses_the_upload_and_loses_nothing() {
    let mut mounted = None;
    let started = TestStore::start_on(StoreOptions::default(), FileOwnership::default(), |vol| {
        mount_small_tmpfs(vol)?;
        mounted = Some(Mounted(vol.to_path_buf()));
        Ok(())
    })
    .await;
    let t = match started {
        Ok(t) => t,
        Err(why) => {
            eprintln!("skipping the full-disk test: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let keep = bytes(1 << 20, 5);
    put(&t.s3, "keep.bin", &keep).await;

    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("big.bin")
            .body(bytes(4 << 20, 6).into())
            .send()
            .await;
    assert_eq!(
        status(&err.expect_err("no space")),
        507,
        "a full volume is 507 Insufficient Storage"
    );
    assert!(!t.volume.join("big.bin").exists(), "no partial object");

    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("keep.bin")
            .body(bytes(4 << 20, 7).into())
            .send()
            .await;
    assert_eq!(status(&err.expect_err("no space")), 507);
    assert_eq!(
        get(&t.s3, "keep.bin").await,
        keep,
        "the previous version survives a failed overwrite"
    );
    assert_eq!(
        std::fs::read_dir(t.volume.join(".tread/tmp"))
            .expect("tmp")
            .count(),
        0,
        "no temp file left"
    );

    put(&t.s3, "after.bin", b"still serving").await;
    assert_eq!(get(&t.s3, "after.bin").await, b"still serving");
    // Unmount first, so that removing the temp dir afterwards can remove the mount point.
    drop(mounted);
    drop(t);
}
