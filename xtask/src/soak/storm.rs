//! The fork storm: threads named [`COMM`] that fork children which exit at once, paced to a
//! rate, each child reaped and counted. Children inherit the forking thread's name, so the
//! daemon files all of them under one group, and the count here is the truth its exit
//! counter is held to.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// The storm's children's comm, and so their group.
pub const COMM: &str = "soakstorm";

pub struct Storm {
    stop: Arc<AtomicBool>,
    reaped: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Storm {
    /// Starts `threads` forking threads sharing `per_second` children a second.
    pub fn start(per_second: u32, threads: u32) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let reaped = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let each = f64::from(per_second) / f64::from(threads);
        let mut handles = Vec::new();
        for _ in 0..threads {
            let (stop, reaped, failed) = (stop.clone(), reaped.clone(), failed.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(COMM.into())
                    .spawn(move || storm(each, &stop, &reaped, &failed))?,
            );
        }
        Ok(Self {
            stop,
            reaped,
            failed,
            threads: handles,
        })
    }

    /// Children forked and reaped so far.
    pub fn reaped(&self) -> u64 {
        self.reaped.load(Ordering::Relaxed)
    }

    /// Stops forking, waits for the threads (every child reaped) and returns the totals:
    /// (reaped, forks that failed).
    pub fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        (
            self.reaped.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn storm(per_second: f64, stop: &AtomicBool, reaped: &AtomicU64, failed: &AtomicU64) {
    let start = Instant::now();
    let mut made = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Catch up to the schedule, then sleep until the next child is due.
        let due = (start.elapsed().as_secs_f64() * per_second) as u64;
        if made >= due {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        made += 1;
        // SAFETY: the child only calls _exit, which is async-signal-safe, so forking from a
        // threaded process is sound.
        let pid = unsafe { libc::fork() };
        match pid {
            0 => {
                // SAFETY: ends the child without running the parent's atexit handlers.
                unsafe { libc::_exit(0) }
            }
            p if p < 0 => {
                failed.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
            p => {
                let mut status = 0;
                // SAFETY: waits for our own child; status is a valid out pointer.
                if unsafe { libc::waitpid(p, &mut status, 0) } == p {
                    reaped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
