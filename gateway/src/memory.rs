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
//!
//! At rest the process is not idle: the outbox tailer and the reminder
//! poller run a SQLite query every second, on whichever blocking thread is
//! free. Measured after a release (see BENCHMARKS.md), RSS climbed back
//! with no request at all, from two sources. SQLite allocated through
//! glibc's malloc, and those queries, spread over up to 16 per-thread
//! arenas, touched again the free chunks `malloc_trim` had handed back; so
//! with mimalloc SQLite allocates through mimalloc too
//! ([`sqlite_on_mimalloc`], called by `main` before any connection opens).
//! And the kernel's khugepaged merged mimalloc's sparsely used arena ranges
//! into whole resident huge pages; so `main` turns transparent huge pages
//! off for the process ([`no_transparent_huge_pages`]). Whatever the
//! allocator, while no request comes the release repeats every
//! [`AT_REST`], which bounds what background work can take back.
//!
//! What a release cannot free is memory still in use. After a load, each of
//! up to 16 pooled SQLite connections kept its page cache, schema and
//! prepared statements (about 50 MB together, measured), their blocks
//! scattered over pages that otherwise held freed memory; and the blocking
//! threads that ran SQLite work never call into the allocator while idle,
//! so what was freed on their pages stayed. So before each release the
//! server closes the connections unused for [`IDLE_CONNECTION`], and each
//! blocking thread collects its heap after its next piece of SQLite work
//! (see [`on_park`]).

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

/// While no request comes, how often the release repeats after the
/// follow-up one (background queries keep allocating at rest).
pub const AT_REST: Duration = Duration::from_secs(30);

/// How long a pooled SQLite connection may go unused before a release
/// closes it (see `crm_core::db::Db::close_idle`). Longer than the quiet
/// second before a release, so a connection of the burst that just ended
/// is kept for the next one; the follow-up release after
/// [`BLOCKING_KEEP_ALIVE`] closes it.
pub const IDLE_CONNECTION: Duration = Duration::from_secs(5);

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
/// next time it runs out of work. It also runs after each piece of SQLite
/// work on a blocking thread (`crm_core::db::after_blocking_work`, set in
/// `main.rs`): blocking threads never park, and what was freed on their
/// pages (rows handed to a worker and dropped there, a closed connection's
/// caches) stayed with them.
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

/// Makes SQLite (bundled C code, which allocates through the C library
/// otherwise) allocate through mimalloc, so its memory is released with the
/// rest. Must run before SQLite is first used; false if SQLite refused
/// (it was already initialised).
#[cfg(feature = "mimalloc")]
pub fn sqlite_on_mimalloc() -> bool {
    use libsqlite3_sys as ffi;
    use std::ffi::{c_int, c_void};

    // SQLite never passes a negative size; the guards keep a bad one from
    // turning into a huge allocation.
    unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
        // SAFETY: plain allocation; SQLite frees it through `x_free`.
        unsafe { libmimalloc_sys::mi_malloc(usize::try_from(n).unwrap_or(0)) }
    }
    unsafe extern "C" fn x_free(p: *mut c_void) {
        // SAFETY: `p` came from `x_malloc`/`x_realloc` (or is null).
        unsafe { libmimalloc_sys::mi_free(p) }
    }
    unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        // SAFETY: as `x_free`; SQLite keeps only the returned pointer.
        unsafe { libmimalloc_sys::mi_realloc(p, usize::try_from(n).unwrap_or(0)) }
    }
    unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
        // SAFETY: `p` is a live allocation of `x_malloc`/`x_realloc`.
        let n = unsafe { libmimalloc_sys::mi_usable_size(p) };
        c_int::try_from(n).unwrap_or(c_int::MAX)
    }
    unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
        // SQLite's own rounding (to 8 bytes), as its default allocator does.
        n.saturating_add(7) & !7
    }
    unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
        ffi::SQLITE_OK
    }
    unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(x_malloc),
        xFree: Some(x_free),
        xRealloc: Some(x_realloc),
        xSize: Some(x_size),
        xRoundup: Some(x_roundup),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLITE_CONFIG_MALLOC takes one pointer to the methods and
    // copies them; it fails (SQLITE_MISUSE) once SQLite is initialised.
    let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &raw const methods) };
    rc == ffi::SQLITE_OK
}

/// Turns transparent huge pages off for this process. mimalloc advises
/// huge pages on its arenas; the kernel's khugepaged then merges a 2 MiB
/// range holding a single used 4 KiB page into a whole resident huge page,
/// in the background, so RSS climbed at rest (measured: mimalloc's arena
/// from 58 to 94 MB in two minutes without a request, `AnonHugePages` from
/// 4 to 50 MB; flat at 42 MB without huge pages). Must run before the heavy
/// allocations (huge pages already made stay); false if the kernel refused.
pub fn no_transparent_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
        // SAFETY: PR_SET_THP_DISABLE takes one integer argument and only
        // sets a flag on this process's memory map.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, on, unused, unused, unused) };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
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

/// The release task: runs until `stop` turns true. `before` runs first at
/// each release (the server closes idle database connections there, so
/// what they held is freed before the allocators give memory back).
pub async fn run(mut stop: watch::Receiver<bool>, before: impl Fn() + Send + 'static) {
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
    let mut rest: Option<tokio::time::Instant> = None;
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
        let at = tokio::time::Instant::now();
        if now != released {
            released = now;
            before();
            release();
            again = Some(at + BLOCKING_KEEP_ALIVE + TICK);
            rest = None;
        } else if again.is_some_and(|t| at >= t) || rest.is_some_and(|t| at >= t) {
            again = None;
            before();
            release();
            rest = Some(at + AT_REST);
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

    #[cfg(feature = "mimalloc")]
    #[test]
    fn sqlite_allocates_through_mimalloc() {
        use libsqlite3_sys as ffi;
        // Whether this process's SQLite was already initialised depends on
        // the other tests; if it was, configure nothing and say so.
        if !sqlite_on_mimalloc() {
            eprintln!("SQLite already initialised in this test process; not checked");
            return;
        }
        // SAFETY: plain SQLite calls on a private in-memory database.
        unsafe {
            let mut db = std::ptr::null_mut();
            assert_eq!(
                ffi::sqlite3_open(c":memory:".as_ptr(), &mut db),
                ffi::SQLITE_OK
            );
            let p = ffi::sqlite3_malloc(1000);
            assert!(!p.is_null());
            // The block is mimalloc's: it knows its size.
            assert!(libmimalloc_sys::mi_usable_size(p) >= 1000);
            assert!(ffi::sqlite3_msize(p) >= 1000);
            ffi::sqlite3_free(p);
            ffi::sqlite3_close(db);
        }
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
