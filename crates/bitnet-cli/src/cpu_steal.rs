//! CPU time the hypervisor gave to other guests while a benchmark ran (the `steal` column of
//! Linux's `/proc/stat`). On a virtual machine a vCPU can be descheduled in the middle of a pool
//! chunk, and the pool's other threads then wait for it (on a 2-vCPU test host, an 8-token head
//! product that takes 38 ms once took 119 ms, its worker's share stalled). `bitnet bench` reports
//! the stolen share beside its results, so that a figure taken while the host served other guests
//! can be told from a slow engine.

/// The machine's CPU time counters at one moment (clock ticks, all CPUs together).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuTimes {
    /// Ticks a CPU spent running (user, nice, system, irq, softirq).
    busy: u64,
    /// Ticks a vCPU wanted to run while the hypervisor ran something else.
    steal: u64,
}

impl CpuTimes {
    /// The counters now; `None` where `/proc/stat` cannot be read or has no steal column (not
    /// Linux, or a kernel older than 2.6.11).
    pub fn now() -> Option<CpuTimes> {
        parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// Percent of the CPU time wanted between `self` and `later` (run or stolen) that was
    /// stolen; `None` when no time passed on the counters.
    pub fn steal_percent_until(&self, later: &CpuTimes) -> Option<f64> {
        let busy = later.busy.checked_sub(self.busy)?;
        let steal = later.steal.checked_sub(self.steal)?;
        let wanted = busy + steal;
        (wanted > 0).then(|| 100.0 * steal as f64 / wanted as f64)
    }
}

/// Reads the aggregate `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq
/// steal [guest guest_nice] (guest time is already counted in user and nice).
fn parse_proc_stat(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks = line
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse::<u64>().ok())
        .collect::<Option<Vec<u64>>>()?;
    let &[user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = ticks.as_slice() else {
        return None;
    };
    Some(CpuTimes {
        busy: user + nice + system + irq + softirq,
        steal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first lines of this project's 2-core test host's `/proc/stat`, before and after
    /// `bitnet bench -b 8` (2026-12-05): 25.7 s run, 2.91 s stolen.
    const BEFORE: &str = "cpu  3025807 247 209345 542321 8069 0 1094 258728 0 0\n\
                          cpu0 1479404 126 97135 313913 2335 0 133 129441 0 0\n\
                          cpu1 1546402 120 112209 228407 5733 0 960 129287 0 0\n\
                          intr 1 2 3\n";
    const AFTER: &str = "cpu  3028378 247 209773 542538 8071 0 1094 259019 0 0\n\
                         cpu0 1480646 126 97262 314112 2336 0 133 129626 0 0\n";

    #[test]
    fn reads_the_aggregate_line() {
        assert_eq!(
            parse_proc_stat(BEFORE),
            Some(CpuTimes {
                busy: 3025807 + 247 + 209345 + 1094,
                steal: 258728,
            })
        );
    }

    #[test]
    fn steal_is_a_share_of_the_time_wanted() {
        let (before, after) = (
            parse_proc_stat(BEFORE).unwrap(),
            parse_proc_stat(AFTER).unwrap(),
        );
        // busy 2571 + 428 ticks, stolen 291: 291 / (2999 + 291).
        let percent = before.steal_percent_until(&after).unwrap();
        assert!((percent - 100.0 * 291.0 / 3290.0).abs() < 1e-9, "{percent}");
        assert_eq!(before.steal_percent_until(&before), None);
        // Counters that went backwards (another machine's snapshot) give no figure.
        assert_eq!(after.steal_percent_until(&before), None);
    }

    #[test]
    fn no_steal_column_or_no_cpu_line_gives_none() {
        assert_eq!(parse_proc_stat("cpu  1 2 3 4 5 6 7\n"), None);
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 2 x 4 5 6 7 8\n"), None);
        assert_eq!(parse_proc_stat(""), None);
    }
}
