//! NAS semantics: files from outside are objects at once, keys map to safe
//! paths, collisions with directories are clear errors.

use std::os::unix::fs::PermissionsExt;

use tread_store::FileOwnership;

use crate::common::{BUCKET, TestStore, code, get, get_in, listed_keys, put};

#[tokio::test]
async fn a_file_dropped_into_the_volume_is_an_object_with_a_correct_etag() {
    let t = TestStore::start().await;
    std::fs::create_dir_all(t.volume.join("dataset/tyre/good")).expect("mkdir");
    std::fs::write(
        t.volume.join("dataset/tyre/good/nfs.jpg"),
        b"written over NFS",
    )
    .expect("write");
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .prefix("dataset/tyre")
            .send()
            .await
            .expect("list");
    let o = &out.contents()[0];
    assert_eq!(o.key(), Some("dataset/tyre/good/nfs.jpg"));
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(b"written over NFS"));
    assert_eq!(o.e_tag(), Some(format!("\"{md5}\"").as_str()));
    assert_eq!(
        get(&t.s3, "dataset/tyre/good/nfs.jpg").await,
        b"written over NFS"
    );
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("dataset/tyre/good/nfs.jpg")
            .send()
            .await
            .expect("head");
    assert_eq!(head.content_type(), Some("image/jpeg"));

    // Changed by a NAS user: the cached ETag must not survive.
    std::fs::write(
        t.volume.join("dataset/tyre/good/nfs.jpg"),
        b"edited in place, longer",
    )
    .expect("rewrite");
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("dataset/tyre/good/nfs.jpg")
            .send()
            .await
            .expect("head");
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(
        b"edited in place, longer",
    ));
    assert_eq!(head.e_tag(), Some(format!("\"{md5}\"").as_str()));
    // Nor the ETag the first listing remembered.
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .prefix("dataset/tyre")
            .send()
            .await
            .expect("list");
    assert_eq!(
        out.contents()[0].e_tag(),
        Some(format!("\"{md5}\"").as_str())
    );
    assert_eq!(out.contents()[0].size(), Some(23));
}

/// A small object GETs have read is kept in memory; a NAS user's edit in
/// place, of the same size, must still reach the next GET, and its ETag.
#[tokio::test]
async fn a_kept_small_object_edited_in_place_is_read_anew() {
    let t = TestStore::start().await;
    let path = t.volume.join("kept.txt");
    std::fs::write(&path, b"first words").expect("write");
    // Files changed within the last second are not kept, and the first GET
    // changes this one: it stores the computed ETag on it.
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(1100));
    settle().await;
    assert_eq!(get(&t.s3, "kept.txt").await, b"first words");
    settle().await;
    for _ in 0..2 {
        assert_eq!(get(&t.s3, "kept.txt").await, b"first words");
    }
    let file = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    std::os::unix::fs::FileExt::write_all_at(&file, b"other words", 0).expect("edit");
    let out =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("kept.txt")
            .send()
            .await
            .expect("get");
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(b"other words"));
    assert_eq!(out.e_tag(), Some(format!("\"{md5}\"").as_str()));
    let body = out.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"other words");
}

#[tokio::test]
async fn a_put_object_is_an_ordinary_file_with_mode_0644() {
    let t = TestStore::start().await;
    put(&t.s3, "x/y/z.txt", b"plain").await;
    let path = t.volume.join("x/y/z.txt");
    assert_eq!(std::fs::read(&path).expect("file"), b"plain");
    assert_eq!(
        std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
        0o644
    );
    let tmp = std::fs::read_dir(t.volume.join(".tread/tmp"))
        .expect("tmp")
        .count();
    assert_eq!(tmp, 0, "no temp files left");
}

#[tokio::test]
async fn hostile_keys_are_refused_with_a_clear_error() {
    let t = TestStore::start().await;
    for key in [
        "../escape",
        "a/../../escape",
        "a/./b",
        "a//b",
        ".tread/tmp/x",
        "a/%2e%2e/b",
        &"n".repeat(256),
    ] {
        let err =
            t.s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(b"x".to_vec().into())
                .send()
                .await;
        let err = err.expect_err(key);
        assert!(
            matches!(
                code(&err).as_str(),
                "InvalidArgument" | "KeyTooLongError" | "InvalidRequest" | "InvalidURI"
            ),
            "{key}: {}",
            code(&err)
        );
    }
    let long = "k".repeat(1025);
    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key(&long)
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect_err("long");
    assert_eq!(code(&err), "KeyTooLongError");
    assert!(!t.volume.parent().expect("parent").join("escape").exists());
}

#[tokio::test]
async fn symlinks_out_of_the_volume_are_not_followed() {
    let t = TestStore::start().await;
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret"), b"secret").expect("secret");
    std::os::unix::fs::symlink(outside.path(), t.volume.join("link")).expect("symlink");
    let err =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("link/secret")
            .send()
            .await
            .expect_err("outside");
    assert_eq!(code(&err), "InvalidArgument");
    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("link/planted")
            .body(b"x".to_vec().into())
            .send()
            .await;
    assert_eq!(code(&err.expect_err("outside")), "InvalidArgument");
    assert!(!outside.path().join("planted").exists());
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    assert!(
        out.contents()
            .iter()
            .all(|o| !o.key().unwrap_or_default().starts_with("link")),
        "not listed"
    );
}

#[tokio::test]
async fn keys_colliding_with_directories_get_conflict_errors() {
    let t = TestStore::start().await;
    put(&t.s3, "a/b", b"child").await;
    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("a")
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect_err("dir");
    assert_eq!(code(&err), "ExistingObjectIsDirectory");
    put(&t.s3, "f", b"file").await;
    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("f/g")
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect_err("parent");
    assert_eq!(code(&err), "ObjectParentIsFile");
    assert_eq!(get(&t.s3, "a/b").await, b"child");
    assert_eq!(get(&t.s3, "f").await, b"file");
}

#[tokio::test]
async fn directory_markers_create_directories_without_data() {
    let t = TestStore::start().await;
    put(&t.s3, "folder/", b"").await;
    assert!(t.volume.join("folder").is_dir());
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    assert_eq!(listed_keys(out.contents()), ["folder/"]);
    t.s3.delete_object()
        .bucket(BUCKET)
        .key("folder/")
        .send()
        .await
        .expect("delete marker");
    assert!(!t.volume.join("folder").exists());
}

#[tokio::test]
async fn admin_changes_reach_a_running_server() {
    let t = TestStore::start().await;
    let later = t.catalog.user_create("later").await.expect("user");
    let s3 = t.client(&later);
    let err = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("no group yet");
    assert!(matches!(
        code(&err).as_str(),
        "AccessDenied" | "InvalidAccessKeyId"
    ));
    t.catalog
        .group_create("late", &["later".into()], &["FullAccess".into()])
        .await
        .expect("group");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if s3.list_objects_v2().bucket(BUCKET).send().await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not pick up the new group"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn bucket_file_mode_is_applied_to_objects() {
    let owner = tread_store::FileOwnership {
        mode: 0o600,
        uid: None,
        gid: None,
    };
    let t = TestStore::start_with(tread_store::StoreOptions::default(), owner).await;
    put(&t.s3, "private.bin", b"p").await;
    let mode = std::fs::metadata(t.volume.join("private.bin"))
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn temp_files_are_swept_by_age_never_while_another_gateway_may_write_them() {
    let t = TestStore::start().await;
    let stale = t.volume.join(".tread/tmp/put-left-by-a-crash");
    let writing = t.volume.join(".tread/tmp/put-another-gateway-is-writing");
    for file in [&stale, &writing] {
        std::fs::write(file, b"half an upload").expect("temp file");
    }
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(two_hours_ago))
        .expect("age the stale file");
    let second_gateway =
        tread_store::NasStore::open(t.catalog.clone(), tread_store::StoreOptions::default())
            .await
            .expect("a second gateway opens the same buckets");
    assert!(
        stale.exists() && writing.exists(),
        "opening a bucket sweeps nothing"
    );
    second_gateway.sweep_leftovers();
    assert!(!stale.exists(), "a temp file idle for two hours is swept");
    assert!(writing.exists(), "a fresh one is left to its writer");
}

#[tokio::test]
async fn a_symlink_loop_inside_the_volume_does_not_trap_the_listing() {
    let t = TestStore::start().await;
    put(&t.s3, "a/file", b"1").await;
    std::os::unix::fs::symlink(t.volume.join("a"), t.volume.join("a/loop")).expect("symlink");
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    let keys = listed_keys(out.contents());
    assert_eq!(keys, ["a/file"]);
}

#[tokio::test]
async fn symlinks_into_tread_private_places_are_refused() {
    let t = TestStore::start().await;
    // Anything in the data dir (the SQLite catalog, the API token), whichever
    // engine the catalog is on in this run.
    let private = t.data_dir.join("api-token");
    std::fs::write(&private, b"secret").expect("a private file");
    std::os::unix::fs::symlink(&private, t.volume.join("db")).expect("symlink");
    std::os::unix::fs::symlink(t.volume.join(".tread"), t.volume.join("hidden")).expect("symlink");
    let err =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("db")
            .send()
            .await
            .expect_err("catalog");
    assert_eq!(code(&err), "InvalidArgument");
    let err =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("hidden/tmp/x")
            .send()
            .await
            .expect_err("hidden");
    assert_eq!(code(&err), "InvalidArgument");
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    assert!(out.contents().is_empty(), "{:?}", out.contents());
}

#[tokio::test]
async fn directory_marker_keys_never_receive_data() {
    let t = TestStore::start().await;
    put(&t.s3, "a", b"object a").await;
    let err =
        t.s3.copy_object()
            .bucket(BUCKET)
            .key("a/")
            .copy_source(format!("{BUCKET}/a"))
            .send()
            .await
            .expect_err("marker destination");
    assert_eq!(code(&err), "InvalidArgument");
    assert_eq!(get(&t.s3, "a").await, b"object a");
    put(&t.s3, "dir/", b"").await;
    let err =
        t.s3.copy_object()
            .bucket(BUCKET)
            .key("c")
            .copy_source(format!("{BUCKET}/dir/"))
            .send()
            .await;
    assert_eq!(code(&err.expect_err("marker source")), "InvalidArgument");
}

#[tokio::test]
async fn symlinks_pointing_at_each_other_end_the_listing() {
    let t = TestStore::start().await;
    put(&t.s3, "a/x", b"1").await;
    put(&t.s3, "b/y", b"2").await;
    std::os::unix::fs::symlink(t.volume.join("b"), t.volume.join("a/to-b")).expect("symlink");
    std::os::unix::fs::symlink(t.volume.join("a"), t.volume.join("b/to-a")).expect("symlink");
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    let keys = listed_keys(out.contents());
    assert!(
        keys.len() < 10,
        "the walk followed the links around: {keys:?}"
    );
    assert!(
        keys.iter().any(|k| k == "a/x") && keys.iter().any(|k| k == "b/y"),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_directory_marker_outlives_the_objects_under_it() {
    let t = TestStore::start().await;
    put(&t.s3, "m/", b"").await;
    put(&t.s3, "m/x", b"x").await;
    let listed = |out: aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output| {
        listed_keys(out.contents())
    };
    assert_eq!(
        listed(
            t.s3.list_objects_v2()
                .bucket(BUCKET)
                .send()
                .await
                .expect("list")
        ),
        ["m/", "m/x"]
    );
    t.s3.delete_object()
        .bucket(BUCKET)
        .key("m/x")
        .send()
        .await
        .expect("delete child");
    assert!(t.volume.join("m").is_dir(), "the marker's directory stays");
    assert_eq!(
        listed(
            t.s3.list_objects_v2()
                .bucket(BUCKET)
                .send()
                .await
                .expect("list")
        ),
        ["m/"]
    );

    put(&t.s3, "m/y", b"y").await;
    t.s3.delete_object()
        .bucket(BUCKET)
        .key("m/")
        .send()
        .await
        .expect("delete marker");
    assert_eq!(
        listed(
            t.s3.list_objects_v2()
                .bucket(BUCKET)
                .send()
                .await
                .expect("list")
        ),
        ["m/y"]
    );
    let err =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("m/")
            .send()
            .await
            .expect_err("marker gone");
    assert_eq!(crate::common::status(&err), 404);
    assert_eq!(get(&t.s3, "m/y").await, b"y");
}

#[tokio::test]
async fn a_plain_directory_with_objects_is_not_a_marker_object() {
    let t = TestStore::start().await;
    put(&t.s3, "plain/x", b"x").await;
    let err =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("plain/")
            .send()
            .await
            .expect_err("not a marker");
    assert_eq!(crate::common::status(&err), 404);
    std::fs::create_dir(t.volume.join("empty")).expect("mkdir");
    t.s3.head_object()
        .bucket(BUCKET)
        .key("empty/")
        .send()
        .await
        .expect("an empty directory is listed, so it answers HEAD");
}

/// Two buckets, `bucket-a` and `bucket-b`, in directories `a` and `b` of a second volume.
async fn two_buckets_on_one_volume(t: &TestStore) -> std::path::PathBuf {
    let volume = t
        .data_dir
        .parent()
        .expect("the test's directory")
        .join("vol2");
    for dir in ["a", "b/.tread/multipart/staged"] {
        std::fs::create_dir_all(volume.join(dir)).expect("mkdir");
    }
    std::fs::write(volume.join("b/secret.txt"), b"bucket b only").expect("write");
    std::fs::write(volume.join("b/.tread/multipart/staged/1"), b"part").expect("write");
    t.catalog
        .volume_create("vol2", &volume)
        .await
        .expect("volume");
    for (bucket, dir) in [("bucket-a", "a"), ("bucket-b", "b")] {
        t.catalog
            .bucket_create(bucket, "vol2", dir, FileOwnership::default(), None)
            .await
            .expect("bucket");
    }
    t.store.reload().await.expect("reload the catalog");
    volume
}

#[tokio::test]
async fn r16_a_symlink_into_another_buckets_directory_leads_nowhere() {
    let t = TestStore::start().await;
    let volume = two_buckets_on_one_volume(&t).await;
    std::os::unix::fs::symlink(volume.join("b"), volume.join("a/to-b")).expect("symlink");
    std::os::unix::fs::symlink(volume.join("b/secret.txt"), volume.join("a/secret"))
        .expect("symlink");
    for key in [
        "to-b/secret.txt",
        "secret",
        "to-b/.tread/multipart/staged/1",
    ] {
        let err =
            t.s3.get_object()
                .bucket("bucket-a")
                .key(key)
                .send()
                .await
                .expect_err(key);
        assert_eq!(code(&err), "InvalidArgument", "{key}");
    }
    let out =
        t.s3.list_objects_v2()
            .bucket("bucket-a")
            .send()
            .await
            .expect("list");
    assert!(out.contents().is_empty(), "{:?}", out.contents());
    assert_eq!(
        get_in(&t.s3, "bucket-b", "secret.txt").await,
        b"bucket b only"
    );
}

#[tokio::test]
async fn r16_no_tread_directory_is_listed_at_any_depth_in_any_case() {
    let t = TestStore::start().await;
    for dir in ["x/.tread", "x/.TREAD", "x/y/.tReAd", ".Tread"] {
        std::fs::create_dir_all(t.volume.join(dir)).expect("mkdir");
        std::fs::write(t.volume.join(dir).join("staged"), b"part").expect("write");
    }
    put(&t.s3, "x/visible", b"v").await;
    put(&t.s3, "x/y/z", b"v").await;
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    assert_eq!(listed_keys(out.contents()), ["x/visible", "x/y/z"]);
}

#[tokio::test]
async fn r16_a_refused_put_under_tread_leaves_no_directory() {
    let t = TestStore::start().await;
    for key in ["x/.tread/y", "x/y/.TREAD/z"] {
        let err =
            t.s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(b"v".to_vec().into())
                .send()
                .await
                .expect_err(key);
        assert_eq!(code(&err), "InvalidArgument", "{key}");
    }
    assert!(!t.volume.join("x").exists());
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    assert!(out.contents().is_empty(), "{:?}", out.contents());
}
