//! Resolving `inherit` chains (§6.1 v1, §6.2 v2) over the table of all profiles.

use super::error::{ConfigError, ConfigErrorKind};
use super::merge::{apply_mixins, merge_replace, merge_v1_profile, resolve_list_edits};
use super::node::{Node, Table};

/// The chain from `name` up to its root ancestor (`name` first). Errors on a missing parent or
/// a cycle.
fn chain(profiles: &Table, name: &str) -> Result<Vec<String>, ConfigError> {
    let mut out = vec![name.to_lowercase()];
    let mut current = name.to_lowercase();
    loop {
        let Some(table) = profiles.table(&current) else {
            return Err(ConfigError::new(
                ConfigErrorKind::NotFound,
                format!("profile '{current}' not found; `profiles` lists the defined names"),
            ));
        };
        let parent = match table.string("inherit") {
            Some(p) if !p.trim().is_empty() => p.trim().to_lowercase(),
            _ => return Ok(out),
        };
        if profiles.table(&parent).is_none() {
            return Err(ConfigError::at_origin(
                ConfigErrorKind::Inherit,
                table.origin("inherit"),
                format!(
                    "error in profile '{current}': parent profile '{parent}' not found; fix `inherit`"
                ),
            ));
        }
        if out.contains(&parent) {
            out.push(parent);
            return Err(ConfigError::at_origin(
                ConfigErrorKind::Inherit,
                table.origin("inherit"),
                format!(
                    "inheritance cycle: {}; remove one of these `inherit` keys",
                    out.join(" -> ")
                ),
            ));
        }
        out.push(parent.clone());
        current = parent;
    }
}

/// v1: decode the root ancestor, then each descendant's own keys on top (typed lists merged
/// by index, other lists replaced); `description` is cleared before each child.
pub(crate) fn resolve_v1(profiles: &Table, name: &str) -> Result<Table, ConfigError> {
    let names = chain(profiles, name)?;
    let mut result = Table::new();
    for (i, n) in names.iter().rev().enumerate() {
        let own = profiles.table(n).cloned().unwrap_or_default();
        if i == 0 {
            result = own;
        } else {
            result.remove("description");
            merge_v1_profile(&mut result, &own);
        }
    }
    result.remove("inherit");
    Ok(result)
}

/// v2: the parent's result (its mixins applied, without `description`, `use`, `inherit`),
/// then the child's keys merged on top with list edits resolved against it (lists replaced
/// whole), then the child's own mixins.
pub(crate) fn resolve_v2(
    profiles: &Table,
    name: &str,
    mixins: Option<&Table>,
) -> Result<Table, ConfigError> {
    let names = chain(profiles, name)?;
    let mut result: Option<Table> = None;
    for n in names.iter().rev() {
        let mut own = profiles.table(n).cloned().unwrap_or_default();
        own.remove("inherit");
        let mut merged = match result.take() {
            None => {
                resolve_list_edits(None, &mut own);
                own
            }
            Some(mut parent) => {
                parent.remove("description");
                resolve_list_edits(Some(&parent), &mut own);
                merge_replace(&mut parent, &own);
                parent
            }
        };
        apply_mixins(&mut merged, mixins)?;
        result = Some(merged);
    }
    Ok(result.unwrap_or_default())
}

/// The `inherit` value of a profile, as written.
pub(crate) fn parent_of(profile: &Table) -> Option<String> {
    match profile.get("inherit") {
        Some(Node::Str(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
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
    fn v1_chain_merges_and_clears_description() {
        let p = toml(
            "[a]\ndescription = 'root'\nrun-before = ['1', '2', '3']\nx = 1\n[b]\ninherit = 'a'\ndescription = 'mid'\n[c]\ninherit = 'B'\nrun-before = ['9']\n",
        );
        let c = resolve_v1(&p, "C").unwrap();
        assert_eq!(c.strings("run-before"), vec!["9", "2", "3"]);
        assert_eq!(c.int("x"), Some(1));
        assert!(!c.contains("description"));
        let b = resolve_v1(&p, "b").unwrap();
        assert_eq!(b.string("description").as_deref(), Some("mid"));
    }

    #[test]
    fn missing_parent_and_cycles_are_errors() {
        let p =
            toml("[a]\ninherit = 'zz'\n[b]\ninherit = 'c'\n[c]\ninherit = 'b'\n[d]\ninherit='d'\n");
        let e = resolve_v1(&p, "a").unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::Inherit);
        assert!(
            e.to_string().contains("parent profile 'zz' not found"),
            "{e}"
        );
        assert!(e.to_string().starts_with("t.toml:2:"), "{e}");
        let e = resolve_v1(&p, "b").unwrap_err();
        assert!(e.to_string().contains("cycle: b -> c -> b"), "{e}");
        let e = resolve_v2(&p, "d", None).unwrap_err();
        assert!(e.to_string().contains("cycle: d -> d"), "{e}");
        let e = resolve_v1(&p, "nope").unwrap_err();
        assert!(e.is_not_found());
    }

    #[test]
    fn v2_replaces_lists_and_applies_edits_and_mixins() {
        let p = toml(
            "[a]\nsource = ['/1', '/2']\nuse = 'm'\n[b]\ninherit = 'a'\n'source...' = ['/3']\n[c]\ninherit = 'a'\nsource = ['/9']\n",
        );
        let mixins = toml("[m]\ntag = ['from-mixin']\n");
        let b = resolve_v2(&p, "b", Some(&mixins)).unwrap();
        assert_eq!(b.strings("source"), vec!["/1", "/2", "/3"]);
        assert_eq!(b.strings("tag"), vec!["from-mixin"]);
        let c = resolve_v2(&p, "c", Some(&mixins)).unwrap();
        assert_eq!(c.strings("source"), vec!["/9"]);
    }
}
