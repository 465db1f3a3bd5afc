//! resticprofile-style invocations: `cairn [flags] [profile.]command`, the own commands
//! (`profiles`, `show`, `status`, `generate`, `run-schedule`, `schedule`, `unschedule`) and the
//! profile run through `cairn_profile::run` with the in-process engine.

pub mod argv;
mod commands;
mod engine;
mod schedule_cmd;
pub mod schema;

use anyhow::{Context, Result, bail};
use argv::RpArgs;
use cairn_profile::config::{Config, RenderContext};
use cairn_profile::output::{CommandOutput, LogTarget, OutputRouter, log_message};
use cairn_profile::run::{RunOptions, Runner, notify_systemd};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Entry point for a resticprofile-style command line.
pub fn main(rp: RpArgs) -> ExitCode {
    match run(rp) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("Fatal: {}", crate::error_text(&e));
            ExitCode::from(1)
        }
    }
}

fn run(mut rp: RpArgs) -> Result<i32> {
    if rp.help {
        print!("{}", commands::HELP);
        return Ok(0);
    }
    let command = rp.command.clone();
    // Commands that need no configuration file.
    match command.as_deref() {
        Some("generate") => return commands::generate(&rp.args).map(|()| 0),
        Some("random-key") => {
            let mut a = vec!["--random-key".to_string()];
            a.extend(rp.args.clone());
            return commands::generate(&a).map(|()| 0);
        }
        Some("schedule") if schedule_cmd::next_only(&rp)? => return Ok(0),
        Some("help") => {
            print!("{}", commands::HELP);
            return Ok(0);
        }
        Some("version") if rp.profile.is_none() => {
            println!("cairn {}", env!("CARGO_PKG_VERSION"));
            return Ok(0);
        }
        _ => {}
    }
    let path = cairn_profile::config::locate(rp.config.as_deref())
        .context("no profile file found (use -c FILE, or create profiles.toml)")?;
    let format = rp
        .format
        .as_deref()
        .map(|f| match f {
            "toml" | "conf" => Ok(cairn_profile::config::Format::Toml),
            "yaml" | "yml" => Ok(cairn_profile::config::Format::Yaml),
            "json" => Ok(cairn_profile::config::Format::Json),
            other => bail!("unknown format {other:?} (toml, yaml, json)"),
        })
        .transpose()?;
    let config = Config::load(&path, format)?;
    let ctx = RenderContext::from_process();
    let funcs = cairn_template::PrivateTemp::new();
    let mut global = config.global(&ctx, &funcs)?;

    let mut schedule = None;
    let (profile, command) = match command.as_deref() {
        Some("run-schedule") => {
            let spec = rp
                .args
                .first()
                .cloned()
                .context("run-schedule needs COMMAND@PROFILE")?;
            let (cmd, prof) = spec
                .split_once('@')
                .context("run-schedule needs COMMAND@PROFILE")?;
            let id = format!("{}:{spec}", path.display());
            // SAFETY: set before any thread of the run starts.
            unsafe {
                std::env::set_var("CAIRN_SCHEDULE_ID", &id);
                std::env::set_var("RESTICPROFILE_SCHEDULE_ID", &id);
            }
            schedule = commands::find_schedule(&config, &ctx, &funcs, &global, prof, cmd);
            rp.args.remove(0);
            (prof.to_string(), cmd.to_string())
        }
        _ => {
            let profile = rp
                .profile
                .clone()
                .or_else(|| rp.name.clone())
                .unwrap_or_else(|| "default".into());
            let command = command.unwrap_or_else(|| global.default_command.clone());
            (profile, command)
        }
    };
    match command.as_str() {
        "profiles" => return commands::profiles(&config, &ctx, &funcs).map(|()| 0),
        "show" => {
            let name = rp.args.first().cloned().unwrap_or(profile);
            return commands::show(&config, &ctx, &funcs, &global, &name).map(|()| 0);
        }
        "status" => {
            let name = rp
                .args
                .first()
                .cloned()
                .or(rp.profile.clone().or(rp.name.clone()));
            return commands::status(&config, &ctx, &funcs, name.as_deref()).map(|()| 0);
        }
        "schedule" | "unschedule" => {
            return schedule_cmd::run(&config, &ctx, &funcs, &global, &command, &profile, &rp)
                .map(|()| 0);
        }
        _ => {}
    }

    // Logging: --log, then the schedule's log, then [global] log.
    let target = rp
        .log
        .clone()
        .or_else(|| schedule.as_ref().and_then(|s| s.log.clone()))
        .or_else(|| global.log.clone());
    let mode = rp
        .command_output
        .clone()
        .or_else(|| schedule.as_ref().and_then(|s| s.command_output.clone()))
        .unwrap_or_else(|| global.command_output.clone());
    let target = target
        .map(|t| LogTarget::parse(&t))
        .unwrap_or(LogTarget::Console);
    let needs_router = !matches!(target, LogTarget::Console) || !std::io::stderr().is_terminal();
    let router = if needs_router {
        match OutputRouter::install(
            &target,
            CommandOutput::parse(&mode).unwrap_or(CommandOutput::Auto),
        ) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("cannot set up logging: {e}");
                None
            }
        }
    } else {
        None
    };

    let ignore_on_battery = rp.ignore_on_battery.or_else(|| {
        let s = schedule.as_ref()?;
        if s.ignore_on_battery {
            Some(s.ignore_on_battery_less_than.unwrap_or(100))
        } else {
            None
        }
    });
    let _inhibitor =
        match cairn_profile::run::prepare_process(&global, ignore_on_battery, rp.no_prio) {
            Ok(i) => i,
            Err((code, msg)) => {
                log_message(&msg);
                return Ok(code);
            }
        };
    if rp.quiet {
        rp.args.insert(0, "--quiet".into());
    }
    if rp.verbose {
        rp.args.insert(0, "--verbose".into());
    }
    let lock_wait = rp
        .lock_wait
        .as_deref()
        .map(crate::cmd::parse_duration)
        .transpose()?;
    global.shell.retain(|s| !s.is_empty());
    let engine = engine::InProcessEngine::default();
    let schema = schema::ClapSchema::new();
    let runner = Runner {
        engine: &engine,
        schema: &schema,
        config: &config,
        global,
        ctx,
        funcs: &funcs,
        router: router.as_ref(),
        opts: RunOptions {
            dry_run: rp.dry_run,
            no_lock: rp.no_lock,
            lock_wait,
            extra_args: rp.args.clone(),
            schedule,
            interactive: std::io::stdin().is_terminal(),
        },
    };
    notify_systemd("READY=1");
    let report = runner.run(&profile, &command);
    notify_systemd("STOPPING=1");
    if let Some(r) = &router {
        r.flush();
    }
    drop(router);
    Ok(report.exit_code)
}
