//! The web console through `tread up`, over real HTTP with cookies as a
//! browser keeps them: sign-in with the token, the redirect back to the page
//! asked for, a pipeline's next fire times, an action that needs the form
//! token, a run's log, a missing page, an invalid schedule, and sign-out;
//! the registry's versions, their chart, a comparison and a promotion.

use crate::common::{World, block_on};
use crate::pipeline::Up;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use std::path::Path;
use std::time::{Duration, Instant};

/// A browser's view of the console: its cookie, no automatic redirects.
pub(crate) struct Browser {
    base: String,
    pub(crate) client: reqwest::Client,
    cookie: Option<String>,
}

/// An answer: status, `Location`, `Set-Cookie` and body.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) location: String,
    pub(crate) set_cookie: String,
    pub(crate) body: String,
}

impl Browser {
    fn new(base: &str) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            base: base.to_owned(),
            client,
            cookie: None,
        }
    }

    pub(crate) fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(c) => request.header(COOKIE, c.as_str()),
            None => request,
        };
        let page = block_on(async {
            let response = request.send().await.expect("request");
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().expect("ASCII header").to_owned())
                    .unwrap_or_default()
            };
            let (location, set_cookie) = (header(LOCATION), header(SET_COOKIE));
            Page {
                status: response.status(),
                location,
                set_cookie,
                body: response.text().await.expect("body"),
            }
        });
        if let Some(pair) = page.set_cookie.split(';').next().filter(|p| !p.is_empty()) {
            self.cookie = Some(pair.to_owned());
        }
        page
    }

    pub(crate) fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request)
    }

    /// A form POST, as a browser encodes it.
    pub(crate) fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let encode = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.join("&"));
        self.send(request)
    }
}

impl Browser {
    /// A JSON POST, as the console's upload script sends one.
    pub(crate) fn post_json(&mut self, path: &str, body: &serde_json::Value) -> Page {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.send(request)
    }

    /// A `multipart/form-data` POST of a form token and an image file, as
    /// a browser sends a file input.
    fn post_image(&mut self, path: &str, token: &str, content_type: &str, image: &[u8]) -> Page {
        let boundary = "----treadconsoletest7MA4YWxkTrZu0gW";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"form_token\"\r\n\r\n{token}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"tyre.png\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(image);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        self.send(request)
    }
}

/// A PNG photo `side` pixels wide of noise, which PNG cannot shrink:
/// about 3 bytes a pixel.
pub(crate) fn png(side: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let photo = image::RgbImage::from_fn(side, side, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let [r, g, b, ..] = state.to_le_bytes();
        image::Rgb([r, g, b])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    photo
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encode a PNG");
    bytes.into_inner()
}

/// The value of the first `name="form_token"` field of a page.
pub(crate) fn form_token(body: &str) -> String {
    let at = body
        .find("name=\"form_token\" value=\"")
        .expect("a form token on the page");
    let rest = &body[at + "name=\"form_token\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

/// The rows of the table with id `id`.
pub(crate) fn table_rows(body: &str, id: &str) -> usize {
    let at = body
        .find(&format!("<table id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id} in {body}"));
    let table = &body[at..at + body[at..].find("</table>").expect("table end")];
    table.matches("<tr><td>").count()
}

/// A browser signed in to `up`'s console.
pub(crate) fn signed_in(world: &World, up: &Up) -> Browser {
    let token = std::fs::read_to_string(world.data.join("api-token")).expect("token");
    let mut browser = Browser::new(up.api_url());
    let page = browser.post(
        "/console/sign-in",
        &[("token", token.trim()), ("next", "/console/")],
    );
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    browser
}

/// Registers a version of the model `handed` through a pipeline whose run
/// step hands an exported classifier (the serve fixtures' tiny ONNX) with
/// the given held-out figures and settings, as a trainer of one's own
/// would.
pub(crate) fn register_handed(world: &World, up: &Up, version: u32, accuracy: f64, epochs: u32) {
    let staged = world.step_dir().join(format!("handed-{version}"));
    std::fs::create_dir_all(&staged).expect("stage");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../serve/tests/fixtures");
    std::fs::copy(fixtures.join("tiny.onnx"), staged.join("model.onnx")).expect("stage");
    // The endpoint tells versions apart by the model's own version id.
    let card = std::fs::read_to_string(fixtures.join("tiny.json")).expect("the model's JSON");
    let card = card.replace("tiny-onnx-1", &format!("handed-{version}"));
    std::fs::write(staged.join("model.json"), card).expect("stage the model's JSON");
    let good = (accuracy * 10.0).round() as u32;
    let result = serde_json::json!({
        "model": staged.join("model.onnx"),
        "version": format!("handed-{version}"),
        "evaluation": {
            "images": 20, "accuracy": accuracy,
            "classes": [
                { "name": "defective", "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 10 },
                { "name": "good", "precision": accuracy, "recall": accuracy, "f1": accuracy, "support": 10 },
            ],
            "confusion": [[10, 0], [10 - good, good]],
        },
        "settings": { "architecture": "onnx", "epochs": epochs },
    });
    let result_file = staged.join("result.json");
    std::fs::write(&result_file, result.to_string()).expect("result");
    let command = format!("cp {} \"$TREAD_RESULT\"", result_file.display());
    let file = format!(
        "name = \"handed\"\ndata = \"s3://fsxn-ontap/none\"\n\
         [[steps]]\nkind = \"run\"\ncommand = {command:?}\n\
         [[steps]]\nkind = \"gate\"\nmin_accuracy = 0.0\n\
         [[steps]]\nkind = \"deploy\"\nendpoint = \"handed-ep\"\n"
    );
    up.apply(world, "handed", &file);
    up.run_to_success("handed");
}

#[test]
fn the_console_compares_and_promotes_models_tries_and_rolls_back_an_endpoint_and_sums_cost() {
    let world = World::create();
    let up = Up::start(&world);
    register_handed(&world, &up, 1, 0.8, 30);
    register_handed(&world, &up, 2, 0.9, 20);
    let mut browser = signed_in(&world, &up);

    let page = browser.get("/console/models");
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let chart = &page.body[page.body.find("<svg").expect("a chart")..];
    let chart = &chart[..chart.find("</svg>").expect("chart end")];
    assert_eq!(
        chart.matches("<circle").count(),
        3,
        "two versions and a ring on production"
    );
    for version in ["handed/1", "handed/2"] {
        assert!(
            page.body
                .contains(&format!("name=\"v\" value=\"{version}\"")),
            "{version} can be ticked"
        );
    }

    let page = browser.get("/console/models/compare?v=handed%2F1&v=handed%2F2");
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for shown in [
        "80.00 %",
        "90.00 %",
        "epochs <span class=\"muted\">(differs)",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    assert_eq!(
        page.body.matches("true \\ predicted").count(),
        2,
        "a confusion matrix per version"
    );
    let page = browser.get("/console/models/compare?v=handed%2F1");
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "one version is no comparison"
    );

    let page = browser.get("/console/models/handed/1");
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("not in production"), "{}", page.body);
    let forged = browser.post("/console/models/handed/1/promote", &[("form_token", "x")]);
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        up.get("/api/models/handed/1")["production"],
        false,
        "nothing promoted"
    );
    let promoted = browser.post(
        "/console/models/handed/1/promote",
        &[("form_token", &form_token(&page.body))],
    );
    assert_eq!(promoted.status, StatusCode::SEE_OTHER, "{}", promoted.body);
    assert_eq!(promoted.location, "/console/models/handed/1");
    assert_eq!(up.get("/api/models/handed/1")["production"], true);
    assert_eq!(up.get("/api/models/handed/2")["production"], false);
    let page = browser.get("/console/models/handed/1");
    assert!(page.body.contains(">production</strong>"), "{}", page.body);
    assert!(!page.body.contains("Promote to production"));

    let page = browser.get("/console/models/handed/9");
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    // The endpoint the promotion redeployed: its traffic, try it, roll back.
    let page = browser.get("/console/endpoints");
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(">handed-ep</a>"), "{}", page.body);
    let page = browser.get("/console/endpoints/handed-ep");
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("serves <strong>handed-1</strong>"),
        "{}",
        page.body
    );
    let token = form_token(&page.body);
    let forged = browser.post_image(
        "/console/endpoints/handed-ep/try",
        "x",
        "image/png",
        &png(40),
    );
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let page = browser.post_image(
        "/console/endpoints/handed-ep/try",
        &token,
        "image/png",
        &png(40),
    );
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"try-answer\""), "{}", page.body);
    assert!(page.body.contains("by model handed-1"), "{}", page.body);
    let large = png(1000);
    assert!(
        large.len() > 2 << 20,
        "past axum's default limit: {}",
        large.len()
    );
    let page = browser.post_image(
        "/console/endpoints/handed-ep/try",
        &token,
        "image/png",
        &large,
    );
    assert!(
        page.body.contains("id=\"try-answer\""),
        "a 3 MB photo is classified: {}",
        page.status
    );
    let page = browser.post_image(
        "/console/endpoints/handed-ep/try",
        &token,
        "image/jpeg",
        b"\xff\xd8\xff\xe0 not the rest of a JPEG",
    );
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the refusal is shown on the page"
    );
    assert!(page.body.contains("id=\"try-refusal\""), "{}", page.body);
    assert!(
        !page.body.contains("id=\"try-answer\""),
        "no prediction claimed"
    );
    let traffic = up.get("/api/endpoints/handed-ep/traffic");
    assert_eq!(
        (&traffic["requests"], &traffic["errors"]),
        (&3.into(), &1.into()),
        "{traffic}"
    );
    assert!(
        traffic["p99_ms"].as_f64().is_some_and(|p| p > 0.0),
        "{traffic}"
    );

    let rolled = browser.post(
        "/console/endpoints/handed-ep/rollback",
        &[("form_token", &token), ("to", "handed-2")],
    );
    assert_eq!(rolled.status, StatusCode::SEE_OTHER, "{}", rolled.body);
    assert_eq!(
        up.get("/api/endpoints/handed-ep")["model"]["version"],
        "handed-2"
    );

    // The two runs' instances, summed per pipeline.
    let page = browser.get("/console/instances");
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let by_pipeline = &page.body[page.body.find("id=\"by-pipeline\"").expect("per pipeline")..];
    let handed = &by_pipeline[by_pipeline
        .find(">handed</a></th>")
        .expect("the pipeline's row")..];
    assert!(
        handed.starts_with(">handed</a></th><td class=\"num\">2</td>"),
        "two instances: {handed}"
    );
    assert_eq!(table_rows(&page.body, "instances"), 2, "{}", page.body);
}

#[test]
fn the_console_signs_in_shows_a_pipelines_fires_runs_it_and_signs_out() {
    let world = World::create();
    let up = Up::start(&world);
    up.apply(
        &world,
        "nightly",
        "name = \"nightly\"\ndata = \"s3://fsxn-ontap/none\"\nschedule = \"cron(0 3 * * ? *)\"\n\
         [[steps]]\nkind = \"run\"\ncommand = \"echo hello-from-the-console\"\n",
    );
    let token = std::fs::read_to_string(world.data.join("api-token")).expect("token");
    let mut browser = Browser::new(up.api_url());

    let asked = "/console/pipelines/nightly";
    let page = browser.get(asked);
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "no session: sign in first"
    );
    assert_eq!(
        page.location,
        "/console/sign-in?next=%2Fconsole%2Fpipelines%2Fnightly"
    );

    let page = browser.post(
        "/console/sign-in",
        &[("token", "tread_wrong"), ("next", asked)],
    );
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.body.contains("not this server&#x27;s API token"),
        "{}",
        page.body
    );
    assert!(browser.cookie.is_none(), "a wrong token opens no session");

    let page = browser.post(
        "/console/sign-in",
        &[("token", token.trim()), ("next", asked)],
    );
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location, asked, "back to the page asked for");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(
            page.set_cookie.contains(attribute),
            "{attribute}: {}",
            page.set_cookie
        );
    }
    assert!(
        !page.set_cookie.contains(token.trim()),
        "the token never becomes the cookie"
    );

    let page = browser.get(asked);
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        table_rows(&page.body, "next-fires"),
        10,
        "the next 10 fire times"
    );
    let fires = up.get("/api/schedules/next?expr=cron(0%203%20*%20*%20%3F%20*)&n=10");
    let first = fires["fires"][0]["utc"].as_str().expect("first fire");
    assert!(
        page.body.contains(first),
        "the API's first fire {first} is shown"
    );

    let forged = browser.post("/console/pipelines/nightly/run", &[("form_token", "x")]);
    assert_eq!(
        forged.status,
        StatusCode::FORBIDDEN,
        "a form without the session's token"
    );
    assert!(
        up.runs("nightly").is_empty(),
        "a refused form starts nothing"
    );

    let page = browser.post(
        "/console/pipelines/nightly/run",
        &[("form_token", &form_token(&page.body))],
    );
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        page.location.starts_with("/console/runs/"),
        "{}",
        page.location
    );
    let run_page = page.location.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let page = loop {
        let page = browser.get(&run_page);
        assert_eq!(page.status, StatusCode::OK);
        if page.body.contains("id=\"run-state\">succeeded") || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        page.body.contains("id=\"run-state\">succeeded"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("hello-from-the-console"),
        "the step's log is shown"
    );

    let lists_the_run = |browser: &mut Browser, state: &str| {
        let page = browser.get(&format!("/console/runs?state={state}"));
        assert_eq!(page.status, StatusCode::OK);
        page.body.contains(&format!("href=\"{run_page}\""))
    };
    assert!(
        lists_the_run(&mut browser, "succeeded"),
        "filtered by its state"
    );
    assert!(
        !lists_the_run(&mut browser, "failed"),
        "left out of another state's runs"
    );
    let page = browser.get("/console/runs?state=finished");
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("is not a run state"), "{}", page.body);

    let page = browser.get("/console/runs/999999");
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.body.contains("href=\"/console/\""),
        "a way back: {}",
        page.body
    );

    let page = browser.get("/console/schedules?expr=cron(0%200%20%3F%20*%20MON%2F2%20*)");
    assert_eq!(
        page.status,
        StatusCode::OK,
        "an invalid schedule is shown inline"
    );
    assert!(page.body.contains("role=\"alert\""), "{}", page.body);
    assert!(!page.body.contains("id=\"next-fires\""));

    let page = browser.get("/console/");
    let session = browser.cookie.clone();
    let signed_out = browser.post(
        "/console/sign-out",
        &[("form_token", &form_token(&page.body))],
    );
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert!(
        signed_out.set_cookie.contains("Max-Age=0"),
        "the cookie is cleared"
    );
    browser.cookie = session;
    let page = browser.get("/console/");
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the old session is closed"
    );
}

/// A pipeline that only trains, `epochs` epochs at `size` pixels, on the
/// synthetic tyres, every epoch run (no early stop).
pub(crate) fn curves_pipeline(epochs: usize, size: u32) -> String {
    format!(
        "name = \"curves\"\ndata = \"s3://fsxn-ontap/dataset/tyre\"\n\
         [[steps]]\nkind = \"train\"\nmodel = \"resnet-small\"\nsize = {size}\n\
         epochs = {epochs}\npatience = 0\nout = \"s3://fsxn-ontap/models/curves/\"\n"
    )
}

/// The line a page marks as the one a parser stopped at.
pub(crate) fn marked_line(body: &str) -> &str {
    let at = body
        .find("class=\"bad\" aria-current=\"true\">")
        .expect("a marked line");
    let line = &body[at..];
    let line = &line[line.find('>').expect("tag end") + 1..];
    &line[..line.find("</li>").expect("line end")]
}

/// The epochs a run page's live part shows for its training step.
fn epochs_shown(body: &str) -> Option<usize> {
    let at = body.find("Training (step 1): ")? + "Training (step 1): ".len();
    body[at..].split_whitespace().next()?.parse().ok()
}

#[test]
fn a_run_page_follows_training_as_its_curves_grow_and_ends_with_the_held_out_figures() {
    let world = World::create();
    let up = Up::start(&world);
    up.synth_tyres(&world);
    up.apply(&world, "curves", &curves_pipeline(6, 64));
    let mut browser = signed_in(&world, &up);
    let page = browser.get("/console/pipelines/curves");
    let token = form_token(&page.body);
    let page = browser.post("/console/pipelines/curves/run", &[("form_token", &token)]);
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let run_page = page.location;
    let page = browser.get(&run_page);
    assert!(
        page.body.contains("src=\"/console/assets/live.js\""),
        "{}",
        page.body
    );
    let script = browser.get("/console/assets/live.js");
    assert!(
        script.body.contains("setTimeout(refresh"),
        "the script is served"
    );

    // What the page's script fetches every two seconds, fetched more often.
    let (mut seen, started) = (Vec::new(), Instant::now());
    let last = loop {
        let live = browser.get(&format!("{run_page}/live"));
        assert_eq!(live.status, StatusCode::OK, "{}", live.body);
        let following = live.body.contains("data-live=\"true\"");
        if following
            && let Some(epochs) = epochs_shown(&live.body)
            && seen.last() != Some(&epochs)
        {
            seen.push(epochs);
        }
        if !following {
            break live.body;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the run ends");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("epochs seen while the run went on: {seen:?}");
    assert!(
        seen.iter().any(|&n| (1..6).contains(&n)),
        "a curve seen while it grows: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "it only grows: {seen:?}"
    );
    assert!(last.contains("id=\"run-state\">succeeded"), "{last}");
    assert_eq!(epochs_shown(&last), Some(6), "every epoch in the end");
    for chart in ["loss-1", "accuracy-1"] {
        let at = last.find(&format!("id=\"{chart}\"")).expect(chart);
        assert!(last[at..].contains("<svg"), "{chart} is drawn");
    }
    assert!(last.contains("Held-out evaluation"), "{last}");
    assert!(last.contains("true \\ predicted"), "the confusion matrix");
}

#[test]
fn an_edited_pipeline_file_is_applied_and_a_refused_one_is_shown_at_its_line_with_nothing_saved() {
    let world = World::create();
    let up = Up::start(&world);
    let file = "name = \"nightly\"\ndata = \"s3://fsxn-ontap/none\"\nschedule = \"cron(0 3 * * ? *)\"\n\
                [[steps]]\nkind = \"run\"\ncommand = \"echo hello\"\n";
    up.apply(&world, "nightly", file);
    let mut browser = signed_in(&world, &up);
    let page = browser.get("/console/pipelines/nightly");
    assert!(
        page.body.contains("<textarea id=\"source\""),
        "{}",
        page.body
    );
    let token = form_token(&page.body);

    // A browser sends a textarea's lines ending in CR LF.
    let broken = file
        .replace("kind = \"run\"", "kind = run")
        .replace('\n', "\r\n");
    let page = browser.post(
        "/console/pipelines/nightly/apply",
        &[("form_token", &token), ("source", &broken)],
    );
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("id=\"source-error\""), "{}", page.body);
    assert!(
        page.body.contains("line 5"),
        "the parser's line: {}",
        page.body
    );
    assert_eq!(marked_line(&page.body), "kind = run", "line 5 is marked");
    assert!(
        page.body.contains("kind = run\n"),
        "the edit stays in the form"
    );
    assert_eq!(
        up.get("/api/pipelines/nightly")["schedule"],
        "cron(0 3 * * ? *)",
        "nothing saved"
    );

    let wrong = file.replace("cron(0 3 * * ? *)", "cron(0 0 ? * MON/2 *)");
    let page = browser.post(
        "/console/pipelines/nightly/apply",
        &[("form_token", &token), ("source", &wrong)],
    );
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "a schedule EventBridge refuses"
    );
    assert!(page.body.contains("id=\"source-error\""), "{}", page.body);

    let edited = file.replace("cron(0 3 * * ? *)", "rate(6 hours)");
    let page = browser.post(
        "/console/pipelines/nightly/apply",
        &[("form_token", &token), ("source", &edited)],
    );
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location, "/console/pipelines/nightly");
    assert_eq!(
        up.get("/api/pipelines/nightly")["schedule"],
        "rate(6 hours)"
    );
    let page = browser.post(
        "/console/pipelines/nightly/apply",
        &[("form_token", "forged"), ("source", file)],
    );
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(
        up.get("/api/pipelines/nightly")["schedule"],
        "rate(6 hours)",
        "a forged form changes nothing"
    );
}
