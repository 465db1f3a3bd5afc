//! `cairn snapshots`: table, `--json`, `--group-by`, `--latest`.

use crate::cli::{GlobalOpts, SnapshotsArgs};
use crate::output;
use anyhow::{Result, bail};
use cairn_repo::Id;
use cairn_repo::backend::FileType;
use cairn_repo::repository::LockMode;
use cairn_repo::snapshot::Snapshot;
use serde_json::{Value, json};

/// A snapshot as restic prints it in JSON (the stored fields plus `id` and `short_id`).
pub fn snapshot_json(id: &Id, s: &Snapshot) -> Value {
    let mut v: Value = serde_json::from_slice(&s.to_json()).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), Value::String(id.to_hex()));
        m.insert("short_id".into(), Value::String(id.short()));
    }
    v
}

/// The grouping key of a snapshot for `--group-by`.
fn group_key(s: &Snapshot, by: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for b in by {
        match *b {
            "host" | "hosts" => {
                m.insert("hostname".into(), json!(s.hostname));
            }
            "path" | "paths" => {
                let mut p = s.paths.clone();
                p.sort();
                m.insert("paths".into(), json!(p));
            }
            "tag" | "tags" => {
                let mut t = s.tags.clone();
                t.sort();
                m.insert("tags".into(), json!(t));
            }
            _ => {}
        }
    }
    Value::Object(m)
}

pub fn run(g: &GlobalOpts, a: &SnapshotsArgs) -> Result<()> {
    let repo = crate::open::open(g)?;
    let _lock = super::lock(g, &repo, LockMode::Shared)?;
    let filter = super::snapshot_filter(&a.filter);
    let mut snaps = repo.load_snapshots()?;
    if !a.ids.is_empty() {
        let mut want = Vec::new();
        for i in &a.ids {
            if i == "latest" {
                if let Some((id, _)) = snaps.iter().rev().find(|(_, s)| filter.matches(s)) {
                    want.push(*id);
                }
            } else {
                want.push(repo.find_id(FileType::Snapshot, i)?);
            }
        }
        snaps.retain(|(id, _)| want.contains(id));
    } else {
        snaps.retain(|(_, s)| filter.matches(s));
    }
    let by: Vec<&str> = match &a.group_by {
        Some(s) => s
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .collect(),
        None => Vec::new(),
    };
    for b in &by {
        if !matches!(*b, "host" | "hosts" | "path" | "paths" | "tag" | "tags") {
            bail!("unknown grouping option {b:?}: use host, paths, tags");
        }
    }
    let mut groups: Vec<(Value, Vec<(Id, Snapshot)>)> = Vec::new();
    for (id, s) in snaps {
        let k = group_key(&s, &by);
        match groups.iter_mut().find(|(gk, _)| *gk == k) {
            Some((_, v)) => v.push((id, s)),
            None => groups.push((k, vec![(id, s)])),
        }
    }
    if let Some(n) = a.latest {
        for (_, v) in &mut groups {
            let skip = v.len().saturating_sub(n);
            v.drain(..skip);
        }
    }
    if g.json {
        let out = if by.is_empty() {
            Value::Array(
                groups
                    .iter()
                    .flat_map(|(_, v)| v.iter().map(|(id, s)| snapshot_json(id, s)))
                    .collect(),
            )
        } else {
            Value::Array(
                groups
                    .iter()
                    .map(|(k, v)| json!({"group_key": k, "snapshots": v.iter().map(|(id, s)| snapshot_json(id, s)).collect::<Vec<_>>()}))
                    .collect(),
            )
        };
        output::json_line(&out);
        return Ok(());
    }
    for (k, v) in &groups {
        if !by.is_empty() {
            println!("snapshots for {}:", describe_group(k));
        }
        print_table(v, a.compact);
        if !by.is_empty() {
            println!();
        }
    }
    Ok(())
}

fn describe_group(k: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(h) = k.get("hostname").and_then(Value::as_str) {
        parts.push(format!("(host [{h}])"));
    }
    if let Some(p) = k.get("paths").and_then(Value::as_array) {
        let p: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
        parts.push(format!("(paths [{}])", p.join(", ")));
    }
    if let Some(t) = k.get("tags").and_then(Value::as_array) {
        let t: Vec<&str> = t.iter().filter_map(Value::as_str).collect();
        parts.push(format!("(tags [{}])", t.join(", ")));
    }
    parts.join(", ")
}

fn print_table(snaps: &[(Id, Snapshot)], compact: bool) {
    let rows: Vec<[String; 6]> = snaps
        .iter()
        .map(|(id, s)| {
            let t = s.time.0.format("%Y-%m-%d %H:%M:%S").to_string();
            let size = s
                .summary
                .as_ref()
                .map(|x| output::size(x.total_bytes_processed))
                .unwrap_or_default();
            [
                id.short(),
                t,
                s.hostname.clone(),
                s.tags.join(","),
                s.paths.join(if compact { "," } else { "\n" }),
                size,
            ]
        })
        .collect();
    let header = ["ID", "Time", "Host", "Tags", "Paths", "Size"];
    let mut w = header.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            let longest = c.lines().map(str::len).max().unwrap_or(0);
            w[i] = w[i].max(longest);
        }
    }
    let line = |cells: [&str; 6]| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header);
    let total: usize = w.iter().sum::<usize>() + 10;
    println!("{}", "-".repeat(total));
    for r in &rows {
        let paths: Vec<&str> = r[4].lines().collect();
        let first = paths.first().copied().unwrap_or("");
        line([&r[0], &r[1], &r[2], &r[3], first, &r[5]]);
        for p in paths.iter().skip(1) {
            line(["", "", "", "", p, ""]);
        }
    }
    println!("{}", "-".repeat(total));
    println!("{} snapshots", rows.len());
}
