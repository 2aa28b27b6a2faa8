//! The console in Debian's Chromium, driven through chromedriver
//! (WebDriver, with the fantoccini crate) as a person uses it: a page opened
//! without a session goes to sign-in and back, by the keyboard alone; a bucket is made and two
//! files are uploaded by the page's script (one in parts), and one too large
//! for its volume fails with the store's error; the next fire
//! times of a schedule; a run started from its pipeline's page whose curve
//! grows on the open page; a dataset's thumbnails loading from the store;
//! two model versions compared and one promoted; an endpoint rolled back
//! and tried with a photo; the overview at a phone's width; sign-out. Each
//! page's screenshot is saved under `target/console-screenshots/`.

use crate::common::{World, block_on, free_port, run_ok, wait_listening};
use crate::console::{curves_pipeline, png, register_handed};
use crate::pipeline::Up;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// WebDriver's codes of the Enter and Tab keys.
const ENTER: &str = "\u{E007}";
const TAB: &str = "\u{E004}";

/// A chromedriver process, stopped when dropped.
struct Driver {
    process: Child,
    url: String,
}

impl Driver {
    /// Starts Debian's chromedriver (`TREAD_CHROMEDRIVER` names another).
    fn start() -> Self {
        let program = std::env::var("TREAD_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let process = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{program}: {e}: install Debian's chromium and chromium-driver (.ci/run does)"
                )
            });
        wait_listening(port, Duration::from_secs(30), "chromedriver");
        Self {
            process,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The browser goes with its driver; nothing to report if it is gone.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A headless Chromium of its own profile, at 1280×800. The flags keep it
/// off the network beyond loopback, which this machine closes anyway.
async fn chromium(driver: &Driver, profile: &Path) -> Client {
    let binary = std::env::var("TREAD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let options = serde_json::json!({
        "binary": binary,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--window-size=1280,800",
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// A 3 MiB tmpfs, unmounted when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        // Nothing to report: the temp dir goes next either way.
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Bucket `tiny` on a volume of 3 MiB (a tmpfs, which needs root, as CI
/// runs); none where mounting is not permitted, which the test says.
fn small_volume(world: &World) -> Option<Mounted> {
    let at = world.dir.path().join("small");
    std::fs::create_dir_all(&at).expect("a mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&at)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("mounting a tmpfs is not permitted here: the full-volume upload is not tried");
        return None;
    }
    let mounted = Mounted(at.clone());
    let path = at.to_str().expect("utf-8");
    run_ok(
        &world.data,
        &["s3", "volume", "create", "small", "--path", path],
    );
    run_ok(
        &world.data,
        &["s3", "bucket", "create", "tiny", "--volume", "small"],
    );
    Some(mounted)
}

/// Where screenshots go: `target/console-screenshots/`, beside the build
/// this test binary is part of (`target/release/deps/…`).
fn screenshots() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let target = exe.ancestors().nth(3).expect("target/release/deps");
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    let file = screenshots().join(format!("{name}.png"));
    std::fs::write(&file, png).expect("the screenshot saved");
}

async fn open(c: &Client, base: &str, path: &str) {
    let opened = c.goto(&format!("{base}{path}")).await;
    opened.unwrap_or_else(|e| panic!("opening {path}: {e}"));
}

async fn text_of(c: &Client, css: &str) -> String {
    let element = c.find(Locator::Css(css)).await;
    let element = element.unwrap_or_else(|e| panic!("{css}: {e}"));
    element.text().await.expect("its text")
}

/// The text of `css` now, if it is on the page.
async fn text_now(c: &Client, css: &str) -> Option<String> {
    let element = c.find(Locator::Css(css)).await.ok()?;
    element.text().await.ok()
}

async fn click(c: &Client, css: &str) {
    let element = c.find(Locator::Css(css)).await;
    let element = element.unwrap_or_else(|e| panic!("{css}: {e}"));
    element
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn fill(c: &Client, css: &str, text: &str) {
    let element = c.find(Locator::Css(css)).await;
    let element = element.unwrap_or_else(|e| panic!("{css}: {e}"));
    element
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
}

async fn path_of(c: &Client) -> String {
    let url = c.current_url().await.expect("a URL");
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Waits for a click's navigation to reach a path starting with `prefix`
/// (WebDriver's click returns before a form's answer has loaded).
async fn wait_for_path(c: &Client, prefix: &str) -> String {
    let started = Instant::now();
    loop {
        let path = path_of(c).await;
        let loaded = c.execute("return document.readyState;", vec![]).await;
        if path.starts_with(prefix) && loaded.is_ok_and(|state| state == "complete") {
            return path;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never reached {prefix}: at {path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits up to `within` for `done` to hold of the page's text.
async fn wait_for_text(
    c: &Client,
    css: &str,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let started = Instant::now();
    loop {
        let text = text_now(c, css).await.unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(
            started.elapsed() < within,
            "{css} never showed what was awaited: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The epochs the open run page shows for its training step.
async fn epochs_on_page(c: &Client) -> Option<usize> {
    let heading = c
        .find(Locator::Css("#run-live h2:nth-of-type(2)"))
        .await
        .ok()?;
    let text = heading.text().await.ok()?;
    let count = text.strip_prefix("Training (step 1): ")?;
    count.split_whitespace().next()?.parse().ok()
}

/// Epochs of the run watched: enough for the page to refresh a few times
/// while it trains (about 0.2 s each here).
const EPOCHS: usize = 50;

#[test]
fn a_person_uses_the_console_in_chromium() {
    let world = World::create();
    let up = Up::start(&world);
    up.synth_tyres(&world);
    up.apply(&world, "curves", &curves_pipeline(EPOCHS, 96));
    register_handed(&world, &up, 1, 0.8, 30);
    register_handed(&world, &up, 2, 0.9, 20);
    let token = std::fs::read_to_string(world.data.join("api-token")).expect("token");
    let files = world.dir.path().join("uploads");
    std::fs::create_dir_all(&files).expect("uploads");
    let (hello, big, photo) = (
        files.join("hello.txt"),
        files.join("big.bin"),
        files.join("tyre.png"),
    );
    std::fs::write(&hello, "hello from a browser\n").expect("a file");
    std::fs::write(&big, vec![42u8; 17 << 20]).expect("a file over 16 MiB");
    std::fs::write(&photo, png(64)).expect("a photo");
    // Made early: the running store picks up a new bucket within seconds.
    let small = small_volume(&world);
    let driver = Driver::start();
    let base = up.api_url().to_owned();
    block_on(async {
        let c = chromium(&driver, &world.dir.path().join("chromium")).await;

        // No session: sign-in, then the page asked for.
        open(&c, &base, "/console/runs").await;
        assert_eq!(path_of(&c).await, "/console/sign-in?next=%2Fconsole%2Fruns");
        shot(&c, "sign-in").await;
        // By the keyboard alone: the token field has the focus, Enter signs in.
        let focused = c.active_element().await.expect("the focused element");
        assert_eq!(
            focused.attr("id").await.expect("its id").as_deref(),
            Some("token")
        );
        focused
            .send_keys(&format!("{}{ENTER}", token.trim()))
            .await
            .expect("typing");
        assert_eq!(wait_for_path(&c, "/console/runs").await, "/console/runs");
        // The first Tab reaches the link that skips the navigation.
        let body = c.find(Locator::Css("body")).await.expect("the page");
        body.send_keys(TAB).await.expect("Tab");
        let focused = c.active_element().await.expect("the focused element");
        assert_eq!(focused.text().await.expect("its text"), "Skip to content");

        // A bucket, and two files uploaded by the page's script.
        open(&c, &base, "/console/buckets").await;
        fill(&c, "#bucket-name", "photos").await;
        click(&c, "form[action='/console/buckets'] button").await;
        wait_for_path(&c, "/console/buckets/photos").await;
        let chosen = format!("{}\n{}", hello.display(), big.display());
        fill(&c, "#files", &chosen).await;
        click(&c, "#upload button[type=submit]").await;
        let status = wait_for_text(&c, "#upload-status", Duration::from_secs(120), |t| {
            t.contains("uploaded") || t.contains("failed")
        })
        .await;
        assert_eq!(status, "2 uploaded. Reload the page to see them.");
        shot(&c, "bucket-upload").await;
        c.refresh().await.expect("reload");
        let listed = text_of(&c, "#objects").await;
        assert!(
            listed.contains("hello.txt") && listed.contains("big.bin"),
            "{listed}"
        );
        click(&c, "#objects a[href*='big.bin']").await;
        wait_for_path(&c, "/console/buckets/photos/object").await;
        let details = text_of(&c, "#details").await;
        assert!(
            details.contains("(2 parts)"),
            "the big file went in parts: {details}"
        );
        assert!(
            details.contains(&format!("{} bytes", 17 << 20)),
            "{details}"
        );
        shot(&c, "object").await;

        // A file larger than its bucket's volume fails visibly, with the
        // store's own error, and leaves nothing behind.
        if small.is_some() {
            open(&c, &base, "/console/buckets/tiny").await;
            fill(&c, "#files", &big.display().to_string()).await;
            click(&c, "#upload button[type=submit]").await;
            let status = wait_for_text(&c, "#upload-status", Duration::from_secs(120), |t| {
                t.contains("uploaded") || t.contains("failed")
            })
            .await;
            assert_eq!(
                status,
                "1 of 1 uploads failed; nothing of a failed file was kept."
            );
            let item = text_of(&c, "#upload-progress li").await;
            assert!(
                item.contains("failed: ") && item.contains("space"),
                "the store's error: {item}"
            );
            shot(&c, "upload-too-large").await;
            c.refresh().await.expect("reload");
            assert!(text_of(&c, "#objects").await.contains("Nothing here yet"));
        }

        // The next fire times of a schedule.
        open(&c, &base, "/console/schedules").await;
        fill(&c, "#expr", "cron(0 3 * * ? *)").await;
        click(&c, "form[action='/console/schedules'] button").await;
        wait_for_path(&c, "/console/schedules?expr=").await;
        let fires = c
            .find_all(Locator::Css("#next-fires tbody tr"))
            .await
            .expect("fires");
        assert_eq!(fires.len(), 10);
        shot(&c, "schedules").await;

        // A run started from its pipeline's page; its curve grows on the
        // open page, without a reload.
        open(&c, &base, "/console/pipelines/curves").await;
        click(&c, "form[action$='/run'] button").await;
        wait_for_path(&c, "/console/runs/").await;
        let (mut seen, started) = (Vec::new(), Instant::now());
        loop {
            if let Some(epochs) = epochs_on_page(&c).await
                && seen.last() != Some(&epochs)
            {
                seen.push(epochs);
            }
            // Read between swaps of the live part; a swap mid-read reads again.
            let state = text_now(&c, "#run-state")
                .await
                .unwrap_or_else(|| "running".into());
            if state != "queued" && state != "running" {
                assert_eq!(state, "succeeded");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(300), "the run ends");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "epochs the open page showed: {seen:?} in {:?}",
            started.elapsed()
        );
        assert!(
            seen.iter().any(|&n| (1..EPOCHS).contains(&n)),
            "the curve seen growing on the open page: {seen:?}"
        );
        wait_for_text(&c, "#run-live", Duration::from_secs(10), |t| {
            t.contains("Held-out evaluation")
        })
        .await;
        assert_eq!(epochs_on_page(&c).await, Some(EPOCHS));
        shot(&c, "run").await;

        // A dataset's thumbnails load from the store by presigned URLs.
        open(
            &c,
            &base,
            "/console/datasets?uri=s3%3A%2F%2Ffsxn-ontap%2Fdataset%2Ftyre%2F",
        )
        .await;
        let loaded = c
            .execute(
                "const images = [...document.querySelectorAll('.thumbs img')];\
                 await Promise.all(images.map(i => i.decode().catch(() => null)));\
                 return [images.length, images.filter(i => i.naturalWidth > 0).length];",
                vec![],
            )
            .await
            .expect("the thumbnails' state");
        assert_eq!(loaded[0], 24, "12 per class");
        assert_eq!(loaded[1], loaded[0], "every thumbnail loaded");
        shot(&c, "dataset").await;

        // Two versions compared, one promoted.
        open(&c, &base, "/console/models").await;
        shot(&c, "models").await;
        click(&c, "input[value='handed/1']").await;
        click(&c, "input[value='handed/2']").await;
        click(&c, "form[action='/console/models/compare'] button").await;
        wait_for_path(&c, "/console/models/compare?").await;
        let compared = text_of(&c, "main").await;
        assert!(
            compared.contains("handed v1") && compared.contains("handed v2"),
            "{compared}"
        );
        shot(&c, "compare").await;
        open(&c, &base, "/console/models/handed/1").await;
        click(&c, "form[action$='/promote'] button").await;
        let within = Duration::from_secs(30);
        wait_for_text(&c, "main p", within, |t| {
            t.contains("production on handed-ep")
        })
        .await;
        let buttons = c
            .find_all(Locator::Css("form[action$='/promote']"))
            .await
            .expect("forms");
        assert!(buttons.is_empty(), "production has nothing to promote");

        // Promoting deployed version 1; the endpoint rolled back to 2 and
        // tried with a photo.
        open(&c, &base, "/console/endpoints/handed-ep").await;
        assert!(text_of(&c, "main").await.contains("serves handed-1"));
        click(&c, "form[action$='/rollback'] button").await;
        wait_for_text(&c, "main p", within, |t| t.contains("serves handed-2")).await;
        fill(&c, "#image", &photo.display().to_string()).await;
        click(&c, "form[action$='/try'] button").await;
        let answer = wait_for_text(&c, "#try-answer", within, |t| !t.is_empty()).await;
        assert!(answer.contains("by model handed-2"), "{answer}");
        shot(&c, "endpoint").await;

        // The overview at a phone's width: nothing wider than the screen.
        c.set_window_size(390, 844).await.expect("resize");
        open(&c, &base, "/console/").await;
        let fits = c
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                vec![],
            )
            .await
            .expect("the page's width");
        assert_eq!(
            fits,
            serde_json::Value::Bool(true),
            "no sideways scrolling at 390 px"
        );
        shot(&c, "overview-phone").await;
        c.set_window_size(1280, 800).await.expect("resize");
        open(&c, &base, "/console/").await;
        shot(&c, "overview").await;

        // Sign-out closes the session.
        click(&c, "form[action='/console/sign-out'] button").await;
        wait_for_path(&c, "/console/sign-in").await;
        open(&c, &base, "/console/models").await;
        assert_eq!(
            path_of(&c).await,
            "/console/sign-in?next=%2Fconsole%2Fmodels"
        );
        c.close().await.expect("close the browser");
    });
}
