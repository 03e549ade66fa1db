//! CPU and memory of processes and of the machine, from Linux `/proc` (proc(5)).
//!
//! The server is a process tree: camstream is one process, nginx a master plus workers and
//! a cache manager (PEERS.md: count them all), so a [`TreeSampler`] follows the root pid
//! and every descendant it finds at each sample. CPU is the difference of
//! `utime + stime` between two samples over the wall time between them, in % of one core
//! (200 % = both cores of a 2-core machine); RSS is the sum of `VmRSS`. The parsers are
//! pure functions; the samplers read files and are given the elapsed time.

use std::collections::HashMap;
use std::process::Command;

/// CPU ticks of one process and its parent, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PidStat {
    pub(crate) ppid: i32,
    /// `utime + stime`, in clock ticks.
    pub(crate) ticks: u64,
    /// `utime` (user mode), in clock ticks.
    pub(crate) utime: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub(crate) fn parse_pid_stat(s: &str) -> Option<PidStat> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15), so index = field - 3.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(PidStat {
        ppid,
        ticks: utime + stime,
        utime,
    })
}

/// `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` of one task, from
/// `/proc/PID/task/TID/status` (per thread: a process's own status shows its main thread's).
pub(crate) fn parse_ctx_switches(status: &str) -> (u64, u64) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    )
}

/// Context switches of every thread of `pid` (threads that exited are not counted).
fn ctx_switches(pid: i32) -> (u64, u64) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|s| parse_ctx_switches(&s))
        .fold((0, 0), |(v, n), (a, b)| (v + a, n + b))
}

/// `VmRSS` from `/proc/PID/status`, in KiB (absent for zombies and kernel threads).
pub(crate) fn parse_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Machine-wide CPU time from the first line of `/proc/stat`: (busy, total) ticks.
pub(crate) fn parse_machine_cpu(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU % of one core over an interval.
pub(crate) fn cpu_percent(ticks: u64, clk_tck: u64, elapsed_s: f64) -> f64 {
    if elapsed_s <= 0.0 || clk_tck == 0 {
        return 0.0;
    }
    ticks as f64 / clk_tck as f64 / elapsed_s * 100.0
}

/// `getconf CLK_TCK` (100 on every Linux we know; asked so the number is never assumed).
pub(crate) fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn read_stat(pid: i32) -> Option<PidStat> {
    parse_pid_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `root` and its descendants, by walking the parent links of every process.
pub(crate) fn process_tree(root: i32) -> Vec<i32> {
    let mut parent: HashMap<i32, i32> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok())
                && let Some(st) = read_stat(pid)
            {
                parent.insert(pid, st.ppid);
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// One reading of a process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TreeSample {
    pub(crate) cpu_pct: f64,
    /// The user-mode share of `cpu_pct` (the rest is the kernel's, on the server's behalf).
    pub(crate) user_pct: f64,
    pub(crate) rss_kib: u64,
    pub(crate) processes: usize,
    /// Voluntary context switches per second (a thread went to sleep: waiting for I/O or
    /// a wake-up), summed over every thread.
    pub(crate) vol_ctx_s: f64,
    /// Involuntary context switches per second (a thread was preempted).
    pub(crate) invol_ctx_s: f64,
}

/// Per-process counters at the last sample.
#[derive(Debug, Clone, Copy, Default)]
struct Last {
    ticks: u64,
    utime: u64,
    vol: u64,
    invol: u64,
}

/// Follows a process tree's CPU and RSS between samples.
#[derive(Debug)]
pub(crate) struct TreeSampler {
    root: i32,
    clk_tck: u64,
    last: HashMap<i32, Last>,
    /// Whether descendants are looked for (a `/proc` scan per sample).
    follow_children: bool,
}

impl TreeSampler {
    pub(crate) fn new(root: i32, clk_tck: u64, follow_children: bool) -> Self {
        let mut s = Self {
            root,
            clk_tck,
            last: HashMap::new(),
            follow_children,
        };
        s.sample(0.0);
        s
    }

    /// Reads the tree; CPU is over the `elapsed_s` since the previous call.
    pub(crate) fn sample(&mut self, elapsed_s: f64) -> TreeSample {
        let pids = if self.follow_children {
            process_tree(self.root)
        } else {
            vec![self.root]
        };
        let (mut ticks, mut utime, mut vol, mut invol) = (0, 0, 0, 0);
        let mut rss_kib = 0;
        let mut now = HashMap::new();
        for pid in pids {
            let Some(st) = read_stat(pid) else { continue };
            let (v, n) = ctx_switches(pid);
            let cur = Last {
                ticks: st.ticks,
                utime: st.utime,
                vol: v,
                invol: n,
            };
            // A process born since the last sample spent all its ticks in this interval.
            let prev = self.last.get(&pid).copied().unwrap_or_default();
            ticks += cur.ticks.saturating_sub(prev.ticks);
            utime += cur.utime.saturating_sub(prev.utime);
            vol += cur.vol.saturating_sub(prev.vol);
            invol += cur.invol.saturating_sub(prev.invol);
            now.insert(pid, cur);
            rss_kib += std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| parse_rss_kib(&s))
                .unwrap_or(0);
        }
        let processes = now.len();
        self.last = now;
        let per_s = |n: u64| {
            if elapsed_s > 0.0 {
                n as f64 / elapsed_s
            } else {
                0.0
            }
        };
        TreeSample {
            cpu_pct: cpu_percent(ticks, self.clk_tck, elapsed_s),
            user_pct: cpu_percent(utime, self.clk_tck, elapsed_s),
            rss_kib,
            processes,
            vol_ctx_s: per_s(vol),
            invol_ctx_s: per_s(invol),
        }
    }
}

/// Follows the machine's total CPU use (% of all cores, 100 = every core busy).
#[derive(Debug, Default)]
pub(crate) struct MachineSampler {
    last: Option<(u64, u64)>,
}

impl MachineSampler {
    pub(crate) fn sample(&mut self) -> f64 {
        let Some(now) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_machine_cpu(&s))
        else {
            return 0.0;
        };
        let pct = match self.last {
            Some((busy, total)) if now.1 > total => {
                (now.0 - busy) as f64 / (now.1 - total) as f64 * 100.0
            }
            _ => 0.0,
        };
        self.last = Some(now);
        pct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_stat_survives_odd_command_names() {
        let s = "4242 (ngi nx) worker)) S 4200 4200 4200 0 -1 4194624 100 0 0 0 250 37 0 0 20 0 1 0 9 1000 50 0";
        assert_eq!(
            parse_pid_stat(s),
            Some(PidStat {
                ppid: 4200,
                ticks: 287,
                utime: 250
            })
        );
        assert_eq!(parse_pid_stat("12 (x) S 1"), None, "truncated line");
    }

    #[test]
    fn rss_and_machine_cpu() {
        assert_eq!(
            parse_rss_kib("Name:\tnginx\nVmRSS:\t   19304 kB\nThreads: 1\n"),
            Some(19304)
        );
        assert_eq!(parse_rss_kib("Name:\tkthreadd\n"), None);
        assert_eq!(
            parse_ctx_switches(
                "Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n"
            ),
            (120, 7)
        );
        let stat = "cpu  100 5 50 800 20 1 2 3 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_machine_cpu(stat), Some((161, 981)));
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        assert_eq!(cpu_percent(50, 100, 1.0), 50.0);
        assert_eq!(cpu_percent(300, 100, 2.0), 150.0);
        assert_eq!(cpu_percent(10, 100, 0.0), 0.0);
    }

    #[test]
    fn samples_this_process_and_finds_children() {
        let mut child = Command::new("sleep").arg("5").spawn().expect("sleep runs");
        let me = std::process::id() as i32;
        let tree = process_tree(me);
        assert!(
            tree.contains(&(child.id() as i32)),
            "child found in {tree:?}"
        );
        let mut s = TreeSampler::new(me, clock_ticks(), false);
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let sample = s.sample(1.0);
        assert!(sample.rss_kib > 1000, "{sample:?}");
        assert!(
            sample.vol_ctx_s >= 1.0,
            "the sleep is a voluntary switch: {sample:?}"
        );
        assert!(sample.user_pct <= sample.cpu_pct, "{sample:?}");
        assert_eq!(sample.processes, 1);
        let _ = child.kill();
        let _ = child.wait();
    }
}
