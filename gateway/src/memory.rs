//! Handing freed memory back to the operating system once the server is
//! quiet (see BENCHMARKS.md, "Memory under hostile load").
//!
//! A heavy answer builds a large value tree on whichever worker threads ran
//! its resolvers, and the SQLite rows behind it on blocking threads. After
//! it is sent, that memory is free but the allocator keeps it for reuse:
//! mimalloc gives a page back only when the thread that owns the page calls
//! into the allocator again (an idle worker never does) and purges freed
//! pages only on a later allocation; glibc's malloc keeps it in per-thread
//! arenas. So resident memory stayed near its peak on an idle server.
//!
//! Here, every GraphQL request (HTTP, or a query or mutation over a
//! WebSocket) marks activity when it starts and ends. A
//! background task looks once a second; after a whole second without
//! activity that followed some activity, it releases: with mimalloc, each
//! worker thread collects its own heap the next time it parks (a counter
//! tells it to) and the releasing thread purges every arena's free pages at
//! once; and glibc's `malloc_trim(0)` trims every arena of the C library's
//! malloc (SQLite's memory, or everything without mimalloc). A second
//! release follows after the blocking threads' keep-alive: a blocking
//! thread that exited idle has handed its pages over only then. Under
//! steady load nothing is done, so the normal
//! read path pays two atomic increments per request and one atomic load
//! per worker park. `CRM_MEMORY_RELEASE=off` turns it off.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// Bumped when a request starts and when it ends.
static ACTIVITY: AtomicU64 = AtomicU64::new(0);
/// Bumped by each release; a worker thread that sees it moved collects its
/// own heap when it next parks.
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

/// How often the release task looks at the activity counter; also the
/// quiet time before a release.
const TICK: Duration = Duration::from_secs(1);

/// How long an idle blocking thread (SQLite work, file I/O) lives before it
/// exits; the runtime is built with it, and a second release follows it.
pub const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Marks a request as running; activity is marked again when it drops.
pub struct Active(());

/// Marks activity now and when the returned guard drops.
pub fn active() -> Active {
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
    Active(())
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVITY.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether releasing is on: on unless `CRM_MEMORY_RELEASE` is `off`
/// (or `0`, `false`).
pub fn enabled() -> bool {
    std::env::var("CRM_MEMORY_RELEASE")
        .map(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "off" | "0" | "false"
            )
        })
        .unwrap_or(true)
}

/// The runtime's `on_thread_park` hook: after a release, a worker thread
/// collects its own heap (pages freed by other threads, empty pages) the
/// next time it runs out of work.
pub fn on_park() {
    #[cfg(feature = "mimalloc")]
    {
        let generation = GENERATION.load(Ordering::Relaxed);
        if SEEN.get() != generation {
            SEEN.set(generation);
            // SAFETY: collects the calling thread's own heap; no pointers
            // are passed.
            unsafe { libmimalloc_sys::mi_collect(true) };
        }
    }
}

/// Releases freed memory now (see the module documentation).
pub fn release() {
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed) + 1;
    SEEN.set(generation);
    #[cfg(feature = "mimalloc")]
    {
        // SAFETY: collects the calling thread's heap and purges the free
        // pages of every arena; no pointers are passed.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
    // SQLite (bundled C) allocates through the C library's malloc whatever
    // the Rust allocator is; glibc keeps what it freed in per-thread arenas.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: glibc's malloc_trim locks each arena in turn; no
        // pointers are passed.
        unsafe { libc::malloc_trim(0) };
    }
}

/// The release task: runs until `stop` turns true.
pub async fn run(mut stop: watch::Receiver<bool>) {
    if !enabled() {
        tracing::info!("memory release after heavy work is off (CRM_MEMORY_RELEASE)");
        return;
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = ACTIVITY.load(Ordering::Relaxed);
    // Start-up (migrations, schema) counts as activity: release once.
    let mut released = seen.wrapping_sub(1);
    let mut again: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = stop.wait_for(|v| *v) => {
                let _ = r;
                return;
            }
        }
        let now = ACTIVITY.load(Ordering::Relaxed);
        if now != seen {
            // Busy during the last tick: wait for a quiet one.
            seen = now;
            continue;
        }
        if now != released {
            released = now;
            release();
            again = Some(tokio::time::Instant::now() + BLOCKING_KEEP_ALIVE + TICK);
        } else if again.is_some_and(|t| tokio::time::Instant::now() >= t) {
            again = None;
            release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_marks_start_and_end() {
        let before = ACTIVITY.load(Ordering::Relaxed);
        let guard = active();
        assert!(ACTIVITY.load(Ordering::Relaxed) > before);
        let during = ACTIVITY.load(Ordering::Relaxed);
        drop(guard);
        assert!(ACTIVITY.load(Ordering::Relaxed) > during);
    }

    #[test]
    fn release_moves_the_generation() {
        let before = GENERATION.load(Ordering::Relaxed);
        release();
        assert!(GENERATION.load(Ordering::Relaxed) > before);
        // The releasing thread has already collected.
        assert_eq!(SEEN.get(), GENERATION.load(Ordering::Relaxed));
    }
}
