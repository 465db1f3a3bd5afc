//! Process priority (§15) and the resource gates run before any profile work (§16): available
//! memory, battery state, and keeping the machine awake (`prevent-sleep`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Nice value of a `priority` name: idle 19, background 15, low 10, normal 0, high -10,
/// highest -20.
pub fn nice_for_priority(name: &str) -> Option<i32> {
    match name.trim().to_ascii_lowercase().as_str() {
        "idle" => Some(19),
        "background" => Some(15),
        "low" => Some(10),
        "normal" | "standard" => Some(0),
        "high" => Some(-10),
        "highest" => Some(-20),
        _ => None,
    }
}

/// Applies `priority` (wins over `nice`) to our process group with
/// `setpriority(PRIO_PGRP, 0, n)`; if that is refused, makes us a new process group leader and
/// retries. Then, with `ionice = Some((class, level))`, sets the I/O priority of the group
/// (Linux `ioprio_set`, falling back to the process). Children inherit both. Failures are
/// returned as warnings; nothing here stops a run.
pub fn apply_priority(priority: Option<&str>, nice: i32, ionice: Option<(u8, u8)>) -> Vec<String> {
    let mut warnings = Vec::new();
    let target = match priority.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => match nice_for_priority(p) {
            Some(n) => Some(n),
            None => {
                warnings.push(format!(
                    "unknown priority {p:?} (use idle, background, low, normal, high or highest); \
                     priority left unchanged"
                ));
                None
            }
        },
        None if nice != 0 => Some(nice),
        None => None,
    };
    if let Some(n) = target {
        if !(-20..=19).contains(&n) {
            warnings.push(format!(
                "nice value {n} is outside -20..19; priority left unchanged"
            ));
        } else if current_nice() != Some(n)
            && let Err(e) = set_group_nice(n)
        {
            warnings.push(format!("cannot set process priority to nice {n}: {e}"));
        }
    }
    if let Some((class, level)) = ionice
        && let Err(e) = set_ionice(class, level)
    {
        warnings.push(format!(
            "cannot set I/O priority (class {class}, level {level}): {e}"
        ));
    }
    warnings
}

/// The nice value of the calling thread.
pub fn current_nice() -> Option<i32> {
    // getpriority can return -1 legitimately: clear errno first and check it after.
    // SAFETY: errno location is thread-local and always valid; getpriority has no memory
    // arguments.
    unsafe {
        *errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS as _, 0);
        if n == -1 && *errno_location() != 0 {
            return None;
        }
        Some(n)
    }
}

#[cfg(target_os = "linux")]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: libc returns the calling thread's errno slot.
    unsafe { libc::__errno_location() }
}

#[cfg(not(target_os = "linux"))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: libc returns the calling thread's errno slot.
    unsafe { libc::__error() }
}

fn set_group_nice(n: i32) -> std::io::Result<()> {
    let set = || {
        // SAFETY: setpriority has no memory arguments.
        let r = unsafe { libc::setpriority(libc::PRIO_PGRP as _, 0, n) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    if set().is_ok() {
        return Ok(());
    }
    // Other members of the group may not be ours to change: lead a new group and retry.
    // SAFETY: setpgid has no memory arguments.
    unsafe { libc::setpgid(0, 0) };
    set()
}

#[cfg(target_os = "linux")]
fn set_ionice(class: u8, level: u8) -> Result<(), String> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_WHO_PGRP: libc::c_long = 2;
    const CLASS_SHIFT: u32 = 13;
    if !(1..=3).contains(&class) {
        return Err(format!("class must be 1, 2 or 3, not {class}"));
    }
    if level > 7 {
        return Err(format!("level must be 0..7, not {level}"));
    }
    let prio = libc::c_long::from((u32::from(class) << CLASS_SHIFT) | u32::from(level));
    let set = |who: libc::c_long| {
        // SAFETY: ioprio_set takes three integers; who-id 0 means our process group / thread.
        let r = unsafe { libc::syscall(libc::SYS_ioprio_set, who, 0 as libc::c_long, prio) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    set(IOPRIO_WHO_PGRP)
        .or_else(|_| set(IOPRIO_WHO_PROCESS))
        .map_err(|e| e.to_string())
}

#[cfg(not(target_os = "linux"))]
fn set_ionice(_class: u8, _level: u8) -> Result<(), String> {
    Err("I/O priority is only supported on Linux".into())
}

/// I/O priority `(class, level)` of the calling thread (Linux), for checks.
#[cfg(target_os = "linux")]
pub fn current_ionice() -> Option<(u8, u8)> {
    // SAFETY: ioprio_get takes two integers.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_get, 1 as libc::c_long, 0 as libc::c_long) };
    if r < 0 {
        return None;
    }
    let class = u8::try_from(r >> 13).ok()?;
    let level = u8::try_from(r & 0x1fff).ok()?;
    Some((class, level))
}

/// Available memory in MB, where available = total − used and used excludes page cache and
/// buffers (so cache counts as available). `None` when unknown (then no gate applies).
pub fn available_memory_mb() -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// Computes [`available_memory_mb`] from `/proc/meminfo` text: MemFree + Buffers + Cached +
/// SReclaimable (capped at MemTotal), in MB.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
    };
    let total = field("MemTotal")?;
    let free = field("MemFree")?;
    let avail = free
        .saturating_add(field("Buffers").unwrap_or(0))
        .saturating_add(field("Cached").unwrap_or(0))
        .saturating_add(field("SReclaimable").unwrap_or(0))
        .min(total);
    Some(avail / 1024)
}

/// The `min-memory` gate: error `available memory is < N MB` when below `min_mb` (0 = off;
/// unknown memory passes).
pub fn memory_gate(min_mb: u64) -> Result<(), String> {
    if min_mb == 0 {
        return Ok(());
    }
    match available_memory_mb() {
        Some(a) if a < min_mb => Err(format!("available memory is < {min_mb} MB")),
        _ => Ok(()),
    }
}

/// Power state of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatteryState {
    /// Running from the battery (not on AC).
    pub on_battery: bool,
    /// Charge in percent, when known.
    pub percent: Option<u8>,
}

/// The power state, `None` when the machine has no battery or it cannot be read.
pub fn battery() -> Option<BatteryState> {
    if cfg!(target_os = "macos") {
        let out = Command::new("pmset")
            .args(["-g", "batt"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        return parse_pmset(&String::from_utf8_lossy(&out.stdout));
    }
    battery_from_sysfs(Path::new("/sys/class/power_supply"))
}

/// Reads Linux power supplies under `root` (`/sys/class/power_supply`): system batteries
/// (peripheral batteries with `scope = Device` are ignored) and mains adapters.
pub fn battery_from_sysfs(root: &Path) -> Option<BatteryState> {
    let read = |dir: &Path, name: &str| -> Option<String> {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut mains_seen = false;
    let mut mains_online = false;
    let mut discharging = false;
    let mut capacities = Vec::new();
    let mut batteries = 0;
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let dir: PathBuf = entry.path();
        let kind = read(&dir, "type").unwrap_or_default();
        if kind == "Battery" {
            if read(&dir, "scope").is_some_and(|s| s.eq_ignore_ascii_case("device")) {
                continue;
            }
            if read(&dir, "present").is_some_and(|p| p == "0") {
                continue;
            }
            batteries += 1;
            if read(&dir, "status").is_some_and(|s| s.eq_ignore_ascii_case("discharging")) {
                discharging = true;
            }
            if let Some(c) = read(&dir, "capacity").and_then(|c| c.parse::<u32>().ok()) {
                capacities.push(c.min(100));
            }
        } else if !kind.is_empty() {
            // Mains, USB, USB_C, … adapters.
            mains_seen = true;
            if read(&dir, "online").is_some_and(|o| o == "1") {
                mains_online = true;
            }
        }
    }
    if batteries == 0 {
        return None;
    }
    let on_battery = if mains_seen {
        !mains_online
    } else {
        discharging
    };
    let percent = if capacities.is_empty() {
        None
    } else {
        let sum: u32 = capacities.iter().sum();
        u8::try_from(sum / u32::try_from(capacities.len()).unwrap_or(1)).ok()
    };
    Some(BatteryState {
        on_battery,
        percent,
    })
}

/// Parses `pmset -g batt` output (macOS).
pub fn parse_pmset(text: &str) -> Option<BatteryState> {
    let battery_line = text.lines().find(|l| l.contains("InternalBattery"))?;
    let percent = battery_line
        .split(|c: char| c.is_whitespace() || c == ';')
        .find_map(|w| w.strip_suffix('%')?.parse::<u8>().ok());
    Some(BatteryState {
        on_battery: text.contains("'Battery Power'"),
        percent,
    })
}

/// Whether a run must be skipped for the battery (`--ignore-on-battery[=PCT]`,
/// `schedule-ignore-on-battery[-less-than]`): on battery and, when `max_percent` is given,
/// charge at or below it (an unknown charge counts as below).
pub fn skip_for_battery(state: Option<&BatteryState>, max_percent: Option<u8>) -> bool {
    let Some(s) = state else { return false };
    s.on_battery && max_percent.is_none_or(|m| s.percent.is_none_or(|p| p <= m))
}

/// Text of the systemd inhibitor reason.
pub const INHIBIT_WHY: &str = "Backup and/or restic repository maintenance";

/// Keeps the machine from idle-sleeping while alive (`prevent-sleep`). Linux: a
/// `systemd-inhibit --what=idle:sleep --mode=block` child whose command reads a pipe we hold,
/// so the inhibitor ends with us even on SIGKILL. macOS: `caffeinate -s -w <our pid>`.
/// Dropping it ends the inhibitor.
#[derive(Debug)]
pub struct SleepInhibitor {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    _stderr: Option<ChildStderr>,
}

impl SleepInhibitor {
    /// Starts the platform's inhibitor. An error (tool missing, permission denied) should be
    /// reported and the run continued.
    pub fn start() -> Result<SleepInhibitor, String> {
        if cfg!(target_os = "macos") {
            let child = Command::new("/usr/bin/caffeinate")
                .args(["-s", "-w", &std::process::id().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot prevent sleep: /usr/bin/caffeinate: {e}"))?;
            return Ok(SleepInhibitor {
                child: Some(child),
                stdin: None,
                _stderr: None,
            });
        }
        Self::start_with(Path::new("systemd-inhibit"))
    }

    /// Starts `program` with systemd-inhibit's arguments (`--what=idle:sleep --mode=block
    /// --who=cairn --why=… cat`); an exit within the first 300 ms is reported with its stderr.
    pub fn start_with(program: &Path) -> Result<SleepInhibitor, String> {
        let mut child = Command::new(program)
            .args([
                "--what=idle:sleep",
                "--mode=block",
                "--who=cairn",
                &format!("--why={INHIBIT_WHY}"),
                "cat",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot prevent sleep: {}: {e}", program.display()))?;
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut s) = child.stderr.take() {
                        let _ = s.read_to_string(&mut err);
                    }
                    return Err(format!(
                        "cannot prevent sleep: {} {}: {}",
                        program.display(),
                        crate::secrets::status_text(&status),
                        err.trim()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("cannot prevent sleep: {e}")),
            }
        }
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        Ok(SleepInhibitor {
            child: Some(child),
            stdin,
            _stderr: stderr,
        })
    }

    /// Process id of the inhibitor child.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for SleepInhibitor {
    fn drop(&mut self) {
        // Closing the pipe ends `cat`, which ends systemd-inhibit and its lock.
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline && cfg!(not(target_os = "macos")) => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    _ => break,
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_names() {
        assert_eq!(nice_for_priority("idle"), Some(19));
        assert_eq!(nice_for_priority("Background"), Some(15));
        assert_eq!(nice_for_priority("low"), Some(10));
        assert_eq!(nice_for_priority("normal"), Some(0));
        assert_eq!(nice_for_priority("high"), Some(-10));
        assert_eq!(nice_for_priority("highest"), Some(-20));
        assert_eq!(nice_for_priority("fast"), None);
    }

    #[test]
    fn unknown_priority_is_a_warning_only() {
        let w = apply_priority(Some("turbo"), 0, None);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("turbo"));
        // Nothing to do: no warning, no change.
        assert!(apply_priority(None, 0, None).is_empty());
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal:       16000000 kB\nMemFree:         1024000 kB\nMemAvailable:    9000000 kB\nBuffers:          102400 kB\nCached:          4096000 kB\nSwapCached:            0 kB\nSReclaimable:     204800 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Some((1024000 + 102400 + 4096000 + 204800) / 1024)
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert!(available_memory_mb().is_some());
        assert!(memory_gate(0).is_ok());
        assert!(memory_gate(1).is_ok());
        let e = memory_gate(u64::MAX).unwrap_err();
        assert_eq!(e, format!("available memory is < {} MB", u64::MAX));
    }

    #[test]
    fn pmset() {
        let on_batt = "Now drawing from 'Battery Power'\n -InternalBattery-0 (id=1234)\t42%; discharging; 3:10 remaining present: true\n";
        assert_eq!(
            parse_pmset(on_batt),
            Some(BatteryState {
                on_battery: true,
                percent: Some(42)
            })
        );
        let ac = "Now drawing from 'AC Power'\n -InternalBattery-0 (id=1234)\t100%; charged; 0:00 remaining present: true\n";
        assert_eq!(
            parse_pmset(ac),
            Some(BatteryState {
                on_battery: false,
                percent: Some(100)
            })
        );
        assert_eq!(parse_pmset("Now drawing from 'AC Power'\n"), None);
    }

    #[test]
    fn battery_rule() {
        let b = |on, p| BatteryState {
            on_battery: on,
            percent: p,
        };
        assert!(!skip_for_battery(None, None));
        assert!(!skip_for_battery(Some(&b(false, Some(5))), Some(50)));
        assert!(skip_for_battery(Some(&b(true, Some(80))), None));
        assert!(skip_for_battery(Some(&b(true, Some(80))), Some(100)));
        assert!(!skip_for_battery(Some(&b(true, Some(80))), Some(50)));
        assert!(skip_for_battery(Some(&b(true, Some(50))), Some(50)));
        assert!(skip_for_battery(Some(&b(true, None)), Some(50)));
    }
}
