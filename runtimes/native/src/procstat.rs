//! When a process started, from procfs.

use std::time::{Duration, SystemTime};

/// When process `pid` started, by the wall clock: what a unit's uptime is
/// measured from, whichever jarvisd started it.
///
/// The kernel keeps a process's start as clock ticks since boot (field 22,
/// `starttime`, of `/proc/PID/stat`). The boot's wall-clock time is the same
/// moment as `btime` in `/proc/stat`, taken here as the wall clock now less
/// `CLOCK_BOOTTIME`, to the tick rather than to the second. So the answer is
/// as exact as the clock tick (10 ms at the usual 100 Hz) and follows the
/// wall clock if it is set.
///
/// Errors: `NotFound` when there is no such process, `InvalidData` when its
/// stat line cannot be read.
pub fn process_started_at(pid: i32) -> std::io::Result<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = start_ticks(&stat).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: no start time in {stat:?}"),
        )
    })?;
    Ok(started_at(boot_time()?, ticks, ticks_per_second()))
}

/// Field 22 (`starttime`) of a `/proc/PID/stat` line. The command name
/// (field 2) is in parentheses and may itself hold spaces and parentheses,
/// so fields are counted from the last `)`.
fn start_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // After ")": state is field 3, so starttime (22) is index 19.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `boot` plus `ticks` clock ticks of `hz` per second.
fn started_at(boot: SystemTime, ticks: u64, hz: u64) -> SystemTime {
    let hz = hz.max(1);
    let secs = ticks / hz;
    let nanos = (ticks % hz) * 1_000_000_000 / hz;
    boot + Duration::new(secs, nanos as u32)
}

/// The wall-clock time of boot: now, less the time since boot (suspend
/// included, as the kernel counts process start times).
fn boot_time() -> std::io::Result<SystemTime> {
    let now = SystemTime::now();
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let since_boot = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    now.checked_sub(since_boot).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the wall clock is before the boot",
        )
    })
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/PID/stat`'s times.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf with a constant name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_counts_fields_from_the_last_parenthesis() {
        // A command name with spaces and a ")" in it, as a process may
        // choose for itself.
        let stat = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 3 4 0 0 20 0 1 0 \
                    987654 1234567 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1";
        assert_eq!(start_ticks(stat), Some(987654));
        assert_eq!(start_ticks("12 (x) S 1 2"), None);
        assert_eq!(start_ticks("no parenthesis"), None);
    }

    #[test]
    fn started_at_adds_ticks_to_the_boot_time() {
        let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            started_at(boot, 12_345, 100),
            boot + Duration::from_millis(123_450)
        );
        assert_eq!(started_at(boot, 3, 1000), boot + Duration::from_millis(3));
        assert_eq!(started_at(boot, 0, 100), boot);
    }

    #[test]
    fn a_new_process_started_between_before_and_after_its_spawn() {
        // Starts are counted in whole ticks (10 ms at 100 Hz), rounded down,
        // and the boot time is read apart from them: allow a tick or two.
        let slack = Duration::from_millis(2_000 / ticks_per_second().max(1) + 5);
        let before = SystemTime::now();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let after = SystemTime::now();
        let started = process_started_at(child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        let started = started.expect("the start of a live child");
        assert!(
            started + slack >= before && started <= after + slack,
            "started {started:?}, spawned between {before:?} and {after:?}"
        );
    }

    #[test]
    fn this_process_started_before_now_and_after_boot() {
        let me = process_started_at(std::process::id() as i32).unwrap();
        assert!(me <= SystemTime::now());
        assert!(me >= boot_time().unwrap() - Duration::from_secs(1));
    }

    #[test]
    fn no_such_process_is_not_found() {
        // Above the largest pid_max (2^22).
        let e = process_started_at(i32::MAX).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
