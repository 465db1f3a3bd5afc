//! `show` (§20): the effective profile in a stable order, secrets masked (§19.4).

use std::fmt::Write;

use super::node::{Node, Table};
use super::profile::Profile;

/// Replacement for masked values.
const MASK: &str = "×××";

use crate::secrets::{mask_env_value, mask_url};

fn scalar(node: &Node) -> String {
    match node {
        Node::Str(s) => s.clone(),
        other => other.as_string().unwrap_or_default(),
    }
}

fn masked(key: &str, node: &Node) -> Node {
    match (key, node) {
        ("repository" | "from-repository" | "to-repository" | "url", Node::Str(s)) => {
            Node::Str(mask_url(s))
        }
        _ => node.clone(),
    }
}

fn write_value(out: &mut String, indent: usize, key: &str, node: &Node) {
    let pad = " ".repeat(indent);
    match masked(key, node) {
        Node::List(items) => {
            let _ = writeln!(out, "{pad}{key}:");
            for item in &items {
                match item {
                    Node::Table(t) => {
                        let _ = writeln!(out, "{pad}  -");
                        write_table(out, indent + 4, t, false);
                    }
                    other => write_text(out, indent + 2, "- ", &scalar(other)),
                }
            }
        }
        Node::Table(t) => {
            let _ = writeln!(out, "{pad}{key}:");
            write_table(out, indent + 2, &t, key == "env");
        }
        Node::Null => {}
        other => write_text(out, indent, &format!("{key}: "), &scalar(&other)),
    }
}

/// Writes `prefix` + text; multi-line text continues indented under it.
fn write_text(out: &mut String, indent: usize, prefix: &str, text: &str) {
    let pad = " ".repeat(indent);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    let _ = writeln!(out, "{pad}{prefix}{first}");
    let cont = " ".repeat(indent + prefix.chars().count());
    for line in lines {
        let _ = writeln!(out, "{cont}{line}");
    }
}

fn write_table(out: &mut String, indent: usize, table: &Table, env: bool) {
    for (k, e) in table.iter() {
        if env {
            let v = mask_env_value(k, &scalar(&e.value));
            write_text(out, indent, &format!("{}: ", e.key), &v);
        } else if k == "headers" {
            write_headers(out, indent, &e.value);
        } else {
            write_value(out, indent, k, &e.value);
        }
    }
}

fn write_headers(out: &mut String, indent: usize, node: &Node) {
    let pad = " ".repeat(indent);
    let _ = writeln!(out, "{pad}headers:");
    if let Node::List(items) = node {
        for h in items.iter().filter_map(Node::as_table) {
            let name = h.string("name").unwrap_or_default();
            let value = if name.eq_ignore_ascii_case("authorization") {
                MASK.to_string()
            } else {
                h.string("value").unwrap_or_default()
            };
            let _ = writeln!(out, "{pad}  - {name}: {value}");
        }
    }
}

impl Profile {
    /// The effective profile for `show`: profile-level keys, then one block per section, keys
    /// sorted, secrets masked, `env` names resolved, paths as configured plus the resolved
    /// backup sources and retention paths.
    pub fn show(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "profile {}:", self.name);
        for (k, e) in self.tree.iter() {
            if k == "env" {
                let _ = writeln!(out, "    env:");
                for (name, value) in self.env() {
                    write_text(
                        &mut out,
                        8,
                        &format!("{name}: "),
                        &mask_env_value(&name, &value),
                    );
                }
                continue;
            }
            if matches!(e.value, Node::Table(_)) && k != "prometheus-labels" {
                continue;
            }
            write_value(&mut out, 4, k, &e.value);
        }
        for section in self.sections() {
            let Some(t) = self.tree.table(&section) else {
                continue;
            };
            let _ = writeln!(out, "\n{section}:");
            write_table(&mut out, 4, t, false);
            if section == "backup" {
                let sources = crate::options::backup_sources(self);
                if !sources.is_empty() {
                    write_value(
                        &mut out,
                        4,
                        "(resolved source)",
                        &Node::List(sources.into_iter().map(Node::Str).collect()),
                    );
                }
            }
            if section == "retention" && !t.contains("path") && self.has_section("backup") {
                let _ = writeln!(
                    out,
                    "    (path defaults to the backup sources; set path = false here to disable)"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_masked() {
        assert_eq!(
            mask_url("rest:https://user:pw@host:8000/repo"),
            "rest:https://user:×××@host:8000/repo"
        );
        assert_eq!(mask_url("s3:https://host/bucket"), "s3:https://host/bucket");
        assert_eq!(mask_url("https://user@host/"), "https://user@host/");
        assert_eq!(
            mask_url("rclone:restic-manselmi:"),
            "rclone:restic-manselmi:"
        );
    }

    #[test]
    fn env_rules() {
        assert_eq!(mask_env_value("RCLONE_PASSWORD_COMMAND", "op read"), "×××");
        assert_eq!(mask_env_value("AWS_SECRET_ACCESS_KEY", "k"), "×××");
        assert_eq!(mask_env_value("OP_SERVICE_ACCOUNT_TOKEN", "t"), "×××");
        assert_eq!(mask_env_value("B2_ACCOUNT_KEY", "k"), "×××");
        assert_eq!(mask_env_value("TZ", "UTC"), "UTC");
        assert_eq!(mask_env_value("_KEY", "v"), "v");
        assert_eq!(
            mask_env_value("HC_URL", "https://a:b@h/"),
            "https://a:×××@h/"
        );
    }
}
