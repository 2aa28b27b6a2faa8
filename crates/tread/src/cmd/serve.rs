//! `tread serve`, `tread deploy`, `tread predict` and `tread endpoint …`:
//! the endpoint server, and the CLI that talks to it over its HTTP API.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tread_serve::{ApiToken, BatchOptions, ServeOptions, Server};

use crate::cmd::api::{ApiClient, block_on};
use crate::cmd::show::{self, Table, field};

/// Options of `tread serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub batching: BatchingArgs,
    /// Answer inference without the token even when listening beyond
    /// loopback: /endpoints/…/invocations, /v2/…, /ping and /metrics (model
    /// versions, URIs and request counts) are then open to anyone who can
    /// reach the address.
    #[arg(long)]
    pub public_inference: bool,
}

/// Dynamic batching of requests that arrive together.
#[derive(Debug, Args)]
pub struct BatchingArgs {
    /// Most images in one forward pass.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// How long a request may wait for others to share its forward pass,
    /// in milliseconds; 0 batches only what queued while the model was busy.
    #[arg(long, default_value_t = 0)]
    pub max_wait_ms: u64,
}

impl BatchingArgs {
    /// The batcher's options.
    pub fn options(&self) -> BatchOptions {
        BatchOptions {
            max_batch: self.max_batch.max(1),
            max_wait: Duration::from_millis(self.max_wait_ms),
        }
    }
}

/// Where the endpoint server (`tread serve` or `tread up`) is.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The endpoint server's URL [default: the address a running `tread up`
    /// recorded in the data dir, else http://127.0.0.1:8080].
    #[arg(long, env = "TREAD_SERVER")]
    pub server: Option<String>,
}

impl ServerArgs {
    /// The URL to call: `--server`/`TREAD_SERVER`, else the API of the
    /// `tread up` that recorded its address in `data_dir` and answers
    /// there, else `tread serve`'s default.
    pub fn url(&self, data_dir: &Path) -> String {
        self.server
            .clone()
            .or_else(|| tread_pipeline::DaemonAddress::find(data_dir).map(|a| a.api))
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_string())
    }
}

/// Options of `tread deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The model: s3://…/model.tar.gz, s3://…/model.onnx (with model.json
    /// beside it), or a path.
    pub model: String,
    /// The endpoint to create or update.
    #[arg(long)]
    pub endpoint: String,
    /// Let the model change the classes or the input (shape, size,
    /// normalisation) the endpoint's clients rely on; refused otherwise.
    /// The change is recorded in the endpoint's history.
    #[arg(long)]
    pub allow_contract_change: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Options of `tread predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The endpoint to ask.
    #[arg(long)]
    pub endpoint: String,
    /// Images: files or s3://bucket/key.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Print the server's JSON answers.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `tread endpoint …`.
#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Every endpoint with its model.
    List {
        /// Print the API's JSON answer, times at full precision.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One endpoint: its model, status and deploy history.
    Describe {
        /// The endpoint.
        name: String,
        /// Print the API's JSON answer, times at full precision.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Return an endpoint to the model it served before; again, to the one
    /// before that; or to a version with --to.
    Rollback {
        /// The endpoint.
        name: String,
        /// The model version to return to (see `endpoint describe`).
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Let the older model change the classes or the input the
        /// endpoint's clients rely on.
        #[arg(long)]
        allow_contract_change: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove an endpoint.
    Delete {
        /// The endpoint.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Runs the endpoint server until Ctrl-C.
pub fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(&serve_options(data_dir, &args).await?).await?;
        eprintln!(
            "tread endpoints on http://{} (token in {})",
            server.local_addr()?,
            ApiToken::path(data_dir).display()
        );
        server
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

/// The server options for a data dir.
pub async fn serve_options(data_dir: &Path, args: &ServeArgs) -> anyhow::Result<ServeOptions> {
    Ok(ServeOptions {
        listen: args.listen,
        database: super::open_database(data_dir).await?,
        data_dir: data_dir.to_path_buf(),
        batch: args.batching.options(),
        public_inference: args.public_inference,
    })
}

/// `tread deploy`.
pub fn deploy(data_dir: &Path, args: DeployArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.server, data_dir);
    let body = serde_json::json!({
        "model": args.model,
        "allow_contract_change": args.allow_contract_change,
    });
    let view = block_on(client.call(
        reqwest::Method::PUT,
        &endpoint_path(&args.endpoint),
        Some(body.to_string().into_bytes()),
    ))?;
    println!(
        "endpoint {} serves {} (version {})",
        args.endpoint,
        args.model,
        view["model"]["version"].as_str().unwrap_or("?")
    );
    print_contract_change(&view);
    println!(
        "invoke: {}{}",
        client.base,
        view["invocations"].as_str().unwrap_or("")
    );
    Ok(())
}

/// `tread endpoint …`.
pub fn endpoint(data_dir: &Path, cmd: EndpointCmd) -> anyhow::Result<()> {
    match cmd {
        EndpointCmd::List { json, server } => {
            let client = ApiClient::new(&server, data_dir);
            let list = block_on(client.call(reqwest::Method::GET, "/api/endpoints", None))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_list(&list);
            }
        }
        EndpointCmd::Describe { name, json, server } => {
            let client = ApiClient::new(&server, data_dir);
            let view = block_on(client.call(reqwest::Method::GET, &endpoint_path(&name), None))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", show::describe(&view));
            }
        }
        EndpointCmd::Rollback {
            name,
            to,
            allow_contract_change,
            server,
        } => {
            let client = ApiClient::new(&server, data_dir);
            let path = format!("{}/rollback", endpoint_path(&name));
            let body =
                serde_json::json!({ "to": to, "allow_contract_change": allow_contract_change });
            let view = block_on(client.call(
                reqwest::Method::POST,
                &path,
                Some(body.to_string().into_bytes()),
            ))?;
            println!(
                "endpoint {name} rolled back to version {} ({})",
                view["model"]["version"].as_str().unwrap_or("?"),
                view["model"]["uri"].as_str().unwrap_or("?")
            );
            print_contract_change(&view);
        }
        EndpointCmd::Delete { name, server } => {
            let client = ApiClient::new(&server, data_dir);
            block_on(client.call(reqwest::Method::DELETE, &endpoint_path(&name), None))?;
            println!("endpoint {name} deleted");
        }
    }
    Ok(())
}

/// Says so when the revision just made changed the endpoint's contract.
fn print_contract_change(view: &Value) {
    let latest = view["history"].as_array().and_then(|h| h.last());
    if let Some(change) = latest.and_then(|r| r["contract_change"].as_str()) {
        println!("contract changed (allowed): {change}");
    }
}

fn print_list(list: &Value) {
    let mut table = Table::new(&["NAME", "STATUS", "VERSION", "MODEL"]);
    for e in list.as_array().into_iter().flatten() {
        table.row(vec![
            field(e, "name"),
            field(e, "status"),
            e["model"]["version"].as_str().unwrap_or("-").to_string(),
            e["model"]["uri"].as_str().unwrap_or("-").to_string(),
        ]);
    }
    table.print();
}

/// `tread predict`.
pub fn predict(data_dir: &Path, args: PredictArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.server, data_dir);
    let path = format!("/endpoints/{}/invocations", args.endpoint);
    block_on(async {
        for image in &args.images {
            let bytes = read_image(image).await?;
            let answer = client
                .send(
                    reqwest::Method::POST,
                    &path,
                    Some((content_type(image), bytes.to_vec())),
                )
                .await
                .with_context(|| format!("predicting {image}"))?;
            if args.json {
                println!("{answer}");
            } else {
                println!("{image}\t{}", summary(&answer));
            }
        }
        Ok(())
    })
}

/// `good (good 0.931, defective 0.069)`.
fn summary(answer: &Value) -> String {
    let mut probabilities: Vec<(&String, f64)> = answer["probabilities"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(c, p)| (c, p.as_f64().unwrap_or(0.0)))
        .collect();
    probabilities.sort_by(|a, b| b.1.total_cmp(&a.1));
    let listed: Vec<String> = probabilities
        .iter()
        .map(|(c, p)| format!("{c} {p:.3}"))
        .collect();
    format!(
        "{} ({})",
        answer["class"].as_str().unwrap_or("?"),
        listed.join(", ")
    )
}

async fn read_image(image: &str) -> anyhow::Result<bytes::Bytes> {
    if image.starts_with("s3://") {
        Ok(tread_serve::model::fetch(image).await?)
    } else {
        Ok(tokio::fs::read(image)
            .await
            .with_context(|| format!("reading {image}"))?
            .into())
    }
}

fn content_type(image: &str) -> &'static str {
    let extension = image.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "gif" => "image/gif",
        _ => "application/x-image",
    }
}

fn endpoint_path(name: &str) -> String {
    format!("/api/endpoints/{name}")
}
