//! Merging configuration trees: includes and v2 inheritance (tables merged, everything else
//! replaced), v1 inheritance (typed lists merged by index, §6.1), v2 list editing keys
//! (`key...`, `key__APPEND`, `...key`, `key__PREPEND`) and v2 mixins (§6.2).

use super::error::{ConfigError, ConfigErrorKind};
use super::node::{Entry, Node, Origin, Table};
use super::paths::expand_with;

/// Merges `over` onto `base`: tables are merged recursively, any other value (lists included)
/// replaces the previous one, a value of another type replaces it too. Used for includes, v2
/// inheritance and mixins.
pub(crate) fn merge_replace(base: &mut Table, over: &Table) {
    for (_, entry) in over.iter() {
        match (base.get_mut(&entry.key), &entry.value) {
            (Some(Node::Table(b)), Node::Table(o)) => {
                merge_replace(b, o);
            }
            _ => base.insert_entry(entry.clone()),
        }
    }
}

/// The profile-level keys that rp decodes into typed list fields (index-merged in v1).
const PROFILE_TYPED_LISTS: [&str; 7] = [
    "run-before",
    "run-after",
    "run-after-fail",
    "run-finally",
    "env-file",
    "stream-error",
    "systemd-drop-in-files",
];

/// Section keys decoded into typed list fields in every command section but `retention`.
const SECTION_TYPED_LISTS: [&str; 9] = [
    "run-before",
    "run-after",
    "run-after-fail",
    "run-finally",
    "send-before",
    "send-after",
    "send-after-fail",
    "send-finally",
    "schedule-capture-environment",
];

/// Extra typed lists of `[p.backup]`.
const BACKUP_TYPED_LISTS: [&str; 9] = [
    "source",
    "exclude",
    "iexclude",
    "exclude-file",
    "iexclude-file",
    "files-from",
    "files-from-raw",
    "files-from-verbatim",
    "stdin-command",
];

/// Whether `key` is a typed list field in `section` (None = profile level) in rp's v1 decoder.
pub(crate) fn is_typed_list(section: Option<&str>, key: &str) -> bool {
    match section {
        None => PROFILE_TYPED_LISTS.contains(&key),
        Some("retention") => key == "schedule-capture-environment",
        Some(s) => {
            SECTION_TYPED_LISTS.contains(&key)
                || (s == "backup" && BACKUP_TYPED_LISTS.contains(&key))
                || (s == "copy" && key == "snapshot")
        }
    }
}

/// A list view of a value: a list as is, a scalar as one element.
fn as_list(node: &Node) -> Vec<Node> {
    match node {
        Node::List(items) => items.clone(),
        Node::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Element-wise merge: element *i* of `child` replaces (or, for tables, is merged onto) element
/// *i* of `base`; extra base elements stay, extra child elements are appended.
fn index_merge(base: &Node, child: &Node) -> Node {
    let mut out = as_list(base);
    for (i, item) in as_list(child).into_iter().enumerate() {
        match (out.get_mut(i), &item) {
            (Some(Node::Table(b)), Node::Table(c)) => merge_struct_element(b, c),
            (Some(slot), _) => *slot = item,
            (None, _) => out.push(item),
        }
    }
    Node::List(out)
}

/// Merges a table element of a typed list (`send-*` entry, `stream-error` entry): fields are
/// replaced, except `headers` which is itself a typed list.
fn merge_struct_element(base: &mut Table, child: &Table) {
    for (k, entry) in child.iter() {
        if k == "headers"
            && let Some(b) = base.get(k)
        {
            let merged = index_merge(b, &entry.value);
            base.insert(&entry.key, merged, entry.origin.clone());
        } else {
            base.insert_entry(entry.clone());
        }
    }
}

/// v1 inheritance: decodes `child` (a profile's own keys) on top of `base` (the parent's
/// result) the way rp's struct decoder does.
pub(crate) fn merge_v1_profile(base: &mut Table, child: &Table) {
    for (k, entry) in child.iter() {
        let merged = match (base.get(k), &entry.value) {
            (Some(Node::Table(b)), Node::Table(c)) => {
                let mut b = b.clone();
                if k == "env" || k == "prometheus-labels" {
                    merge_replace_flat(&mut b, c);
                } else {
                    merge_v1_section(&mut b, c, k);
                }
                Some(Node::Table(b))
            }
            (Some(b), c) if is_typed_list(None, k) => Some(index_merge(b, c)),
            _ => None,
        };
        match merged {
            Some(value) => base.insert(&entry.key, value, entry.origin.clone()),
            None => base.insert_entry(entry.clone()),
        }
    }
}

fn merge_replace_flat(base: &mut Table, over: &Table) {
    for (_, entry) in over.iter() {
        base.insert_entry(entry.clone());
    }
}

fn merge_v1_section(base: &mut Table, child: &Table, section: &str) {
    for (k, entry) in child.iter() {
        match base.get(k) {
            Some(b) if k != "schedule" && is_typed_list(Some(section), k) => {
                let merged = index_merge(b, &entry.value);
                base.insert(&entry.key, merged, entry.origin.clone());
            }
            _ => base.insert_entry(entry.clone()),
        }
    }
}

/// How a list editing key changes its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListEdit {
    Append,
    Prepend,
}

/// `key...` / `key__APPEND` → (key, Append); `...key` / `key__PREPEND` → (key, Prepend).
fn parse_list_edit(key: &str) -> Option<(String, ListEdit)> {
    let lower = key.to_lowercase();
    let (target, op) = if let Some(t) = lower.strip_suffix("__append") {
        (t, ListEdit::Append)
    } else if let Some(t) = lower.strip_suffix("...") {
        (t, ListEdit::Append)
    } else if let Some(t) = lower.strip_suffix("__prepend") {
        (t, ListEdit::Prepend)
    } else if let Some(t) = lower.strip_prefix("...") {
        (t, ListEdit::Prepend)
    } else {
        return None;
    };
    if target.is_empty() {
        return None;
    }
    Some((target.to_string(), op))
}

/// Resolves list editing keys in `content` against `base` (the values they edit), recursively.
pub(crate) fn resolve_list_edits(base: Option<&Table>, content: &mut Table) {
    let keys: Vec<String> = content.keys().cloned().collect();
    for k in keys {
        match parse_list_edit(&k) {
            None => {
                if let Some(Node::Table(child)) = content.get_mut(&k) {
                    let sub = base.and_then(|b| b.table(&k));
                    resolve_list_edits(sub, child);
                }
            }
            Some((target, op)) => {
                let Some(edit) = content.remove(&k) else {
                    continue;
                };
                let source = content
                    .get(&target)
                    .or_else(|| base.and_then(|b| b.get(&target)))
                    .map(as_list)
                    .unwrap_or_default();
                let added = as_list(&edit.value);
                let list = match op {
                    ListEdit::Append => source.into_iter().chain(added).collect(),
                    ListEdit::Prepend => added.into_iter().chain(source).collect(),
                };
                content.insert(&target, Node::List(list), edit.origin);
            }
        }
    }
}

/// One reference to a mixin (`use = "m"`, `use = [{ name = "m", VAR = "x" }]`).
#[derive(Debug, Clone)]
struct MixinUse {
    name: String,
    vars: Vec<(String, String)>,
}

fn parse_uses(value: &Node, origin: &Origin) -> Result<Vec<MixinUse>, ConfigError> {
    let bad = || {
        ConfigError::at_origin(
            ConfigErrorKind::Invalid,
            Some(origin),
            "`use` must be a mixin name, a list of names, or a list of { name = ..., VAR = ... } tables",
        )
    };
    let one = |item: &Node| -> Result<MixinUse, ConfigError> {
        match item {
            Node::Str(s) => Ok(MixinUse {
                name: s.to_lowercase(),
                vars: Vec::new(),
            }),
            Node::Table(t) => {
                let name = t.string("name").ok_or_else(bad)?.to_lowercase();
                let mut vars = Vec::new();
                if let Some(v) = t.table("vars") {
                    for (_, e) in v.iter() {
                        vars.push((
                            e.key.to_uppercase(),
                            e.value.as_string().unwrap_or_default(),
                        ));
                    }
                }
                for (k, e) in t.iter() {
                    if k == "name" || k == "vars" {
                        continue;
                    }
                    let upper = e.key.to_uppercase();
                    if !vars.iter().any(|(n, _)| *n == upper) {
                        vars.push((upper, e.value.as_string().unwrap_or_default()));
                    }
                }
                Ok(MixinUse { name, vars })
            }
            _ => Err(bad()),
        }
    };
    match value {
        Node::List(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// Expands `$VAR` / `${VAR}` mixin variables in every string of `node`; unknown names stay as
/// `${name}`, `$$` is `$`.
fn expand_mixin_vars(node: &Node, vars: &dyn Fn(&str) -> Option<String>) -> Node {
    match node {
        Node::Str(s) => Node::Str(expand_with(s, &mut |name| {
            if name == "$" {
                return "$".to_string();
            }
            vars(&name.to_uppercase()).unwrap_or_else(|| format!("${{{name}}}"))
        })),
        Node::List(items) => Node::List(items.iter().map(|i| expand_mixin_vars(i, vars)).collect()),
        Node::Table(t) => {
            let mut out = Table::new();
            for (_, e) in t.iter() {
                out.insert(&e.key, expand_mixin_vars(&e.value, vars), e.origin.clone());
            }
            Node::Table(out)
        }
        other => other.clone(),
    }
}

/// Applies every `use` found in `table` (at any depth) with the mixins of `mixins`: the mixin's
/// content (variables expanded, list edits resolved against the place of use) is merged over
/// the table holding `use`; later mixins override earlier ones. `use` keys are removed.
pub(crate) fn apply_mixins(table: &mut Table, mixins: Option<&Table>) -> Result<(), ConfigError> {
    if let Some(entry) = table.remove("use") {
        for u in parse_uses(&entry.value, &entry.origin)? {
            let mixin = mixins.and_then(|m| m.table(&u.name)).ok_or_else(|| {
                ConfigError::at_origin(
                    ConfigErrorKind::Invalid,
                    Some(&entry.origin),
                    format!(
                        "undefined mixin `{}`; declare it under [mixins.{}]",
                        u.name, u.name
                    ),
                )
            })?;
            let defaults: Vec<(String, String)> = mixin
                .table("default-vars")
                .map(|d| {
                    d.iter()
                        .map(|(_, e)| {
                            (
                                e.key.to_uppercase(),
                                e.value.as_string().unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let lookup = |name: &str| -> Option<String> {
                u.vars
                    .iter()
                    .chain(defaults.iter())
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            let mut content = Table::new();
            for (k, e) in mixin.iter() {
                if k == "default-vars" {
                    continue;
                }
                content.insert_entry(Entry {
                    key: e.key.clone(),
                    value: expand_mixin_vars(&e.value, &lookup),
                    origin: e.origin.clone(),
                });
            }
            resolve_list_edits(Some(table), &mut content);
            merge_replace(table, &content);
        }
    }
    let keys: Vec<String> = table.keys().cloned().collect();
    for k in keys {
        if let Some(Node::Table(child)) = table.get_mut(&k) {
            apply_mixins(child, mixins)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::{Format, parse_text};
    use std::sync::Arc;

    fn toml(text: &str) -> Table {
        parse_text(text, Format::Toml, &Arc::from("t.toml")).unwrap()
    }

    #[test]
    fn includes_replace_lists_and_merge_tables() {
        let mut base = toml("[p]\nsource = ['/a', '/b']\nx = 1\n[p.env]\nA = '1'\n");
        let over = toml("[p]\nsource = ['/c']\n[p.env]\nB = '2'\n");
        merge_replace(&mut base, &over);
        let p = base.table("p").unwrap();
        assert_eq!(p.strings("source"), vec!["/c"]);
        assert_eq!(p.int("x"), Some(1));
        assert_eq!(p.table("env").unwrap().len(), 2);
    }

    #[test]
    fn v1_typed_lists_merge_by_index() {
        let mut base = toml(
            "run-before = ['a', 'b', 'c']\ntag = ['t1', 't2']\n[backup]\nsource = ['/1', '/2']\nexclude-file = 'e'\ntag = ['x', 'y']\n[env]\nA = '1'\n",
        );
        let child = toml(
            "run-before = ['x']\ntag = ['only']\n[backup]\nsource = ['/9']\nexclude-file = ['f', 'g']\ntag = ['z']\n[env]\nB = '2'\n",
        );
        merge_v1_profile(&mut base, &child);
        assert_eq!(base.strings("run-before"), vec!["x", "b", "c"]);
        // other flags are replaced whole
        assert_eq!(base.strings("tag"), vec!["only"]);
        let b = base.table("backup").unwrap();
        assert_eq!(b.strings("source"), vec!["/9", "/2"]);
        // a string is a one-element list
        assert_eq!(b.strings("exclude-file"), vec!["f", "g"]);
        assert_eq!(b.strings("tag"), vec!["z"]);
        assert_eq!(base.table("env").unwrap().len(), 2);
    }

    #[test]
    fn v1_send_entries_merge_fields() {
        let mut base = toml(
            "[backup]\n[[backup.send-after]]\nurl = 'u1'\nmethod = 'POST'\n[[backup.send-after]]\nurl = 'u2'\n",
        );
        let child = toml("[backup]\n[[backup.send-after]]\nurl = 'n1'\n");
        merge_v1_profile(&mut base, &child);
        let Some(Node::List(items)) = base.table("backup").unwrap().get("send-after") else {
            panic!("list expected")
        };
        assert_eq!(items.len(), 2);
        let first = items[0].as_table().unwrap();
        assert_eq!(first.string("url").as_deref(), Some("n1"));
        assert_eq!(first.string("method").as_deref(), Some("POST"));
    }

    #[test]
    fn list_edits_append_and_prepend() {
        let base = toml("source = ['/a']\n[backup]\nexclude = ['x']\n");
        let mut child =
            toml("'source...' = ['/b']\n'...other' = 'o'\n[backup]\nexclude__PREPEND = ['w']\n");
        resolve_list_edits(Some(&base), &mut child);
        assert_eq!(child.strings("source"), vec!["/a", "/b"]);
        assert_eq!(child.strings("other"), vec!["o"]);
        assert_eq!(
            child.table("backup").unwrap().strings("exclude"),
            vec!["w", "x"]
        );
    }

    #[test]
    fn mixins_with_vars_and_appends() {
        let mixins = toml(
            "[m1]\nrepository = 'local:/r/$NAME'\n'exclude...' = ['*.bak']\n[m1.default-vars]\nNAME = 'def'\n[m2]\nverbose = 2\n",
        );
        let mut p = toml("exclude = ['/tmp']\nverbose = 1\nuse = ['m1', 'm2']\n");
        apply_mixins(&mut p, Some(&mixins)).unwrap();
        assert_eq!(p.string("repository").as_deref(), Some("local:/r/def"));
        assert_eq!(p.strings("exclude"), vec!["/tmp", "*.bak"]);
        assert_eq!(p.int("verbose"), Some(2));
        assert!(!p.contains("use"));

        let mut q = toml("[backup]\nuse = { name = 'm1', vars = { NAME = 'given' } }\n");
        apply_mixins(&mut q, Some(&mixins)).unwrap();
        let b = q.table("backup").unwrap();
        assert_eq!(b.string("repository").as_deref(), Some("local:/r/given"));

        let mut bad = toml("use = 'nope'\n");
        let e = apply_mixins(&mut bad, Some(&mixins)).unwrap_err();
        assert!(e.to_string().contains("undefined mixin `nope`"), "{e}");
    }
}
