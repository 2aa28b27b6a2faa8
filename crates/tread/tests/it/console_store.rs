//! The console's store pages through `tread up`, over real HTTP: buckets
//! made and browsed, files uploaded as the page's script uploads them
//! (presigned PUTs and parts, straight to the store, across origins),
//! downloads, deletion after a question, a dataset's classes, thumbnails
//! and unreadable files, and users, groups and policies, a refused policy
//! shown at its line with nothing saved.

use crate::common::{World, block_on};
use crate::console::{Browser, Page, form_token, marked_line, png, signed_in};
use crate::pipeline::Up;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The rows of the body of the table with id `id`.
fn body_rows(body: &str, id: &str) -> usize {
    let at = body
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id} in {body}"));
    let table = &body[at..at + body[at..].find("</table>").expect("table end")];
    let rows = table.find("<tbody>").map(|b| &table[b..]).unwrap_or(table);
    rows.matches("<tr").count()
}

fn json_of(page: &Page) -> Value {
    serde_json::from_str(&page.body).unwrap_or_else(|e| panic!("{e}: {}", page.body))
}

/// Sends `body` to a presigned request as a page on the console's origin
/// would; answers the status and the ETag.
fn send_presigned(presigned: &Value, origin: &str, body: Vec<u8>) -> (StatusCode, String) {
    block_on(async {
        let method = presigned["method"].as_str().expect("method");
        let mut request = reqwest::Client::new()
            .request(
                method.parse().expect("a method"),
                presigned["url"].as_str().expect("url"),
            )
            .header("Origin", origin)
            .body(body);
        for (name, value) in presigned["headers"].as_object().expect("headers") {
            request = request.header(name.as_str(), value.as_str().expect("a header value"));
        }
        let answer = request.send().await.expect("the store answers");
        let allowed = answer.headers().get("access-control-allow-origin").cloned();
        assert!(
            allowed.is_some(),
            "a cross-origin answer allows the page to read it"
        );
        let etag = answer
            .headers()
            .get("etag")
            .map(|e| e.to_str().expect("ascii").to_owned())
            .unwrap_or_default();
        (answer.status(), etag)
    })
}

/// Uploads `bytes` to `key` of `bucket` in one presigned PUT, as the
/// page's script does.
fn upload(browser: &mut Browser, token: &str, bucket: &str, key: &str, bytes: Vec<u8>) {
    let path = format!("/console/buckets/{bucket}/upload/presign");
    let page = browser.post_json(
        &path,
        &json!({ "form_token": token, "operation": "put", "key": key }),
    );
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let (status, _) = send_presigned(&json_of(&page), "http://console.example", bytes);
    assert_eq!(status, StatusCode::OK, "the presigned PUT of {key}");
}

#[test]
fn the_console_makes_and_browses_a_bucket_uploads_downloads_deletes_and_inspects_a_dataset() {
    let world = World::create();
    let up = Up::start(&world);
    let mut browser = signed_in(&world, &up);

    let page = browser.post(
        "/console/buckets",
        &[("form_token", "forged"), ("name", "photos")],
    );
    assert_eq!(
        page.status,
        StatusCode::FORBIDDEN,
        "a form without the session's token"
    );
    let page = browser.get("/console/buckets");
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("fsxn-ontap"), "{}", page.body);
    assert!(
        !page.body.contains(">photos<"),
        "the forged form made nothing"
    );
    let token = form_token(&page.body);

    let page = browser.post(
        "/console/buckets",
        &[("form_token", &token), ("name", "Bad_Name")],
    );
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("id=\"bucket-error\""), "{}", page.body);
    assert!(
        page.body.contains("invalid bucket name"),
        "the store's rule is shown"
    );
    assert!(
        page.body.contains("value=\"Bad_Name\""),
        "the form keeps what was typed"
    );

    let page = browser.post(
        "/console/buckets",
        &[("form_token", &token), ("name", "photos")],
    );
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location, "/console/buckets/photos");
    let page = browser.get("/console/buckets/photos");
    assert!(page.body.contains("Nothing here yet"), "{}", page.body);
    assert!(page.body.contains("data-form-token=\""), "the upload form");

    // The page's script: one presigned PUT per small file, straight to the store.
    let cat = png(24);
    upload(&mut browser, &token, "photos", "cats/a.png", cat.clone());
    for i in 0..3 {
        upload(
            &mut browser,
            &token,
            "photos",
            &format!("cats/{i}.png"),
            png(16 + i),
        );
        upload(
            &mut browser,
            &token,
            "photos",
            &format!("dogs/{i}.png"),
            png(20 + i),
        );
    }
    upload(
        &mut browser,
        &token,
        "photos",
        "dogs/broken.png",
        b"not a png".to_vec(),
    );
    let page = browser.post_json(
        "/console/buckets/photos/upload/presign",
        &json!({ "form_token": "forged", "operation": "put", "key": "x" }),
    );
    assert_eq!(
        page.status,
        StatusCode::FORBIDDEN,
        "the script's calls need the form token too"
    );
    assert!(json_of(&page)["error"].is_string());

    // A large file goes in parts: begun, each part to its presigned URL, joined.
    let page = browser.post_json(
        "/console/buckets/photos/upload/begin",
        &json!({ "form_token": token, "key": "big/video.bin" }),
    );
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let upload_id = json_of(&page)["upload_id"]
        .as_str()
        .expect("upload id")
        .to_owned();
    let mut parts = Vec::new();
    for (part, size) in [(1, 5 << 20), (2, 1000)] {
        let page = browser.post_json(
            "/console/buckets/photos/upload/presign",
            &json!({ "form_token": token, "operation": "upload_part", "key": "big/video.bin",
                     "upload_id": upload_id, "part": part }),
        );
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let (status, etag) =
            send_presigned(&json_of(&page), "http://console.example", vec![7; size]);
        assert_eq!(status, StatusCode::OK, "part {part}");
        parts.push(json!({ "part": part, "etag": etag }));
    }
    let page = browser.post_json(
        "/console/buckets/photos/upload/complete",
        &json!({ "form_token": token, "key": "big/video.bin", "upload_id": upload_id, "parts": parts }),
    );
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        json_of(&page)["etag"]
            .as_str()
            .expect("etag")
            .ends_with("-2")
    );

    // A failed upload in parts is abandoned, and the store says why it failed.
    let page = browser.post_json(
        "/console/buckets/photos/upload/begin",
        &json!({ "form_token": token, "key": "big/lost.bin" }),
    );
    let lost = json_of(&page)["upload_id"]
        .as_str()
        .expect("upload id")
        .to_owned();
    let page = browser.post_json(
        "/console/buckets/photos/upload/complete",
        &json!({ "form_token": token, "key": "big/lost.bin", "upload_id": lost,
                 "parts": [{ "part": 1, "etag": "\"0123\"" }] }),
    );
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(
        json_of(&page)["error"]
            .as_str()
            .expect("error")
            .contains("InvalidPart")
    );
    let page = browser.post_json(
        "/console/buckets/photos/upload/abort",
        &json!({ "form_token": token, "key": "big/lost.bin", "upload_id": lost }),
    );
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);

    // Browsing: the folders at the top, the objects in one.
    let page = browser.get("/console/buckets/photos");
    // minijinja writes `/` in attributes as `&#x2f;`, which a browser reads as `/`.
    let body = page.body.replace("&#x2f;", "/");
    for folder in ["cats/", "dogs/", "big/"] {
        let link = format!("href=\"/console/buckets/photos?prefix={folder}\">{folder}</a>");
        assert!(body.contains(&link), "{folder}: {body}");
    }
    let page = browser.get("/console/buckets/photos?prefix=cats%2F");
    assert_eq!(body_rows(&page.body, "objects"), 4, "{}", page.body);
    let page = browser.get("/console/buckets/photos/object?key=big%2Fvideo.bin");
    assert!(page.body.contains("(2 parts)"), "{}", page.body);
    assert!(page.body.contains(&format!("{} bytes", (5 << 20) + 1000)));

    // Download: to a presigned URL on the host the browser used.
    let page = browser.get("/console/buckets/photos/download?key=cats%2Fa.png");
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(page.location.starts_with(up.s3_url()), "{}", page.location);
    let (bytes, disposition) = block_on(async {
        let answer = reqwest::get(&page.location).await.expect("download");
        assert_eq!(answer.status(), StatusCode::OK);
        let disposition = answer.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .to_owned();
        (answer.bytes().await.expect("bytes").to_vec(), disposition)
    });
    assert_eq!(bytes, cat, "the bytes uploaded");
    assert!(disposition.starts_with("attachment"), "{disposition}");

    // A dataset: classes, counts, thumbnails that load, the unreadable file.
    let page = browser.get("/console/datasets?uri=s3%3A%2F%2Fphotos%2Fcats%2F");
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "one class is no dataset"
    );
    assert!(page.body.contains("id=\"dataset-error\""), "{}", page.body);
    let page = browser.get("/console/datasets?uri=s3%3A%2F%2Fphotos%2F");
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        body_rows(&page.body, "classes"),
        2,
        "cats and dogs (big has no images)"
    );
    assert!(
        page.body
            .contains("<th scope=\"row\">dogs</th><td class=\"num\">4</td>"),
        "{}",
        page.body
    );
    assert_eq!(body_rows(&page.body, "unreadable"), 1);
    let body = page.body.replace("&#x2f;", "/");
    assert!(body.contains("dogs/broken.png"), "{body}");
    let thumbnail = body.split("<img src=\"").nth(1).expect("a thumbnail");
    let thumbnail = thumbnail[..thumbnail.find('"').expect("end")].replace("&amp;", "&");
    let loaded = block_on(async { reqwest::get(&thumbnail).await.expect("thumbnail").status() });
    assert_eq!(loaded, StatusCode::OK, "{thumbnail}");

    // Deleting asks first, then the object is gone.
    let page = browser.get("/console/buckets/photos/delete?key=cats%2Fa.png");
    let body = page.body.replace("&#x2f;", "/");
    assert!(
        body.contains("Delete cats/a.png from bucket photos?"),
        "{body}"
    );
    let page = browser.post(
        "/console/buckets/photos/delete",
        &[("form_token", &token), ("key", "cats/a.png")],
    );
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location, "/console/buckets/photos?prefix=cats%2F");
    let page = browser.get("/console/buckets/photos/object?key=cats%2Fa.png");
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    let page = browser.post("/console/buckets/photos/delete", &[("form_token", &token)]);
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = browser.get("/console/buckets");
    assert!(
        !page.body.contains(">photos<"),
        "the bucket is gone from S3"
    );
    assert!(
        world
            .data
            .join("volumes/default/photos/dogs/0.png")
            .exists(),
        "its files stay"
    );
}

#[test]
fn the_console_manages_users_groups_and_policies_and_shows_a_refused_policy_at_its_line() {
    let world = World::create();
    let up = Up::start(&world);
    let mut browser = signed_in(&world, &up);
    let page = browser.get("/console/access");
    assert_eq!(page.status, StatusCode::OK);
    let token = form_token(&page.body);
    let (users, policies) = (
        body_rows(&page.body, "users"),
        body_rows(&page.body, "policies"),
    );

    let page = browser.post(
        "/console/access/users",
        &[("form_token", &token), ("name", "alice")],
    );
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        page.set_cookie, "",
        "the keys page keeps the session as it is"
    );
    let secret = page
        .body
        .split("id=\"secret\">")
        .nth(1)
        .expect("the secret is shown");
    let secret = secret[..secret.find('<').expect("end")].to_owned();
    assert_eq!(secret.len(), 40, "{secret}");
    let page = browser.get("/console/access");
    assert_eq!(body_rows(&page.body, "users"), users + 1);
    assert!(
        !page.body.contains(&secret),
        "the secret is shown only once"
    );
    assert!(!up.log_text().contains(&secret), "and never logged");
    let page = browser.post(
        "/console/access/users",
        &[("form_token", &token), ("name", "alice")],
    );
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body.contains("user alice already exists"),
        "{}",
        page.body
    );

    let bad = "{\n  \"Statement\": [\n    {\"Effect\": \"Allow\",\n     \"Action\": \"s3:GetObject\"\n     \"Resource\": \"*\"}]}";
    let page = browser.post(
        "/console/access/policies",
        &[
            ("form_token", &token),
            ("name", "readcats"),
            ("document", bad),
        ],
    );
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("id=\"policy-error\""), "{}", page.body);
    assert!(
        page.body.contains("at line 5 column 6"),
        "the parser's message"
    );
    assert_eq!(
        marked_line(&page.body),
        "     &quot;Resource&quot;: &quot;*&quot;}]}",
        "line 5 is marked"
    );
    assert!(
        page.body.contains("&quot;s3:GetObject&quot;"),
        "the document stays in the form"
    );
    assert_eq!(body_rows(&page.body, "policies"), policies, "nothing saved");

    let good = r#"{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::fsxn-ontap/cats/*"}]}"#;
    let page = browser.post(
        "/console/access/policies",
        &[
            ("form_token", &token),
            ("name", "readcats"),
            ("document", good),
        ],
    );
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = browser.post(
        "/console/access/groups",
        &[
            ("form_token", &token),
            ("name", "cat-readers"),
            ("users", "alice"),
            ("policies", "readcats, nosuch"),
        ],
    );
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "an unknown policy");
    assert!(page.body.contains("id=\"group-error\""), "{}", page.body);
    let page = browser.post(
        "/console/access/groups",
        &[
            ("form_token", &token),
            ("name", "cat-readers"),
            ("users", "alice"),
            ("policies", "readcats"),
        ],
    );
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = browser.get("/console/access");
    assert_eq!(body_rows(&page.body, "policies"), policies + 1);
    assert!(
        page.body
            .contains("aria-label=\"Remove alice from cat-readers\""),
        "{}",
        page.body
    );

    let page = browser.post(
        "/console/access/groups/cat-readers/members",
        &[
            ("form_token", &token),
            ("user", "alice"),
            ("change", "remove"),
        ],
    );
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = browser.get("/console/access");
    assert!(
        !page.body.contains("Remove alice from cat-readers"),
        "alice left the group"
    );

    let page = browser.post(
        "/console/access/users/alice/rotate",
        &[("form_token", &token)],
    );
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(&secret), "new keys");
    let page = browser.get("/console/access/users/alice/delete");
    assert!(page.body.contains("Delete user alice?"));
    let page = browser.post(
        "/console/access/users/alice/delete",
        &[("form_token", &token)],
    );
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = browser.get("/console/access");
    assert_eq!(body_rows(&page.body, "users"), users);
    let page = browser.post(
        "/console/access/users/tread-api/delete",
        &[("form_token", &token)],
    );
    assert_eq!(page.status, StatusCode::CONFLICT, "tread's own user stays");
}
