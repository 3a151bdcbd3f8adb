//! Events: what happened to units and to jarvisd, as it happened.
//!
//! The pure core says what happened (`Output::Event`); the event loop
//! stamps it (a sequence number and the time) and pushes it here. Readers
//! (`jarvisctl events`, `/api/v1/events`, the notifier, the dashboard) never
//! go through the loop: each takes the recent events it asked for and a
//! subscription, atomically, so none is missed or seen twice between the
//! two.
//!
//! Bounds: the last [`EVENTS_KEPT`] events are kept (older ones dropped
//! first); a subscriber that falls more than [`LAG`] events behind loses the
//! oldest of them and sees a gap in `seq`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use jarvis_proto::{Event, EventKind, EVENTS_KEPT};
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind before it loses some.
pub const LAG: usize = 1024;

/// The events kept in memory and the stream of new ones. One per jarvisd,
/// shared by `Arc`.
pub struct EventLog {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
}

struct Inner {
    seq: u64,
    ring: VecDeque<(Instant, Arc<Event>)>,
}

/// What a reader asks for: events of these units (empty: all), at most
/// `since` old (`None`: only new ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub units: Vec<String>,
    pub since: Option<Duration>,
}

impl Filter {
    /// Whether `e` is one the reader wants (jarvisd's own events, with no
    /// unit, go to readers of all units).
    pub fn wants(&self, e: &Event) -> bool {
        self.units.is_empty() || e.unit.as_ref().is_some_and(|u| self.units.contains(u))
    }
}

impl EventLog {
    pub fn new() -> Arc<EventLog> {
        let (tx, _) = broadcast::channel(LAG);
        Arc::new(EventLog {
            inner: Mutex::new(Inner {
                seq: 0,
                ring: VecDeque::with_capacity(EVENTS_KEPT),
            }),
            tx,
        })
    }

    /// Records an event now and sends it to every subscriber.
    pub fn push(&self, unit: Option<String>, kind: EventKind, message: String) -> Arc<Event> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.seq += 1;
        let event = Arc::new(Event {
            seq: inner.seq,
            time: rfc3339_millis(SystemTime::now()),
            unit,
            kind,
            message,
        });
        if inner.ring.len() == EVENTS_KEPT {
            inner.ring.pop_front();
        }
        inner.ring.push_back((Instant::now(), event.clone()));
        // Sent under the lock, so a subscriber sees each event exactly once:
        // in its backlog or on its receiver.
        let _ = self.tx.send(event.clone());
        event
    }

    /// The kept events `filter` wants, oldest first, and a receiver of the
    /// ones after them.
    pub fn subscribe(&self, filter: &Filter) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        let backlog = match filter.since {
            None => Vec::new(),
            Some(since) => {
                let now = Instant::now();
                inner
                    .ring
                    .iter()
                    .filter(|(at, e)| {
                        now.saturating_duration_since(*at) <= since && filter.wants(e)
                    })
                    .map(|(_, e)| e.clone())
                    .collect()
            }
        };
        (backlog, rx)
    }

    /// The kept events, oldest first (for tests and the dashboard's first
    /// paint).
    pub fn recent(&self) -> Vec<Arc<Event>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.ring.iter().map(|(_, e)| e.clone()).collect()
    }
}

/// The next event `filter` wants from `rx`; `None` once the log is gone.
/// Events lost to lag are skipped (the reader sees the gap in `seq`).
pub async fn next(rx: &mut broadcast::Receiver<Arc<Event>>, filter: &Filter) -> Option<Arc<Event>> {
    loop {
        match rx.recv().await {
            Ok(e) if filter.wants(&e) => return Some(e),
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(missed = n, "an events reader fell behind");
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// `2026-11-29T14:01:48.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(log: &EventLog, unit: &str, kind: EventKind) {
        log.push(Some(unit.into()), kind, format!("{unit} {kind}"));
    }

    #[tokio::test]
    async fn backlog_and_stream_meet_without_a_gap_or_a_repeat() {
        let log = EventLog::new();
        push(&log, "a", EventKind::Started);
        push(&log, "b", EventKind::Started);
        let all = Filter {
            units: vec![],
            since: Some(Duration::from_secs(60)),
        };
        let (backlog, mut rx) = log.subscribe(&all);
        assert_eq!(backlog.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        push(&log, "a", EventKind::Failed);
        let e = next(&mut rx, &all).await.unwrap();
        assert_eq!((e.seq, e.kind), (3, EventKind::Failed));
        assert!(e.time.ends_with('Z') && e.time.len() == 24, "{}", e.time);
    }

    #[tokio::test]
    async fn a_filter_keeps_its_units_and_jarvisd_s_own_only_for_all() {
        let log = EventLog::new();
        push(&log, "a", EventKind::Started);
        push(&log, "b", EventKind::Started);
        log.push(None, EventKind::Rollback, "generation 3 rolled back".into());
        let only_b = Filter {
            units: vec!["b".into()],
            since: Some(Duration::from_secs(60)),
        };
        let (backlog, _) = log.subscribe(&only_b);
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog[0].unit.as_deref(), Some("b"));
        // Without --since, nothing old.
        let (backlog, _) = log.subscribe(&Filter::default());
        assert!(backlog.is_empty());
    }

    #[test]
    fn only_the_last_events_are_kept() {
        let log = EventLog::new();
        for _ in 0..EVENTS_KEPT + 5 {
            push(&log, "a", EventKind::Started);
        }
        let kept = log.recent();
        assert_eq!(kept.len(), EVENTS_KEPT);
        assert_eq!(kept[0].seq, 6);
    }

    #[tokio::test]
    async fn a_reader_that_falls_behind_loses_the_oldest_and_sees_the_gap() {
        let log = EventLog::new();
        let all = Filter::default();
        let (_, mut rx) = log.subscribe(&all);
        for _ in 0..LAG + 10 {
            push(&log, "a", EventKind::Started);
        }
        let first = next(&mut rx, &all).await.unwrap();
        assert_eq!(first.seq, 11, "the 10 oldest were lost");
    }
}
