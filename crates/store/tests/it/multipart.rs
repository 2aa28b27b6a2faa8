//! The multipart family: part-size rules, md5-of-parts ETags, copy parts, listing, abort.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::common::{BUCKET, TestStore, bytes, code, get, put};

const MIB: usize = 1 << 20;

fn md5(data: &[u8]) -> [u8; 16] {
    <md5::Md5 as md5::Digest>::digest(data).into()
}

async fn start(t: &TestStore, key: &str) -> String {
    let out =
        t.s3.create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .content_type("application/x-big")
            .send()
            .await
            .expect("create");
    out.upload_id().expect("upload id").to_string()
}

async fn upload(t: &TestStore, key: &str, id: &str, n: i32, body: Vec<u8>) -> CompletedPart {
    let out =
        t.s3.upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(body.into())
            .send()
            .await
            .expect("part");
    CompletedPart::builder()
        .part_number(n)
        .e_tag(out.e_tag().expect("etag"))
        .build()
}

/// The part list of a CompleteMultipartUpload.
fn part_list(parts: Vec<CompletedPart>) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build()
}

async fn complete(
    t: &TestStore,
    key: &str,
    id: &str,
    parts: Vec<CompletedPart>,
) -> Result<String, String> {
    t.s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .multipart_upload(part_list(parts))
        .send()
        .await
        .map(|o| o.e_tag().unwrap_or_default().to_string())
        .map_err(|e| code(&e))
}

#[tokio::test]
async fn multipart_upload_joins_parts_with_md5_of_parts_etag() {
    let t = TestStore::start().await;
    let (p1, p2) = (bytes(5 * MIB, 1), bytes(MIB + 17, 2));
    let id = start(&t, "big/obj.bin").await;
    let parts = vec![
        upload(&t, "big/obj.bin", &id, 1, p1.clone()).await,
        upload(&t, "big/obj.bin", &id, 2, p2.clone()).await,
    ];
    let etag = complete(&t, "big/obj.bin", &id, parts)
        .await
        .expect("complete");
    let mut joined_md5s = md5(&p1).to_vec();
    joined_md5s.extend(md5(&p2));
    assert_eq!(etag, format!("\"{}-2\"", hex::encode(md5(&joined_md5s))));
    let mut whole = p1;
    whole.extend(p2);
    assert_eq!(get(&t.s3, "big/obj.bin").await, whole);
    assert_eq!(
        std::fs::read(t.volume.join("big/obj.bin")).expect("plain file"),
        whole
    );
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("big/obj.bin")
            .send()
            .await
            .expect("head");
    assert_eq!(head.content_type(), Some("application/x-big"));
    let staged: Vec<_> = walk_files(&t.volume.join(".tread/multipart"));
    assert!(
        staged.len() == 1 && staged[0].ends_with("completed.json"),
        "the parts are gone, the completion's record stays for retries: {staged:?}"
    );
}

/// The files under `dir`, at any depth.
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        match entry.file_type().expect("type").is_dir() {
            true => files.extend(walk_files(&entry.path())),
            false => files.push(entry.path()),
        }
    }
    files
}

#[tokio::test]
async fn small_middle_parts_wrong_etags_and_bad_order_are_refused() {
    let t = TestStore::start().await;
    let id = start(&t, "m.bin").await;
    let small = upload(&t, "m.bin", &id, 1, bytes(MIB, 1)).await;
    let last = upload(&t, "m.bin", &id, 2, bytes(10, 2)).await;
    assert_eq!(
        complete(&t, "m.bin", &id, vec![small.clone(), last.clone()]).await,
        Err("EntityTooSmall".into())
    );
    assert_eq!(
        complete(&t, "m.bin", &id, vec![last.clone(), small.clone()]).await,
        Err("InvalidPartOrder".into())
    );
    assert_eq!(
        complete(&t, "m.bin", &id, vec![last.clone(), last.clone()]).await,
        Err("InvalidPartOrder".into()),
        "a part listed twice"
    );
    let forged = CompletedPart::builder()
        .part_number(1)
        .e_tag("\"00000000000000000000000000000000\"")
        .build();
    assert_eq!(
        complete(&t, "m.bin", &id, vec![forged]).await,
        Err("InvalidPart".into())
    );
    let missing = CompletedPart::builder()
        .part_number(3)
        .e_tag(last.e_tag().unwrap_or_default())
        .build();
    assert_eq!(
        complete(&t, "m.bin", &id, vec![missing]).await,
        Err("InvalidPart".into())
    );
    assert!(
        !t.volume.join("m.bin").exists(),
        "no object from a refused completion"
    );
    // A single small part is a valid upload.
    complete(&t, "m.bin", &id, vec![small])
        .await
        .expect("one part");
}

#[tokio::test]
async fn part_numbers_outside_range_and_unknown_uploads_are_errors() {
    let t = TestStore::start().await;
    let id = start(&t, "n.bin").await;
    let err =
        t.s3.upload_part()
            .bucket(BUCKET)
            .key("n.bin")
            .upload_id(&id)
            .part_number(10_001)
            .body(b"x".to_vec().into())
            .send()
            .await;
    assert_eq!(code(&err.expect_err("range")), "InvalidArgument");
    let err =
        t.s3.upload_part()
            .bucket(BUCKET)
            .key("n.bin")
            .upload_id("0123456789abcdef0123456789abcdef")
            .part_number(1)
            .body(b"x".to_vec().into())
            .send()
            .await;
    assert_eq!(code(&err.expect_err("unknown")), "NoSuchUpload");
    let err =
        t.s3.upload_part()
            .bucket(BUCKET)
            .key("n.bin")
            .upload_id("../../etc")
            .part_number(1)
            .body(b"x".to_vec().into())
            .send()
            .await;
    assert_eq!(code(&err.expect_err("hostile id")), "NoSuchUpload");
}

#[tokio::test]
async fn upload_part_copy_takes_a_range_of_an_object() {
    let t = TestStore::start().await;
    let src = bytes(6 * MIB, 9);
    put(&t.s3, "src.bin", &src).await;
    let id = start(&t, "copied.bin").await;
    let out =
        t.s3.upload_part_copy()
            .bucket(BUCKET)
            .key("copied.bin")
            .upload_id(&id)
            .part_number(1)
            .copy_source(format!("{BUCKET}/src.bin"))
            .copy_source_range(format!("bytes=0-{}", 5 * MIB - 1))
            .send()
            .await
            .expect("copy part");
    let etag = out
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_string();
    let p1 = CompletedPart::builder().part_number(1).e_tag(etag).build();
    let p2 = upload(&t, "copied.bin", &id, 2, b"tail".to_vec()).await;
    complete(&t, "copied.bin", &id, vec![p1, p2])
        .await
        .expect("complete");
    let mut want = src[..5 * MIB].to_vec();
    want.extend(b"tail");
    assert_eq!(get(&t.s3, "copied.bin").await, want);

    let id = start(&t, "past.bin").await;
    for range in [
        format!("bytes=0-{}", 6 * MIB),
        "bytes=0-".to_string(),
        "bytes=-10".to_string(),
    ] {
        let err =
            t.s3.upload_part_copy()
                .bucket(BUCKET)
                .key("past.bin")
                .upload_id(&id)
                .part_number(1)
                .copy_source(format!("{BUCKET}/src.bin"))
                .copy_source_range(&range)
                .send()
                .await
                .expect_err("refused, not shortened");
        assert_eq!(code(&err), "InvalidArgument", "{range}");
    }
}

#[tokio::test]
async fn uploads_and_parts_are_listed_and_abort_cleans_up() {
    let t = TestStore::start().await;
    let a = start(&t, "up/a").await;
    let b = start(&t, "up/b").await;
    upload(&t, "up/a", &a, 1, bytes(100, 1)).await;
    upload(&t, "up/a", &a, 2, bytes(200, 2)).await;
    let out =
        t.s3.list_multipart_uploads()
            .bucket(BUCKET)
            .prefix("up/")
            .send()
            .await
            .expect("list uploads");
    let listed: Vec<_> = out
        .uploads()
        .iter()
        .map(|u| {
            (
                u.key().unwrap_or_default(),
                u.upload_id().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(listed, [("up/a", a.as_str()), ("up/b", b.as_str())]);
    let parts =
        t.s3.list_parts()
            .bucket(BUCKET)
            .key("up/a")
            .upload_id(&a)
            .send()
            .await
            .expect("list parts");
    let sizes: Vec<_> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(sizes, [(Some(1), Some(100)), (Some(2), Some(200))]);
    t.s3.abort_multipart_upload()
        .bucket(BUCKET)
        .key("up/a")
        .upload_id(&a)
        .send()
        .await
        .expect("abort");
    let err =
        t.s3.list_parts()
            .bucket(BUCKET)
            .key("up/a")
            .upload_id(&a)
            .send()
            .await
            .expect_err("aborted");
    assert_eq!(code(&err), "NoSuchUpload");
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    assert!(out.contents().is_empty(), "staged parts are never objects");
}

#[tokio::test]
async fn abandoned_uploads_are_swept_and_fresh_ones_kept() {
    let options = tread_store::StoreOptions {
        abandoned_upload_age: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let t = TestStore::start_with(options, tread_store::FileOwnership::default()).await;
    let old = start(&t, "old.bin").await;
    upload(&t, "old.bin", &old, 1, bytes(100, 1)).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let fresh = start(&t, "fresh.bin").await;
    t.store.sweep_leftovers();
    let err =
        t.s3.list_parts()
            .bucket(BUCKET)
            .key("old.bin")
            .upload_id(&old)
            .send()
            .await
            .expect_err("swept");
    assert_eq!(code(&err), "NoSuchUpload");
    t.s3.list_parts()
        .bucket(BUCKET)
        .key("fresh.bin")
        .upload_id(&fresh)
        .send()
        .await
        .expect("fresh upload kept");
}

#[tokio::test]
async fn listing_uploads_with_a_delimiter_rolls_up_prefixes_across_pages() {
    let t = TestStore::start().await;
    for key in ["top.bin", "dir1/a", "dir1/b", "dir2/c"] {
        start(&t, key).await;
    }
    let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
    let (mut key_marker, mut id_marker) = (None, None);
    loop {
        let out =
            t.s3.list_multipart_uploads()
                .bucket(BUCKET)
                .delimiter("/")
                .max_uploads(1)
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await
                .expect("list uploads");
        keys.extend(
            out.uploads()
                .iter()
                .filter_map(|u| u.key().map(String::from)),
        );
        prefixes.extend(
            out.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(String::from)),
        );
        if !out.is_truncated().unwrap_or(false) {
            break;
        }
        key_marker = out.next_key_marker().map(String::from);
        id_marker = out.next_upload_id_marker().map(String::from);
    }
    assert_eq!(prefixes, ["dir1/", "dir2/"]);
    assert_eq!(keys, ["top.bin"]);
}

#[tokio::test]
async fn r16_an_upload_belongs_to_the_user_who_created_it() {
    let t = TestStore::start().await;
    let other = {
        let keys = t.catalog.user_create("other-writer").await.expect("user");
        t.catalog
            .group_create("writers", &["other-writer".into()], &["FullAccess".into()])
            .await
            .expect("group");
        keys
    };
    t.store.reload().await.expect("reload the catalog");
    let other = t.client(&other);
    let id = start(&t, "owned").await;
    let part = upload(&t, "owned", &id, 1, bytes(1000, 1)).await;

    let denied = other
        .upload_part()
        .bucket(BUCKET)
        .key("owned")
        .upload_id(&id)
        .part_number(2)
        .body(bytes(10, 2).into())
        .send()
        .await
        .expect_err("another user's part");
    assert_eq!(code(&denied), "AccessDenied");
    let denied = other
        .list_parts()
        .bucket(BUCKET)
        .key("owned")
        .upload_id(&id)
        .send()
        .await
        .expect_err("another user's listing");
    assert_eq!(code(&denied), "AccessDenied");
    let denied = other
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("owned")
        .upload_id(&id)
        .send()
        .await
        .expect_err("another user's abort");
    assert_eq!(code(&denied), "AccessDenied");
    let denied = other
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("owned")
        .upload_id(&id)
        .multipart_upload(part_list(vec![part.clone()]))
        .send()
        .await
        .expect_err("another user's completion");
    assert_eq!(code(&denied), "AccessDenied");

    complete(&t, "owned", &id, vec![part])
        .await
        .expect("the creator completes");
    assert_eq!(get(&t.s3, "owned").await, bytes(1000, 1));
}

#[tokio::test]
async fn a_conditional_complete_replaces_only_the_version_it_names() {
    let t = TestStore::start().await;
    put(&t.s3, "cas.bin", b"old").await;
    let old = format!("\"{}\"", hex::encode(md5(b"old")));
    let id = start(&t, "cas.bin").await;
    let part = upload(&t, "cas.bin", &id, 1, bytes(MIB, 3)).await;
    let finish = |if_match: &str, if_none_match: Option<&str>| {
        t.s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("cas.bin")
            .upload_id(&id)
            .if_match(if_match)
            .set_if_none_match(if_none_match.map(String::from))
            .multipart_upload(part_list(vec![part.clone()]))
            .send()
    };
    let stale = finish("\"0123456789abcdef0123456789abcdef\"", None)
        .await
        .expect_err("stale If-Match");
    assert_eq!(code(&stale), "PreconditionFailed");
    assert_eq!(get(&t.s3, "cas.bin").await, b"old", "nothing replaced");
    let contradictory = finish(&old, Some(&old))
        .await
        .expect_err("If-None-Match of the current ETag");
    assert_eq!(code(&contradictory), "PreconditionFailed");
    finish(&old, None)
        .await
        .expect("the current ETag completes");
    assert_eq!(get(&t.s3, "cas.bin").await, bytes(MIB, 3));
}

#[tokio::test]
async fn a_repeated_complete_answers_as_the_first_did() {
    let t = TestStore::start().await;
    let id = start(&t, "again.bin").await;
    let parts = vec![
        upload(&t, "again.bin", &id, 1, bytes(5 * MIB, 1)).await,
        upload(&t, "again.bin", &id, 2, bytes(MIB, 2)).await,
    ];
    let first = complete(&t, "again.bin", &id, parts.clone())
        .await
        .expect("complete");
    let retry = complete(&t, "again.bin", &id, parts.clone())
        .await
        .expect("a retry after a lost answer succeeds");
    assert_eq!(retry, first, "with the same ETag");
    let other = t.client(&t.read_only);
    let err = other
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("again.bin")
        .upload_id(&id)
        .multipart_upload(part_list(parts.clone()))
        .send()
        .await
        .expect_err("another user");
    assert_eq!(code(&err), "AccessDenied");
    let part_after =
        t.s3.upload_part()
            .bucket(BUCKET)
            .key("again.bin")
            .upload_id(&id)
            .part_number(3)
            .body(b"late".to_vec().into())
            .send()
            .await
            .expect_err("the upload is over");
    assert_eq!(code(&part_after), "NoSuchUpload");
    put(&t.s3, "again.bin", b"replaced").await;
    assert_eq!(
        complete(&t, "again.bin", &id, parts).await,
        Err("NoSuchUpload".to_string()),
        "once the object is another, the upload is only gone"
    );
}

#[tokio::test]
async fn get_and_head_by_part_number_answer_that_part() {
    let t = TestStore::start().await;
    let (one, two) = (bytes(5 * MIB, 4), bytes(MIB, 5));
    let id = start(&t, "parts.bin").await;
    let parts = vec![
        upload(&t, "parts.bin", &id, 1, one.clone()).await,
        upload(&t, "parts.bin", &id, 2, two.clone()).await,
    ];
    complete(&t, "parts.bin", &id, parts)
        .await
        .expect("complete");
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("parts.bin")
            .part_number(1)
            .send()
            .await
            .expect("head part 1");
    assert_eq!(head.content_length(), Some(5 * MIB as i64));
    assert_eq!(head.parts_count(), Some(2));
    let second =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("parts.bin")
            .part_number(2)
            .send()
            .await
            .expect("get part 2");
    assert_eq!(second.parts_count(), Some(2));
    assert_eq!(
        second.content_range(),
        Some("bytes 5242880-6291455/6291456")
    );
    let body = second.body.collect().await.expect("body").into_bytes();
    assert_eq!(body.as_ref(), two.as_slice());
    let past =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("parts.bin")
            .part_number(3)
            .send()
            .await
            .expect_err("no part 3");
    assert_eq!(
        (crate::common::status(&past), code(&past).as_str()),
        (416, "InvalidPartNumber")
    );
    let both =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("parts.bin")
            .part_number(1)
            .range("bytes=0-9")
            .send()
            .await
            .expect_err("a range and a part");
    assert_eq!(code(&both), "InvalidRequest");

    put(&t.s3, "whole.bin", b"written whole").await;
    let whole =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("whole.bin")
            .part_number(1)
            .send()
            .await
            .expect("an object written whole is its own part 1");
    assert_eq!(
        (whole.content_length(), whole.parts_count()),
        (Some(13), None)
    );
    let err =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("whole.bin")
            .part_number(2)
            .send()
            .await
            .expect_err("no part 2");
    assert_eq!(crate::common::status(&err), 416);
}

#[tokio::test]
async fn get_object_attributes_names_size_etag_checksum_and_pages_parts() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectAttributes};
    let t = TestStore::start().await;
    let id = start(&t, "attrs.bin").await;
    let parts = vec![
        upload(&t, "attrs.bin", &id, 1, bytes(5 * MIB, 6)).await,
        upload(&t, "attrs.bin", &id, 2, bytes(5 * MIB, 7)).await,
        upload(&t, "attrs.bin", &id, 3, bytes(10, 8)).await,
    ];
    let etag = complete(&t, "attrs.bin", &id, parts)
        .await
        .expect("complete");
    let page = |marker: Option<i32>| {
        t.s3.get_object_attributes()
            .bucket(BUCKET)
            .key("attrs.bin")
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::ObjectSize)
            .object_attributes(ObjectAttributes::Etag)
            .max_parts(2)
            .set_part_number_marker(marker.map(|m| m.to_string()))
            .send()
    };
    let first = page(None).await.expect("attributes");
    assert_eq!(first.object_size(), Some(10 * MIB as i64 + 10));
    assert_eq!(
        first.e_tag().map(|e| e.trim_matches('"')),
        Some(etag.trim_matches('"'))
    );
    let listed = first.object_parts().expect("parts");
    assert_eq!(listed.total_parts_count(), Some(3));
    assert_eq!(listed.is_truncated(), Some(true));
    let sizes: Vec<_> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(
        sizes,
        [
            (Some(1), Some(5 * MIB as i64)),
            (Some(2), Some(5 * MIB as i64))
        ]
    );
    let next = listed
        .next_part_number_marker()
        .and_then(|m| m.parse().ok());
    let rest = page(next).await.expect("the next page");
    let last = rest.object_parts().expect("parts");
    assert_eq!(last.is_truncated(), Some(false));
    assert_eq!(
        last.parts()
            .iter()
            .map(|p| p.part_number())
            .collect::<Vec<_>>(),
        [Some(3)]
    );

    t.s3.put_object()
        .bucket(BUCKET)
        .key("whole.txt")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(b"written whole".to_vec().into())
        .send()
        .await
        .expect("put");
    let whole =
        t.s3.get_object_attributes()
            .bucket(BUCKET)
            .key("whole.txt")
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::Checksum)
            .object_attributes(ObjectAttributes::StorageClass)
            .send()
            .await
            .expect("attributes");
    assert!(
        whole.object_parts().is_none(),
        "no parts for an object written whole"
    );
    assert!(whole.checksum().and_then(|c| c.checksum_sha256()).is_some());
    assert_eq!(whole.storage_class().map(|c| c.as_str()), Some("STANDARD"));
    assert_eq!(whole.object_size(), None, "only what was asked for");
}

/// Base64 of an s3s checksum's bytes, as S3 writes checksums.
fn b64(raw: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Creates an upload asking for `algorithm` (and `kind`, if given).
async fn start_with_checksum(
    t: &TestStore,
    key: &str,
    algorithm: aws_sdk_s3::types::ChecksumAlgorithm,
    kind: Option<aws_sdk_s3::types::ChecksumType>,
) -> aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput {
    t.s3.create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .checksum_algorithm(algorithm)
        .set_checksum_type(kind)
        .send()
        .await
        .expect("create")
}

#[tokio::test]
async fn a_composite_sha256_upload_echoes_lists_and_keeps_its_checksum() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
    use s3s::crypto::{Checksum as _, Sha256};
    let t = TestStore::start().await;
    let key = "sums/composite.bin";
    let created = start_with_checksum(&t, key, ChecksumAlgorithm::Sha256, None).await;
    assert_eq!(
        created.checksum_algorithm(),
        Some(&ChecksumAlgorithm::Sha256)
    );
    assert_eq!(created.checksum_type(), Some(&ChecksumType::Composite));
    let id = created.upload_id().expect("id");
    let bodies = [bytes(5 * MIB, 3), bytes(1000, 4)];
    let mut parts = Vec::new();
    for (n, body) in (1..).zip(&bodies) {
        let out =
            t.s3.upload_part()
                .bucket(BUCKET)
                .key(key)
                .upload_id(id)
                .part_number(n)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .body(body.clone().into())
                .send()
                .await
                .expect("part");
        assert_eq!(
            out.checksum_sha256(),
            Some(b64(Sha256::checksum(body)).as_str())
        );
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().expect("etag"))
                .checksum_sha256(out.checksum_sha256().expect("sum"))
                .build(),
        );
    }
    let listed =
        t.s3.list_parts()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .send()
            .await
            .expect("list parts");
    assert_eq!(
        listed.checksum_algorithm(),
        Some(&ChecksumAlgorithm::Sha256)
    );
    assert_eq!(listed.checksum_type(), Some(&ChecksumType::Composite));

    let without_sums: Vec<_> = parts
        .iter()
        .map(|p| {
            CompletedPart::builder()
                .part_number(p.part_number().expect("n"))
                .e_tag(p.e_tag().expect("etag"))
                .build()
        })
        .collect();
    assert_eq!(
        complete(&t, key, id, without_sums).await,
        Err("InvalidPart".to_string()),
        "a composite upload must list each part's checksum"
    );

    let mut joined = Sha256::checksum(&bodies[0]).to_vec();
    joined.extend(Sha256::checksum(&bodies[1]));
    let expected = format!("{}-2", b64(Sha256::checksum(&joined)));
    let done_with = || {
        t.s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .multipart_upload(part_list(parts.clone()))
            .send()
    };
    let done = done_with().await.expect("complete");
    assert_eq!(done.checksum_sha256(), Some(expected.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
    let again = done_with().await.expect("a repeated complete");
    assert_eq!(again.checksum_sha256(), Some(expected.as_str()));
    let head =
        t.s3.head_object()
            .bucket(BUCKET)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("head");
    assert_eq!(head.checksum_sha256(), Some(expected.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite));
}

#[tokio::test]
async fn a_full_object_crc32_upload_checks_and_keeps_the_whole_objects_crc() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
    use s3s::crypto::{Checksum as _, Crc32};
    let t = TestStore::start().await;
    let refused =
        t.s3.create_multipart_upload()
            .bucket(BUCKET)
            .key("sums/never.bin")
            .checksum_algorithm(ChecksumAlgorithm::Sha1)
            .checksum_type(ChecksumType::FullObject)
            .send()
            .await
            .expect_err("SHA1 is never a whole-object checksum");
    assert_eq!(code(&refused), "InvalidRequest");

    let bodies = [bytes(5 * MIB, 5), bytes(333, 6)];
    let whole: Vec<u8> = bodies.concat();
    let whole_crc = b64(Crc32::checksum(&whole));
    let upload_all = async |key: &str| {
        let created = start_with_checksum(
            &t,
            key,
            ChecksumAlgorithm::Crc32,
            Some(ChecksumType::FullObject),
        )
        .await;
        assert_eq!(created.checksum_type(), Some(&ChecksumType::FullObject));
        let id = created.upload_id().expect("id").to_string();
        let mut parts = Vec::new();
        for (n, body) in (1..).zip(&bodies) {
            parts.push(upload(&t, key, &id, n, body.clone()).await);
        }
        (id, parts)
    };
    let complete_claiming = async |key: &str, id: &str, parts: Vec<CompletedPart>, crc: &str| {
        t.s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .checksum_crc32(crc)
            .checksum_type(ChecksumType::FullObject)
            .multipart_upload(part_list(parts))
            .send()
            .await
    };

    let (id, parts) = upload_all("sums/wrong.bin").await;
    let wrong = complete_claiming(
        "sums/wrong.bin",
        &id,
        parts,
        &b64(Crc32::checksum(b"other")),
    )
    .await
    .expect_err("a whole-object CRC that does not match");
    assert_eq!(code(&wrong), "BadDigest");
    let absent =
        t.s3.head_object()
            .bucket(BUCKET)
            .key("sums/wrong.bin")
            .send()
            .await;
    assert!(
        absent.is_err(),
        "nothing is stored when the checksum is wrong"
    );

    let (id, parts) = upload_all("sums/whole.bin").await;
    let done = complete_claiming("sums/whole.bin", &id, parts, &whole_crc)
        .await
        .expect("complete");
    assert_eq!(done.checksum_crc32(), Some(whole_crc.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));
    let got =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("sums/whole.bin")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get");
    assert_eq!(got.checksum_crc32(), Some(whole_crc.as_str()));
    assert_eq!(got.checksum_type(), Some(&ChecksumType::FullObject));
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(
        body.as_ref(),
        whole.as_slice(),
        "the SDK checked the CRC as it read"
    );
}

#[tokio::test]
async fn a_copied_part_of_a_checksummed_upload_carries_its_md5_and_checksum() {
    use aws_sdk_s3::types::ChecksumAlgorithm;
    use s3s::crypto::{Checksum as _, Sha256};
    let t = TestStore::start().await;
    let source = bytes(3 * MIB, 9);
    put(&t.s3, "src.bin", &source).await;
    let created = start_with_checksum(&t, "copied.bin", ChecksumAlgorithm::Sha256, None).await;
    let out =
        t.s3.upload_part_copy()
            .bucket(BUCKET)
            .key("copied.bin")
            .upload_id(created.upload_id().expect("id"))
            .part_number(1)
            .copy_source(format!("{BUCKET}/src.bin"))
            .copy_source_range(format!("bytes=100-{}", MIB + 99))
            .send()
            .await
            .expect("copy part");
    let copied = &source[100..MIB + 100];
    let result = out.copy_part_result().expect("result");
    assert_eq!(
        result.e_tag().map(|e| e.trim_matches('"')),
        Some(hex::encode(md5(copied)).as_str())
    );
    assert_eq!(
        result.checksum_sha256(),
        Some(b64(Sha256::checksum(copied)).as_str())
    );
}
