//! The dispatcher: tails the outbox and fans events out in-process.
//!
//! One [`EventHub`] per process. Its tailer reads every committed event in
//! cursor order exactly once and hands it to the registered listeners (cache
//! invalidation) and to a broadcast channel that live subscriptions read. On
//! PostgreSQL a dedicated LISTEN connection wakes the tailer as soon as any
//! replica commits an event; a short poll is the safety net, and the table is
//! always the truth. Subscriptions replay from the table, then switch to the
//! broadcast without a gap or a duplicate (see [`EventHub::subscribe`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::{Stream, StreamExt};
use tokio::sync::{Notify, broadcast, mpsc, watch};

use super::{Event, read_after};
use crate::db::{Backend, Db};
use crate::error::Result;

const BATCH: i64 = 500;
const POLL: Duration = Duration::from_millis(1000);

/// A listener called for every event in cursor order.
pub type Listener = Box<dyn Fn(&Event) + Send + Sync>;

/// Fans committed events out to subscriptions and listeners.
pub struct EventHub {
    db: Db,
    live: broadcast::Sender<Arc<Event>>,
    wake: Notify,
    head: watch::Sender<i64>,
    listeners: Mutex<Vec<Listener>>,
    subscribers: std::sync::atomic::AtomicI64,
}

impl EventHub {
    /// Creates the hub, positioned at the current end of the outbox.
    pub async fn new(db: Db) -> Result<Arc<EventHub>> {
        let head = {
            let mut c = db.conn().await?;
            super::head(&mut c.conn()).await?
        };
        let (live, _) = broadcast::channel(4096);
        Ok(Arc::new(EventHub {
            db,
            live,
            wake: Notify::new(),
            head: watch::channel(head).0,
            listeners: Mutex::new(Vec::new()),
            subscribers: 0.into(),
        }))
    }

    /// Registers a listener for every event dispatched from now on.
    pub fn listen(&self, f: Listener) {
        self.listeners.lock().expect("listeners lock").push(f);
    }

    /// Wakes the tailer now (called after a local commit).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// The last dispatched cursor.
    pub fn head(&self) -> i64 {
        *self.head.borrow()
    }

    /// Active subscription streams.
    pub fn subscriber_count(&self) -> i64 {
        self.subscribers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs the tailer until `shutdown` resolves. Spawn it once per process.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.db.backend() == Backend::Postgres {
            tokio::spawn(listen_loop(self.clone(), shutdown.clone()));
        }
        loop {
            if let Err(e) = self.dispatch_pending().await {
                tracing::warn!(error = %e, "event dispatch failed; retrying");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn dispatch_pending(&self) -> Result<()> {
        if self.db.backend() == Backend::Postgres {
            // Number what committed since; more than a batch wakes us again.
            let mut tx = self.db.begin().await?;
            let n = super::sequence(&mut tx.conn()).await?;
            tx.commit().await?;
            if n as i64 >= super::SEQUENCE_BATCH {
                self.poke();
            }
        }
        let mut conn = self.db.conn().await?;
        loop {
            let from = self.head();
            let batch = read_after(&mut conn.conn(), from, None, BATCH).await?;
            let n = batch.len() as i64;
            for event in batch {
                {
                    let listeners = self.listeners.lock().expect("listeners lock");
                    for l in listeners.iter() {
                        l(&event);
                    }
                }
                let seq = event.seq;
                // No receivers is fine: nobody is subscribed right now.
                let _ = self.live.send(Arc::new(event));
                self.head.send_replace(seq);
            }
            if n < BATCH {
                return Ok(());
            }
        }
    }

    /// A stream of events after `after` (or from now when `None`), limited to
    /// `topics` if given and to events `filter` accepts. Replays from the
    /// table first, then continues live, with no gap and no duplicate.
    pub fn subscribe(
        self: &Arc<Self>,
        after: Option<i64>,
        topics: Option<Vec<String>>,
        filter: Box<dyn Fn(&Event) -> bool + Send + Sync>,
    ) -> impl Stream<Item = Result<Arc<Event>>> + Send + 'static + use<> {
        // Subscribe to the live channel before reading the table: whatever is
        // dispatched from here on is buffered, whatever was dispatched before
        // is committed and so found by the replay.
        let mut rx = self.live.subscribe();
        let start = after.unwrap_or_else(|| self.head());
        let (tx, out) = mpsc::channel::<Result<Arc<Event>>>(64);
        let hub = self.clone();
        hub.subscribers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(async move {
            let wanted = |e: &Event| {
                topics
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|x| x == &e.topic))
                    && filter(e)
            };
            let mut last = start;
            'outer: loop {
                // Replay everything committed after `last`.
                let replay: Result<()> = async {
                    let mut conn = hub.db.conn().await?;
                    loop {
                        let batch =
                            read_after(&mut conn.conn(), last, topics.as_deref(), BATCH).await?;
                        let n = batch.len() as i64;
                        for e in batch {
                            last = e.seq;
                            if wanted(&e) && tx.send(Ok(Arc::new(e))).await.is_err() {
                                return Ok(());
                            }
                        }
                        if n < BATCH {
                            return Ok(());
                        }
                    }
                }
                .await;
                if let Err(e) = replay {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
                if tx.is_closed() {
                    break;
                }
                // Live: skip what the replay already sent.
                loop {
                    let next = tokio::select! {
                        r = rx.recv() => r,
                        // The client went away while nothing happened.
                        _ = tx.closed() => break 'outer,
                    };
                    match next {
                        Ok(e) if e.seq <= last => continue,
                        Ok(e) => {
                            last = e.seq;
                            if wanted(&e) && tx.send(Ok(e)).await.is_err() {
                                break 'outer;
                            }
                        }
                        // Fell behind the channel: catch up from the table.
                        Err(broadcast::error::RecvError::Lagged(_)) => continue 'outer,
                        Err(broadcast::error::RecvError::Closed) => break 'outer,
                    }
                }
            }
            hub.subscribers
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
        futures_util::stream::unfold(out, |mut out| async move {
            out.recv().await.map(|item| (item, out))
        })
        .boxed()
    }
}

/// Keeps a LISTEN connection open (reconnecting on failure) and pokes the
/// tailer on every notification.
async fn listen_loop(hub: Arc<EventHub>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let run = async {
            let mut conn = AsyncPgConnection::establish(hub.db.url()).await?;
            conn.batch_execute(&format!("LISTEN {}", super::NOTIFY_CHANNEL))
                .await?;
            // Anything committed while we were disconnected.
            hub.poke();
            let mut stream = std::pin::pin!(conn.notifications_stream());
            while let Some(n) = stream.next().await {
                n?;
                hub.poke();
            }
            Ok::<(), crate::error::Error>(())
        };
        tokio::select! {
            r = run => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "outbox LISTEN connection lost; reconnecting");
                }
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
