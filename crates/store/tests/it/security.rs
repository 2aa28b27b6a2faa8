//! Authentication and authorization: unsigned, wrong-secret, tampered and
//! expired requests; ReadOnlyAccess; users without a group; custom policies.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

use crate::common::{BUCKET, TestStore, client_with, code, put};

#[tokio::test]
async fn unsigned_requests_are_denied() {
    let t = TestStore::start().await;
    put(&t.s3, "k", b"v").await;
    let resp = reqwest::get(format!("{}/{BUCKET}/k", t.url))
        .await
        .expect("send");
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("<Code>AccessDenied</Code>")
    );
    let resp = reqwest::Client::new()
        .put(format!("{}/{BUCKET}/planted", t.url))
        .body("x")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 403);
    assert!(!t.volume.join("planted").exists());
}

/// A page on another origin (the console) may send presigned requests and
/// read their answers, and CORS opens nothing more: an unsigned request
/// from a page is denied like any other. Requests that are not from a page
/// carry no CORS headers.
#[tokio::test]
async fn pages_on_other_origins_may_send_presigned_requests_and_nothing_more() {
    let t = TestStore::start().await;
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/{BUCKET}/k", t.url))
        .header("Origin", "http://console.example:8080")
        .header("Access-Control-Request-Method", "PUT")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("send");
    assert_eq!(preflight.status(), 200);
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-allow-methods"], "PUT");
    assert_eq!(headers["access-control-allow-headers"], "content-type");

    let config = PresigningConfig::expires_in(Duration::from_secs(60)).expect("config");
    let url =
        t.s3.put_object()
            .bucket(BUCKET)
            .key("k")
            .presigned(config)
            .await
            .expect("presign");
    let put = reqwest::Client::new()
        .put(url.uri())
        .header("Origin", "http://console.example:8080")
        .body("from a page")
        .send()
        .await
        .expect("send");
    assert_eq!(put.status(), 200);
    assert_eq!(put.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        put.headers()["access-control-expose-headers"],
        "*",
        "the page reads the ETag"
    );
    // A client that is no page sends no Origin and gets no CORS headers, as from S3.
    let plain = reqwest::Client::new()
        .put(url.uri())
        .body("from a script")
        .send()
        .await
        .expect("send");
    assert_eq!(plain.status(), 200);
    assert!(
        !plain.headers().contains_key("access-control-allow-origin"),
        "{:?}",
        plain.headers()
    );

    let unsigned = reqwest::Client::new()
        .get(format!("{}/{BUCKET}/k", t.url))
        .header("Origin", "http://console.example:8080")
        .send()
        .await
        .expect("send");
    assert_eq!(unsigned.status(), 403);
}

#[tokio::test]
async fn wrong_secret_and_unknown_key_are_rejected() {
    let t = TestStore::start().await;
    let wrong = client_with(&t.url, &t.full.access_key_id, "not-the-secret");
    let err = wrong
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("wrong secret");
    assert_eq!(code(&err), "SignatureDoesNotMatch");
    let unknown = client_with(&t.url, "TRNOSUCHKEY", "whatever");
    let err = unknown
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!(code(&err), "InvalidAccessKeyId");
}

#[tokio::test]
async fn tampered_and_expired_presigned_urls_are_rejected() {
    let t = TestStore::start().await;
    put(&t.s3, "signed", b"v").await;
    put(&t.s3, "other", b"w").await;
    let url =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("signed")
            .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).expect("cfg"))
            .await
            .expect("presign")
            .uri()
            .to_string();
    let tampered = url.replace("/signed?", "/other?");
    let resp = reqwest::get(&tampered).await.expect("send");
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("SignatureDoesNotMatch")
    );

    let short =
        t.s3.get_object()
            .bucket(BUCKET)
            .key("signed")
            .presigned(PresigningConfig::expires_in(Duration::from_secs(1)).expect("cfg"))
            .await
            .expect("presign");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = reqwest::get(short.uri()).await.expect("send");
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text().await.expect("body").contains("AccessDenied"),
        "expired"
    );
}

#[tokio::test]
async fn read_only_users_can_read_but_not_write_or_delete() {
    let t = TestStore::start().await;
    put(&t.s3, "ro/k", b"v").await;
    let ro = t.client(&t.read_only);
    ro.get_object()
        .bucket(BUCKET)
        .key("ro/k")
        .send()
        .await
        .expect("read");
    ro.list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    let err = ro
        .put_object()
        .bucket(BUCKET)
        .key("ro/new")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("write");
    assert_eq!(code(&err), "AccessDenied");
    let err = ro
        .delete_object()
        .bucket(BUCKET)
        .key("ro/k")
        .send()
        .await
        .expect_err("delete");
    assert_eq!(code(&err), "AccessDenied");
    let err = ro
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("ro/mp")
        .send()
        .await
        .expect_err("multipart");
    assert_eq!(code(&err), "AccessDenied");
    assert!(t.volume.join("ro/k").exists());
}

#[tokio::test]
async fn users_without_a_group_cannot_read() {
    let t = TestStore::start().await;
    put(&t.s3, "k", b"v").await;
    let nobody = t.client(&t.no_group);
    let err = nobody
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .expect_err("no group");
    assert_eq!(code(&err), "AccessDenied");
    let err = nobody.list_buckets().send().await.expect_err("no group");
    assert_eq!(code(&err), "AccessDenied");
}

#[tokio::test]
async fn custom_policies_scope_by_prefix_and_deny_wins() {
    let t = TestStore::start().await;
    put(&t.s3, "dataset/a.jpg", b"a").await;
    put(&t.s3, "private/b.jpg", b"b").await;
    let cat = &t.catalog;
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::{BUCKET}/*"}},
            {{"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::{BUCKET}/private/*"}}]}}"#
    );
    cat.policy_create("dataset-only", &doc)
        .await
        .expect("policy");
    let keys = cat.user_create("scoped").await.expect("user");
    cat.group_create("scoped", &["scoped".into()], &["dataset-only".into()])
        .await
        .expect("group");
    let s3 = t.client(&keys);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while s3
        .get_object()
        .bucket(BUCKET)
        .key("dataset/a.jpg")
        .send()
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "policy never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = s3
        .get_object()
        .bucket(BUCKET)
        .key("private/b.jpg")
        .send()
        .await
        .expect_err("denied");
    assert_eq!(code(&err), "AccessDenied");
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("private/c")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("denied");
    assert_eq!(code(&err), "AccessDenied");
    let err = s3
        .copy_object()
        .bucket(BUCKET)
        .key("dataset/stolen.jpg")
        .copy_source(format!("{BUCKET}/private/b.jpg"))
        .send()
        .await
        .expect_err("copy from a denied source");
    assert_eq!(code(&err), "AccessDenied");
}

/// A GET of `key` presigned by `keys` for `lifetime`, signed by hand: the
/// SDK's presigner itself refuses more than seven days.
fn presign_get(t: &TestStore, key: &str, lifetime: Duration) -> String {
    use aws_sigv4::http_request::{
        PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    let identity = aws_credential_types::Credentials::new(
        &t.full.access_key_id,
        &t.full.secret_access_key,
        None,
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(lifetime);
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .expect("signing parameters")
        .into();
    let url = format!("{}/{BUCKET}/{key}", t.url);
    let request = SignableRequest::new(
        "GET",
        &url,
        std::iter::empty(),
        SignableBody::UnsignedPayload,
    )
    .expect("signable");
    let (instructions, _) = sign(request, &params).expect("sign").into_parts();
    let mut signed = http::Request::get(&url).body(()).expect("request");
    instructions.apply_to_request_http1x(&mut signed);
    signed.uri().to_string()
}

#[tokio::test]
async fn r16_presigned_urls_valid_over_seven_days_are_refused() {
    let t = TestStore::start().await;
    put(&t.s3, "signed", b"v").await;
    let week = presign_get(&t, "signed", Duration::from_secs(604_800));
    let resp = reqwest::get(&week).await.expect("send");
    assert_eq!(resp.status(), 200, "seven days is S3's limit, allowed");
    let decade = presign_get(&t, "signed", Duration::from_secs(10 * 365 * 86_400));
    let resp = reqwest::get(&decade).await.expect("send");
    assert_eq!(resp.status(), 400);
    let body = resp.text().await.expect("body");
    assert!(body.contains("AuthorizationQueryParametersError"), "{body}");
}

#[tokio::test]
async fn r16_operations_tread_does_not_implement_answer_501() {
    let t = TestStore::start().await;
    put(&t.s3, "k", b"v").await;
    let err =
        t.s3.put_bucket_versioning()
            .bucket(BUCKET)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect_err("versioning");
    assert_eq!(code(&err), "NotImplemented");
    let err =
        t.s3.get_object_tagging()
            .bucket(BUCKET)
            .key("k")
            .send()
            .await
            .expect_err("tagging");
    assert_eq!(code(&err), "NotImplemented");
    let denied = t
        .client(&t.no_group)
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .expect_err("no group");
    assert_eq!(code(&denied), "AccessDenied", "policies still deny");
}
