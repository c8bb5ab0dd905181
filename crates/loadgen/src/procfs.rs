//! The server's CPU time and resident memory from `/proc/<pid>` (Linux).

use std::path::PathBuf;

use anyhow::{anyhow, Context as _};

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// User + system CPU time, in milliseconds.
    pub cpu_ms: u64,
    /// Resident set size, in KiB.
    pub rss_kib: u64,
}

/// Reads a process's `/proc` files.
#[derive(Debug, Clone)]
pub struct ProcWatch {
    dir: PathBuf,
    ticks_per_sec: u64,
}

impl ProcWatch {
    /// Watches `pid` (`None`: this process).
    pub fn new(pid: Option<u32>) -> Self {
        let dir = match pid {
            Some(pid) => PathBuf::from(format!("/proc/{pid}")),
            None => PathBuf::from("/proc/self"),
        };
        Self {
            dir,
            ticks_per_sec: clock_ticks_per_sec(),
        }
    }

    /// Reads CPU time and RSS now.
    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        let stat_path = self.dir.join("stat");
        let stat = std::fs::read_to_string(&stat_path)
            .with_context(|| format!("reading {}", stat_path.display()))?;
        let ticks = cpu_ticks(&stat)
            .ok_or_else(|| anyhow!("{}: unexpected format", stat_path.display()))?;
        let status_path = self.dir.join("status");
        let status = std::fs::read_to_string(&status_path)
            .with_context(|| format!("reading {}", status_path.display()))?;
        let rss_kib = vm_rss_kib(&status)
            .ok_or_else(|| anyhow!("{}: no VmRSS line", status_path.display()))?;
        Ok(ProcSample {
            cpu_ms: ticks.saturating_mul(1000) / self.ticks_per_sec.max(1),
            rss_kib,
        })
    }
}

/// `utime + stime` (fields 14 and 15 of proc(5) `stat`), in clock ticks. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After `)`: field 3 (state) is index 0, so utime (14) is index 11 and stime index 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The `VmRSS:` line of proc(5) `status`, in KiB.
pub fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_ascii_whitespace();
    let value = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

/// `sysconf(_SC_CLK_TCK)` through `getconf` (no libc binding here); 100, the Linux value on
/// every common architecture, if that fails.
fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as proc(5) allows.
        let stat = "4242 (beam (smp) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 750 250 0 0 20 0 \
                    30 0 12345 1000000 5000 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(1000));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn rss_is_read_in_kib() {
        let status = "Name:\tcorvid\nVmPeak:\t  9999 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_kib(status), Some(20480));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = ProcWatch::new(None).sample().unwrap();
        assert!(s.rss_kib > 0);
    }
}
