//! r17 point 2: a `run` step cannot reach tread's data dir, the API token
//! or the catalog, by an absolute path or from its working directory.

use crate::common::World;
use crate::pipeline::{Up, run_id};

#[test]
fn r17_a_step_cannot_read_the_token_the_catalog_or_the_data_dir() {
    let world = World::create();
    let up = Up::start(&world);
    let data = world.data.display();
    let probes = [
        format!("{data}/api-token"),
        format!("{data}/tread.db"),
        "../../api-token".to_string(),
        "../../tread.db".to_string(),
    ];
    let command = probes
        .iter()
        .map(|p| format!("cat {p}"))
        .chain([format!("ls {data}"), "echo uid=$(id -u)".to_string()])
        .collect::<Vec<_>>()
        .join("; ");
    up.apply(
        &world,
        "prober",
        &format!(
            "name = \"prober\"\ndata = \"s3://fsxn-ontap/none\"\n[[steps]]\nkind = \"run\"\ncommand = \"{command}; true\"\n"
        ),
    );
    let done = up.ok(&["pipeline", "run", "prober", "--wait"]);
    let log = up.ok(&["run", "logs", &run_id(&done)]);
    let token = std::fs::read_to_string(world.data.join("api-token")).expect("token");
    assert!(!log.contains(token.trim()), "{log}");
    assert!(!log.contains("SQLite format"), "{log}");
    let refused = log
        .lines()
        .filter(|l| l.contains("Permission denied") || l.contains("No such file"))
        .count();
    assert_eq!(refused, probes.len() + 1, "every probe is refused: {log}");
    assert!(
        !log.lines().any(|l| l.trim() == "uid=0"),
        "steps never run as root: {log}"
    );
    assert!(log.contains("uid="), "{log}");
}

#[test]
fn r17_a_step_user_that_does_not_exist_is_refused_at_apply() {
    let world = World::create();
    let up = Up::start(&world);
    let file = world.dir.path().join("nouser.toml");
    std::fs::write(
        &file,
        "name = \"nouser\"\ndata = \"s3://fsxn-ontap/none\"\n[instance]\nuser = \"no-such-user-r17\"\n[[steps]]\nkind = \"run\"\ncommand = \"true\"\n",
    )
    .expect("write the pipeline file");
    let out = up
        .cli()
        .args(["pipeline", "apply", file.to_str().expect("utf-8")])
        .output()
        .expect("tread pipeline apply");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no-such-user-r17"), "{stderr}");
    let why = if running_as_root() {
        "no such user"
    } else {
        "cannot start steps as another user"
    };
    assert!(stderr.contains(why), "{stderr}");
}

/// Whether tread (started by this test) runs as root.
fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}
