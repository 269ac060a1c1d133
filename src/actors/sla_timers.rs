//! A firm's SLA timers: one owned child per firm that has SLA policies, on the node that
//! owns the firm.
//!
//! It loads every pending moment (each running clock's due moment, and its warning moment
//! until given) into a [`Schedule`] and sleeps until the earliest. The schedule only says
//! when to wake: on waking, the database decides what fires (`cp_sla_fire`, under this
//! node's fencing token), sweeping everything due by then, so a moment the schedule missed
//! or kept too late is caught by the next sweep, and one it kept too early finds nothing.
//! Timers that came due while no node owned the firm are due at load and fire at once.
//!
//! A ticket whose moments move announces it on commit (`cp_child_notice`); the child
//! re-reads that ticket's clocks. When the node's listening connection was down, notices
//! may be lost, and the child loads everything again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::{ChildContext, ChildHandle, ChildKey, ChildKind, LiveContext, Placement, StopChild, spawn_child};
use crate::bus::live;
use crate::domain::sla_timers::{self, Alarm, Fired, PendingTimer, TIMERS_KEY, TIMERS_KIND};
use crate::domain::{DomainError, FirmId};

/// Fires per kind per transaction; a sweep repeats until one comes back short.
const FIRE_BATCH: i32 = 500;
/// Tickets re-read together after notices.
const RELOAD_BATCH: usize = 500;
/// After a failed sweep or load, the next try.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct SlaTimersKind;

impl ChildKind for SlaTimersKind {
    fn name(&self) -> &'static str {
        TIMERS_KIND
    }

    fn placement(&self) -> Placement {
        Placement::Owned
    }

    fn discover(&self, live: LiveContext, firm: FirmId) -> BoxFuture<'static, anyhow::Result<Vec<ChildKey>>> {
        Box::pin(async move {
            let needed = live
                .db()
                .firm_tx(firm, |conn| async move { sla_timers::firm_needs_timers(conn, firm).await }.scope_boxed())
                .await?;
            Ok(if needed { vec![TIMERS_KEY.to_owned()] } else { Vec::new() })
        })
    }

    fn start(&self, ctx: ChildContext) -> Box<dyn ChildHandle> {
        let span = ctx.span();
        Box::new(spawn_child(SlaTimers::new(ctx), span))
    }

    fn on_notice(&self, address: &(dyn std::any::Any + Send), what: Option<&str>) {
        let Some(timers) = address.downcast_ref::<Addr<SlaTimers>>() else { return };
        match what {
            Some(ticket) => {
                if let Ok(ticket) = ticket.parse::<Uuid>() {
                    timers.do_send(TicketMoved(ticket));
                }
            }
            None => timers.do_send(Reload),
        }
    }
}

/// Microseconds since the epoch: the schedule's time.
fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The moments the timers wait for, earliest first, and each clock's current ones so a
/// moved clock's old moments can be taken out. About 100 bytes a timer.
#[derive(Default)]
pub struct Schedule {
    by_time: BTreeSet<(i64, Uuid, u8)>,
    by_clock: HashMap<(Uuid, u8), i64>,
}

/// A clock's alarm as one byte: metric index times two, plus one for the breach.
fn code(timer: &PendingTimer) -> u8 {
    timer.metric * 2 + u8::from(timer.alarm == Alarm::Breach)
}

impl Schedule {
    pub fn len(&self) -> usize {
        self.by_clock.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_clock.is_empty()
    }

    pub fn insert(&mut self, timer: &PendingTimer) {
        let (key, at) = ((timer.ticket_id, code(timer)), micros(timer.at));
        if let Some(old) = self.by_clock.insert(key, at) {
            self.by_time.remove(&(old, key.0, key.1));
        }
        self.by_time.insert((at, key.0, key.1));
    }

    /// Replaces everything the schedule holds for `ticket` with `timers`.
    pub fn replace_ticket(&mut self, ticket: Uuid, timers: &[PendingTimer]) {
        let codes = u8::try_from(sla_timers::metric_count() * 2).unwrap_or(u8::MAX);
        for code in 0..codes {
            if let Some(at) = self.by_clock.remove(&(ticket, code)) {
                self.by_time.remove(&(at, ticket, code));
            }
        }
        for timer in timers.iter().filter(|t| t.ticket_id == ticket) {
            self.insert(timer);
        }
    }

    /// The earliest moment waited for.
    pub fn next(&self) -> Option<i64> {
        self.by_time.first().map(|(at, ..)| *at)
    }

    /// Takes out every moment up to `now`; how many there were.
    pub fn take_due(&mut self, now: i64) -> usize {
        let mut taken = 0;
        while let Some(&(at, ticket, code)) = self.by_time.first() {
            if at > now {
                break;
            }
            self.by_time.pop_first();
            self.by_clock.remove(&(ticket, code));
            taken += 1;
        }
        taken
    }

    pub fn clear(&mut self) {
        self.by_time.clear();
        self.by_clock.clear();
    }
}

pub struct SlaTimers {
    ctx: ChildContext,
    schedule: Schedule,
    /// Loading everything (at start, or after notices may have been lost).
    loading: bool,
    /// A sweep is running; another waits for it.
    sweeping: bool,
    /// When the next wake is set for, and its handle.
    wake: Option<(i64, SpawnHandle)>,
    /// Tickets whose moments moved, to re-read.
    moved: HashSet<Uuid>,
    reloading: bool,
    /// A failed sweep asks for another this soon.
    retry_at: Option<i64>,
    /// Notices were lost while a load ran that may have read before them: load again.
    reload_again: bool,
}

impl SlaTimers {
    fn new(ctx: ChildContext) -> Self {
        SlaTimers {
            ctx,
            schedule: Schedule::default(),
            loading: false,
            sweeping: false,
            wake: None,
            moved: HashSet::new(),
            reloading: false,
            retry_at: None,
            reload_again: false,
        }
    }

    /// Reads every pending moment of the firm, streamed from one query, into a new schedule.
    fn load(&mut self, ctx: &mut Context<Self>) {
        self.loading = true;
        let (live, firm) = (self.ctx.live.clone(), self.ctx.firm);
        let started = Instant::now();
        ctx.spawn(
            async move {
                live.db()
                    .firm_tx(firm, |conn| {
                        async move {
                            let mut schedule = Schedule::default();
                            sla_timers::each_pending(conn, firm, |timer| schedule.insert(&timer)).await?;
                            Ok::<_, DomainError>(schedule)
                        }
                        .scope_boxed()
                    })
                    .await
            }
            .into_actor(self)
            .map(move |loaded, timers, ctx| {
                timers.loading = false;
                match loaded {
                    Ok(schedule) => {
                        tracing::info!(
                            pending = schedule.len(),
                            load_ms = started.elapsed().as_millis() as u64,
                            "SLA timers loaded"
                        );
                        metrics::histogram!("cp_sla_timers_load_seconds").record(started.elapsed().as_secs_f64());
                        timers.schedule = schedule;
                        if std::mem::take(&mut timers.reload_again) {
                            timers.load(ctx);
                            return;
                        }
                        // Tickets that moved while the load ran may have been read before.
                        timers.reload_moved(ctx);
                        timers.arm(ctx);
                    }
                    Err(err) => {
                        timers.ctx.fail(format!("loading SLA timers failed: {err}"));
                        ctx.stop();
                    }
                }
            }),
        );
    }

    /// Sets the wake-up for the earliest moment (or a retry), or sweeps now when it is due.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        if self.loading {
            return;
        }
        let next = match (self.schedule.next(), self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(next) = next else {
            if let Some((_, handle)) = self.wake.take() {
                ctx.cancel_future(handle);
            }
            return;
        };
        if self.wake.as_ref().is_some_and(|(at, _)| *at == next) {
            return;
        }
        if let Some((_, handle)) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        let wait = u64::try_from(next - micros(Utc::now())).unwrap_or(0);
        let handle = ctx.run_later(Duration::from_micros(wait), |timers, ctx| {
            timers.wake = None;
            timers.sweep(ctx);
        });
        self.wake = Some((next, handle));
    }

    /// Fires whatever is due now, in the database, then publishes what fired.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping || self.loading {
            return;
        }
        let now = Utc::now();
        if self.schedule.next().is_none_or(|at| at > micros(now)) && self.retry_at.is_none_or(|at| at > micros(now)) {
            self.arm(ctx);
            return;
        }
        self.sweeping = true;
        self.retry_at = None;
        self.schedule.take_due(micros(now));
        let (live, firm) = (self.ctx.live.clone(), self.ctx.firm);
        let token = self.ctx.fencing_token.unwrap_or(-1);
        let cluster_name = live.settings().cluster.name.clone();
        ctx.spawn(
            async move {
                let mut all: Vec<(Fired, DateTime<Utc>)> = Vec::new();
                loop {
                    let cluster_name = cluster_name.clone();
                    let fired = live
                        .db()
                        .firm_tx(firm, |conn| {
                            async move { sla_timers::fire_due(conn, firm, &cluster_name, token, now, FIRE_BATCH).await }
                                .scope_boxed()
                        })
                        .await?;
                    let Some(fired) = fired else { return Ok(None) };
                    let fired_at = Utc::now();
                    // Until a round finds nothing: a clock met meanwhile makes a round short
                    // without meaning that nothing is left.
                    let done = fired.is_empty();
                    for fire in &fired {
                        live::publish_event(live.bus(), firm, fire.alarm().event_type().as_str(), fire.payload(now))
                            .await;
                    }
                    all.extend(fired.into_iter().map(|f| (f, fired_at)));
                    if done {
                        return Ok::<_, DomainError>(Some(all));
                    }
                }
            }
            .into_actor(self)
            .map(move |swept, timers, ctx| {
                timers.sweeping = false;
                match swept {
                    Ok(Some(fired)) => {
                        for (fire, fired_at) in &fired {
                            metrics::counter!("cp_sla_fired_total", "alarm" => fire.alarm().event_type().as_str())
                                .increment(1);
                            let due = match fire.alarm() {
                                Alarm::Breach => fire.due_at,
                                Alarm::Warning => None,
                            };
                            if let Some(due) = due {
                                let skew = (*fired_at - due).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
                                metrics::histogram!("cp_sla_fire_skew_seconds").record(skew);
                            }
                        }
                        timers.arm(ctx);
                    }
                    Ok(None) => {
                        // Another node holds the firm now (or is about to): its timers fire.
                        timers.ctx.fail("the firm's ownership moved; SLA timers stop here");
                        ctx.stop();
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "firing SLA timers failed; trying again shortly");
                        timers.retry_at = Some(micros(Utc::now()) + RETRY_AFTER.as_micros() as i64);
                        timers.arm(ctx);
                    }
                }
            }),
        );
    }

    /// Re-reads the clocks of tickets whose moments moved.
    fn reload_moved(&mut self, ctx: &mut Context<Self>) {
        if self.reloading || self.loading || self.moved.is_empty() {
            return;
        }
        self.reloading = true;
        let batch: Vec<Uuid> = self.moved.iter().take(RELOAD_BATCH).copied().collect();
        for ticket in &batch {
            self.moved.remove(ticket);
        }
        let (live, firm) = (self.ctx.live.clone(), self.ctx.firm);
        let tickets = batch.clone();
        ctx.spawn(
            async move {
                live.db()
                    .firm_tx(firm, |conn| {
                        async move { sla_timers::pending_for(conn, firm, &tickets).await }.scope_boxed()
                    })
                    .await
            }
            .into_actor(self)
            .map(move |read, timers, ctx| {
                timers.reloading = false;
                match read {
                    Ok(pending) => {
                        for ticket in &batch {
                            timers.schedule.replace_ticket(*ticket, &pending);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "re-reading moved SLA clocks failed; trying again");
                        timers.moved.extend(batch);
                        timers.retry_at = Some(micros(Utc::now()) + RETRY_AFTER.as_micros() as i64);
                    }
                }
                timers.arm(ctx);
                timers.reload_moved(ctx);
            }),
        );
    }
}

impl Actor for SlaTimers {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.load(ctx);
    }
}

impl Handler<StopChild> for SlaTimers {
    type Result = ();

    fn handle(&mut self, _: StopChild, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A ticket's due moments moved.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TicketMoved(pub Uuid);

impl Handler<TicketMoved> for SlaTimers {
    type Result = ();

    fn handle(&mut self, moved: TicketMoved, ctx: &mut Self::Context) {
        self.moved.insert(moved.0);
        self.reload_moved(ctx);
    }
}

/// Notices may have been lost: load everything again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload;

impl Handler<Reload> for SlaTimers {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        if self.loading {
            self.reload_again = true;
            return;
        }
        if let Some((_, handle)) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        self.schedule.clear();
        self.moved.clear();
        self.load(ctx);
    }
}

/// How many moments the child waits for (tests and the benchmark).
#[derive(Message)]
#[rtype(result = "Option<usize>")]
pub struct PendingCount;

impl Handler<PendingCount> for SlaTimers {
    type Result = Option<usize>;

    fn handle(&mut self, _: PendingCount, _ctx: &mut Self::Context) -> Option<usize> {
        (!self.loading).then(|| self.schedule.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(ticket: Uuid, metric: u8, alarm: Alarm, at: &str) -> PendingTimer {
        PendingTimer { ticket_id: ticket, metric, alarm, at: at.parse().unwrap() }
    }

    #[test]
    fn the_schedule_wakes_for_the_earliest_and_forgets_a_clock_s_old_moments() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut schedule = Schedule::default();
        schedule.insert(&timer(a, 0, Alarm::Warning, "2026-12-02T10:00:00Z"));
        schedule.insert(&timer(a, 0, Alarm::Breach, "2026-12-02T11:00:00Z"));
        schedule.insert(&timer(b, 2, Alarm::Breach, "2026-12-02T09:30:00Z"));
        assert_eq!(schedule.len(), 3);
        assert_eq!(schedule.next(), Some(micros("2026-12-02T09:30:00Z".parse().unwrap())));
        // Ticket b was answered: its moments go; a's breach moves earlier.
        schedule.replace_ticket(b, &[]);
        schedule.replace_ticket(a, &[timer(a, 0, Alarm::Breach, "2026-12-02T10:30:00Z")]);
        assert_eq!(schedule.len(), 1);
        assert_eq!(schedule.next(), Some(micros("2026-12-02T10:30:00Z".parse().unwrap())));
        // The same clock inserted again keeps one moment, the new one.
        schedule.insert(&timer(a, 0, Alarm::Breach, "2026-12-02T12:00:00Z"));
        assert_eq!(schedule.len(), 1);
        assert_eq!(schedule.take_due(micros("2026-12-02T11:59:59Z".parse().unwrap())), 0);
        assert_eq!(schedule.take_due(micros("2026-12-02T12:00:00Z".parse().unwrap())), 1);
        assert!(schedule.is_empty());
        assert_eq!(schedule.next(), None);
    }
}
