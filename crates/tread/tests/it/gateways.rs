//! Three `tread s3 serve` over one volume and one catalog (issue 12): 16
//! clients of mixed PUT, GET, LIST, DELETE and multipart spread across the
//! gateways, one gateway SIGKILLed mid-write. Every acknowledged write reads
//! back byte-identical from every gateway left, nothing partial is listed,
//! nothing is lost.

use crate::common::{Server, World, tread};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const CLIENTS: usize = 16;
const OPS: usize = 24;
const BUCKET: &str = "fsxn-ontap";

/// What a key may hold: every value a write or delete may have left, the
/// last acknowledged one first; `None` is "absent".
type Possible = Vec<Option<Vec<u8>>>;

fn payload(client: usize, op: usize) -> Vec<u8> {
    let len = 1 + (client * 7919 + op * 104_729) % 65_536;
    (0..len)
        .map(|i| ((i * 31 + client * 17 + op) % 251) as u8)
        .collect()
}

/// Records the outcome of a change of `key` to `value`.
fn changed(state: &mut BTreeMap<String, Possible>, key: &str, value: Option<Vec<u8>>, acked: bool) {
    let possible = state.entry(key.to_string()).or_insert_with(|| vec![None]);
    if acked {
        *possible = vec![value];
    } else {
        possible.push(value);
    }
}

/// A multipart object's two parts: the smallest first part S3 allows, and
/// a small last one.
fn parts_of(seed: usize) -> [Vec<u8>; 2] {
    let first = (0..5 * 1024 * 1024)
        .map(|i| ((i + seed) % 253) as u8)
        .collect();
    [first, payload(seed, 1)]
}

/// Starts an upload on one gateway, sends its parts to the other two and
/// completes it on the last; the object's bytes when it is acknowledged.
async fn multipart(clients: &[Client; 3], key: &str, seed: usize) -> Result<Vec<u8>, String> {
    let [first, second] = parts_of(seed);
    let created = clients[0]
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("create: {e:?}"))?;
    let id = created.upload_id().unwrap_or_default().to_string();
    let mut parts = Vec::new();
    for (n, (body, gateway)) in [(&first, &clients[1]), (&second, &clients[2])]
        .into_iter()
        .enumerate()
    {
        let number = i32::try_from(n + 1).unwrap_or(1);
        let uploaded = gateway
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .part_number(number)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .map_err(|e| format!("part {number}: {e:?}"))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_string))
                .build(),
        );
    }
    clients[2]
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| format!("complete: {e:?}"))?;
    Ok([first, second].concat())
}

/// One client's ops on its own keys, spread over the gateways.
async fn client(
    n: usize,
    gateways: Arc<Vec<Client>>,
    done: Arc<AtomicUsize>,
) -> BTreeMap<String, Possible> {
    let mut state = BTreeMap::new();
    for op in 0..OPS {
        let key = format!("c{n:02}/k{}", op % 5);
        let at = &gateways[(n + op) % 3];
        match op % 6 {
            0..=2 => {
                let body = payload(n, op);
                let put = at
                    .put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await;
                changed(&mut state, &key, Some(body), put.is_ok());
            }
            3 => {
                let deleted = at.delete_object().bucket(BUCKET).key(&key).send().await;
                changed(&mut state, &key, None, deleted.is_ok());
            }
            4 => {
                // A read must show one of the values the key may hold.
                if let Ok(got) = at.get_object().bucket(BUCKET).key(&key).send().await
                    && let Ok(bytes) = got.body.collect().await
                {
                    let possible = state.get(&key).cloned().unwrap_or_else(|| vec![None]);
                    assert!(
                        possible.contains(&Some(bytes.to_vec())),
                        "{key}: a read showed bytes no write put there"
                    );
                }
            }
            _ => {
                let rotated = [
                    gateways[(op + 1) % 3].clone(),
                    gateways[(op + 2) % 3].clone(),
                    gateways[op % 3].clone(),
                ];
                let (key, seed) = (format!("c{n:02}/mp{op}"), n * 100 + op);
                let acked = multipart(&rotated, &key, seed).await.is_ok();
                // Unacknowledged, the key is absent or whole.
                changed(&mut state, &key, Some(parts_of(seed).concat()), acked);
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    state
}

/// PUTs 8 MiB objects to one gateway until it dies under them.
async fn big_writer(gateway: Client, stop: Arc<AtomicBool>) -> BTreeMap<String, Possible> {
    let mut state = BTreeMap::new();
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        let body: Vec<u8> = (0..8 * 1024 * 1024)
            .map(|i| ((i + round) % 241) as u8)
            .collect();
        let put = gateway
            .put_object()
            .bucket(BUCKET)
            .key("big/object")
            .body(ByteStream::from(body.clone()))
            .send()
            .await;
        let acked = put.is_ok();
        changed(&mut state, "big/object", Some(body), acked);
        if !acked {
            break;
        }
        round += 1;
    }
    state
}

async fn read_back(gateway: &Client, key: &str) -> Option<Vec<u8>> {
    let got = gateway
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(got.body.collect().await.expect("a whole body").to_vec())
}

async fn listed(gateway: &Client) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut pages = gateway
        .list_objects_v2()
        .bucket(BUCKET)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.expect("a listing from a live gateway");
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    keys
}

#[test]
fn three_gateways_lose_nothing_acknowledged_when_one_is_killed_mid_write() {
    let world = World::create();
    let gateways: Vec<Server> = (0..3)
        .map(|n| {
            let data = world.shared_data_dir(&format!("gateway{n}"));
            Server::spawn(tread(&data).args(["s3", "serve"]))
        })
        .collect();
    let clients: Arc<Vec<Client>> =
        Arc::new(gateways.iter().map(|g| world.client(&g.url)).collect());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = runtime.spawn(big_writer(clients[2].clone(), stop.clone()));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| runtime.spawn(client(n, clients.clone(), done.clone())))
        .collect();
    while done.load(Ordering::Relaxed) < CLIENTS * OPS / 3 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut gateways = gateways;
    let killed = gateways.pop().expect("a third gateway");
    killed.kill();
    stop.store(true, Ordering::Relaxed);

    let mut expected = runtime.block_on(writer).expect("the big writer");
    for task in tasks {
        expected.extend(runtime.block_on(task).expect("a client"));
    }
    runtime.block_on(async {
        for survivor in &clients[..2] {
            for (key, possible) in &expected {
                let got = read_back(survivor, key).await;
                assert!(
                    possible.contains(&got),
                    "{key}: read back {} bytes, not an acknowledged or in-flight value",
                    got.map_or(0, |b| b.len())
                );
            }
            let keys = listed(survivor).await;
            for key in &keys {
                let possible = expected
                    .get(key)
                    .unwrap_or_else(|| panic!("{key} listed, never written"));
                assert!(
                    possible.iter().any(Option::is_some),
                    "{key} listed, but deleted"
                );
            }
            for (key, possible) in &expected {
                if possible.iter().all(Option::is_some) {
                    assert!(keys.contains(key), "{key} is stored but not listed");
                }
            }
        }
    });
    assert!(expected.len() > CLIENTS * 5, "the clients wrote their keys");
}
