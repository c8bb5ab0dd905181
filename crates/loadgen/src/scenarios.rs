//! The scenarios. Each returns its results as one JSON object.
//!
//! Concurrency is a fixed set of light tokio tasks pulling work from an atomic counter (no task
//! per login); the messages scenario runs one reader task per receiver and one writer task per
//! sender, with a reused buffer per writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context as _;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::args::{Args, Scenario};
use crate::procfs::{ProcSample, ProcWatch};
use crate::stats::Samples;
use crate::xmpp::{self, parse_body, write_message, Read, Session, Target, RESOURCE};

/// Runs the scenario in `args` against `target`.
pub async fn run(args: &Args, target: &Target) -> anyhow::Result<Map<String, Value>> {
    let watch = args.server_pid.map(|pid| ProcWatch::new(Some(pid)));
    match &args.scenario {
        Scenario::Login { count, concurrency } => {
            login(args, target, watch.as_ref(), *count, *concurrency).await
        }
        Scenario::Idle {
            sessions,
            concurrency,
            hold_secs,
        } => {
            idle(
                args,
                target,
                watch.as_ref(),
                *sessions,
                *concurrency,
                *hold_secs,
            )
            .await
        }
        Scenario::Messages {
            pairs,
            rate,
            window,
            duration_secs,
            drain_secs,
        } => {
            messages(
                args,
                target,
                watch.as_ref(),
                MessagePlan {
                    pairs: *pairs,
                    rate: *rate,
                    window: *window,
                    duration: Duration::from_secs(*duration_secs),
                    drain: Duration::from_secs(*drain_secs),
                },
            )
            .await
        }
        Scenario::Churn {
            cycles,
            concurrency,
            sample,
        } => churn(args, target, watch.as_ref(), *cycles, *concurrency, *sample).await,
    }
}

fn sample(watch: Option<&ProcWatch>) -> anyhow::Result<Option<ProcSample>> {
    watch.map(ProcWatch::sample).transpose()
}

/// Failures seen: how many, and the first one's message.
#[derive(Debug, Default)]
struct Errors {
    count: u64,
    first: Option<String>,
}

impl Errors {
    fn add(&mut self, e: &anyhow::Error) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(format!("{e:#}"));
        }
    }
    fn merge(&mut self, other: Errors) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
    fn write(&self, out: &mut Map<String, Value>) {
        out.insert("errors".into(), json!(self.count));
        out.insert("first_error".into(), json!(self.first));
    }
}

/// What a pool of login workers produced.
struct LoginRun {
    ok: u64,
    latencies: Samples,
    errors: Errors,
    elapsed: Duration,
    /// Kept sessions with their account index, in index order.
    sessions: Vec<(u64, Session)>,
}

/// Logs in accounts `start..start + count` (indices into the account pattern) with
/// `concurrency` workers. `keep` keeps the sessions; otherwise each is logged out at once.
async fn login_pool(
    args: &Args,
    target: &Target,
    start: u64,
    count: u64,
    concurrency: usize,
    keep: bool,
) -> LoginRun {
    let next = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let next = next.clone();
        let target = target.clone();
        let args = args.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Samples::default();
            let mut errors = Errors::default();
            let mut sessions = Vec::new();
            let mut ok = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let t0 = Instant::now();
                match xmpp::login(
                    &target,
                    &args.localpart(start + i),
                    &args.resource(start + i),
                )
                .await
                {
                    Ok(s) => {
                        latencies.push_micros(t0.elapsed().as_micros() as u64);
                        ok += 1;
                        if keep {
                            sessions.push((i, s));
                        } else if let Err(e) = xmpp::logout(s, target.timeout).await {
                            errors.add(&e.context("logging out"));
                        }
                    }
                    Err(e) => errors.add(&e),
                }
            }
            (ok, latencies, errors, sessions)
        }));
    }
    let mut run = LoginRun {
        ok: 0,
        latencies: Samples::default(),
        errors: Errors::default(),
        elapsed: Duration::ZERO,
        sessions: Vec::new(),
    };
    for w in workers {
        match w.await {
            Ok((ok, lat, err, sessions)) => {
                run.ok += ok;
                run.latencies.merge(lat);
                run.errors.merge(err);
                run.sessions.extend(sessions);
            }
            Err(e) => run.errors.add(&anyhow::anyhow!("a login worker died: {e}")),
        }
    }
    run.elapsed = began.elapsed();
    run.sessions.sort_by_key(|(i, _)| *i);
    run
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Server CPU per `unit` events between two samples, in ms.
fn cpu_per(before: Option<ProcSample>, after: Option<ProcSample>, events: u64, unit: f64) -> Value {
    match (before, after) {
        (Some(b), Some(a)) if events > 0 => {
            json!(round3(
                (a.cpu_ms.saturating_sub(b.cpu_ms)) as f64 * unit / events as f64
            ))
        }
        _ => Value::Null,
    }
}

async fn login(
    args: &Args,
    target: &Target,
    watch: Option<&ProcWatch>,
    count: u64,
    concurrency: usize,
) -> anyhow::Result<Map<String, Value>> {
    let before = sample(watch)?;
    let self_before = ProcWatch::new(None).sample()?;
    let mut run = login_pool(args, target, 0, count, concurrency, false).await;
    let after = sample(watch)?;
    let self_after = ProcWatch::new(None).sample()?;
    let mut out = Map::new();
    out.insert("logins".into(), json!(run.ok));
    out.insert("concurrency".into(), json!(concurrency));
    out.insert("elapsed_s".into(), json!(round3(run.elapsed.as_secs_f64())));
    out.insert(
        "sessions_per_s".into(),
        json!(round3(per_sec(run.ok, run.elapsed))),
    );
    out.insert("setup_ms".into(), run.latencies.summary_ms());
    out.insert(
        "server_cpu_ms_per_login".into(),
        cpu_per(before, after, run.ok, 1.0),
    );
    out.insert(
        "loadgen_cpu_ms_per_login".into(),
        cpu_per(Some(self_before), Some(self_after), run.ok, 1.0),
    );
    run.errors.write(&mut out);
    Ok(out)
}

async fn idle(
    args: &Args,
    target: &Target,
    watch: Option<&ProcWatch>,
    sessions: u64,
    concurrency: usize,
    hold_secs: u64,
) -> anyhow::Result<Map<String, Value>> {
    let before = sample(watch)?;
    let mut run = login_pool(args, target, 0, sessions, concurrency, true).await;
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    // Every session must still be open: a server that dropped idle sessions would look lean.
    let mut alive = Vec::with_capacity(run.sessions.len());
    for (_, mut s) in std::mem::take(&mut run.sessions) {
        match s.send(b" ").await {
            Ok(()) => alive.push(s),
            Err(e) => run.errors.add(&e.context("an idle session was closed")),
        }
    }
    let after = sample(watch)?;
    let mut out = Map::new();
    out.insert("sessions".into(), json!(run.ok));
    out.insert("alive".into(), json!(alive.len()));
    out.insert("hold_s".into(), json!(hold_secs));
    out.insert("setup_ms".into(), run.latencies.summary_ms());
    if let (Some(b), Some(a)) = (before, after) {
        out.insert("server_rss_kib_before".into(), json!(b.rss_kib));
        out.insert("server_rss_kib_after".into(), json!(a.rss_kib));
        let per = if alive.is_empty() {
            Value::Null
        } else {
            json!(round3(
                a.rss_kib.saturating_sub(b.rss_kib) as f64 / alive.len() as f64
            ))
        };
        out.insert("server_rss_kib_per_session".into(), per);
    }
    run.errors.write(&mut out);
    for s in alive {
        drop(s);
    }
    Ok(out)
}

/// Parameters of the messages scenario.
#[derive(Debug, Clone, Copy)]
struct MessagePlan {
    pairs: u64,
    rate: Option<u64>,
    window: u64,
    duration: Duration,
    drain: Duration,
}

/// Shared between a pair's sender and receiver.
#[derive(Debug)]
struct Pair {
    /// Messages received (distinct sequence numbers are not tracked: the server must not
    /// duplicate, and a duplicate would show as `received > sent`).
    received: AtomicU64,
    /// The final number sent, `u64::MAX` while sending.
    sent_final: AtomicU64,
    /// Wakes the sender (window space) and the receiver (sending stopped).
    to_sender: Notify,
    to_receiver: Notify,
}

struct ReceiverResult {
    received: u64,
    reordered: u64,
    latencies: Samples,
    errors: Errors,
}

async fn messages(
    args: &Args,
    target: &Target,
    watch: Option<&ProcWatch>,
    plan: MessagePlan,
) -> anyhow::Result<Map<String, Value>> {
    let mut run = login_pool(
        args,
        target,
        0,
        plan.pairs * 2,
        50.min(plan.pairs as usize * 2),
        true,
    )
    .await;
    if run.sessions.len() as u64 != plan.pairs * 2 {
        anyhow::bail!(
            "only {} of {} sessions logged in; first error: {}",
            run.sessions.len(),
            plan.pairs * 2,
            run.errors.first.unwrap_or_default()
        );
    }
    // Sessions come sorted by account index: pair k is accounts 2k (sender) and 2k + 1.
    let sessions = std::mem::take(&mut run.sessions);
    let base = Instant::now();
    let expected_per_pair = plan
        .rate
        .map(|r| (r as f64 * plan.duration.as_secs_f64() / plan.pairs as f64).ceil() as usize);
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let mut drains = Vec::new();
    let mut states = Vec::new();
    let mut iter = sessions.into_iter();
    let stop_at = base + plan.duration;
    let drain_deadline = stop_at + plan.drain;
    let before = sample(watch)?;
    while let (Some((_, sender)), Some((_, receiver))) = (iter.next(), iter.next()) {
        let pair = Arc::new(Pair {
            received: AtomicU64::new(0),
            sent_final: AtomicU64::new(u64::MAX),
            to_sender: Notify::new(),
            to_receiver: Notify::new(),
        });
        states.push(pair.clone());
        let (mut rx, _rx_w) = receiver.split();
        let (mut srx, mut tx) = sender.split();
        let p = pair.clone();
        let cap = expected_per_pair.unwrap_or(1 << 16);
        receivers.push(tokio::spawn(async move {
            let mut r = ReceiverResult {
                received: 0,
                reordered: 0,
                latencies: Samples::with_capacity(cap),
                errors: Errors::default(),
            };
            let mut max_seq: Option<u64> = None;
            let _keep_writer = _rx_w;
            loop {
                let read = tokio::select! {
                    read = rx.next() => read,
                    () = p.to_receiver.notified() => {
                        if r.received >= p.sent_final.load(Ordering::Acquire) { break; }
                        continue;
                    }
                    () = tokio::time::sleep_until(drain_deadline) => break,
                };
                let el = match read {
                    Ok(Read::Element(el)) => el,
                    Ok(Read::Closed) => {
                        r.errors
                            .add(&anyhow::anyhow!("the server closed a receiver's stream"));
                        break;
                    }
                    Err(e) => {
                        r.errors.add(&e);
                        break;
                    }
                };
                if el.name != "message" {
                    continue;
                }
                if el.attr("type") == Some("error") {
                    r.errors.add(&anyhow::anyhow!(
                        "message error: {}",
                        el.to_xml("jabber:client")
                    ));
                    continue;
                }
                let Some((seq, sent_us)) = el
                    .child("body", "jabber:client")
                    .and_then(|b| parse_body(&b.text()))
                else {
                    continue;
                };
                let now_us = base.elapsed().as_micros() as u64;
                r.latencies.push_micros(now_us.saturating_sub(sent_us));
                match max_seq {
                    Some(m) if seq < m => r.reordered += 1,
                    _ => max_seq = Some(seq),
                }
                r.received += 1;
                p.received.store(r.received, Ordering::Release);
                p.to_sender.notify_one();
                if r.received >= p.sent_final.load(Ordering::Acquire) {
                    break;
                }
            }
            r
        }));
        // The sender's own stream: errors bounced to it are counted, the rest discarded.
        drains.push(tokio::spawn(async move {
            let mut errors = Errors::default();
            while let Ok(Read::Element(el)) = srx.next().await {
                if el.name == "message" && el.attr("type") == Some("error") {
                    errors.add(&anyhow::anyhow!("bounced: {}", el.to_xml("jabber:client")));
                }
            }
            errors
        }));
        let receiver_localpart = pair_receiver_localpart(args, states.len() as u64 - 1);
        let to = format!("{receiver_localpart}@{}/{RESOURCE}", args.domain);
        let p = pair.clone();
        let rate = plan.rate;
        let pairs = plan.pairs;
        let window = plan.window;
        senders.push(tokio::spawn(async move {
            let mut buf = String::with_capacity(128 + to.len());
            let mut sent: u64 = 0;
            let mut interval = rate.map(|r| {
                let period = Duration::from_secs_f64(pairs as f64 / r as f64);
                let mut i = tokio::time::interval(period);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                i
            });
            let result: anyhow::Result<()> = async {
                loop {
                    if Instant::now() >= stop_at {
                        break;
                    }
                    match interval.as_mut() {
                        Some(i) => {
                            tokio::select! {
                                _ = i.tick() => {}
                                () = tokio::time::sleep_until(stop_at) => break,
                            }
                        }
                        None => {
                            while sent.saturating_sub(p.received.load(Ordering::Acquire)) >= window
                            {
                                tokio::select! {
                                    () = p.to_sender.notified() => {}
                                    () = tokio::time::sleep_until(stop_at) => break,
                                }
                                if Instant::now() >= stop_at {
                                    break;
                                }
                            }
                            if Instant::now() >= stop_at {
                                break;
                            }
                        }
                    }
                    write_message(&mut buf, &to, sent, base.elapsed().as_micros() as u64);
                    tx.write_all(buf.as_bytes()).await.context("sending")?;
                    tx.flush().await.context("sending")?;
                    sent += 1;
                }
                Ok(())
            }
            .await;
            p.sent_final.store(sent, Ordering::Release);
            p.to_receiver.notify_one();
            (sent, result.err(), tx)
        }));
    }
    let mut sent = 0;
    let mut errors = Errors::default();
    let mut writers = Vec::new();
    for s in senders {
        match s.await {
            Ok((n, err, tx)) => {
                sent += n;
                if let Some(e) = err {
                    errors.add(&e);
                }
                writers.push(tx);
            }
            Err(e) => errors.add(&anyhow::anyhow!("a sender died: {e}")),
        }
    }
    let send_elapsed = base.elapsed();
    let mut received = 0;
    let mut reordered = 0;
    let mut latencies = Samples::default();
    for r in receivers {
        match r.await {
            Ok(r) => {
                received += r.received;
                reordered += r.reordered;
                latencies.merge(r.latencies);
                errors.merge(r.errors);
            }
            Err(e) => errors.add(&anyhow::anyhow!("a receiver died: {e}")),
        }
    }
    let after = sample(watch)?;
    for mut w in writers {
        let _ = w.shutdown().await;
    }
    for d in drains {
        d.abort();
    }
    let mut out = Map::new();
    out.insert("pairs".into(), json!(plan.pairs));
    out.insert(
        "mode".into(),
        json!(if plan.rate.is_some() {
            "rate"
        } else {
            "saturation"
        }),
    );
    out.insert("target_rate".into(), json!(plan.rate));
    out.insert(
        "window".into(),
        json!(plan.rate.map_or(Some(plan.window), |_| None)),
    );
    out.insert(
        "duration_s".into(),
        json!(round3(send_elapsed.as_secs_f64())),
    );
    out.insert("sent".into(), json!(sent));
    out.insert("received".into(), json!(received));
    out.insert("lost".into(), json!(sent.saturating_sub(received)));
    out.insert("reordered".into(), json!(reordered));
    out.insert(
        "msgs_per_s".into(),
        json!(round3(per_sec(received, send_elapsed))),
    );
    out.insert("latency_ms".into(), latencies.summary_ms());
    out.insert(
        "server_cpu_ms_per_1000_msgs".into(),
        cpu_per(before, after, received, 1000.0),
    );
    errors.merge(run.errors);
    errors.write(&mut out);
    Ok(out)
}

/// The receiver of pair `i` is the second of the pair's two accounts.
fn pair_receiver_localpart(args: &Args, i: u64) -> String {
    args.localpart(2 * i + 1)
}

async fn churn(
    args: &Args,
    target: &Target,
    watch: Option<&ProcWatch>,
    cycles: u64,
    concurrency: usize,
    sample_cycles: u64,
) -> anyhow::Result<Map<String, Value>> {
    let s0 = sample(watch)?;
    let first = login_pool(args, target, 0, sample_cycles, concurrency, false).await;
    let s1 = sample(watch)?;
    let middle_cycles = cycles - 2 * sample_cycles;
    let middle = login_pool(
        args,
        target,
        sample_cycles,
        middle_cycles,
        concurrency,
        false,
    )
    .await;
    let s2 = sample(watch)?;
    let mut last = login_pool(
        args,
        target,
        sample_cycles + middle_cycles,
        sample_cycles,
        concurrency,
        false,
    )
    .await;
    let s3 = sample(watch)?;
    let mut out = Map::new();
    let done = first.ok + middle.ok + last.ok;
    out.insert("cycles".into(), json!(done));
    out.insert("concurrency".into(), json!(concurrency));
    out.insert("sample_cycles".into(), json!(sample_cycles));
    let elapsed = first.elapsed + middle.elapsed + last.elapsed;
    out.insert("elapsed_s".into(), json!(round3(elapsed.as_secs_f64())));
    out.insert(
        "cycles_per_s_start".into(),
        json!(round3(per_sec(first.ok, first.elapsed))),
    );
    out.insert(
        "cycles_per_s_end".into(),
        json!(round3(per_sec(last.ok, last.elapsed))),
    );
    out.insert(
        "server_cpu_ms_per_login_start".into(),
        cpu_per(s0, s1, first.ok, 1.0),
    );
    out.insert(
        "server_cpu_ms_per_login_end".into(),
        cpu_per(s2, s3, last.ok, 1.0),
    );
    if let (Some(a), Some(b), Some(c)) = (s0, s1, s3) {
        out.insert("server_rss_kib_initial".into(), json!(a.rss_kib));
        // The baseline is after the first window: caches and pools filled by the first logins
        // are not a leak.
        out.insert("server_rss_kib_start".into(), json!(b.rss_kib));
        out.insert("server_rss_kib_end".into(), json!(c.rss_kib));
        out.insert(
            "server_rss_growth_pct".into(),
            json!(round3(
                (c.rss_kib as f64 - b.rss_kib as f64) * 100.0 / (b.rss_kib.max(1) as f64)
            )),
        );
    }
    out.insert("setup_ms_end".into(), last.latencies.summary_ms());
    let mut errors = first.errors;
    errors.merge(middle.errors);
    errors.merge(last.errors);
    errors.write(&mut out);
    Ok(out)
}
