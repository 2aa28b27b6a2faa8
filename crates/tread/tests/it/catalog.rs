//! r17 point 1: an ordinary SQLite client reading the catalog while `tread
//! up` applies and runs pipelines destroys nothing. Closing any descriptor
//! of `tread.db` drops every POSIX lock the daemon holds on it, so a client
//! that then closed thought itself the last one and deleted the write-ahead
//! log under the daemon: later commits went to a deleted file.

use crate::common::World;
use crate::pipeline::{Up, run_id};
use std::path::Path;
use std::process::Command;

const PIPELINES: usize = 3;

/// Runs `sql` on the catalog with Python's sqlite3 (the system's SQLite,
/// opened read-write as a user would); returns the first column of the
/// first row.
fn python_sqlite(db: &Path, sql: &str) -> String {
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nprint(c.execute(sys.argv[2]).fetchone()[0])\nc.close()";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(sql)
        .output()
        .expect("python3 with its sqlite3 module");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Reads a table as an ordinary client and closes; then the daemon's
/// write-ahead log must still be there, since the daemon holds the
/// database open.
fn read_as_a_client(data: &Path, when: &str) {
    let users = python_sqlite(&data.join("tread.db"), "SELECT count(*) FROM store_users");
    assert_ne!(users, "0");
    for file in ["tread.db-wal", "tread.db-shm"] {
        assert!(
            data.join(file).exists(),
            "{file} was deleted by a client's close {when}"
        );
    }
}

fn integrity(db: &Path) -> String {
    python_sqlite(db, "PRAGMA integrity_check")
}

#[test]
fn r17_a_sqlite_reader_and_a_sigkill_lose_nothing_acknowledged() {
    let world = World::create();
    let mut up = Up::start(&world);
    read_as_a_client(&world.data, "after tread up started");
    let mut runs = Vec::new();
    for n in 0..PIPELINES {
        let name = format!("reader{n}");
        up.apply(
            &world,
            &name,
            &format!(
                "name = \"{name}\"\ndata = \"s3://fsxn-ontap/none\"\n[[steps]]\nkind = \"run\"\ncommand = \"sleep 0.3; echo run {n}\"\n"
            ),
        );
        read_as_a_client(&world.data, "after a pipeline was applied");
        let id = run_id(&up.ok(&["pipeline", "run", &name]));
        read_as_a_client(&world.data, "while a run ran");
        let done = up.ok(&["run", "logs", &id, "--follow"]);
        assert!(done.contains(&format!("run {n}")), "{done}");
        up.wait_runs(&name, "the run's end", |r| {
            r.first().is_some_and(|r| r["state"] == "succeeded")
        });
        runs.push((name, id));
    }
    read_as_a_client(&world.data, "after the runs");

    up.kill();
    assert_eq!(integrity(&world.data.join("tread.db")), "ok");
    let up = Up::start(&world);
    for (name, id) in &runs {
        let run = up.get(&format!("/api/runs/{id}"));
        assert_eq!(run["pipeline"], name.as_str(), "{run}");
        assert_eq!(run["state"], "succeeded", "{run}");
    }
    let users = up.ok(&["s3", "user", "list"]);
    for (name, _) in &runs {
        assert!(users.contains(&format!("pipeline-{name}")), "{users}");
    }
    drop(up);
    assert_eq!(integrity(&world.data.join("tread.db")), "ok");
}
