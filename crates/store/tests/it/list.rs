//! Listing: key order across nested directories, delimiters, pagination, encoding.

use aws_sdk_s3::types::EncodingType;

use crate::common::{BUCKET, TestStore, listed_keys, listed_prefixes, put};

async fn all_keys_v2(t: &TestStore, prefix: &str, page: i32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out =
            t.s3.list_objects_v2()
                .bucket(BUCKET)
                .prefix(prefix)
                .max_keys(page)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list");
        keys.extend(listed_keys(out.contents()));
        token = out.next_continuation_token().map(String::from);
        if !out.is_truncated().unwrap_or(false) {
            return keys;
        }
    }
}

const KEYS: [&str; 9] = [
    "a", "a-b", "a/b", "a/b/c", "a0", "b/x y/z", "b/é", "b/z", "c/",
];

async fn populate(t: &TestStore) {
    for k in KEYS.iter().filter(|k| **k != "a/b/c" && **k != "a") {
        put(&t.s3, k, b"x").await;
    }
}

#[tokio::test]
async fn keys_come_in_utf8_byte_order_across_directories() {
    let t = TestStore::start().await;
    // "a" and "a/b" cannot both be files with "a/b/c"; use the ones that can coexist.
    populate(&t).await;
    let mut expected: Vec<String> = KEYS
        .iter()
        .filter(|k| **k != "a/b/c" && **k != "a")
        .map(|k| (*k).to_string())
        .collect();
    expected.sort();
    for page in [1, 2, 3, 1000] {
        assert_eq!(
            all_keys_v2(&t, "", page).await,
            expected,
            "page size {page}"
        );
    }
}

#[tokio::test]
async fn delimiter_rolls_up_common_prefixes() {
    let t = TestStore::start().await;
    populate(&t).await;
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .delimiter("/")
            .send()
            .await
            .expect("list");
    let keys = listed_keys(out.contents());
    let prefixes = listed_prefixes(out.common_prefixes());
    assert_eq!(keys, ["a-b", "a0"]);
    assert_eq!(prefixes, ["a/", "b/", "c/"]);

    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .prefix("b/")
            .delimiter("/")
            .send()
            .await
            .expect("list");
    let keys = listed_keys(out.contents());
    let prefixes = listed_prefixes(out.common_prefixes());
    assert_eq!(keys, ["b/z", "b/é"]);
    assert_eq!(prefixes, ["b/x y/"]);
}

#[tokio::test]
async fn delimiter_pages_never_repeat_a_prefix() {
    let t = TestStore::start().await;
    for i in 0..5 {
        put(&t.s3, &format!("d{i}/x"), b"x").await;
        put(&t.s3, &format!("d{i}/y"), b"y").await;
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let out =
            t.s3.list_objects_v2()
                .bucket(BUCKET)
                .delimiter("/")
                .max_keys(2)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list");
        seen.extend(listed_prefixes(out.common_prefixes()));
        token = out.next_continuation_token().map(String::from);
        if !out.is_truncated().unwrap_or(false) {
            break;
        }
    }
    assert_eq!(seen, ["d0/", "d1/", "d2/", "d3/", "d4/"]);
}

#[tokio::test]
async fn start_after_and_prefix_narrow_the_listing() {
    let t = TestStore::start().await;
    populate(&t).await;
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .start_after("a0")
            .send()
            .await
            .expect("list");
    let keys = listed_keys(out.contents());
    assert_eq!(keys, ["b/x y/z", "b/z", "b/é", "c/"]);
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .prefix("a")
            .send()
            .await
            .expect("list");
    let keys = listed_keys(out.contents());
    assert_eq!(keys, ["a-b", "a/b", "a0"]);
}

#[tokio::test]
async fn list_v1_pages_with_markers() {
    let t = TestStore::start().await;
    populate(&t).await;
    let mut keys = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out =
            t.s3.list_objects()
                .bucket(BUCKET)
                .max_keys(2)
                .set_marker(marker)
                .send()
                .await
                .expect("list v1");
        keys.extend(listed_keys(out.contents()));
        if !out.is_truncated().unwrap_or(false) {
            break;
        }
        marker = out
            .next_marker()
            .map(String::from)
            .or_else(|| keys.last().cloned());
    }
    let mut expected: Vec<String> = KEYS
        .iter()
        .filter(|k| **k != "a/b/c" && **k != "a")
        .map(|k| (*k).to_string())
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn url_encoding_is_applied_and_decoded_by_the_sdk() {
    let t = TestStore::start().await;
    put(&t.s3, "sp ace/ü+x", b"1").await;
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .encoding_type(EncodingType::Url)
            .send()
            .await
            .expect("list");
    let keys = listed_keys(out.contents());
    // The SDK does not decode: the wire form is what we sent.
    assert_eq!(keys, ["sp%20ace/%C3%BC%2Bx"]);
}

#[tokio::test]
async fn listing_reports_size_and_etag() {
    let t = TestStore::start().await;
    put(&t.s3, "sized", &[1u8; 1234]).await;
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
    let o = &out.contents()[0];
    assert_eq!(o.size(), Some(1234));
    let etag = o.e_tag().expect("etag");
    assert_eq!(etag.len(), 34, "quoted hex md5: {etag}");
}

#[tokio::test]
async fn a_v1_marker_equal_to_the_prefix_lists_everything_under_it() {
    let t = TestStore::start().await;
    populate(&t).await;
    let out =
        t.s3.list_objects()
            .bucket(BUCKET)
            .prefix("b/")
            .marker("b/")
            .delimiter("/")
            .send()
            .await
            .expect("list");
    let keys = listed_keys(out.contents());
    let prefixes = listed_prefixes(out.common_prefixes());
    assert_eq!(keys, ["b/z", "b/é"]);
    assert_eq!(prefixes, ["b/x y/"]);
}

#[tokio::test]
async fn a_prefix_through_a_symlink_out_of_the_volume_lists_nothing() {
    let t = TestStore::start().await;
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret.txt"), b"s").expect("write");
    std::os::unix::fs::symlink(outside.path(), t.volume.join("link")).expect("symlink");
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .prefix("link/")
            .send()
            .await
            .expect("list");
    assert!(out.contents().is_empty(), "{:?}", out.contents());
}

#[tokio::test]
async fn max_keys_zero_answers_an_untruncated_empty_page() {
    let t = TestStore::start().await;
    populate(&t).await;
    let v2 =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .max_keys(0)
            .send()
            .await
            .expect("list v2");
    assert_eq!((v2.key_count(), v2.is_truncated()), (Some(0), Some(false)));
    assert!(v2.contents().is_empty() && v2.next_continuation_token().is_none());
    let v1 =
        t.s3.list_objects()
            .bucket(BUCKET)
            .max_keys(0)
            .send()
            .await
            .expect("list v1");
    assert_eq!(v1.is_truncated(), Some(false));
    assert!(v1.contents().is_empty());
}

#[tokio::test]
async fn listings_echo_as_s3_does_marker_delimiter_and_owner() {
    let t = TestStore::start().await;
    populate(&t).await;
    let v1 =
        t.s3.list_objects()
            .bucket(BUCKET)
            .delimiter("")
            .send()
            .await
            .expect("list v1");
    assert_eq!(v1.marker(), Some(""), "v1 always carries Marker");
    assert_eq!(v1.delimiter(), None, "an empty delimiter is not echoed");
    assert!(
        v1.contents()
            .iter()
            .all(|o| o.owner().and_then(|w| w.id()).is_some()),
        "v1 names each object's owner"
    );
    let plain =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .delimiter("")
            .send()
            .await
            .expect("list v2");
    assert_eq!(plain.delimiter(), None, "an empty delimiter is not echoed");
    assert_eq!(listed_keys(plain.contents()).len(), KEYS.len() - 2);
    assert!(
        plain.contents().iter().all(|o| o.owner().is_none()),
        "v2 names owners only when asked"
    );
    let owned =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .fetch_owner(true)
            .send()
            .await
            .expect("list v2 with owners");
    let owners: Vec<_> = owned
        .contents()
        .iter()
        .map(|o| o.owner().and_then(|w| w.display_name()))
        .collect();
    assert!(
        !owners.is_empty() && owners.iter().all(|o| *o == Some("tread")),
        "{owners:?}"
    );
}

/// One page of at most `max` keys after `token`: its keys and the next token.
async fn page_v2(t: &TestStore, max: i32, token: Option<String>) -> (Vec<String>, Option<String>) {
    let out =
        t.s3.list_objects_v2()
            .bucket(BUCKET)
            .max_keys(max)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
    let next = out.next_continuation_token().map(String::from);
    (listed_keys(out.contents()), next)
}

/// The store walks the next page while a client reads one
/// (`backend/read_ahead.rs`), for directories unchanged for a second.
/// Whatever changes on that page between the two requests, through S3 or
/// on the NAS, the page shows it.
#[tokio::test]
async fn a_page_shows_what_changed_after_the_page_before_it() {
    let t = TestStore::start().await;
    for key in ["d1/a", "d1/b", "d2/a", "d2/c", "d3/a", "d3/b"] {
        put(&t.s3, key, b"x").await;
    }
    let settle = std::time::Duration::from_millis(1200);
    tokio::time::sleep(settle).await;
    let (first, token) = page_v2(&t, 2, None).await;
    assert_eq!(first, ["d1/a", "d1/b"]);
    put(&t.s3, "d2/b", b"x").await;
    assert_eq!(page_v2(&t, 2, token).await.0, ["d2/a", "d2/b"]);

    tokio::time::sleep(settle).await;
    let (_, token) = page_v2(&t, 2, None).await;
    t.s3.delete_object()
        .bucket(BUCKET)
        .key("d2/a")
        .send()
        .await
        .expect("delete");
    assert_eq!(page_v2(&t, 2, token).await.0, ["d2/b", "d2/c"]);

    tokio::time::sleep(settle).await;
    let (_, token) = page_v2(&t, 3, None).await;
    std::fs::write(t.volume.join("d2/bb"), b"from the NAS").expect("write on the NAS");
    assert_eq!(page_v2(&t, 3, token).await.0, ["d2/bb", "d2/c", "d3/a"]);
}
