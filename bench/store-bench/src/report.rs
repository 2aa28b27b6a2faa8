//! The summary table (Markdown, so it pastes into `bench/RESULTS.md`), the
//! floors, the per-figure details, and the JSON of every sample.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::Bench;
use crate::listing::ListResults;
use crate::measure::Figure;
use crate::small_ops::SmallResults;
use crate::throughput::SizeResults;

/// GET 64 MiB must reach this share of the raw read (or of nginx, when
/// loopback HTTP caps below the page cache).
pub const GET_FLOOR: f64 = 0.9;
/// PUT 64 MiB must reach this share of raw write + fsync + MD5.
pub const PUT_FLOOR: f64 = 0.8;

/// GET 4 KiB presigned, 16 clients, must reach this share of nginx's GETs.
pub const SMALL_GET_FLOOR: f64 = 0.7;
/// PUT 4 KiB through aws-sdk-s3, 16 clients, must reach this share of raw
/// PUTs with tread's durability recipe.
pub const SMALL_PUT_FLOOR: f64 = 0.8;
/// The clients the 4 KiB floors are set for.
const SMALL_FLOOR_CLIENTS: usize = 16;
/// A warm listing of [`LIST_FLOOR_KEYS`] keys takes at most this long (ms)…
pub const LIST_WARM_MS: f64 = 100.0;
/// …and at most this many times the walk.
pub const LIST_WARM_WALKS: f64 = 3.0;
/// A cold listing takes at most this long (ms).
pub const LIST_COLD_MS: f64 = 400.0;
/// The keys the listing floors are set for.
const LIST_FLOOR_KEYS: usize = 10_000;

/// Everything one run measured.
#[derive(Debug)]
pub struct Results {
    /// 1 MiB objects.
    pub mib1: SizeResults,
    /// 64 MiB objects.
    pub mib64: SizeResults,
    /// 4 KiB operations.
    pub small: SmallResults,
    /// LIST.
    pub list: ListResults,
}

/// One line of the summary.
struct Row<'a> {
    name: String,
    tread: &'a Figure,
    raw: Option<&'a Figure>,
    nginx: Option<&'a Figure>,
    /// Times (ms) rather than rates: the speed ratio is baseline ÷ tread.
    is_time: bool,
    floor: String,
}

/// Speed of `a` relative to `b` (1.00 = as fast; higher is better).
fn speed_ratio(a: &Figure, b: &Figure, is_time: bool) -> f64 {
    if is_time {
        b.median() / a.median()
    } else {
        a.median() / b.median()
    }
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "—".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn get_floor(r: &SizeResults) -> String {
    let t = r.get_tread.median();
    let raw = r.get_raw.median();
    if t >= GET_FLOOR * raw {
        return format!("≥ {GET_FLOOR}× raw: holds");
    }
    match &r.get_nginx {
        Some(n) if n.median() < raw => {
            let ratio = t / n.median();
            format!(
                "≥ {GET_FLOOR}× raw: loopback HTTP (nginx) caps at {:.2}× the page cache; against nginx {ratio:.2}×: {}",
                n.median() / raw,
                verdict(ratio >= GET_FLOOR)
            )
        }
        _ => format!("≥ {GET_FLOOR}× raw: **does not hold** ({:.2}×)", t / raw),
    }
}

fn put_floor(r: &SizeResults) -> String {
    let ratio = r.put_tread.median() / r.put_raw.median();
    if ratio >= PUT_FLOOR {
        format!("≥ {PUT_FLOOR}× raw: holds")
    } else {
        format!("≥ {PUT_FLOOR}× raw: **does not hold** ({ratio:.2}×)")
    }
}

fn verdict(holds: bool) -> &'static str {
    if holds { "holds" } else { "**does not hold**" }
}

/// Each round's ratio of `tread` to `baseline`. A round measures both
/// back to back, so the spread shows how much the machine moved between
/// rounds, which the medians hide.
fn round_ratios(tread: &Figure, baseline: &Figure) -> String {
    let ratios: Vec<String> = tread
        .samples
        .iter()
        .zip(&baseline.samples)
        .map(|(t, b)| format!("{:.2}", t / b))
        .collect();
    ratios.join(", ")
}

/// A speed floor of the 4 KiB operations, judged on the medians.
fn small_floor(b: &Bench, tread: &Figure, baseline: &Figure, floor: f64, against: &str) -> String {
    if b.clients != SMALL_FLOOR_CLIENTS {
        return format!("set for {SMALL_FLOOR_CLIENTS} clients");
    }
    let ratio = speed_ratio(tread, baseline, false);
    format!(
        "≥ {floor}× {against}: {} ({ratio:.2}×; rounds {})",
        verdict(ratio >= floor),
        round_ratios(tread, baseline)
    )
}

fn small_get_floor(b: &Bench, r: &SmallResults) -> String {
    match &r.get_nginx {
        Some(nginx) => small_floor(b, &r.get_tread_presigned, nginx, SMALL_GET_FLOOR, "nginx"),
        None => format!("≥ {SMALL_GET_FLOOR}× nginx: not measured (no nginx)"),
    }
}

fn small_put_floor(b: &Bench, r: &SmallResults) -> String {
    small_floor(
        b,
        &r.put_tread,
        &r.put_raw_atomic,
        SMALL_PUT_FLOOR,
        "the raw recipe",
    )
}

fn list_warm_floor(l: &ListResults) -> String {
    if l.keys != LIST_FLOOR_KEYS {
        return format!("set for {LIST_FLOOR_KEYS} keys");
    }
    let (ms, walks) = (
        l.tread_warm.median(),
        speed_ratio(&l.raw_walk, &l.tread_warm, true),
    );
    format!(
        "≤ {LIST_WARM_MS} ms and ≤ {LIST_WARM_WALKS}× the walk: {} ({walks:.1}×)",
        verdict(ms <= LIST_WARM_MS && walks <= LIST_WARM_WALKS)
    )
}

fn list_cold_floor(l: &ListResults) -> String {
    if l.keys != LIST_FLOOR_KEYS {
        return format!("set for {LIST_FLOOR_KEYS} keys");
    }
    format!(
        "≤ {LIST_COLD_MS} ms: {}",
        verdict(l.tread_cold.median() <= LIST_COLD_MS)
    )
}

fn rows<'a>(b: &Bench, r: &'a Results) -> Vec<Row<'a>> {
    let c = b.clients;
    let k = r.list.keys;
    vec![
        Row {
            name: "GET 1 MiB, MB/s".into(),
            tread: &r.mib1.get_tread,
            raw: Some(&r.mib1.get_raw),
            nginx: r.mib1.get_nginx.as_ref(),
            is_time: false,
            floor: String::new(),
        },
        Row {
            name: "GET 64 MiB, MB/s".into(),
            tread: &r.mib64.get_tread,
            raw: Some(&r.mib64.get_raw),
            nginx: r.mib64.get_nginx.as_ref(),
            is_time: false,
            floor: get_floor(&r.mib64),
        },
        Row {
            name: "PUT 1 MiB, MB/s".into(),
            tread: &r.mib1.put_tread,
            raw: Some(&r.mib1.put_raw),
            nginx: None,
            is_time: false,
            floor: String::new(),
        },
        Row {
            name: "PUT 64 MiB, MB/s".into(),
            tread: &r.mib64.put_tread,
            raw: Some(&r.mib64.put_raw),
            nginx: None,
            is_time: false,
            floor: put_floor(&r.mib64),
        },
        Row {
            name: format!("GET 4 KiB, {c} clients, ops/s"),
            tread: &r.small.get_tread,
            raw: Some(&r.small.get_raw),
            nginx: r.small.get_nginx.as_ref(),
            is_time: false,
            floor: String::new(),
        },
        Row {
            name: format!("PUT 4 KiB, {c} clients, ops/s"),
            tread: &r.small.put_tread,
            raw: Some(&r.small.put_raw),
            nginx: None,
            is_time: false,
            floor: String::new(),
        },
        Row {
            name: format!("LIST {k} keys, cold ETags, ms"),
            tread: &r.list.tread_cold,
            raw: Some(&r.list.raw_walk),
            nginx: None,
            is_time: true,
            floor: list_cold_floor(&r.list),
        },
        Row {
            name: format!("LIST {k} keys, warm, ms"),
            tread: &r.list.tread_warm,
            raw: Some(&r.list.raw_walk),
            nginx: None,
            is_time: true,
            floor: list_warm_floor(&r.list),
        },
        Row {
            name: "GET 1 MiB with aws-sdk-s3, MB/s (info)".into(),
            tread: &r.mib1.get_sdk,
            raw: Some(&r.mib1.get_raw),
            nginx: r.mib1.get_nginx.as_ref(),
            is_time: false,
            floor: String::new(),
        },
        Row {
            name: "GET 64 MiB with aws-sdk-s3, MB/s (info)".into(),
            tread: &r.mib64.get_sdk,
            raw: Some(&r.mib64.get_raw),
            nginx: r.mib64.get_nginx.as_ref(),
            is_time: false,
            floor: String::new(),
        },
        Row {
            name: "PUT 1 MiB vs raw with tread's durability recipe, MB/s (info)".into(),
            tread: &r.mib1.put_tread,
            raw: Some(&r.mib1.put_raw_atomic),
            nginx: None,
            is_time: false,
            floor: String::new(),
        },
        Row {
            name: "PUT 64 MiB vs raw with tread's durability recipe, MB/s (info)".into(),
            tread: &r.mib64.put_tread,
            raw: Some(&r.mib64.put_raw_atomic),
            nginx: None,
            is_time: false,
            floor: String::new(),
        },
        Row {
            name: format!("PUT 4 KiB vs raw with tread's durability recipe, {c} clients, ops/s"),
            tread: &r.small.put_tread,
            raw: Some(&r.small.put_raw_atomic),
            nginx: None,
            is_time: false,
            floor: small_put_floor(b, &r.small),
        },
        Row {
            name: format!("GET 4 KiB presigned (reqwest), {c} clients, ops/s"),
            tread: &r.small.get_tread_presigned,
            raw: Some(&r.small.get_raw),
            nginx: r.small.get_nginx.as_ref(),
            is_time: false,
            floor: small_get_floor(b, &r.small),
        },
        Row {
            name: format!("PUT 4 KiB presigned (reqwest), {c} clients, ops/s (info)"),
            tread: &r.small.put_tread_presigned,
            raw: Some(&r.small.put_raw),
            nginx: None,
            is_time: false,
            floor: String::new(),
        },
    ]
}

/// The summary table, the notes on how to read it, and the details of every figure.
pub fn table(b: &Bench, r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| figure (median of samples) | tread | raw file system | nginx | tread ÷ raw | tread ÷ nginx | floor |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|");
    for row in rows(b, r) {
        let raw = row.raw.map_or("—".into(), |f| num(f.median()));
        let nginx = row.nginx.map_or("—".into(), |f| num(f.median()));
        let vs_raw = row.raw.map_or("—".into(), |f| {
            format!("{:.2}", speed_ratio(row.tread, f, row.is_time))
        });
        let vs_nginx = row.nginx.map_or("—".into(), |f| {
            format!("{:.2}", speed_ratio(row.tread, f, row.is_time))
        });
        let _ = writeln!(
            s,
            "| {} | {} | {raw} | {nginx} | {vs_raw} | {vs_nginx} | {} |",
            row.name,
            num(row.tread.median()),
            row.floor
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Ratios are speed ratios: 1.00 = as fast as the baseline, higher is better (for LIST: baseline time ÷ tread time)."
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| figure | side | median | min | max | samples | server cores busy | client cores busy |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for row in rows(b, r) {
        let mut sides = vec![("tread", row.tread)];
        sides.extend(row.raw.map(|f| ("raw", f)));
        sides.extend(row.nginx.map(|f| ("nginx", f)));
        for (side, f) in sides {
            let (server, client) = f.cpu_shares();
            let _ = writeln!(
                s,
                "| {} | {side} | {} | {} | {} | {} | {} | {:.2} |",
                row.name,
                num(f.median()),
                num(f.min()),
                num(f.max()),
                f.samples.len(),
                if side == "raw" {
                    "—".into()
                } else {
                    format!("{server:.2}")
                },
                client
            );
        }
    }
    let (_, readdir_client) = r.list.raw_readdir.cpu_shares();
    let _ = writeln!(
        s,
        "| LIST {} keys, read_dir without stat, ms (info) | raw | {} | {} | {} | {} | — | {readdir_client:.2} |",
        r.list.keys,
        num(r.list.raw_readdir.median()),
        num(r.list.raw_readdir.min()),
        num(r.list.raw_readdir.max()),
        r.list.raw_readdir.samples.len(),
    );
    s
}

/// The samples of one object size.
pub fn size_json(r: &SizeResults) -> Value {
    json!({
        "size_bytes": r.size,
        "ops_per_sample": r.ops_per_sample,
        "unit": "MB/s (10^6 bytes/s)",
        "put_tread_presigned_reqwest": r.put_tread.json(),
        "put_raw_write_fsync_md5": r.put_raw.json(),
        "put_raw_tmp_fsync_rename_fsync_dir": r.put_raw_atomic.json(),
        "get_tread_presigned_reqwest": r.get_tread.json(),
        "get_tread_aws_sdk": r.get_sdk.json(),
        "get_raw_page_cache_1mib_buffer": r.get_raw.json(),
        "get_nginx_sendfile_reqwest": r.get_nginx.as_ref().map(Figure::json),
    })
}

/// Every sample and the settings of the run.
pub fn json(b: &Bench, r: &Results) -> Value {
    json!({
        "settings": {
            "reps": b.reps,
            "clients": b.clients,
            "small_run_s": b.small_run.as_secs_f64(),
            "list_keys": b.list_keys,
            "nginx": b.nginx.is_some(),
        },
        "mib1": size_json(&r.mib1),
        "mib64": size_json(&r.mib64),
        "floors": {
            "get_64mib": get_floor(&r.mib64),
            "put_64mib": put_floor(&r.mib64),
            "get_4kib": small_get_floor(b, &r.small),
            "put_4kib": small_put_floor(b, &r.small),
            "list_warm": list_warm_floor(&r.list),
            "list_cold": list_cold_floor(&r.list),
        },
        "small_4kib": small_json(&r.small),
        "list": list_json(&r.list),
    })
}

/// The samples of the 4 KiB operations.
pub fn small_json(r: &SmallResults) -> Value {
    json!({
            "unit": "ops/s",
            "put_tread_aws_sdk": r.put_tread.json(),
            "put_raw_write_md5_fsync": r.put_raw.json(),
            "put_raw_tmp_fsync_rename_fsync_dir": r.put_raw_atomic.json(),
            "get_tread_aws_sdk": r.get_tread.json(),
            "get_raw_open_read_close": r.get_raw.json(),
            "get_nginx_reqwest": r.get_nginx.as_ref().map(Figure::json),
            "put_tread_presigned_reqwest": r.put_tread_presigned.json(),
            "get_tread_presigned_reqwest": r.get_tread_presigned.json(),
    })
}

/// The samples of the listing.
pub fn list_json(r: &ListResults) -> Value {
    json!({
            "unit": "ms",
            "keys": r.keys,
            "tread_cold": r.tread_cold.json(),
            "tread_warm": r.tread_warm.json(),
            "raw_walk_with_stat": r.raw_walk.json(),
            "raw_read_dir_only": r.raw_readdir.json(),
    })
}
