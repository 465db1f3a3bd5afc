//! Starting ssh in its own process group, like restic: Ctrl-C in the terminal reaches Cairn
//! (which then removes its locks through the still running ssh) instead of killing ssh. While
//! the session starts, ssh owns the terminal's foreground so that it can ask for a password or
//! a host key confirmation; afterwards Cairn takes the foreground back.

use nix::sys::signal::{SigHandler, Signal, signal};
use nix::unistd::{Pid, getpgrp, tcgetpgrp, tcsetpgrp};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Gives the terminal back to Cairn's process group when dropped (or [`Foreground::restore`]).
#[derive(Debug)]
pub struct Foreground {
    tty: File,
    prev: Pid,
    old_ttin: SigHandler,
    old_ttou: SigHandler,
}

impl Foreground {
    /// Move Cairn's process group back into the terminal's foreground.
    pub fn restore(self) {
        drop(self);
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = tcsetpgrp(&self.tty, self.prev);
        // SAFETY: reinstalls the dispositions that were in place before (SIG_DFL/SIG_IGN or
        // the previous handler); no code runs in signal context here.
        unsafe {
            let _ = signal(Signal::SIGTTIN, self.old_ttin);
            let _ = signal(Signal::SIGTTOU, self.old_ttou);
        }
    }
}

/// Spawn `cmd` in a new process group. If Cairn is the terminal's foreground process group,
/// the child becomes the foreground until the returned guard is dropped.
pub fn spawn(cmd: &mut Command) -> std::io::Result<(Child, Option<Foreground>)> {
    cmd.process_group(0);
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty");
    let Ok(tty) = tty else {
        return Ok((cmd.spawn()?, None));
    };
    let me = getpgrp();
    match tcgetpgrp(&tty) {
        Ok(fg) if fg == me => {}
        _ => return Ok((cmd.spawn()?, None)),
    }
    // SAFETY: installing SIG_IGN runs no code in signal context. Ignoring SIGTTOU/SIGTTIN
    // keeps Cairn from being stopped while it is not the terminal's foreground.
    let (old_ttin, old_ttou) = unsafe {
        (
            signal(Signal::SIGTTIN, SigHandler::SigIgn).unwrap_or(SigHandler::SigDfl),
            signal(Signal::SIGTTOU, SigHandler::SigIgn).unwrap_or(SigHandler::SigDfl),
        )
    };
    let guard = Foreground {
        tty,
        prev: me,
        old_ttin,
        old_ttou,
    };
    let child = cmd.spawn()?;
    let pid = i32::try_from(child.id()).map(Pid::from_raw);
    if let Ok(pid) = pid {
        let _ = tcsetpgrp(&guard.tty, pid);
    }
    Ok((child, Some(guard)))
}
