//! Object operations: put/get/head/copy/delete, ranges, conditionals, digests, metadata.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, Delete, MetadataDirective, ObjectIdentifier};
use base64::Engine;

use crate::common::{BUCKET, TestStore, bytes, code, get, put, status};

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

#[tokio::test]
async fn put_then_get_returns_the_same_bytes_and_md5_etag() {
    let t = TestStore::start().await;
    let body = bytes(3 << 20, 7);
    let out =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("a/b/c.bin")
            .body(body.clone().into())
            .send()
            .await
            .expect("put");
    assert_eq!(
        out.e_tag(),
        Some(format!("\"{}\"", md5_hex(&body)).as_str())
    );
    assert_eq!(get(&t.s3, "a/b/c.bin").await, body);
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("a/b/c.bin")
            .send()
            .await
            .expect("head");
    assert_eq!(head.content_length(), Some(3 << 20));
    assert_eq!(head.e_tag(), out.e_tag());
}

#[tokio::test]
async fn content_type_and_user_metadata_are_kept() {
    let t = TestStore::start().await;
    t.s3.put_object()
        .bucket(BUCKET)
        .key("meta.bin")
        .content_type("application/x-tyre")
        .metadata("label", "defective")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("put");
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("meta.bin")
            .send()
            .await
            .expect("head");
    assert_eq!(head.content_type(), Some("application/x-tyre"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("label"))
            .map(String::as_str),
        Some("defective")
    );
}

#[tokio::test]
async fn ranges_return_the_requested_bytes() {
    let t = TestStore::start().await;
    let body = bytes(2 << 20, 3);
    put(&t.s3, "r.bin", &body).await;
    for (range, want) in [
        ("bytes=0-9", &body[0..10]),
        ("bytes=100-", &body[100..]),
        ("bytes=-5", &body[body.len() - 5..]),
        ("bytes=1048570-1048580", &body[1_048_570..1_048_581]),
    ] {
        let out =
            t.s3.get_object()
                .bucket(BUCKET)
                .key("r.bin")
                .range(range)
                .send()
                .await
                .expect(range);
        assert!(out.content_range().is_some(), "{range} has a Content-Range");
        let got = out.body.collect().await.expect("body").into_bytes();
        assert_eq!(&got[..], want, "{range}");
    }
    let err =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("r.bin")
            .range("bytes=99999999-")
            .send()
            .await
            .expect_err("416");
    assert_eq!(code(&err), "InvalidRange");
}

#[tokio::test]
async fn conditional_gets_follow_etag_and_dates() {
    let t = TestStore::start().await;
    put(&t.s3, "c.txt", b"v1").await;
    let etag = format!("\"{}\"", md5_hex(b"v1"));
    let ok =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("c.txt")
            .if_match(&etag)
            .send()
            .await;
    assert!(ok.is_ok(), "If-Match with the current ETag succeeds");
    let err =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("c.txt")
            .if_match("\"nope\"")
            .send()
            .await
            .expect_err("412");
    assert_eq!(status(&err), 412);
    let err =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("c.txt")
            .if_none_match(&etag)
            .send()
            .await
            .expect_err("304");
    assert_eq!(status(&err), 304);
    let past = aws_sdk_s3::primitives::DateTime::from_secs(0);
    let future = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
    assert!(
        t.s3.get_object()
            .bucket(BUCKET)
            .key("c.txt")
            .if_modified_since(past)
            .send()
            .await
            .is_ok()
    );
    let err =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("c.txt")
            .if_modified_since(future)
            .send()
            .await
            .expect_err("304");
    assert_eq!(status(&err), 304);
    let err =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("c.txt")
            .if_unmodified_since(past)
            .send()
            .await
            .expect_err("412");
    assert_eq!(status(&err), 412);
    assert!(
        t.s3.get_object()
            .bucket(BUCKET)
            .key("c.txt")
            .if_unmodified_since(future)
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn wrong_content_md5_is_refused_and_nothing_is_written() {
    let t = TestStore::start().await;
    let wrong = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("d.bin")
            .content_md5(wrong)
            .body(b"data".to_vec().into())
            .send()
            .await;
    assert_eq!(code(&err.expect_err("bad digest")), "BadDigest");
    assert!(
        !t.volume.join("d.bin").exists(),
        "no object after a failed digest"
    );
    let right = base64::engine::general_purpose::STANDARD
        .encode(<md5::Md5 as md5::Digest>::digest(b"data"));
    t.s3.put_object()
        .bucket(BUCKET)
        .key("d.bin")
        .content_md5(right)
        .body(b"data".to_vec().into())
        .send()
        .await
        .expect("ok");
}

#[tokio::test]
async fn sdk_checksums_are_verified_and_returned() {
    let t = TestStore::start().await;
    for algo in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha1,
    ] {
        let out =
            t.s3.put_object()
                .bucket(BUCKET)
                .key("sum.bin")
                .checksum_algorithm(algo.clone())
                .body(bytes(100_000, 1).into())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{algo:?}: {e:?}"));
        let returned = out
            .checksum_crc32()
            .or(out.checksum_crc32_c())
            .or(out.checksum_sha256())
            .or(out.checksum_sha1());
        assert!(returned.is_some(), "{algo:?} checksum echoed");
    }
    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("sum2.bin")
            .checksum_crc32("AAAAAA==")
            .body(b"hello".to_vec().into())
            .send()
            .await
            .expect_err("mismatch");
    assert_eq!(code(&err), "BadDigest");
    assert!(!t.volume.join("sum2.bin").exists());
}

#[tokio::test]
async fn copy_keeps_or_replaces_metadata() {
    let t = TestStore::start().await;
    t.s3.put_object()
        .bucket(BUCKET)
        .key("src.txt")
        .content_type("text/x-src")
        .metadata("k", "v")
        .body(b"copy me".to_vec().into())
        .send()
        .await
        .expect("put");
    t.s3.copy_object()
        .bucket(BUCKET)
        .key("dst/copy.txt")
        .copy_source(format!("{BUCKET}/src.txt"))
        .send()
        .await
        .expect("copy");
    assert_eq!(get(&t.s3, "dst/copy.txt").await, b"copy me");
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("dst/copy.txt")
            .send()
            .await
            .expect("head");
    assert_eq!(head.content_type(), Some("text/x-src"));
    assert_eq!(
        head.metadata().and_then(|m| m.get("k")).map(String::as_str),
        Some("v")
    );

    t.s3.copy_object()
        .bucket(BUCKET)
        .key("dst/replaced.txt")
        .copy_source(format!("{BUCKET}/src.txt"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("k2", "v2")
        .send()
        .await
        .expect("copy replace");
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("dst/replaced.txt")
            .send()
            .await
            .expect("head");
    assert_eq!(head.content_type(), Some("text/plain"));
    let meta = head.metadata().cloned().unwrap_or_default();
    assert_eq!(meta.get("k2").map(String::as_str), Some("v2"));
    assert!(!meta.contains_key("k"));
}

#[tokio::test]
async fn delete_removes_the_file_and_empty_parents() {
    let t = TestStore::start().await;
    put(&t.s3, "deep/er/x.bin", b"x").await;
    put(&t.s3, "deep/keep.bin", b"k").await;
    t.s3.delete_object()
        .bucket(BUCKET)
        .key("deep/er/x.bin")
        .send()
        .await
        .expect("delete");
    assert!(!t.volume.join("deep/er").exists(), "empty parent removed");
    assert!(t.volume.join("deep/keep.bin").exists());
    let err =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("deep/er/x.bin")
            .send()
            .await
            .expect_err("gone");
    assert_eq!(code(&err), "NoSuchKey");
    t.s3.delete_object()
        .bucket(BUCKET)
        .key("never-was")
        .send()
        .await
        .expect("deleting a missing key succeeds");
}

#[tokio::test]
async fn delete_objects_reports_each_key() {
    let t = TestStore::start().await;
    for k in ["m/1", "m/2", "m/3"] {
        put(&t.s3, k, b"1").await;
    }
    let ids = ["m/1", "m/2", "m/../etc"]
        .iter()
        .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
        .collect::<Vec<_>>();
    let out =
        t.s3.delete_objects()
            .bucket(BUCKET)
            .delete(
                Delete::builder()
                    .set_objects(Some(ids))
                    .build()
                    .expect("delete"),
            )
            .send()
            .await
            .expect("delete objects");
    let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["m/1", "m/2"]);
    assert_eq!(
        out.errors().len(),
        1,
        "the hostile key is an error, not a deletion"
    );
    assert_eq!(out.errors()[0].code(), Some("InvalidArgument"));
    assert_eq!(get(&t.s3, "m/3").await, b"1");
}

#[tokio::test]
async fn buckets_are_created_listed_and_deleted_only_when_empty() {
    let t = TestStore::start().await;
    t.s3.create_bucket()
        .bucket("made-by-s3")
        .send()
        .await
        .expect("create");
    let names: Vec<_> =
        t.s3.list_buckets()
            .send()
            .await
            .expect("list")
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(String::from))
            .collect();
    assert_eq!(names, ["fsxn-ontap", "made-by-s3"]);
    t.s3.head_bucket()
        .bucket("made-by-s3")
        .send()
        .await
        .expect("head");
    let location =
        t.s3.get_bucket_location()
            .bucket("made-by-s3")
            .send()
            .await
            .expect("location");
    let constraint = location.location_constraint().map_or("", |l| l.as_str());
    assert_eq!(constraint, "", "us-east-1 is empty, as on S3");
    t.s3.put_object()
        .bucket("made-by-s3")
        .key("k")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .expect("put");
    let err =
        t.s3.delete_bucket()
            .bucket("made-by-s3")
            .send()
            .await
            .expect_err("not empty");
    assert_eq!(code(&err), "BucketNotEmpty");
    t.s3.delete_object()
        .bucket("made-by-s3")
        .key("k")
        .send()
        .await
        .expect("delete");
    t.s3.delete_bucket()
        .bucket("made-by-s3")
        .send()
        .await
        .expect("delete bucket");
    let err =
        t.s3.head_bucket()
            .bucket("made-by-s3")
            .send()
            .await
            .expect_err("gone");
    assert_eq!(status(&err), 404);
}

#[tokio::test]
async fn virtual_host_style_reaches_the_bucket() {
    let t = TestStore::start().await;
    put(&t.s3, "vh.txt", b"virtual").await;
    let port = t.url.rsplit(':').next().expect("port");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://localhost:{port}"))
        .force_path_style(false)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            &t.full.access_key_id,
            &t.full.secret_access_key,
            None,
            None,
            "test",
        ))
        .build();
    // The SDK would resolve fsxn-ontap.localhost itself; send it to loopback with a Host header instead.
    let presigned = aws_sdk_s3::Client::from_conf(config)
        .get_object()
        .bucket(BUCKET)
        .key("vh.txt")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .expect("cfg"),
        )
        .await
        .expect("presign");
    let url = presigned
        .uri()
        .replace(&format!("{BUCKET}.localhost"), "127.0.0.1");
    let resp = reqwest::Client::new()
        .get(url)
        .header("host", format!("{BUCKET}.localhost:{port}"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.expect("body").as_ref(), b"virtual");
}

#[tokio::test]
async fn presigned_get_and_put_work_over_plain_http() {
    let t = TestStore::start().await;
    let cfg = || {
        aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60))
            .expect("cfg")
    };
    let put_url =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("p/signed.txt")
            .presigned(cfg())
            .await
            .expect("presign put");
    let resp = reqwest::Client::new()
        .put(put_url.uri())
        .body("presigned body")
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 200);
    let get_url =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("p/signed.txt")
            .presigned(cfg())
            .await
            .expect("presign get");
    let resp = reqwest::get(get_url.uri()).await.expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.bytes().await.expect("body").as_ref(),
        b"presigned body"
    );
}

#[tokio::test]
async fn response_overrides_of_a_presigned_get_set_the_headers() {
    let t = TestStore::start().await;
    put(&t.s3, "report.csv", b"a,b").await;
    let url =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("report.csv")
            .response_content_disposition("attachment; filename=\"r.csv\"")
            .response_content_type("text/csv")
            .response_cache_control("no-cache")
            .presigned(
                aws_sdk_s3::presigning::PresigningConfig::expires_in(
                    std::time::Duration::from_secs(60),
                )
                .expect("cfg"),
            )
            .await
            .expect("presign");
    let resp = reqwest::get(url.uri()).await.expect("get");
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    assert_eq!(
        header("content-disposition").as_deref(),
        Some("attachment; filename=\"r.csv\"")
    );
    assert_eq!(header("content-type").as_deref(), Some("text/csv"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
}

/// Eight PUTs of `key` at once, each of 1 MiB of its own bytes with the
/// same condition (`If-None-Match` or `If-Match` of `etag`): exactly one
/// wins, the others get 412, and the object is the winner's.
async fn race_conditional_puts(t: &TestStore, key: &str, if_none_match: bool, etag: &str) {
    let attempts = (0..8u8).map(|i| {
        let (s3, key, etag) = (t.s3.clone(), key.to_string(), etag.to_string());
        tokio::spawn(async move {
            let put = s3.put_object().bucket(BUCKET).key(key);
            let put = match if_none_match {
                true => put.if_none_match(etag),
                false => put.if_match(etag),
            };
            put.body(bytes(1 << 20, i).into()).send().await
        })
    });
    let mut won = Vec::new();
    for (i, attempt) in futures::future::join_all(attempts)
        .await
        .into_iter()
        .enumerate()
    {
        match attempt.expect("task") {
            Ok(_) => won.push(i),
            Err(e) => assert_eq!(status(&e), 412, "a losing conditional PUT is 412"),
        }
    }
    assert_eq!(won.len(), 1, "winners: {won:?}");
    let winner = u8::try_from(won[0]).expect("small index");
    assert_eq!(
        get(&t.s3, key).await,
        bytes(1 << 20, winner),
        "the object is the winner's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_create_only_puts_exactly_one_wins() {
    let t = TestStore::start().await;
    race_conditional_puts(&t, "once", true, "*").await;
    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("once")
            .if_none_match("*")
            .body(b"late".to_vec().into())
            .send()
            .await;
    assert_eq!(status(&err.expect_err("exists")), 412);
}

#[tokio::test]
async fn creating_a_bucket_twice_is_409_and_bad_names_are_refused() {
    let t = TestStore::start().await;
    t.s3.create_bucket()
        .bucket("twice")
        .send()
        .await
        .expect("create");
    let err =
        t.s3.create_bucket()
            .bucket("twice")
            .send()
            .await
            .expect_err("exists");
    assert_eq!(
        (status(&err), code(&err).as_str()),
        (409, "BucketAlreadyOwnedByYou")
    );
    for bad in [
        "foo.-bar",
        "foo-.bar",
        "192.168.5.4",
        "xn--bucket",
        "bucket-s3alias",
    ] {
        let err =
            t.s3.create_bucket()
                .bucket(bad)
                .send()
                .await
                .expect_err(bad);
        assert_eq!(
            (status(&err), code(&err).as_str()),
            (400, "InvalidBucketName"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn list_buckets_pages_by_max_buckets_and_names_the_owner() {
    let t = TestStore::start().await;
    for name in ["page-a", "page-b", "page-c", "other"] {
        t.s3.create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("create");
    }
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let out =
            t.s3.list_buckets()
                .prefix("page-")
                .max_buckets(2)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list buckets");
        assert!(out.buckets().len() <= 2);
        assert_eq!(out.owner().and_then(|o| o.display_name()), Some("tread"));
        names.extend(
            out.buckets()
                .iter()
                .filter_map(|b| b.name().map(String::from)),
        );
        token = out.continuation_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, ["page-a", "page-b", "page-c"]);
    let err =
        t.s3.list_buckets()
            .max_buckets(10_001)
            .send()
            .await
            .expect_err("out of range");
    assert_eq!(code(&err), "InvalidArgument");
}

#[tokio::test]
async fn a_304_names_the_objects_etag() {
    let t = TestStore::start().await;
    put(&t.s3, "v.txt", b"v1").await;
    let etag = format!("\"{}\"", md5_hex(b"v1"));
    let err =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("v.txt")
            .if_none_match(&etag)
            .send()
            .await
            .expect_err("304");
    let response = err.raw_response().expect("a response");
    assert_eq!(response.status().as_u16(), 304);
    assert_eq!(response.headers().get("etag"), Some(etag.as_str()));
    assert!(response.headers().get("last-modified").is_some());
}

#[tokio::test]
async fn conditional_puts_replace_only_the_version_they_name() {
    let t = TestStore::start().await;
    let missing =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("cas")
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .body(b"v0".to_vec().into())
            .send()
            .await
            .expect_err("no object to match");
    assert_eq!(
        (status(&missing), code(&missing).as_str()),
        (404, "NoSuchKey")
    );
    put(&t.s3, "cas", b"v1").await;
    let v1 = format!("\"{}\"", md5_hex(b"v1"));
    let stale = format!("\"{}\"", md5_hex(b"v0"));
    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("cas")
            .if_match(&stale)
            .body(b"v2".to_vec().into())
            .send()
            .await
            .expect_err("stale");
    assert_eq!(status(&err), 412);
    assert_eq!(
        get(&t.s3, "cas").await,
        b"v1",
        "a stale If-Match changes nothing"
    );
    t.s3.put_object()
        .bucket(BUCKET)
        .key("cas")
        .if_match(&v1)
        .body(b"v2".to_vec().into())
        .send()
        .await
        .expect("the current ETag replaces");
    assert_eq!(get(&t.s3, "cas").await, b"v2");
    let v2 = format!("\"{}\"", md5_hex(b"v2"));
    let err =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("cas")
            .if_none_match(&v2)
            .body(b"v3".to_vec().into())
            .send()
            .await
            .expect_err("If-None-Match of the current ETag");
    assert_eq!(status(&err), 412);
    t.s3.put_object()
        .bucket(BUCKET)
        .key("cas")
        .if_none_match(&v1)
        .body(b"v3".to_vec().into())
        .send()
        .await
        .expect("If-None-Match of another ETag is not `*`: it replaces");
    assert_eq!(get(&t.s3, "cas").await, b"v3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_puts_if_matching_one_version_exactly_one_wins() {
    let t = TestStore::start().await;
    put(&t.s3, "race", b"base").await;
    race_conditional_puts(&t, "race", false, &format!("\"{}\"", md5_hex(b"base"))).await;
}

#[tokio::test]
async fn a_copy_onto_itself_must_change_the_metadata() {
    let t = TestStore::start().await;
    put(&t.s3, "self.txt", b"same").await;
    let err =
        t.s3.copy_object()
            .bucket(BUCKET)
            .key("self.txt")
            .copy_source(format!("{BUCKET}/self.txt"))
            .send()
            .await
            .expect_err("a copy that changes nothing");
    assert_eq!((status(&err), code(&err).as_str()), (400, "InvalidRequest"));
    t.s3.copy_object()
        .bucket(BUCKET)
        .key("self.txt")
        .copy_source(format!("{BUCKET}/self.txt"))
        .metadata_directive(MetadataDirective::Replace)
        .metadata("note", "new")
        .send()
        .await
        .expect("a copy that replaces the metadata");
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("self.txt")
            .send()
            .await
            .expect("head");
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("note"))
            .map(String::as_str),
        Some("new")
    );
    assert_eq!(get(&t.s3, "self.txt").await, b"same");
}

#[tokio::test]
async fn delete_objects_refuses_more_than_1000_keys() {
    let t = TestStore::start().await;
    put(&t.s3, "kept", b"x").await;
    let objects: Vec<ObjectIdentifier> = std::iter::once("kept".to_string())
        .chain((0..1000).map(|i| format!("k{i}")))
        .map(|k| ObjectIdentifier::builder().key(k).build().expect("id"))
        .collect();
    let err =
        t.s3.delete_objects()
            .bucket(BUCKET)
            .delete(
                Delete::builder()
                    .set_objects(Some(objects))
                    .build()
                    .expect("delete"),
            )
            .send()
            .await
            .expect_err("1001 keys");
    assert_eq!((status(&err), code(&err).as_str()), (400, "MalformedXML"));
    assert_eq!(get(&t.s3, "kept").await, b"x", "nothing was deleted");
}

#[tokio::test]
async fn standard_headers_are_kept_through_put_copy_and_multipart() {
    let t = TestStore::start().await;
    let expires = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
    t.s3.put_object()
        .bucket(BUCKET)
        .key("h.txt")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"h.txt\"")
        .content_encoding("gzip")
        .content_language("fr")
        .expires(expires)
        .body(b"hello".to_vec().into())
        .send()
        .await
        .expect("put");
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("h.txt")
            .send()
            .await
            .expect("head");
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"h.txt\"")
    );
    assert_eq!(head.content_encoding(), Some("gzip"));
    assert_eq!(head.content_language(), Some("fr"));
    assert_eq!(head.expires_string(), Some("Tue, 02 Oct 2096 07:06:40 GMT"));
    let got =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("h.txt")
            .response_content_language("de")
            .send()
            .await
            .expect("get");
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(
        got.content_language(),
        Some("de"),
        "a response-* override wins"
    );

    t.s3.copy_object()
        .bucket(BUCKET)
        .key("copied.txt")
        .copy_source(format!("{BUCKET}/h.txt"))
        .send()
        .await
        .expect("copy");
    let copied =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("copied.txt")
            .send()
            .await
            .expect("head copy");
    assert_eq!(copied.content_encoding(), Some("gzip"), "a copy keeps them");

    let upload =
        t.s3.create_multipart_upload()
            .bucket(BUCKET)
            .key("m.bin")
            .cache_control("no-store")
            .send()
            .await
            .expect("create");
    let id = upload.upload_id().expect("id");
    let part =
        t.s3.upload_part()
            .bucket(BUCKET)
            .key("m.bin")
            .upload_id(id)
            .part_number(1)
            .body(b"one part".to_vec().into())
            .send()
            .await
            .expect("part");
    t.s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("m.bin")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().expect("etag"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let joined =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("m.bin")
            .send()
            .await
            .expect("head multipart");
    assert_eq!(joined.cache_control(), Some("no-store"));
}

/// The request id an error's answer names in its header, and its XML body.
fn request_ids<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (String, String) {
    let response = err.raw_response().expect("a response");
    let header = response
        .headers()
        .get("x-amz-request-id")
        .expect("x-amz-request-id")
        .to_string();
    let body = std::str::from_utf8(response.body().bytes().expect("a body")).expect("UTF-8");
    (header, body.to_string())
}

#[tokio::test]
async fn every_answer_names_its_request_and_an_error_names_it_twice() {
    use aws_sdk_s3::operation::RequestId;
    let t = TestStore::start().await;
    put(&t.s3, "here", b"x").await;
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("here")
            .send()
            .await
            .expect("head");
    assert!(
        head.request_id().is_some_and(|id| id.len() == 16),
        "{:?}",
        head.request_id()
    );
    let missing =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("missing")
            .send()
            .await
            .expect_err("404");
    let forged = crate::common::client_with(&t.url, &t.full.access_key_id, "not-the-secret");
    let unsigned = forged
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("a bad signature, refused by s3s itself");
    let (first, _) = request_ids(&missing);
    for (id, body) in [request_ids(&missing), request_ids(&unsigned)] {
        assert!(
            body.contains(&format!("<RequestId>{id}</RequestId>")),
            "{id}: {body}"
        );
    }
    assert_ne!(first, request_ids(&unsigned).0, "each request its own id");
}

#[tokio::test]
async fn a_bucket_keeps_the_location_constraint_it_was_created_with() {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let t = TestStore::start().await;
    let configuration = CreateBucketConfiguration::builder()
        .location_constraint(BucketLocationConstraint::EuWest1)
        .build();
    t.s3.create_bucket()
        .bucket("in-ireland")
        .create_bucket_configuration(configuration)
        .send()
        .await
        .expect("create");
    let location =
        t.s3.get_bucket_location()
            .bucket("in-ireland")
            .send()
            .await
            .expect("location");
    assert_eq!(
        location.location_constraint(),
        Some(&BucketLocationConstraint::EuWest1)
    );
    let head =
        t.s3.head_bucket()
            .bucket("in-ireland")
            .send()
            .await
            .expect("head");
    assert_eq!(head.bucket_region(), Some("eu-west-1"));
}

#[tokio::test]
async fn non_ascii_metadata_is_kept_and_comes_back_rfc2047_encoded_as_s3_answers_it() {
    let t = TestStore::start().await;
    let encoded = "=?UTF-8?B?Y2Fmw6k=?="; // "café"
    let title_of = async |key: &str| {
        let head = t.s3.head_object().bucket(BUCKET).key(key).send().await;
        head.expect("head")
            .metadata()
            .and_then(|m| m.get("title").cloned())
    };
    for (key, sent) in [("m/b.txt", encoded), ("m/q.txt", "=?UTF-8?Q?caf=C3=A9?=")] {
        t.s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .metadata("title", sent)
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect("put");
        assert_eq!(title_of(key).await.as_deref(), Some(encoded), "{sent}");
    }

    let presigned_put = async |key: &str, title: &'static [u8]| {
        let url =
            t.s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .presigned(
                    aws_sdk_s3::presigning::PresigningConfig::expires_in(
                        std::time::Duration::from_secs(60),
                    )
                    .expect("cfg"),
                )
                .await
                .expect("presign");
        let title =
            reqwest::header::HeaderValue::from_bytes(title).expect("obs-text is a valid value");
        let resp = reqwest::Client::new()
            .put(url.uri())
            .header("x-amz-meta-title", title)
            .body("x")
            .send()
            .await
            .expect("put");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    };
    let (status, _) = presigned_put("m/raw.txt", "café".as_bytes()).await;
    assert_eq!(status, 200, "raw UTF-8 is taken");
    assert_eq!(title_of("m/raw.txt").await.as_deref(), Some(encoded));
    let (status, body) = presigned_put("m/latin1.txt", b"caf\xe9").await;
    assert_eq!(status, 400, "bytes that are not UTF-8: {body}");
    assert!(
        body.contains("x-amz-meta-title"),
        "the error names the header: {body}"
    );
    assert!(!t.volume.join("m/latin1.txt").exists());
}
