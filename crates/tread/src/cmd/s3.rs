//! `tread s3 …`: administration of the store and the S3 server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use tread_store::catalog::{Catalog, UserKeys};
use tread_store::{FileOwnership, NasStore, S3Server, ServerOptions, StoreOptions};

/// S3 administration and serving.
#[derive(Debug, Subcommand)]
pub enum S3Cmd {
    /// Volumes: directories that are, or will be, exported over NFS/SMB.
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// NAS buckets: directories of a volume served as S3 buckets.
    #[command(subcommand)]
    Bucket(BucketCmd),
    /// Object users and their keys.
    #[command(subcommand)]
    User(UserCmd),
    /// Groups of users, which carry policies.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Custom policies in the AWS JSON grammar (FullAccess and ReadOnlyAccess are built in).
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Serve S3 until interrupted; admin changes are picked up while it runs.
    Serve(ServeArgs),
}

/// Volume commands.
#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Register a directory (created if missing) as a volume.
    Create {
        /// Volume name.
        name: String,
        /// Its directory.
        #[arg(long)]
        path: PathBuf,
    },
    /// List volumes.
    List,
}

/// Bucket commands.
#[derive(Debug, Subcommand)]
pub enum BucketCmd {
    /// Create a NAS bucket over a directory of a volume.
    Create {
        /// Bucket name (S3 rules: 3–63 lowercase letters, digits, dots, hyphens).
        name: String,
        /// Volume holding the bucket.
        #[arg(long, default_value = "default")]
        volume: String,
        /// Directory inside the volume; the volume root if not given.
        #[arg(long, default_value = "")]
        nas_path: String,
        /// Permission bits of files written through S3, in octal.
        #[arg(long, default_value = "644", value_parser = parse_mode)]
        file_mode: u32,
        /// Owner (uid) of files written through S3; the server's user if not given.
        #[arg(long)]
        uid: Option<u32>,
        /// Group (gid) of files written through S3; the server's group if not given.
        #[arg(long)]
        gid: Option<u32>,
        /// Location constraint (region) GetBucketLocation answers, as an S3
        /// client's CreateBucket gives it; none is us-east-1.
        #[arg(long)]
        location: Option<String>,
    },
    /// List buckets (name, volume, directory and location constraint if any).
    List,
    /// Remove a bucket from S3; its directory and files stay.
    Delete {
        /// Bucket name.
        name: String,
    },
}

/// User commands.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user and print its keys (shown only this once).
    Create {
        /// User name.
        name: String,
        /// Print `{"user", "access_key_id", "secret_access_key"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List users (never their secrets).
    List,
    /// Delete a user.
    Delete {
        /// User name.
        name: String,
    },
    /// Replace a user's keys and print the new ones; the old ones stop working.
    RotateKey {
        /// User name.
        name: String,
        /// Print the keys as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Group commands.
#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Create a group.
    Create {
        /// Group name.
        name: String,
        /// Members, comma-separated.
        #[arg(long, value_delimiter = ',')]
        users: Vec<String>,
        /// Policies to attach (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        policy: Vec<String>,
    },
    /// List groups with members and policies.
    List,
    /// Add a user to a group.
    AddUser {
        /// Group name.
        group: String,
        /// User name.
        user: String,
    },
    /// Remove a user from a group.
    RemoveUser {
        /// Group name.
        group: String,
        /// User name.
        user: String,
    },
}

/// Policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Create a policy from a JSON file.
    Create {
        /// Policy name.
        name: String,
        /// The policy document.
        #[arg(long)]
        file: PathBuf,
    },
    /// List policies.
    List,
    /// Delete a custom policy.
    Delete {
        /// Policy name.
        name: String,
    },
}

/// Options of `tread s3 serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// PEM certificate chain, to serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key, to serve HTTPS (with --tls-cert).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Base domain for virtual-host-style requests (`bucket.DOMAIN`); repeatable.
    #[arg(long, default_value = "localhost")]
    pub domain: Vec<String>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal mode like 644"))
}

async fn open(data_dir: &Path) -> anyhow::Result<Catalog> {
    let db = super::open_database(data_dir).await?;
    Catalog::new(db, data_dir)
        .await
        .with_context(|| format!("opening the catalog in {}", data_dir.display()))
}

fn print_keys(keys: &UserKeys, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(keys)?);
    } else {
        println!("user:              {}", keys.user);
        println!("access key id:     {}", keys.access_key_id);
        println!("secret access key: {}", keys.secret_access_key);
        println!(
            "(the secret is shown only now; `tread s3 user rotate-key {}` makes new keys)",
            keys.user
        );
    }
    Ok(())
}

/// Runs an `s3` subcommand against the data dir.
pub fn run(data_dir: &Path, cmd: S3Cmd) -> anyhow::Result<()> {
    if let S3Cmd::Serve(args) = cmd {
        return serve(data_dir, args);
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(admin(data_dir, cmd))
}

/// An admin subcommand: one change to (or read of) the store's tables.
async fn admin(data_dir: &Path, cmd: S3Cmd) -> anyhow::Result<()> {
    match cmd {
        S3Cmd::Volume(VolumeCmd::Create { name, path }) => {
            let v = open(data_dir).await?.volume_create(&name, &path).await?;
            println!("volume {} at {}", v.name, v.path.display());
        }
        S3Cmd::Volume(VolumeCmd::List) => {
            for v in open(data_dir).await?.volume_list().await? {
                println!("{}\t{}", v.name, v.path.display());
            }
        }
        S3Cmd::Bucket(BucketCmd::Create {
            name,
            volume,
            nas_path,
            file_mode,
            uid,
            gid,
            location,
        }) => {
            let owner = FileOwnership {
                mode: file_mode,
                uid,
                gid,
            };
            let b = open(data_dir)
                .await?
                .bucket_create(&name, &volume, &nas_path, owner, location.as_deref())
                .await?;
            println!(
                "bucket {} on volume {} at {}",
                b.name,
                b.volume,
                b.root.display()
            );
        }
        S3Cmd::Bucket(BucketCmd::List) => {
            for b in open(data_dir).await?.bucket_list().await? {
                let location = b.location.map(|l| format!("\t{l}")).unwrap_or_default();
                println!("{}\t{}\t{}{location}", b.name, b.volume, b.root.display());
            }
        }
        S3Cmd::Bucket(BucketCmd::Delete { name }) => {
            open(data_dir).await?.bucket_delete(&name).await?;
            println!("bucket {name} removed; its directory and files are untouched");
        }
        S3Cmd::User(UserCmd::Create { name, json }) => {
            print_keys(&open(data_dir).await?.user_create(&name).await?, json)?
        }
        S3Cmd::User(UserCmd::RotateKey { name, json }) => {
            print_keys(&open(data_dir).await?.user_rotate_key(&name).await?, json)?
        }
        S3Cmd::User(UserCmd::List) => {
            for u in open(data_dir).await?.user_list().await? {
                println!("{}\t{}\t{}", u.user, u.access_key_id, u.groups.join(","));
            }
        }
        S3Cmd::User(UserCmd::Delete { name }) => {
            open(data_dir).await?.user_delete(&name).await?;
            println!("user {name} deleted");
        }
        S3Cmd::Group(GroupCmd::Create {
            name,
            users,
            policy,
        }) => {
            let g = open(data_dir)
                .await?
                .group_create(&name, &users, &policy)
                .await?;
            println!(
                "group {} with users [{}] and policies [{}]",
                g.name,
                g.users.join(", "),
                g.policies.join(", ")
            );
        }
        S3Cmd::Group(GroupCmd::List) => {
            for g in open(data_dir).await?.group_list().await? {
                println!(
                    "{}\tusers={}\tpolicies={}",
                    g.name,
                    g.users.join(","),
                    g.policies.join(",")
                );
            }
        }
        S3Cmd::Group(GroupCmd::AddUser { group, user }) => {
            open(data_dir).await?.group_add_user(&group, &user).await?;
            println!("user {user} added to group {group}");
        }
        S3Cmd::Group(GroupCmd::RemoveUser { group, user }) => {
            open(data_dir)
                .await?
                .group_remove_user(&group, &user)
                .await?;
            println!("user {user} removed from group {group}");
        }
        S3Cmd::Policy(PolicyCmd::Create { name, file }) => {
            let doc = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            open(data_dir).await?.policy_create(&name, &doc).await?;
            println!("policy {name} created");
        }
        S3Cmd::Policy(PolicyCmd::List) => {
            for p in open(data_dir).await?.policy_list().await? {
                println!("{p}");
            }
        }
        S3Cmd::Policy(PolicyCmd::Delete { name }) => {
            open(data_dir).await?.policy_delete(&name).await?;
            println!("policy {name} deleted");
        }
        S3Cmd::Serve(_) => anyhow::bail!("tread s3 serve is a server, not an admin change"),
    }
    Ok(())
}

fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = NasStore::open(open(data_dir).await?, StoreOptions::default())
            .await
            .with_context(|| format!("opening the store in {}", data_dir.display()))?;
        store.spawn_background_tasks();
        let options = ServerOptions {
            listen: args.listen,
            tls: args.tls_cert.zip(args.tls_key),
            domains: args.domain,
        };
        let server = S3Server::bind(store, &options).await?;
        tracing::info!(url = %server.url(), data_dir = %data_dir.display(), "tread s3 serve listening");
        server.run(shutdown_signal()).await;
        Ok(())
    })
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
