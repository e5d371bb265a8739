//! The heartbeat loop on the publisher thread: the latest state the agent asked for is published
//! at once, and the record is refreshed every interval while the work loop progresses. It also
//! pings futures in a `waiting` scope, four times per `stall_after`, so an agent idle for input
//! proves its executor responsive instead of looking frozen.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::record::State;

use super::clock::Progress;
use super::sink::Sink;

/// What the agent last asked for. A `watch` channel carries it: the latest state wins, and a
/// burst of calls costs one write, not a queue of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Desired {
    pub(crate) state: State,
    pub(crate) reason: String,
    /// Publish `stopping`, remove the record and end.
    pub(crate) stop: bool,
}

impl Desired {
    pub(crate) fn starting() -> Desired {
        Desired {
            state: State::Starting,
            reason: String::new(),
            stop: false,
        }
    }
}

/// The loop's state.
pub(crate) struct Heartbeat {
    pub(crate) sink: Sink,
    pub(crate) progress: Arc<Progress>,
    pub(crate) stall_after: Duration,
    stalled: bool,
}

impl Heartbeat {
    pub(crate) fn new(sink: Sink, progress: Arc<Progress>, stall_after: Duration) -> Heartbeat {
        Heartbeat {
            sink,
            progress,
            stall_after,
            stalled: false,
        }
    }

    /// Publishes `starting`, then follows `desired` and beats until asked to stop (or every
    /// sender is gone).
    pub(crate) async fn run(mut self, mut desired: watch::Receiver<Desired>) {
        self.sink.write(true).await;
        let interval = self.sink.id.interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Four pings per stall_after: a responsive executor answers well before the stall, and
        // one that stops polling has answered at most a quarter of stall_after before it stopped.
        let ping_every = (self.stall_after / 4).max(Duration::from_millis(10));
        let mut pinger = tokio::time::interval(ping_every);
        pinger.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let nats_back = self.sink.nats_reconnects();
        loop {
            tokio::select! {
                changed = desired.changed() => {
                    let want = match changed {
                        Ok(()) => desired.borrow_and_update().clone(),
                        Err(_) => Desired { stop: true, ..Desired::starting() },
                    };
                    if want.stop {
                        self.stop().await;
                        return;
                    }
                    self.stalled = false;
                    self.sink.set(want.state, &want.reason).await;
                }
                _ = ticker.tick() => self.beat().await,
                _ = pinger.tick() => self.progress.ping(),
                // NATS is back (perhaps on another server): the state is republished now rather
                // than at the next beat, as an event sent while the old server died may be lost.
                // An early beat, so a stalled loop still refreshes nothing.
                () = nats_back.notified() => self.beat().await,
            }
        }
    }

    /// One heartbeat: a refresh while the last progress is within `stall_after`, nothing once it
    /// is not, so the record goes stale and expires while the process lives.
    async fn beat(&mut self) {
        let progressing =
            self.progress.progressing(self.stall_after) || self.sink.state == State::Stopping;
        if !progressing {
            if !self.stalled {
                tracing::warn!(agent = %self.sink.agent(), stall_after = ?self.stall_after,
                    "no progress from the work loop; the record is no longer refreshed");
                self.stalled = true;
            }
            return;
        }
        if self.stalled {
            tracing::info!(agent = %self.sink.agent(), "the work loop is moving again");
            self.stalled = false;
        }
        self.sink.write(false).await;
    }

    /// `stopping`, then the record's removal; a fenced instance leaves the record alone.
    async fn stop(&mut self) {
        if !self.sink.fenced() {
            self.sink.set(State::Stopping, "").await;
            self.sink.remove().await;
        }
        self.sink.flush().await;
    }
}

#[cfg(test)]
mod tests {
    //! The stall, stale and dead transitions with tokio's paused clock, through the file backend
    //! (its records are stamped by the injected wall clock and judged by it).

    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;
    use crate::observer::ReplicaStatus;
    use crate::publisher::clock::WallClock;
    use crate::publisher::identity::Identity;
    use crate::{Name, Observed, Record, StoreConfig, file_store};

    const INTERVAL: Duration = Duration::from_millis(100);
    const STALL_AFTER: Duration = Duration::from_millis(1000);
    const TTL: Duration = Duration::from_millis(300);

    struct Rig {
        clock: WallClock,
        progress: Arc<Progress>,
        desired: watch::Sender<Desired>,
        path: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    fn rig() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreConfig::new().dir(dir.path());
        let name = |s: &str| Name::new(s).unwrap();
        let id = Identity {
            agent: name("worker"),
            replica: name("r1"),
            instance: "1732540000000-0a1b2c3d".into(),
            pid: 7,
            host: "h".into(),
            interval: INTERVAL,
            ttl: TTL,
        };
        let clock = WallClock::Tokio {
            unix_at: 1_732_540_000_000,
            at: tokio::time::Instant::now(),
        };
        let path = file_store::record_path(dir.path(), &name("default"), &id.agent, &id.replica);
        let sink = Sink::new(store, id, clock.clone(), State::Starting, "");
        let progress = Arc::new(Progress::new());
        let (desired, rx) = watch::channel(Desired::starting());
        tokio::spawn(Heartbeat::new(sink, Arc::clone(&progress), STALL_AFTER).run(rx));
        Rig {
            clock,
            progress,
            desired,
            path,
            _dir: dir,
        }
    }

    fn read(path: &Path) -> Record {
        file_store::read(path).unwrap().unwrap()
    }

    fn judge(rig: &Rig) -> Observed {
        let record = read(&rig.path);
        let now = rig.clock.unix_ms();
        let name = |s: &str| Name::new(s).unwrap();
        ReplicaStatus::judge(
            &name("worker"),
            &name("r1"),
            &record,
            now,
            now.saturating_sub(record.beat_ms),
        )
        .state
    }

    /// Steps paused time by `step` until `until` (ms since `from`), ticking when `tick`.
    async fn run_for(rig: &Rig, total: Duration, tick: bool) {
        let began = tokio::time::Instant::now();
        while began.elapsed() < total {
            if tick {
                rig.progress.tick();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Refreshes stop `stall_after` after the last tick; the record reads stale within two
    /// intervals and dead within the TTL after that, all in paused time.
    #[tokio::test(start_paused = true)]
    async fn refreshes_stop_stall_after_the_last_progress_then_stale_then_dead() {
        let rig = rig();
        rig.desired.send_modify(|d| d.state = State::Ready);
        run_for(&rig, Duration::from_secs(3), true).await;
        assert_eq!(judge(&rig), Observed::Ready);
        let last_tick = rig.clock.unix_ms();
        // The loop stalls; the publisher is still alive. Watch every 10 ms.
        let mut stale_at = None;
        let mut dead_at = None;
        let began = tokio::time::Instant::now();
        while began.elapsed() < STALL_AFTER + TTL * 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = rig.clock.unix_ms();
            match judge(&rig) {
                Observed::Stale if stale_at.is_none() => stale_at = Some(now - last_tick),
                Observed::Dead if dead_at.is_none() => dead_at = Some(now - last_tick),
                _ => {}
            }
        }
        let last_beat = read(&rig.path).beat_ms - last_tick;
        let ms = |d: Duration| d.as_millis() as u64;
        assert!(
            last_beat <= ms(STALL_AFTER) && last_beat + 10 >= ms(STALL_AFTER - INTERVAL),
            "last refresh {last_beat} ms after the last tick"
        );
        let stale_at = stale_at.unwrap();
        assert!(
            stale_at <= ms(STALL_AFTER + INTERVAL * 2) + 10,
            "stale {stale_at} ms after the last tick"
        );
        let dead_at = dead_at.unwrap();
        assert!(
            dead_at <= ms(STALL_AFTER + TTL) + 10,
            "dead {dead_at} ms after the last tick"
        );
        // Progress again: the same instance refreshes within an interval.
        rig.progress.tick();
        run_for(&rig, INTERVAL + Duration::from_millis(10), true).await;
        assert_eq!(judge(&rig), Observed::Ready);
    }

    /// Progress reported late (a progress file's modification time, read by a wrapper every
    /// 300 ms) counts from when it happened: refreshes stop `stall_after` after the last touch,
    /// not `stall_after` after the wrapper last saw a fresh file.
    #[tokio::test(start_paused = true)]
    async fn late_reported_progress_counts_from_when_it_happened() {
        let rig = rig();
        rig.desired.send_modify(|d| d.state = State::Ready);
        let began = tokio::time::Instant::now();
        let mut last_touch = began;
        let mut last_report = began;
        while began.elapsed() < Duration::from_secs(6) {
            // The work touches its file every 50 ms for 2 s, then hangs.
            if began.elapsed() < Duration::from_secs(2) {
                last_touch = tokio::time::Instant::now();
            }
            if last_report.elapsed() >= Duration::from_millis(300) {
                rig.progress.progressed_ago(last_touch.elapsed());
                last_report = tokio::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let touched = rig.clock.unix_ms() - last_touch.elapsed().as_millis() as u64;
        let last_beat = read(&rig.path).beat_ms;
        assert!(
            last_beat <= touched + STALL_AFTER.as_millis() as u64,
            "refreshed {} ms after the last touch",
            last_beat - touched
        );
        assert_eq!(judge(&rig), Observed::Dead);
    }

    /// An agent waiting for input inside `waiting()` for ten times `stall_after`, with no tick
    /// of its own, stays ready: its executor keeps answering the publisher's pings.
    #[tokio::test(start_paused = true)]
    async fn an_agent_idle_in_waiting_for_ten_stall_afters_stays_fresh() {
        let rig = rig();
        rig.desired.send_modify(|d| d.state = State::Ready);
        let progress = Arc::clone(&rig.progress);
        let idle =
            tokio::spawn(
                async move { progress.waiting(tokio::time::sleep(STALL_AFTER * 10)).await },
            );
        let began = tokio::time::Instant::now();
        while began.elapsed() < STALL_AFTER * 10 {
            tokio::time::sleep(INTERVAL).await;
            assert_eq!(
                judge(&rig),
                Observed::Ready,
                "idle agent judged at {:?}",
                began.elapsed()
            );
        }
        idle.await.unwrap();
        // The control: the same idle time without `waiting()` reads stale.
        run_for(&rig, STALL_AFTER * 2, false).await;
        assert_eq!(judge(&rig), Observed::Dead);
    }

    /// An agent frozen while waiting (its executor no longer polls the `waiting()` future: the
    /// future below is polled once, then never again) goes stale within `stall_after` + two
    /// intervals of the freeze, and dead within `stall_after` + the TTL.
    #[tokio::test(start_paused = true)]
    async fn an_agent_frozen_while_waiting_goes_stale_within_stall_after() {
        let rig = rig();
        rig.desired.send_modify(|d| d.state = State::Ready);
        run_for(&rig, Duration::from_secs(1), true).await;
        let mut frozen = Box::pin(rig.progress.waiting(std::future::pending::<()>()));
        // One poll: the scope is entered (a tick), then the executor "freezes".
        assert!(futures_poll_once(frozen.as_mut()).is_pending());
        let frozen_at = rig.clock.unix_ms();
        let mut stale_at = None;
        let mut dead_at = None;
        let began = tokio::time::Instant::now();
        while began.elapsed() < STALL_AFTER + TTL * 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = rig.clock.unix_ms();
            match judge(&rig) {
                Observed::Stale if stale_at.is_none() => stale_at = Some(now - frozen_at),
                Observed::Dead if dead_at.is_none() => dead_at = Some(now - frozen_at),
                _ => {}
            }
        }
        let ms = |d: Duration| d.as_millis() as u64;
        let stale_at = stale_at.unwrap();
        assert!(
            stale_at >= ms(STALL_AFTER) && stale_at <= ms(STALL_AFTER + INTERVAL * 2) + 10,
            "stale {stale_at} ms after the freeze"
        );
        assert!(
            dead_at.unwrap() <= ms(STALL_AFTER + TTL) + 10,
            "dead {dead_at:?} ms after the freeze"
        );
        drop(frozen);
    }

    /// Polls a future once with a waker that does nothing: what an executor that then freezes
    /// has done to it.
    fn futures_poll_once<F: std::future::Future>(
        fut: std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        fut.poll(&mut cx)
    }

    /// The latest state wins: a burst of changes publishes the last one; stop removes the file.
    #[tokio::test(start_paused = true)]
    async fn the_latest_state_wins_and_stop_removes_the_record() {
        let rig = rig();
        for i in 0..100 {
            rig.desired.send_modify(|d| {
                d.state = State::NotReady;
                d.reason = format!("step {i}");
            });
        }
        rig.desired.send_modify(|d| d.state = State::Ready);
        run_for(&rig, INTERVAL, true).await;
        let record = read(&rig.path);
        assert_eq!(
            (record.state, record.reason.as_str()),
            (State::Ready, "step 99")
        );
        assert!(record.seq <= 3, "{} writes for a burst", record.seq);
        rig.desired.send_modify(|d| d.stop = true);
        run_for(&rig, INTERVAL, false).await;
        assert!(!rig.path.exists());
    }
}
