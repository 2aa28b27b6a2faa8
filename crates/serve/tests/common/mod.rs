//! A real endpoint server on loopback, model artifacts packed by the train
//! part, and real JPEG/PNG bytes.

#![allow(dead_code, clippy::unwrap_used)]

use image::{ImageFormat, Rgb, RgbImage};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::oneshot;
use tread_catalog::testing::TestDb;
use tread_data::Preprocess;
use tread_nn::{Architecture, Network};
use tread_serve::{ApiToken, BatchOptions, ServeOptions, Server};
use tread_train::{ModelCard, pack};

/// Input side of the test models: the smallest resnet-small takes.
pub const SIZE: u32 = 32;

/// A test's directory and catalog (SQLite in the directory, or a schema of
/// its own on `TREAD_TEST_DATABASE_URL`); a restarted server finds both.
pub struct TestDir {
    db: TestDb,
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            db: TestDb::new(dir.path()),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A server answering on loopback until dropped.
pub struct TestServer {
    pub url: String,
    pub token: ApiToken,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on `dir`, restoring its endpoints.
    pub async fn start(dir: &TestDir, batch: BatchOptions) -> Self {
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: dir.db.open().await,
            data_dir: dir.path().to_path_buf(),
            batch,
            public_inference: false,
        };
        let server = Server::bind(&options).await.unwrap();
        let url = format!("http://{}", server.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            token: ApiToken::read(dir.path()).unwrap(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops answering and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// `PUT /api/endpoints/{name}` with the token: (status, JSON body).
    pub async fn deploy(&self, name: &str, model: &str) -> (u16, serde_json::Value) {
        self.deploy_with(name, serde_json::json!({ "model": model }))
            .await
    }

    /// `PUT /api/endpoints/{name}` with the token and a body of any fields.
    pub async fn deploy_with(
        &self,
        name: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .put(format!("{}/api/endpoints/{name}", self.url))
            .bearer_auth(self.token.secret())
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// `POST /api/endpoints/{name}/rollback` with the token and a body.
    pub async fn rollback(&self, name: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}/api/endpoints/{name}/rollback", self.url))
            .bearer_auth(self.token.secret())
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// A management call with the token.
    pub async fn api(&self, method: reqwest::Method, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(self.token.secret())
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// `POST /endpoints/{name}/invocations`.
    pub async fn invoke(
        &self,
        name: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}/endpoints/{name}/invocations", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// A GET without the token.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// A JSON POST without the token.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }
}

pub async fn status_and_json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

/// Packs an untrained resnet-small (weights from `seed`) as `model.tar.gz`
/// under `dir/<version>/` and returns its path.
pub fn model_file(dir: &Path, version: &str, seed: u64) -> String {
    model_file_with(dir, version, seed, &["defective", "good"], SIZE)
}

/// [`model_file`] with other classes or another input side.
pub fn model_file_with(
    dir: &Path,
    version: &str,
    seed: u64,
    classes: &[&str],
    size: u32,
) -> String {
    let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
    let mut network = Network::new(
        Architecture::ResnetSmall,
        classes.len(),
        size as usize,
        seed,
    )
    .unwrap();
    let input = Preprocess {
        size,
        ..Preprocess::default()
    };
    let mut card = ModelCard::untrained(&mut network, &classes, input, version);
    let bytes = pack(&mut card, &mut network).unwrap();
    let path: PathBuf = dir.join(version).join("model.tar.gz");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

/// A 48×40 photo-like gradient, encoded.
pub fn image_bytes(format: ImageFormat, shade: u8) -> Vec<u8> {
    let image = RgbImage::from_fn(48, 40, |x, y| {
        Rgb([
            (x * 5) as u8,
            (y * 6) as u8,
            shade.wrapping_add((x + y) as u8),
        ])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A `width`×`height` noisy photo-like JPEG: big enough that most of its
/// bytes are entropy-coded scan data, not headers.
pub fn jpeg_sized(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        let noise = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) as u8;
        Rgb([(x as u8).wrapping_add(noise), (y as u8) ^ noise, noise])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// A JPEG.
pub fn jpeg(shade: u8) -> Vec<u8> {
    image_bytes(ImageFormat::Jpeg, shade)
}

/// A PNG.
pub fn png(shade: u8) -> Vec<u8> {
    image_bytes(ImageFormat::Png, shade)
}
