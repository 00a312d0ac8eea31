//! Readings from `/proc/self`: CPU time per runtime (threads are named `lc-server` and `lc-load`)
//! and the process's memory.

use std::collections::HashMap;

/// CPU time (ns) used so far by the threads of each runtime, by thread-name prefix.
pub fn thread_cpu() -> HashMap<&'static str, u64> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let key = if comm.starts_with("lc-server") {
            "server"
        } else if comm.starts_with("lc-load") {
            "load"
        } else {
            "other"
        };
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .unwrap_or(0);
        *out.entry(key).or_insert(0) += ns;
    }
    out
}

/// Cores used by the server and by the load generator between two readings over `seconds`.
pub fn cores(a: &HashMap<&str, u64>, b: &HashMap<&str, u64>, seconds: f64) -> (f64, f64) {
    let used = |k: &str| {
        b.get(k)
            .copied()
            .unwrap_or(0)
            .saturating_sub(a.get(k).copied().unwrap_or(0)) as f64
            / 1e9
    };
    (used("server") / seconds, used("load") / seconds)
}

/// A memory line of `/proc/self/status` (`VmRSS:`, `VmHWM:`), MiB.
pub fn rss_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
