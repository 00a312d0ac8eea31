//! Peak memory of the whole process, sampled every 100 ms from `/proc/self/status` by a
//! thread of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::procfs::rss_mib;

/// Peak memory readings since the last [`Peaks::take`], MiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peak {
    pub vm_rss: f64,
    pub rss_anon: f64,
}

impl Peak {
    pub fn max(self, other: Peak) -> Peak {
        Peak {
            vm_rss: self.vm_rss.max(other.vm_rss),
            rss_anon: self.rss_anon.max(other.rss_anon),
        }
    }
}

/// A thread reading `/proc/self/status` every 100 ms and keeping the peaks.
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
                while !s.load(Ordering::Relaxed) {
                    let now = Peak {
                        vm_rss: rss_mib("VmRSS:"),
                        rss_anon: rss_mib("RssAnon:"),
                    };
                    if let Ok(mut p) = c.lock() {
                        *p = p.max(now);
                    }
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
        let now = Peak {
            vm_rss: rss_mib("VmRSS:"),
            rss_anon: rss_mib("RssAnon:"),
        };
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
