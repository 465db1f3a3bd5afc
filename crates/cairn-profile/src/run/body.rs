//! The command body of a profile run (spec §8.5): a backup with its check-before,
//! retention-before, retention-after and check-after steps, or any other engine command with
//! the profile's options. Each step stops the body on error.

use super::steps::{Step, StepError, StepKind};

/// Run the body of `step.command`.
pub(super) fn run_body(step: &Step<'_, '_>) -> Result<(), StepError> {
    let p = &step.profile;
    match step.command.as_str() {
        "backup" => {
            if p.bool_in("backup", "check-before") == Some(true) {
                log(step, "checking repository consistency");
                step.engine_step(StepKind::Check, "check", "check", false)?;
            }
            if p.bool_in("retention", "before-backup") == Some(true) {
                log(step, "cleaning up repository using retention information");
                step.engine_step(StepKind::Retention, "forget", "retention", false)?;
            }
            step.engine_step(StepKind::Backup, "backup", "backup", true)?;
            if p.bool_in("retention", "after-backup") == Some(true) {
                log(step, "cleaning up repository using retention information");
                step.engine_step(StepKind::Retention, "forget", "retention", false)?;
            }
            if p.bool_in("backup", "check-after") == Some(true) {
                log(step, "checking repository consistency");
                step.engine_step(StepKind::Check, "check", "check", false)?;
            }
            Ok(())
        }
        "forget" => step
            .engine_step(StepKind::Retention, "forget", "forget", true)
            .map(|_| ()),
        "check" => step
            .engine_step(StepKind::Check, "check", "check", true)
            .map(|_| ()),
        "prune" => step
            .engine_step(StepKind::Prune, "prune", "prune", true)
            .map(|_| ()),
        other => {
            let other = other.to_string();
            step.engine_step(StepKind::Other, &other, &other, true)
                .map(|_| ())
        }
    }
}

fn log(step: &Step<'_, '_>, what: &str) {
    crate::output::log_message(&format!("profile '{}': {what}", step.name));
}
