//! `schedule`, `unschedule` and `schedule status` / `schedule --next`: generating and
//! installing systemd timers, launchd agents or crontab lines for the schedules of profiles.

use super::argv::RpArgs;
use anyhow::{Context, Result, bail};
use cairn_profile::config::{Config, RenderContext};
use cairn_profile::schedule::{self, JobContext, ScheduleError, Scheduler};
use cairn_profile::types::{Global, ScheduleSpec};
use cairn_template::PrivateTemp;
use std::collections::BTreeMap;

/// Flags of `schedule` / `unschedule` (after the command word).
#[derive(Debug, Default)]
struct Flags {
    all: bool,
    dry_run: bool,
    start: bool,
    status: bool,
    next: Option<(usize, String)>,
    profile: Option<String>,
}

fn flags(rp: &RpArgs) -> Result<Flags> {
    let mut f = Flags {
        dry_run: rp.dry_run,
        start: true,
        ..Flags::default()
    };
    let mut it = rp.args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--all" => f.all = true,
            "--dry-run" | "--print" => f.dry_run = true,
            "--no-start" => f.start = false,
            "--start" => f.start = true,
            "--reload" => {}
            "status" => f.status = true,
            "--next" => {
                let n = it
                    .next()
                    .context("--next needs a count and an expression")?
                    .parse()
                    .context("--next N: N must be a number")?;
                let rest: Vec<&str> = it.by_ref().map(String::as_str).collect();
                if rest.is_empty() {
                    bail!("--next N EXPR: give a calendar expression");
                }
                f.next = Some((n, rest.join(" ")));
            }
            other if other.starts_with('-') => bail!("unknown flag {other}"),
            other => f.profile = Some(other.to_string()),
        }
    }
    Ok(f)
}

/// The schedules of one profile or group, with the context its jobs are generated in.
fn schedules_of(
    config: &Config,
    ctx: &RenderContext,
    funcs: &PrivateTemp,
    global: &Global,
    name: &str,
) -> Result<(Vec<ScheduleSpec>, BTreeMap<String, String>)> {
    if let Some(g) = config
        .groups(ctx, funcs)?
        .into_iter()
        .find(|g| g.name.eq_ignore_ascii_case(name))
    {
        return Ok((g.schedules, BTreeMap::new()));
    }
    funcs.set_profile(name);
    let p = config.profile(name, ctx, funcs)?;
    Ok((p.schedules(global), p.env()))
}

/// `schedule --next N EXPR` (needs no configuration file): print the next N elapses.
/// Returns false when the arguments ask for something else.
pub fn next_only(rp: &RpArgs) -> Result<bool> {
    let f = flags(rp)?;
    let Some((n, expr)) = &f.next else {
        return Ok(false);
    };
    for r in schedule::next_runs(expr, *n, chrono::Utc::now())? {
        println!("{}  ({}, {})", r.local, r.utc, r.from_now);
    }
    Ok(true)
}

/// Run `schedule` or `unschedule`.
pub fn run(
    config: &Config,
    ctx: &RenderContext,
    funcs: &PrivateTemp,
    global: &Global,
    command: &str,
    default_profile: &str,
    rp: &RpArgs,
) -> Result<()> {
    let f = flags(rp)?;
    let now = chrono::Utc::now();
    let scheduler = Scheduler::from_setting(&global.scheduler)?;
    if f.status {
        let jc = JobContext::from_process(config.path(), &BTreeMap::new())?;
        let jobs = schedule::status(&scheduler, &jc, now)?;
        print!("{}", schedule::render_status(&jobs));
        // Last result of each job's profile, from its status file.
        let mut seen = Vec::new();
        for j in &jobs {
            if seen.contains(&j.profile) {
                continue;
            }
            seen.push(j.profile.clone());
            super::commands::status(config, ctx, funcs, Some(&j.profile))?;
        }
        return Ok(());
    }
    let names: Vec<String> = if f.all {
        let mut v: Vec<String> = config
            .profile_names(ctx, funcs)?
            .into_iter()
            .map(|p| p.name)
            .collect();
        v.extend(config.groups(ctx, funcs)?.into_iter().map(|g| g.name));
        v
    } else {
        vec![
            f.profile
                .clone()
                .unwrap_or_else(|| default_profile.to_string()),
        ]
    };
    if command == "unschedule" && f.all {
        let jc = JobContext::from_process(config.path(), &BTreeMap::new())?;
        let jobs = schedule::installed(&scheduler, &jc)?;
        if jobs.is_empty() {
            println!("no scheduled jobs for {}", config.path().display());
        }
        for j in jobs {
            for m in schedule::uninstall(&j.profile, &j.command, &scheduler, &jc)? {
                println!("{m}");
            }
        }
        return Ok(());
    }
    let mut any = false;
    for name in names {
        let (specs, env) = schedules_of(config, ctx, funcs, global, &name)?;
        let jc = JobContext::from_process(config.path(), &env)?;
        for spec in specs {
            any = true;
            if command == "unschedule" {
                match schedule::uninstall(&spec.profile, &spec.command, &scheduler, &jc) {
                    Ok(msgs) => msgs.iter().for_each(|m| println!("{m}")),
                    Err(ScheduleError::NotInstalled { job, .. }) => {
                        println!("{job}: not scheduled")
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            let job = schedule::generate(&scheduler, &spec, global, &jc)?;
            if f.dry_run {
                print!("{}", job.render());
                continue;
            }
            for m in schedule::install(&job, &scheduler, &jc, f.start)? {
                println!("{m}");
            }
            for w in &job.warnings {
                eprintln!("warning: {w}");
            }
        }
    }
    if !any && !f.all {
        bail!(
            "profile {:?} has no schedule: add `schedule = \"daily\"` (or another calendar \
             expression) to its backup, check, forget, prune or copy section",
            f.profile.as_deref().unwrap_or(default_profile)
        );
    }
    Ok(())
}
