//! SIGKILL in the middle of many concurrent PUTs and multipart uploads: after a
//! restart every object is either absent or complete and correct.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::future::join_all;

use crate::common::{Server, World};

const BUCKET: &str = "fsxn-ontap";
const MIB: usize = 1 << 20;

/// The bytes of version `v` of object `i`: distinct for every (i, v).
fn content(i: usize, v: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| {
            ((j as u64)
                .wrapping_mul(31)
                .wrapping_add(i as u64 * 7 + u64::from(v) * 131)
                % 251) as u8
        })
        .collect()
}

async fn put_loop(s3: Client, i: usize) {
    for v in 0..u8::MAX {
        let len = (i % 4 + 1) * 512 * 1024;
        let sent = s3
            .put_object()
            .bucket(BUCKET)
            .key(format!("put/{i}"))
            .body(content(i, v, len).into())
            .send()
            .await;
        if sent.is_err() {
            return;
        }
    }
}

async fn multipart_loop(s3: Client, i: usize) {
    for v in 0..u8::MAX {
        let key = format!("mp/{i}");
        let Ok(created) = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
        else {
            return;
        };
        let id = created.upload_id().unwrap_or_default().to_string();
        let body = content(i, v, 6 * MIB + 1000);
        let mut parts = Vec::new();
        for (n, chunk) in body.chunks(5 * MIB).enumerate() {
            let n = i32::try_from(n + 1).unwrap_or(1);
            let sent = s3
                .upload_part()
                .bucket(BUCKET)
                .key(&key)
                .upload_id(&id)
                .part_number(n)
                .body(chunk.to_vec().into())
                .send()
                .await;
            let Ok(out) = sent else { return };
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(out.e_tag().unwrap_or_default())
                    .build(),
            );
        }
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        if s3
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .upload_id(&id)
            .multipart_upload(upload)
            .send()
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Whether `got` is exactly some version of object `i` of length `len`.
fn is_some_version(got: &[u8], i: usize, len: usize) -> bool {
    got.len() == len
        && (0..u8::MAX).any(|v| {
            got[..64.min(len)] == content(i, v, 64.min(len))[..] && got == content(i, v, len)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_writes_leaves_old_or_new_objects_never_partial() {
    let w = World::create();
    let server = Server::start(&w.data);
    let s3 = w.client(&server.url);
    let mut tasks = Vec::new();
    for i in 0..16 {
        tasks.push(tokio::spawn(put_loop(s3.clone(), i)));
    }
    for i in 0..3 {
        tasks.push(tokio::spawn(multipart_loop(s3.clone(), i)));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    join_all(tasks).await;

    let server = Server::start(&w.data);
    let s3 = w.client(&server.url);
    let mut seen = 0;
    for (prefix, count, len_of) in [
        (
            "put",
            16,
            (|i: usize| (i % 4 + 1) * 512 * 1024) as fn(usize) -> usize,
        ),
        ("mp", 3, |_| 6 * MIB + 1000),
    ] {
        for i in 0..count {
            let key = format!("{prefix}/{i}");
            match s3.get_object().bucket(BUCKET).key(&key).send().await {
                Ok(out) => {
                    let etag = out
                        .e_tag()
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_string();
                    let got = out
                        .body
                        .collect()
                        .await
                        .expect("body")
                        .into_bytes()
                        .to_vec();
                    assert!(
                        is_some_version(&got, i, len_of(i)),
                        "{key} is partial or corrupt ({} bytes)",
                        got.len()
                    );
                    if !etag.contains('-') {
                        assert_eq!(
                            etag,
                            hex::encode(<md5::Md5 as md5::Digest>::digest(&got)),
                            "{key} ETag"
                        );
                    }
                    seen += 1;
                }
                Err(e) => {
                    let code = e.as_service_error().map(|s| s.is_no_such_key());
                    assert_eq!(code, Some(true), "{key}: {e:?}");
                }
            }
        }
    }
    assert!(
        seen > 0,
        "the writers stored nothing before the kill; the test proved nothing"
    );
    // What the kill left in the temp dir is swept once it is old enough
    // that no gateway can still be writing it (an hour), at start or hourly.
    let tmp = w.volume.join(".tread/tmp");
    let an_hour_and_more = std::time::SystemTime::now() - Duration::from_secs(3700);
    for leftover in std::fs::read_dir(&tmp).expect("tmp dir").flatten() {
        std::fs::File::options()
            .write(true)
            .open(leftover.path())
            .and_then(|f| f.set_modified(an_hour_and_more))
            .expect("age a leftover");
    }
    server.kill();
    let _restarted = Server::start(&w.data);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&tmp).expect("tmp dir").count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "stale temp files are swept when a gateway starts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
