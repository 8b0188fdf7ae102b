//! What the kernel knows about a process: peak RSS and CPU time, from `/proc`.

use std::sync::OnceLock;

/// Peak resident set size (`VmHWM`) of `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

/// Current resident set size (`VmRSS`) of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// User + system CPU time of `pid` so far, in seconds (`/proc/PID/stat` utime + stime).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after its ')' are plain.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux in practice).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let rss = rss_kib(me).unwrap();
        assert!(rss > 0 && peak_rss_kib(me).unwrap() >= rss);
        // Burn CPU until the kernel's counter (10 ms ticks) has moved forward.
        let before = cpu_seconds(me).unwrap();
        let mut x = 0u64;
        let mut i = 0u64;
        // (Bounded, so a counter that never moves fails instead of hanging.)
        for _ in 0..100_000 {
            if cpu_seconds(me).unwrap() > before {
                break;
            }
            for _ in 0..1_000_000 {
                i += 1;
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        assert!(cpu_seconds(me).unwrap() > before);
        assert_eq!(cpu_seconds(u32::MAX), None, "no such process");
    }
}
