//! One profile run in resticprofile's order (spec §8.4):
//!
//! ```text
//! chdir base-dir (profile reloaded) → local lock (failure: fail ping + send-after-fail/finally)
//! → Healthchecks /start → P.run-before → init if asked → H.send-before → S.run-before → body
//! → S.run-after → H.send-after → P.run-after
//! on error: H.send-after-fail, S.run-after-fail, then P.run-after-fail if that succeeded
//! always: S.run-finally, P.run-finally, H.send-finally, Healthchecks success or /fail
//! ```

use super::steps::{Step, StepError};
use super::{RunReport, Runner};
use crate::output::log_message;
use crate::types::ErrorInfo;

/// Run `command` on profile `name` (as typed), optionally as a member of `group`.
pub(super) fn run_profile(
    runner: &Runner<'_>,
    name: &str,
    command: &str,
    group: Option<&str>,
) -> RunReport {
    let start_dir = std::env::current_dir().ok();
    let report = match Step::prepare(runner, name, command, group) {
        Ok(step) => run_prepared(&step),
        Err(e) => {
            log_message(&e.info.message);
            RunReport {
                exit_code: e.exit_code,
                error: Some(e.info.message),
            }
        }
    };
    if let Some(d) = start_dir {
        let _ = std::env::set_current_dir(d);
    }
    report
}

fn run_prepared(step: &Step<'_, '_>) -> RunReport {
    let name = step.name.as_str();
    let command = step.command.as_str();
    let section = step.section();
    let profile_hooks = step.profile.hooks(None);
    let section_hooks = step.profile.hooks(Some(&section));
    let sends = step.profile.sends(&section);
    let hc = step.healthchecks();

    // Local lock: a failure runs no shell hook (resticprofile), but monitors hear about it.
    let lock = match step.acquire_lock() {
        Ok(l) => l,
        Err(e) => {
            log_message(&e.info.message);
            step.send("send-after-fail", &sends.after_fail, Some(&e.info));
            step.send("send-finally", &sends.finally, Some(&e.info));
            if let Some(hc) = &hc {
                step.finish_healthchecks(hc, Some(&e));
            }
            return RunReport {
                exit_code: e.exit_code,
                error: Some(e.info.message),
            };
        }
    };
    if let Some(hc) = &hc
        && let Some(w) = hc.start()
    {
        log_message(&format!("healthchecks: {w}"));
    }
    log_message(&format!("profile '{name}': starting '{command}'"));

    let main = (|| -> Result<(), StepError> {
        step.run_hooks("run-before", &profile_hooks.run_before, None)?;
        step.initialize_if_asked();
        step.send("send-before", &sends.before, None);
        step.run_hooks("run-before", &section_hooks.run_before, None)?;
        super::body::run_body(step)?;
        step.run_hooks("run-after", &section_hooks.run_after, None)?;
        step.send("send-after", &sends.after, None);
        step.run_hooks("run-after", &profile_hooks.run_after, None)?;
        Ok(())
    })();

    let error = main.err();
    if let Some(e) = &error {
        log_message(&e.info.message);
        step.send("send-after-fail", &sends.after_fail, Some(&e.info));
        let section_fail = step.run_hooks(
            "run-after-fail",
            &section_hooks.run_after_fail,
            Some(&e.info),
        );
        match section_fail {
            Ok(()) => {
                if let Err(e2) = step.run_hooks(
                    "run-after-fail",
                    &profile_hooks.run_after_fail,
                    Some(&e.info),
                ) {
                    log_message(&e2.info.message);
                }
            }
            Err(e2) => log_message(&e2.info.message),
        }
    }
    let info: Option<&ErrorInfo> = error.as_ref().map(|e| &e.info);
    step.run_finally(&section_hooks.run_finally, info);
    step.run_finally(&profile_hooks.run_finally, info);
    step.send("send-finally", &sends.finally, info);
    match &error {
        None => log_message(&format!("profile '{name}': finished '{command}'")),
        Some(_) => log_message(&format!("profile '{name}': '{command}' failed")),
    }
    if let Some(hc) = &hc {
        step.finish_healthchecks(hc, error.as_ref());
    }
    drop(lock);
    match error {
        None => RunReport::default(),
        Some(e) => RunReport {
            exit_code: e.exit_code,
            error: Some(e.info.message),
        },
    }
}
