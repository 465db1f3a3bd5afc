//! The profile layer's own commands: `profiles`, `show`, `status`, `generate`, and the
//! schedule lookups of `run-schedule`.

use anyhow::{Context, Result, bail};
use cairn_profile::config::{Config, RenderContext};
use cairn_profile::types::{FlagKind, FlagSchema, Global, ScheduleSpec};
use cairn_template::RuntimeFuncs;

/// Help for the profile command line.
pub const HELP: &str = "\
Usage: cairn [FLAGS] [--] [PROFILE.]COMMAND [ARGS...]
       cairn [FLAGS] COMMAND@PROFILE [ARGS...]
       cairn [FLAGS] -n PROFILE COMMAND [ARGS...]

Runs COMMAND (backup, check, forget, prune, snapshots, ...) with the options of PROFILE from the
profile file (resticprofile format: profiles.toml/.yaml/.json or cairn.toml), with its hooks,
locks, retention, checks and monitors. Own commands: profiles, show [PROFILE], status [PROFILE],
generate (--random-key [BYTES], --bash-completion, --zsh-completion, --fish-completion,
--json-schema), schedule, unschedule, run-schedule COMMAND@PROFILE.

Flags (each also read from the RESTICPROFILE_* environment variable of the same name):
  -c, --config FILE        profile file (default: search as resticprofile does)
  -f, --format FORMAT      toml, yaml or json
  -n, --name PROFILE       profile or group (default: default)
  -l, --log TARGET         log file (appended), syslog:, syslog://host, tcp://, udp://
      --command-output M   auto, log, console, all
      --dry-run            print what would run without running it
      --no-lock            ignore the profile's local lock file
      --lock-wait DURATION wait for local and repository locks (e.g. 5m, 1h)
      --no-prio            do not change nice/ionice
      --ignore-on-battery[=PCT]  skip (exit 3) when on battery
  -q, --quiet / -v, --verbose
";

/// `profiles`: list profiles (with their sections) and groups.
pub fn profiles(config: &Config, ctx: &RenderContext, funcs: &dyn RuntimeFuncs) -> Result<()> {
    println!("Profiles available ({}):", config.path().display());
    for p in config.profile_names(ctx, funcs)? {
        let sections = if p.sections.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.sections.join(", "))
        };
        let desc = if p.description.is_empty() {
            String::new()
        } else {
            format!("  {}", p.description)
        };
        println!("  {}{sections}{desc}", p.name);
    }
    let groups = config.groups(ctx, funcs)?;
    if !groups.is_empty() {
        println!("Groups available:");
        for g in groups {
            let desc = if g.description.is_empty() {
                String::new()
            } else {
                format!("  {}", g.description)
            };
            println!("  {}: {}{desc}", g.name, g.profiles.join(", "));
        }
    }
    Ok(())
}

/// `show PROFILE`: the global section and the resolved profile, secrets masked.
pub fn show(
    config: &Config,
    ctx: &RenderContext,
    funcs: &dyn RuntimeFuncs,
    global: &Global,
    name: &str,
) -> Result<()> {
    let p = config.profile(name, ctx, funcs)?;
    println!("global:");
    println!("    default-command: {}", global.default_command);
    if !global.shell.is_empty() {
        println!("    shell: {}", global.shell.join(", "));
    }
    println!(
        "    restic-lock-retry-after: {}s",
        global.restic_lock_retry_after.as_secs()
    );
    if let Some(a) = global.restic_stale_lock_age {
        println!("    restic-stale-lock-age: {}s", a.as_secs());
    }
    println!("    prevent-sleep: {}", global.prevent_sleep);
    println!();
    print!("{}", p.show());
    let schema = super::schema::ClapSchema::new();
    let lint = cairn_profile::options::lint(&p, &schema);
    for w in p.warnings.iter().chain(&lint) {
        match w.line {
            Some(l) => eprintln!("warning: {}:{l}: {}", w.file, w.message),
            None => eprintln!("warning: {}: {}", w.file, w.message),
        }
    }
    Ok(())
}

/// The schedule of `command` on `profile`, for `run-schedule`.
pub fn find_schedule(
    config: &Config,
    ctx: &RenderContext,
    funcs: &dyn RuntimeFuncs,
    global: &Global,
    profile: &str,
    command: &str,
) -> Option<ScheduleSpec> {
    if let Ok(groups) = config.groups(ctx, funcs)
        && let Some(g) = groups.iter().find(|g| g.name.eq_ignore_ascii_case(profile))
    {
        return g.schedules.iter().find(|s| s.command == command).cloned();
    }
    let p = config.profile(profile, ctx, funcs).ok()?;
    p.schedules(global)
        .into_iter()
        .find(|s| s.command == command)
}

/// `status [PROFILE]`: the last result of each profile from its status file, and the live
/// progress of a backup running now.
pub fn status(
    config: &Config,
    ctx: &RenderContext,
    funcs: &dyn RuntimeFuncs,
    only: Option<&str>,
) -> Result<()> {
    let names: Vec<String> = match only {
        Some(n) => vec![n.to_string()],
        None => config
            .profile_names(ctx, funcs)?
            .into_iter()
            .map(|p| p.name)
            .collect(),
    };
    for name in names {
        let p = config.profile(&name, ctx, funcs)?;
        let running = crate::cmd::backup::read_live_progress(&name);
        let Some(path) = p.status_file() else {
            if running.is_none() && only.is_none() {
                continue;
            }
            println!("{name}: no status-file configured");
            if let Some(r) = running {
                println!("  running now: {r}");
            }
            continue;
        };
        println!("{name} ({}):", path.display());
        match cairn_profile::monitor::status_file::read(&path) {
            Ok(v) => {
                let entries = v
                    .get("profiles")
                    .and_then(|ps| {
                        ps.as_object()?
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                            .map(|(_, v)| v.clone())
                    })
                    .unwrap_or_default();
                let Some(obj) = entries.as_object() else {
                    println!("  no runs recorded yet");
                    continue;
                };
                for (kind, e) in obj {
                    let ok = e.get("success").and_then(|b| b.as_bool()).unwrap_or(false);
                    let time = e.get("time").and_then(|t| t.as_str()).unwrap_or("");
                    let dur = e.get("duration").and_then(|d| d.as_u64()).unwrap_or(0);
                    let err = e.get("error").and_then(|t| t.as_str()).unwrap_or("");
                    let mut line = format!(
                        "  {kind:<10} {:<8} {time}  {dur}s",
                        if ok { "ok" } else { "FAILED" }
                    );
                    if kind == "backup" && ok {
                        let n = |k: &str| e.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
                        line.push_str(&format!(
                            "  files new {} changed {} unmodified {}, added {}",
                            n("files_new"),
                            n("files_changed"),
                            n("files_unmodified"),
                            crate::output::size(n("bytes_added"))
                        ));
                    }
                    if !err.is_empty() {
                        line.push_str(&format!("  error: {err}"));
                    }
                    println!("{line}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("  no runs recorded yet")
            }
            Err(e) => println!("  cannot read: {e}"),
        }
        if let Some(r) = running {
            println!("  running now: {r}");
        }
    }
    Ok(())
}

/// `generate`: random keys, shell completions, JSON schema.
pub fn generate(args: &[String]) -> Result<()> {
    let first = args.first().map(String::as_str).unwrap_or("");
    match first {
        "--random-key" => {
            let n: usize = match args.get(1) {
                Some(s) => s.parse().with_context(|| format!("invalid size {s:?}"))?,
                None => 1024,
            };
            if n == 0 {
                bail!("--random-key needs at least 1 byte");
            }
            let mut buf = vec![0u8; n];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut buf);
            use base64::Engine as _;
            println!("{}", base64::engine::general_purpose::STANDARD.encode(&buf));
            Ok(())
        }
        "--bash-completion" | "--zsh-completion" | "--fish-completion" => {
            let shell = match first {
                "--bash-completion" => clap_complete::Shell::Bash,
                "--zsh-completion" => clap_complete::Shell::Zsh,
                _ => clap_complete::Shell::Fish,
            };
            let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "cairn", &mut std::io::stdout());
            Ok(())
        }
        "--json-schema" => {
            println!("{}", json_schema()?);
            Ok(())
        }
        _ => bail!(
            "generate needs one of --random-key [BYTES], --bash-completion, --zsh-completion, \
             --fish-completion, --json-schema"
        ),
    }
}

/// Extension keys of profiles and sections besides resticprofile's orchestration keys.
const EXTENSION_KEYS: &[&str] = &[
    "healthchecks-body",
    "healthchecks-body-limit",
    "healthchecks-timeout",
    "healthchecks-retries",
    "healthchecks-interactive",
    "schedules",
    "schedule-priority",
    "schedule-lock-mode",
    "schedule-capture-environment",
    "schedule-ignore-on-battery",
    "schedule-ignore-on-battery-less-than",
    "schedule-after-network-online",
    "schedule-random-delay",
    "schedule-accuracy",
    "schedule-persistent",
    "schedule-hardening",
    "schedule-user",
    "schedule-group",
    "schedule-wrapper",
    "schedule-log-truncate",
    "schedule-environment",
];

fn flag_schema(kind: FlagKind) -> serde_json::Value {
    use serde_json::json;
    match kind {
        FlagKind::Bool => json!({"type": "boolean"}),
        FlagKind::Count => json!({"type": ["boolean", "integer"]}),
        FlagKind::Repeated => {
            json!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": ["string", "number"]}}]})
        }
        FlagKind::Value => json!({"type": ["string", "number", "boolean"]}),
    }
}

/// A JSON schema (draft 2020-12) of profile files, from the engine's own flag definitions.
pub fn json_schema() -> Result<String> {
    use serde_json::{Map, Value, json};
    let schema = super::schema::ClapSchema::new();
    let commands = [
        "backup",
        "check",
        "forget",
        "prune",
        "copy",
        "init",
        "snapshots",
        "ls",
        "find",
        "restore",
        "stats",
        "tag",
        "cache",
        "diff",
        "dump",
        "mount",
        "unlock",
        "rewrite",
        "repair-snapshots",
        "repair-index",
        "repair-packs",
        "key",
        "retention",
    ];
    let hooks =
        json!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]});
    let send = json!({"type": "object", "properties": {
        "url": {"type": "string"}, "method": {"type": "string"},
        "headers": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}},
        "body": {"type": "string"}, "body-template": {"type": "string"}, "skip-tls-verification": {"type": "boolean"}}});
    let mut profile = Map::new();
    let keys = cairn_profile::options::PROFILE_ONLY
        .into_iter()
        .chain(cairn_profile::options::orchestration_keys())
        .chain(EXTENSION_KEYS.iter().copied());
    for k in keys {
        profile.insert(k.into(), json!({}));
    }
    for f in schema.flags("snapshots") {
        if let Some(k) = schema.flag("snapshots", &f) {
            profile.insert(f, flag_schema(k));
        }
    }
    profile.insert(
        "env".into(),
        json!({"type": "object", "additionalProperties": {"type": "string"}}),
    );
    for h in ["run-before", "run-after", "run-after-fail", "run-finally"] {
        profile.insert(h.into(), hooks.clone());
    }
    for c in commands {
        let engine_cmd = match c {
            "retention" => "forget",
            "repair-snapshots" => "repair snapshots",
            "repair-index" => "repair index",
            "repair-packs" => "repair packs",
            "key" => "key add",
            other => other,
        };
        let mut props = Map::new();
        for f in schema.flags(engine_cmd) {
            if let Some(k) = schema.flag(engine_cmd, &f) {
                props.insert(f, flag_schema(k));
            }
        }
        for k in cairn_profile::options::orchestration_keys().chain(EXTENSION_KEYS.iter().copied())
        {
            props.insert(k.into(), json!({}));
        }
        for h in ["run-before", "run-after", "run-after-fail", "run-finally"] {
            props.insert(h.into(), hooks.clone());
        }
        for s in [
            "send-before",
            "send-after",
            "send-after-fail",
            "send-finally",
        ] {
            props.insert(
                s.into(),
                json!({"anyOf": [send.clone(), {"type": "array", "items": send.clone()}]}),
            );
        }
        match c {
            "backup" => {
                for k in [
                    "source",
                    "check-before",
                    "check-after",
                    "no-error-on-warning",
                    "stdin-command",
                    "extended-status",
                ] {
                    props.insert(k.into(), json!({}));
                }
            }
            "retention" => {
                for k in ["before-backup", "after-backup"] {
                    props.insert(k.into(), json!({"type": "boolean"}));
                }
            }
            _ => {}
        }
        profile.insert(
            c.into(),
            json!({"type": "object", "properties": Value::Object(props)}),
        );
    }
    let s = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Cairn profile file (resticprofile format version 1)",
        "type": "object",
        "properties": {
            "version": {"type": ["string", "integer"]},
            "global": {"type": "object"},
            "groups": {"type": "object"},
            "includes": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        },
        "additionalProperties": {"type": "object", "properties": Value::Object(profile)},
    });
    Ok(serde_json::to_string_pretty(&s)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_schema_lists_engine_flags_per_section() {
        let s = super::json_schema().unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        let props = &v["additionalProperties"]["properties"];
        assert!(props["backup"]["properties"]["exclude-caches"].is_object());
        assert!(props["retention"]["properties"]["keep-within-daily"].is_object());
        assert!(props["prune"]["properties"]["max-unused"].is_object());
        assert!(props["status-file"].is_object());
        assert!(props["backup"]["properties"]["keep-daily"].is_null());
    }
}
