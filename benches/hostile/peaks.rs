//! Peak memory of the whole process, sampled by a thread of its own: `/proc/self/status` every
//! 100 ms, `/proc/self/smaps_rollup` (which walks every mapping, so is dearer) every second.
//!
//! Why four figures: the server reads the database through a 256 MiB mmap on each of its 8
//! pooled connections (`src/db/mod.rs`). `VmRSS` and `RssFile` count a page of the file once per
//! mapping that touched it, so the same page-cache page can count up to 8 times; `Pss` counts
//! it once. `RssAnon` is the process's own heap (SQLite's page caches included).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::procfs::rss_mib;

/// Peak memory readings since the last [`Peaks::take`], MiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peak {
    pub vm_rss: f64,
    pub rss_anon: f64,
    pub rss_file: f64,
    /// Proportional set size (`smaps_rollup`): each mapped page counted once.
    pub pss: f64,
}

impl Peak {
    pub fn max(self, other: Peak) -> Peak {
        Peak {
            vm_rss: self.vm_rss.max(other.vm_rss),
            rss_anon: self.rss_anon.max(other.rss_anon),
            rss_file: self.rss_file.max(other.rss_file),
            pss: self.pss.max(other.pss),
        }
    }

    /// A reading now; `pss` only when `with_pss` (else 0).
    fn now(with_pss: bool) -> Peak {
        Peak {
            vm_rss: rss_mib("VmRSS:"),
            rss_anon: rss_mib("RssAnon:"),
            rss_file: rss_mib("RssFile:"),
            pss: if with_pss { pss_mib() } else { 0.0 },
        }
    }
}

/// `Pss:` of `/proc/self/smaps_rollup`, MiB (0 when it cannot be read).
fn pss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The sampling thread and the peaks it keeps.
pub struct Peaks {
    current: Arc<Mutex<Peak>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Peaks {
    pub fn start() -> anyhow::Result<Peaks> {
        let current = Arc::new(Mutex::new(Peak::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (current.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("lc-rss".into())
            .spawn(move || {
                let mut tick = 0u64;
                while !s.load(Ordering::Relaxed) {
                    let now = Peak::now(tick.is_multiple_of(10));
                    if let Ok(mut p) = c.lock() {
                        *p = p.max(now);
                    }
                    tick += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
            })?;
        Ok(Peaks {
            current,
            stop,
            thread: Some(thread),
        })
    }

    /// The peaks since the last call (and a reading now), and starts a new period.
    pub fn take(&self) -> Peak {
        let now = Peak::now(true);
        match self.current.lock() {
            Ok(mut p) => std::mem::take(&mut *p).max(now),
            Err(_) => now,
        }
    }
}

impl Drop for Peaks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
