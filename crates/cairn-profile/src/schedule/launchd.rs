//! launchd artifacts (§17.6): one XML property list per job, label
//! `cairn.<profile lower-cased>.<command>`, file `<label>.plist` in `~/Library/LaunchAgents`
//! (agents) or `/Library/LaunchDaemons` (daemons).
//!
//! `StartCalendarInterval` comes from `cairn-calendar`'s `launchd_intervals` in the local time
//! zone (launchd evaluates calendars in the system zone); an expression it refuses is an
//! error naming the expression. The original expressions are kept in XML comments
//! (`<!-- cairn-calendar: … -->`) so `status` can show them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{
    GeneratedFile, Job, JobContext, LogTarget, Permission, ScheduleError, Scope, expressions,
    invalid, is_background, job_argv, job_environment, job_id, log_target, nice, permission,
    schedule_id, utf8, wrapper,
};
use crate::types::{Global, ScheduleSpec};

/// Directory of launchd daemons.
pub(crate) const DAEMON_DIR: &str = "/Library/LaunchDaemons";

/// Shell snippet truncating the log (`$1`) then running the rest of the arguments.
pub(crate) const TRUNCATE_SCRIPT: &str = r#": >"$1"; shift; exec "$@""#;

/// Label of a job.
pub(crate) fn label(command: &str, profile: &str) -> String {
    format!("cairn.{}.{}", profile.to_lowercase(), command)
}

/// Directory of agents.
pub(crate) fn agent_dir(ctx: &JobContext) -> PathBuf {
    ctx.home.join("Library/LaunchAgents")
}

/// A property list value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<PValue>),
    Dict(Vec<(String, PValue)>),
}

/// Escape text for XML character data; control characters other than tab/newline are
/// not representable in XML 1.0.
fn xml_escape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => {
                return Err(format!(
                    "{s:?} contains a control character a property list cannot hold"
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Serialise one value at `depth` tabs.
fn write_value(out: &mut String, v: &PValue, depth: usize) -> Result<(), String> {
    let ind = "\t".repeat(depth);
    match v {
        PValue::Str(s) => {
            let _ = writeln!(out, "{ind}<string>{}</string>", xml_escape(s)?);
        }
        PValue::Int(i) => {
            let _ = writeln!(out, "{ind}<integer>{i}</integer>");
        }
        PValue::Bool(b) => {
            let _ = writeln!(out, "{ind}<{}/>", if *b { "true" } else { "false" });
        }
        PValue::Array(items) => {
            let _ = writeln!(out, "{ind}<array>");
            for i in items {
                write_value(out, i, depth + 1)?;
            }
            let _ = writeln!(out, "{ind}</array>");
        }
        PValue::Dict(entries) => {
            let _ = writeln!(out, "{ind}<dict>");
            for (k, v) in entries {
                let _ = writeln!(out, "{ind}\t<key>{}</key>", xml_escape(k)?);
                write_value(out, v, depth + 1)?;
            }
            let _ = writeln!(out, "{ind}</dict>");
        }
    }
    Ok(())
}

/// A whole plist document with comments after the DOCTYPE.
pub(crate) fn plist_document(root: &PValue, comments: &[String]) -> Result<String, String> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
    );
    for c in comments {
        if c.contains("--") || c.ends_with('-') {
            return Err(format!("{c:?} cannot be written in an XML comment"));
        }
        let _ = writeln!(out, "<!-- {} -->", xml_escape(c)?);
    }
    out.push_str("<plist version=\"1.0\">\n");
    write_value(&mut out, root, 0)?;
    out.push_str("</plist>\n");
    Ok(out)
}

/// Generate the plist of one job.
pub(crate) fn generate(
    spec: &ScheduleSpec,
    global: &Global,
    ctx: &JobContext,
) -> Result<Job, ScheduleError> {
    let job = job_id(spec);
    let perm = permission(spec, ctx)?;
    let background = is_background(spec)?;
    let log = log_target(spec, ctx)?;
    let env = job_environment(spec, ctx)?;
    let mut warnings = Vec::new();
    let mut ignored = |cond: bool, what: &str| {
        if cond {
            warnings.push(format!("{what} is a systemd setting; launchd ignores it"));
        }
    };
    ignored(spec.random_delay.is_some(), "schedule-random-delay");
    ignored(spec.accuracy.is_some(), "schedule-accuracy");
    ignored(spec.hardening, "schedule-hardening");
    ignored(spec.after_network_online, "schedule-after-network-online");
    if spec.persistent == Some(false) {
        warnings.push(
            "schedule-persistent = false: launchd always runs a missed calendar job once after wake"
                .into(),
        );
    }

    let label = label(&spec.command, &spec.profile);
    let uid = ctx.uid;
    let (scope, dir, domain, session) = match perm {
        Permission::System => (
            Scope::System,
            PathBuf::from(DAEMON_DIR),
            "system".to_string(),
            "System",
        ),
        Permission::User => (
            Scope::UserBackground,
            agent_dir(ctx),
            format!("user/{uid}"),
            "Background",
        ),
        Permission::UserLoggedOn => (Scope::User, agent_dir(ctx), format!("gui/{uid}"), "Aqua"),
    };
    if scope != Scope::System && (spec.user.is_some() || spec.group.is_some()) {
        return Err(invalid(
            &job,
            "schedule-user / schedule-group need a launchd daemon: use schedule-permission = \"system\"",
        ));
    }
    let dir = ctx.unit_dir_override.clone().unwrap_or(dir);
    let path = dir.join(format!("{label}.plist"));

    // Program arguments: [truncate shell] [wrapper] cairn …
    let mut args: Vec<String> = Vec::new();
    if spec.log_truncate
        && let LogTarget::File(f) = &log
    {
        args.extend(
            [
                "/bin/sh",
                "-c",
                TRUNCATE_SCRIPT,
                "cairn-truncate-log",
                f.as_str(),
            ]
            .map(str::to_string),
        );
    }
    args.extend(wrapper(spec, ctx));
    args.extend(job_argv(spec, ctx, &log, true)?);

    let id = schedule_id(ctx, spec)?;
    let mut env_vars: Vec<(String, PValue)> = Vec::new();
    let mut all = env;
    if !all.contains_key("PATH")
        && let Some(p) = ctx.env.get("PATH")
    {
        all.insert("PATH".into(), p.clone());
    }
    all.insert("CAIRN_SCHEDULE_ID".into(), id.clone());
    all.insert("RESTICPROFILE_SCHEDULE_ID".into(), id);
    for (k, v) in all {
        env_vars.push((k, PValue::Str(v)));
    }

    let mut dict: Vec<(String, PValue)> = vec![
        ("Label".into(), PValue::Str(label.clone())),
        (
            "ProgramArguments".into(),
            PValue::Array(args.into_iter().map(PValue::Str).collect()),
        ),
        ("EnvironmentVariables".into(), PValue::Dict(env_vars)),
        (
            "WorkingDirectory".into(),
            PValue::Str(utf8(&job, &ctx.working_dir)?.to_string()),
        ),
        (
            "LimitLoadToSessionType".into(),
            PValue::Str(session.to_string()),
        ),
    ];
    if let Some(u) = &spec.user {
        dict.push(("UserName".into(), PValue::Str(u.clone())));
    }
    if let Some(g) = &spec.group {
        dict.push(("GroupName".into(), PValue::Str(g.clone())));
    }
    if log == LogTarget::None {
        let out = ctx.working_dir.join(format!("{label}.log"));
        let out = utf8(&job, &out)?.to_string();
        dict.push(("StandardOutPath".into(), PValue::Str(out.clone())));
        dict.push(("StandardErrorPath".into(), PValue::Str(out)));
    }
    let n = nice(global);
    if background {
        dict.push(("ProcessType".into(), PValue::Str("Background".into())));
        dict.push(("LowPriorityIO".into(), PValue::Bool(true)));
        dict.push(("LowPriorityBackgroundIO".into(), PValue::Bool(true)));
        dict.push((
            "Nice".into(),
            PValue::Int(i64::from(if n != 0 { n } else { 5 })),
        ));
    } else {
        dict.push(("ProcessType".into(), PValue::Str("Standard".into())));
        if n != 0 {
            dict.push(("Nice".into(), PValue::Int(i64::from(n))));
        }
    }

    let mut comments = vec![format!(
        "Generated by `cairn schedule` ({job}); run `cairn schedule` again instead of editing."
    )];
    let mut intervals: Vec<PValue> = Vec::new();
    for expr in expressions(spec) {
        let event = super::status::parse_calendar(&job, expr)?;
        let list = event
            .launchd_intervals(&cairn_calendar::Tz::local())
            .map_err(|e| ScheduleError::Unsupported {
                job: job.clone(),
                scheduler: "launchd",
                expr: expr.to_string(),
                reason: e.to_string(),
            })?;
        for i in list {
            let mut d = Vec::new();
            let fields = [
                ("Minute", i.minute),
                ("Hour", i.hour),
                ("Day", i.day),
                ("Weekday", i.weekday),
                ("Month", i.month),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    d.push((k.to_string(), PValue::Int(i64::from(v))));
                }
            }
            let d = PValue::Dict(d);
            if !intervals.contains(&d) {
                intervals.push(d);
            }
        }
        if expr.contains("--") || expr.ends_with('-') {
            warnings.push(format!(
                "expression {expr:?} cannot be kept in a comment; `cairn schedule status` will not show it"
            ));
        } else {
            comments.push(format!("cairn-calendar: {expr}"));
        }
    }
    match intervals.len() {
        0 => {}
        1 => {
            if let Some(one) = intervals.pop() {
                dict.push(("StartCalendarInterval".into(), one));
            }
        }
        _ => dict.push(("StartCalendarInterval".into(), PValue::Array(intervals))),
    }

    let contents = plist_document(&PValue::Dict(dict), &comments).map_err(|m| invalid(&job, m))?;
    let plist = utf8(&job, &path)?.to_string();
    let commands = vec![
        vec![
            "launchctl".to_string(),
            "bootout".into(),
            format!("{domain}/{label}"),
        ],
        vec!["launchctl".to_string(), "bootstrap".into(), domain, plist],
    ];
    Ok(Job {
        spec: spec.clone(),
        files: vec![GeneratedFile {
            path,
            contents,
            mode: 0o644,
        }],
        commands,
        crontab_lines: Vec::new(),
        warnings,
        scope,
        name: label,
    })
}

/// Undo `xml_escape` (and numeric references).
fn xml_unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(rest.get(..i).unwrap_or(""));
        let tail = rest.get(i..).unwrap_or("");
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let ent = tail.get(1..end).unwrap_or("");
        let decoded = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(tail.get(..=end).unwrap_or("")),
        }
        rest = tail.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The `<string>` value following `<key>key</key>` in a plist text (first occurrence).
pub(crate) fn string_after_key(text: &str, key: &str) -> Option<String> {
    let marker = format!("<key>{key}</key>");
    let after = text.get(text.find(&marker)? + marker.len()..)?.trim_start();
    let value = after.strip_prefix("<string>")?;
    Some(xml_unescape(value.get(..value.find("</string>")?)?))
}

/// A job found installed.
pub(crate) struct FoundPlist {
    pub path: PathBuf,
    pub label: String,
    pub command: String,
    pub profile: String,
    pub scope: Scope,
    pub calendars: Vec<String>,
}

impl FoundPlist {
    /// launchctl domain of the job.
    pub(crate) fn domain(&self, uid: u32) -> String {
        match self.scope {
            Scope::System => "system".into(),
            Scope::UserBackground => format!("user/{uid}"),
            Scope::User => format!("gui/{uid}"),
        }
    }
}

/// Jobs of `config` among the `cairn.*.plist` files of `dir`.
pub(crate) fn discover(dir: &Path, config: &str) -> Result<Vec<FoundPlist>, ScheduleError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ScheduleError::Io {
                action: "read directory",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("cairn.") && n.ends_with(".plist"))
        .collect();
    names.sort();
    let mut found = Vec::new();
    for n in names {
        let path = dir.join(&n);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Some(id) = string_after_key(&text, "CAIRN_SCHEDULE_ID") else {
            continue;
        };
        let Some((command, profile)) = super::parse_schedule_id(&id, config) else {
            continue;
        };
        let scope = match string_after_key(&text, "LimitLoadToSessionType").as_deref() {
            Some("System") => Scope::System,
            Some("Background") => Scope::UserBackground,
            _ => Scope::User,
        };
        let calendars = text
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("<!-- cairn-calendar: ")?
                    .strip_suffix(" -->")
                    .map(xml_unescape)
            })
            .collect();
        found.push(FoundPlist {
            label: string_after_key(&text, "Label")
                .unwrap_or_else(|| n.trim_end_matches(".plist").to_string()),
            path,
            command: command.to_string(),
            profile: profile.to_string(),
            scope,
            calendars,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_escaped_strings() {
        let doc = plist_document(
            &PValue::Dict(vec![
                ("Label".into(), PValue::Str("a<b>&c".into())),
                (
                    "EnvironmentVariables".into(),
                    PValue::Dict(vec![(
                        "CAIRN_SCHEDULE_ID".into(),
                        PValue::Str("/x & y:b@p".into()),
                    )]),
                ),
            ]),
            &["cairn-calendar: Mon..Fri 02:30".into()],
        )
        .unwrap();
        assert!(doc.contains("<string>a&lt;b&gt;&amp;c</string>"));
        assert_eq!(string_after_key(&doc, "Label").as_deref(), Some("a<b>&c"));
        assert_eq!(
            string_after_key(&doc, "CAIRN_SCHEDULE_ID").as_deref(),
            Some("/x & y:b@p")
        );
        assert!(plist_document(&PValue::Str("\u{1}".into()), &[]).is_err());
        assert!(plist_document(&PValue::Str("x".into()), &["a--b".into()]).is_err());
        assert_eq!(xml_unescape("&#65;&#x42;&bogus;"), "AB&bogus;");
    }

    #[test]
    fn labels_are_lower_cased() {
        assert_eq!(label("backup", "Nidoking"), "cairn.nidoking.backup");
    }
}
