//! The scenarios. Each returns its results as one JSON object.
//!
//! Concurrency is a fixed set of light tokio tasks pulling work from an atomic counter (no task
//! per login); the messages scenario runs one reader task per receiver and one writer task per
//! sender, with a reused buffer per writer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context as _;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::args::{Args, Flow, Scenario};
use crate::delivery::{Arrivals, PairRecord, Tally};
use crate::procfs::{ProcSample, ProcWatch};
use crate::stats::Samples;
use crate::xmpp::{self, parse_body, write_message, Read, Session, Target, RESOURCE};

/// How long the cluster scenario waits after the logins: the other nodes' replicas apply the
/// receivers' bindings on the leader's next heartbeat (100 ms in Corvid).
const CLUSTER_SETTLE: Duration = Duration::from_secs(1);

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
        Scenario::Messages(f) => {
            let layout = Layout {
                senders: target.clone(),
                receivers: target.clone(),
                settle: Duration::ZERO,
                kill: None,
            };
            flow(args, layout, watch.as_ref(), f.into()).await
        }
        Scenario::Cluster {
            edges,
            flow: f,
            kill_pid,
            kill_after_secs,
        } => {
            cluster(
                args,
                target,
                watch.as_ref(),
                edges,
                f,
                *kill_pid,
                *kill_after_secs,
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

/// The cluster scenario: senders on the first edge; receivers on the second, or, with a kill,
/// on the third (killed) with the second as where they log in again.
async fn cluster(
    args: &Args,
    target: &Target,
    watch: Option<&ProcWatch>,
    edges: &[String],
    f: &Flow,
    kill_pid: Option<u32>,
    kill_after_secs: Option<u64>,
) -> anyhow::Result<Map<String, Value>> {
    let edge = |i: usize| -> anyhow::Result<Target> {
        let spec = edges
            .get(i)
            .with_context(|| format!("--edges has no edge {}", i + 1))?;
        Ok(Target {
            addr: crate::resolve(spec, spec.as_str())?,
            ..target.clone()
        })
    };
    let kill = match (kill_pid, kill_after_secs) {
        (Some(pid), Some(after)) => Some(Kill {
            pid,
            after: Duration::from_secs(after),
            fallback: edge(1)?,
        }),
        _ => None,
    };
    let layout = Layout {
        senders: edge(0)?,
        receivers: edge(if kill.is_some() { 2 } else { 1 })?,
        settle: CLUSTER_SETTLE,
        kill,
    };
    let variant = if layout.kill.is_some() {
        "kill"
    } else {
        "steady"
    };
    let mut out = Map::new();
    out.insert("variant".into(), json!(variant));
    out.insert("edges".into(), json!(edges));
    out.insert("kill_after_s".into(), json!(kill_after_secs));
    out.extend(flow(args, layout, watch, f.into()).await?);
    Ok(out)
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

/// Logs in accounts `account(0)..account(count - 1)` (indices into the account pattern) with
/// `concurrency` workers. `keep` keeps the sessions (numbered `0..count`); otherwise each is
/// logged out at once.
async fn login_pool(
    args: &Args,
    target: &Target,
    account: impl Fn(u64) -> u64 + Copy + Send + 'static,
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
                let a = account(i);
                match xmpp::login(&target, &args.localpart(a), &args.resource(a)).await {
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
    let mut run = login_pool(args, target, |i| i, count, concurrency, false).await;
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
    let mut run = login_pool(args, target, |i| i, sessions, concurrency, true).await;
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

/// Parameters of a message flow.
#[derive(Debug, Clone, Copy)]
struct MessagePlan {
    pairs: u64,
    rate: Option<u64>,
    window: u64,
    duration: Duration,
    drain: Duration,
}

impl From<&Flow> for MessagePlan {
    fn from(f: &Flow) -> Self {
        MessagePlan {
            pairs: f.pairs,
            rate: f.rate,
            window: f.window,
            duration: Duration::from_secs(f.duration_secs),
            drain: Duration::from_secs(f.drain_secs),
        }
    }
}

/// Where the two sides of a message flow log in, and an edge killed during it.
struct Layout {
    /// The senders' server (pair k's sender is account 2k).
    senders: Target,
    /// The receivers' server (pair k's receiver is account 2k + 1).
    receivers: Target,
    /// Pause between the logins and the first message, for the other nodes of a cluster to
    /// learn the receivers' bindings (their replicas apply them on the next heartbeat).
    settle: Duration,
    /// The receivers' server killed during the run.
    kill: Option<Kill>,
}

/// The receivers' server killed during a run, and where its receivers log in again.
struct Kill {
    pid: u32,
    after: Duration,
    fallback: Target,
}

/// Shared between a pair's sender and receiver.
#[derive(Debug)]
struct Pair {
    /// Distinct messages received.
    received: AtomicU64,
    /// The final number sent, `u64::MAX` while sending.
    sent_final: AtomicU64,
    /// Wakes the sender (window space) and the receiver (sending stopped).
    to_sender: Notify,
    to_receiver: Notify,
}

struct ReceiverResult {
    arrivals: Arrivals,
    reordered: u64,
    latencies: Samples,
    errors: Errors,
    /// When the receiver was logged in again after the kill (µs since the start).
    relogin_us: Option<u64>,
    /// The first arrival on that new session (µs since the start).
    first_after_relogin_us: Option<u64>,
}

struct SenderResult {
    sent: u64,
    sent_us: Vec<u64>,
    error: Option<anyhow::Error>,
    writer: tokio::io::WriteHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
}

/// Logs `localpart` in on `target` again and again (a pause between tries) until it works or
/// `deadline` passes; the last error then.
async fn login_until(
    target: &Target,
    localpart: &str,
    resource: &str,
    deadline: Instant,
) -> anyhow::Result<Session> {
    loop {
        match xmpp::login(target, localpart, resource).await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() + Duration::from_millis(100) >= deadline => {
                return Err(e.context(format!("logging {localpart} in again on {}", target.addr)))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Sends SIGKILL to `pid` with the system's `kill` (no unsafe code, no extra dependency).
async fn kill_process(pid: u32) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .await
        .context("running kill")?;
    if !status.success() {
        anyhow::bail!("kill -9 {pid} failed ({status})");
    }
    Ok(())
}

/// The messages scenario, on one server or across a cluster's edges: P pairs, sender to
/// receiver by full JID.
async fn flow(
    args: &Args,
    layout: Layout,
    watch: Option<&ProcWatch>,
    plan: MessagePlan,
) -> anyhow::Result<Map<String, Value>> {
    let logins = 50.min(plan.pairs as usize);
    let mut receiving = login_pool(
        args,
        &layout.receivers,
        |i| 2 * i + 1,
        plan.pairs,
        logins,
        true,
    )
    .await;
    let mut sending = login_pool(args, &layout.senders, |i| 2 * i, plan.pairs, logins, true).await;
    for (side, run) in [("receiver", &receiving), ("sender", &sending)] {
        if run.sessions.len() as u64 != plan.pairs {
            anyhow::bail!(
                "only {} of {} {side} sessions logged in; first error: {}",
                run.sessions.len(),
                plan.pairs,
                run.errors.first.clone().unwrap_or_default()
            );
        }
    }
    tokio::time::sleep(layout.settle).await;
    // Tells this run's messages from those an earlier run left stored offline.
    let run: u32 = rand::random();
    let base = Instant::now();
    let expected_per_pair = plan
        .rate
        .map(|r| (r as f64 * plan.duration.as_secs_f64() / plan.pairs as f64).ceil() as usize);
    let cap = expected_per_pair.unwrap_or(1 << 16);
    let killing = layout.kill.is_some();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let mut drains = Vec::new();
    let stop_at = base + plan.duration;
    let drain_deadline = stop_at + plan.drain;
    let (stop_drains, drains_stopped) = tokio::sync::watch::channel(false);
    let before = sample(watch)?;
    let killer = layout.kill.as_ref().map(|k| {
        let (pid, at) = (k.pid, base + k.after);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let kill_us = base.elapsed().as_micros() as u64;
            kill_process(pid).await.map(|()| kill_us)
        })
    });
    let pairs = std::mem::take(&mut sending.sessions)
        .into_iter()
        .zip(std::mem::take(&mut receiving.sessions));
    for (k, ((_, sender), (_, receiver))) in pairs.enumerate() {
        let k = k as u64;
        let pair = Arc::new(Pair {
            received: AtomicU64::new(0),
            sent_final: AtomicU64::new(u64::MAX),
            to_sender: Notify::new(),
            to_receiver: Notify::new(),
        });
        let (mut rx, mut rx_w) = receiver.split();
        let (mut srx, mut tx) = sender.split();
        let p = pair.clone();
        let mut relogin = layout.kill.as_ref().map(|kill| {
            let account = 2 * k + 1;
            (
                kill.fallback.clone(),
                args.localpart(account),
                args.resource(account),
            )
        });
        receivers.push(tokio::spawn(async move {
            let mut r = ReceiverResult {
                arrivals: Arrivals::with_capacity(cap),
                reordered: 0,
                latencies: Samples::with_capacity(cap),
                errors: Errors::default(),
                relogin_us: None,
                first_after_relogin_us: None,
            };
            let mut max_seq: Option<u64> = None;
            loop {
                let read = tokio::select! {
                    read = rx.next() => read,
                    () = p.to_receiver.notified() => {
                        if r.arrivals.distinct() >= p.sent_final.load(Ordering::Acquire) { break; }
                        continue;
                    }
                    () = tokio::time::sleep_until(drain_deadline) => break,
                };
                let el = match read {
                    Ok(Read::Element(el)) => el,
                    ended => {
                        // A receiver of the killed server logs in again, once, elsewhere
                        // with the same resource (and initial presence, which brings what
                        // the server stored offline meanwhile).
                        if let Some((target, localpart, resource)) = relogin.take() {
                            match login_until(&target, &localpart, &resource, drain_deadline).await
                            {
                                Ok(s) => {
                                    r.relogin_us = Some(base.elapsed().as_micros() as u64);
                                    (rx, rx_w) = s.split();
                                    continue;
                                }
                                Err(e) => {
                                    r.errors.add(&e);
                                    break;
                                }
                            }
                        }
                        match ended {
                            Err(e) => r.errors.add(&e),
                            _ => r
                                .errors
                                .add(&anyhow::anyhow!("the server closed a receiver's stream")),
                        }
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
                    .and_then(|b| parse_body(&b.text(), run))
                else {
                    continue;
                };
                let now_us = base.elapsed().as_micros() as u64;
                if !r.arrivals.record(seq) {
                    continue;
                }
                if r.relogin_us.is_some() && r.first_after_relogin_us.is_none() {
                    r.first_after_relogin_us = Some(now_us);
                }
                r.latencies.push_micros(now_us.saturating_sub(sent_us));
                match max_seq {
                    Some(m) if seq < m => r.reordered += 1,
                    _ => max_seq = Some(seq),
                }
                let distinct = r.arrivals.distinct();
                p.received.store(distinct, Ordering::Release);
                p.to_sender.notify_one();
                if distinct >= p.sent_final.load(Ordering::Acquire) {
                    break;
                }
            }
            drop(rx_w);
            r
        }));
        // The sender's own stream: messages bounced to it are counted (by sequence number
        // when the error carries the body), the rest discarded.
        let mut stop = drains_stopped.clone();
        drains.push(tokio::spawn(async move {
            let mut bounced = Vec::new();
            let mut conditions = BTreeMap::<String, u64>::new();
            let mut errors = Errors::default();
            loop {
                let el = tokio::select! {
                    read = srx.next() => match read {
                        Ok(Read::Element(el)) => el,
                        _ => break,
                    },
                    _ = stop.changed() => break,
                };
                if el.name == "message" && el.attr("type") == Some("error") {
                    *conditions.entry(error_condition(&el)).or_insert(0) += 1;
                    if let Some((seq, _)) = el
                        .child("body", "jabber:client")
                        .and_then(|b| parse_body(&b.text(), run))
                    {
                        bounced.push(seq);
                    }
                    if !killing {
                        errors.add(&anyhow::anyhow!("bounced: {}", el.to_xml("jabber:client")));
                    }
                }
            }
            (bounced, conditions, errors)
        }));
        let to = format!("{}@{}/{RESOURCE}", args.localpart(2 * k + 1), args.domain);
        let p = pair.clone();
        let rate = plan.rate;
        let pairs = plan.pairs;
        let window = plan.window;
        senders.push(tokio::spawn(async move {
            let mut buf = String::with_capacity(128 + to.len());
            let mut sent: u64 = 0;
            let mut sent_us = Vec::with_capacity(if killing { cap } else { 0 });
            let mut interval = rate.map(|r| {
                let period = Duration::from_secs_f64(pairs as f64 / r as f64);
                // Pairs tick out of phase, so that the total is a steady RATE and not a burst
                // of PAIRS messages every period (which measures queueing behind the burst,
                // not a message's latency). tokio's timer has millisecond ticks, so pairs
                // that fall into the same millisecond still go together.
                let phase = period.mul_f64(k as f64 / pairs as f64);
                let mut i = tokio::time::interval_at(Instant::now() + phase, period);
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
                    let now_us = base.elapsed().as_micros() as u64;
                    write_message(&mut buf, &to, run, sent, now_us);
                    tx.write_all(buf.as_bytes()).await.context("sending")?;
                    tx.flush().await.context("sending")?;
                    if killing {
                        sent_us.push(now_us);
                    }
                    sent += 1;
                }
                Ok(())
            }
            .await;
            p.sent_final.store(sent, Ordering::Release);
            p.to_receiver.notify_one();
            SenderResult {
                sent,
                sent_us,
                error: result.err(),
                writer: tx,
            }
        }));
    }
    let mut errors = Errors::default();
    let mut records = Vec::with_capacity(senders.len());
    let mut writers = Vec::new();
    for s in senders {
        let mut record = PairRecord::default();
        match s.await {
            Ok(s) => {
                record.sent = s.sent;
                record.sent_us = s.sent_us;
                if let Some(e) = s.error {
                    errors.add(&e);
                }
                writers.push(s.writer);
            }
            Err(e) => errors.add(&anyhow::anyhow!("a sender died: {e}")),
        }
        records.push(record);
    }
    let send_elapsed = base.elapsed();
    let mut reordered = 0;
    let mut latencies = Samples::default();
    let mut recovered = Vec::new();
    for (r, record) in receivers.into_iter().zip(records.iter_mut()) {
        match r.await {
            Ok(r) => {
                r.arrivals.into_record(record);
                record.relogin_us = r.relogin_us;
                recovered.extend(r.first_after_relogin_us);
                reordered += r.reordered;
                latencies.merge(r.latencies);
                errors.merge(r.errors);
            }
            Err(e) => errors.add(&anyhow::anyhow!("a receiver died: {e}")),
        }
    }
    let after = sample(watch)?;
    let _ = stop_drains.send(true);
    let mut conditions = BTreeMap::<String, u64>::new();
    for (d, record) in drains.into_iter().zip(records.iter_mut()) {
        match d.await {
            Ok((bounced, c, e)) => {
                record.bounced = bounced;
                for (condition, n) in c {
                    *conditions.entry(condition).or_insert(0) += n;
                }
                errors.merge(e);
            }
            Err(e) => errors.add(&anyhow::anyhow!("a sender's reader died: {e}")),
        }
    }
    for mut w in writers {
        let _ = w.shutdown().await;
    }
    let kill_us = match killer {
        Some(k) => match k.await {
            Ok(Ok(us)) => Some(us),
            Ok(Err(e)) => {
                errors.add(&e);
                None
            }
            Err(e) => {
                errors.add(&anyhow::anyhow!("the kill task died: {e}"));
                None
            }
        },
        None => None,
    };
    let tally = Tally::of(&records, kill_us);
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
    tally.write(killing, &mut out);
    out.insert("bounced_conditions".into(), json!(conditions));
    out.insert("reordered".into(), json!(reordered));
    out.insert(
        "msgs_per_s".into(),
        json!(round3(per_sec(tally.received, send_elapsed))),
    );
    out.insert("latency_ms".into(), latencies.summary_ms());
    out.insert(
        "server_cpu_ms_per_1000_msgs".into(),
        cpu_per(before, after, tally.received, 1000.0),
    );
    if let Some(kill) = &layout.kill {
        write_recovery(
            &mut out,
            kill,
            kill_us,
            &records,
            recovered.iter().copied().min(),
        );
    }
    errors.merge(receiving.errors);
    errors.merge(sending.errors);
    errors.write(&mut out);
    Ok(out)
}

/// The defined condition of a stanza error (RFC 6120 §8.3.3), `unknown` without one.
fn error_condition(stanza: &corvid_xml::Element) -> String {
    stanza
        .child_elements()
        .find(|c| c.name == "error")
        .and_then(|e| e.child_elements().find(|c| c.name != "text"))
        .map_or_else(|| "unknown".to_owned(), |c| c.name.to_string())
}

/// The kill and what followed: when it happened, how many receivers logged in again and how
/// long until all did (`reconnect_ms`), and how long until the first message reached a receiver
/// on its new session (`recovery_ms`). Nulls for what did not happen.
fn write_recovery(
    out: &mut Map<String, Value>,
    kill: &Kill,
    kill_us: Option<u64>,
    records: &[PairRecord],
    first_recovered_us: Option<u64>,
) {
    let since_kill = |us: u64| kill_us.map(|k| round3(us.saturating_sub(k) as f64 / 1000.0));
    let relogged: Vec<u64> = records.iter().filter_map(|r| r.relogin_us).collect();
    let all_back = relogged.len() == records.len();
    out.insert("killed_pid".into(), json!(kill.pid));
    out.insert(
        "kill_at_s".into(),
        json!(kill_us.map(|k| round3(k as f64 / 1e6))),
    );
    out.insert("relogged_in".into(), json!(relogged.len()));
    out.insert(
        "reconnect_ms".into(),
        json!(relogged
            .iter()
            .max()
            .filter(|_| all_back)
            .and_then(|&us| since_kill(us))),
    );
    out.insert(
        "recovery_ms".into(),
        json!(first_recovered_us.and_then(since_kill)),
    );
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
    // Warm-up: one login per account (as far as the cycles allow) before the start window.
    let warmup = args
        .account_count
        .min(cycles.saturating_sub(2 * sample_cycles));
    let warm = login_pool(args, target, |i| i, warmup, concurrency, false).await;
    let s_warm = sample(watch)?;
    let first = login_pool(
        args,
        target,
        move |i| warmup + i,
        sample_cycles,
        concurrency,
        false,
    )
    .await;
    let s1 = sample(watch)?;
    let middle_cycles = cycles - 2 * sample_cycles - warmup;
    let middle = login_pool(
        args,
        target,
        move |i| warmup + sample_cycles + i,
        middle_cycles,
        concurrency,
        false,
    )
    .await;
    let s2 = sample(watch)?;
    let mut last = login_pool(
        args,
        target,
        move |i| warmup + sample_cycles + middle_cycles + i,
        sample_cycles,
        concurrency,
        false,
    )
    .await;
    let s3 = sample(watch)?;
    let mut out = Map::new();
    let done = warm.ok + first.ok + middle.ok + last.ok;
    out.insert("cycles".into(), json!(done));
    out.insert("warmup_cycles".into(), json!(warmup));
    out.insert("concurrency".into(), json!(concurrency));
    out.insert("sample_cycles".into(), json!(sample_cycles));
    let elapsed = warm.elapsed + first.elapsed + middle.elapsed + last.elapsed;
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
        cpu_per(s_warm, s1, first.ok, 1.0),
    );
    out.insert(
        "server_cpu_ms_per_login_end".into(),
        cpu_per(s2, s3, last.ok, 1.0),
    );
    if let (Some(a), Some(b), Some(c)) = (s0, s1, s3) {
        out.insert("server_rss_kib_initial".into(), json!(a.rss_kib));
        // The baseline is after the warm-up and the first window: caches and pools filled by
        // the first logins are not a leak.
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
    let mut errors = warm.errors;
    errors.merge(first.errors);
    errors.merge(middle.errors);
    errors.merge(last.errors);
    errors.write(&mut out);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn element(xml: &str) -> corvid_xml::Element {
        let mut p = corvid_xml::Parser::new(corvid_xml::Limits::default());
        p.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
        p.feed(xml.as_bytes());
        loop {
            match p.next_event().unwrap() {
                Some(corvid_xml::StreamEvent::Element(e)) => return e,
                Some(_) => continue,
                None => panic!("no element in {xml}"),
            }
        }
    }

    #[test]
    fn a_bounce_is_counted_under_its_defined_condition() {
        let bounce = element(
            "<message type='error' to='a@x/lg'><body>3 100</body><error type='wait'>\
             <recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></message>",
        );
        assert_eq!(error_condition(&bounce), "recipient-unavailable");
        assert_eq!(
            error_condition(&element("<message type='error'/>")),
            "unknown"
        );
    }
}
