//! The load generator's `cluster` scenario (issue #7) against three real `corvid serve`
//! processes (combined nodes, one Redis, loopback): senders on one edge, receivers on another,
//! every message crossing edges over the router's gRPC streams; then the receivers' edge
//! killed with SIGKILL mid-run and the receivers logging in again elsewhere with the same
//! resource. No timing is asserted: benchmarks are not tests.
#![allow(clippy::unwrap_used)]

use corvid_loadgen::args::Args;
use corvid_tests::cluster::Cluster;

const PASSWORD: &str = "bench-pw";
/// Accounts bench1..bench8: the steady run uses 1–4, the kill run 5–8.
const ACCOUNTS: u64 = 8;
const PAIRS: &str = "2";

fn args(cluster: &Cluster, first_account: u64, scenario: &[&str]) -> Args {
    let edges = (1..=3)
        .map(|id| cluster.node(id).client_addr().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let first = first_account.to_string();
    let mut argv = vec![
        "corvid-loadgen",
        "--domain",
        "localhost",
        "--accounts",
        "bench{n}",
        "--first-account",
        &first,
        "--account-count",
        "4",
        "--password",
        PASSWORD,
        "--insecure",
        "--timeout-secs",
        "20",
        "cluster",
        "--edges",
        &edges,
    ];
    argv.extend_from_slice(scenario);
    Args::from_argv(argv).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scenario_loses_nothing_across_edges_and_accounts_for_a_killed_edge() {
    let mut builder = Cluster::builder(env!("CARGO_BIN_EXE_corvid-test-node"))
        .combined(3)
        .short_leases();
    for n in 1..=ACCOUNTS {
        builder = builder.user(format!("bench{n}"), PASSWORD);
    }
    let cluster = builder.start().await.expect("the cluster starts");

    println!("=== steady: senders on node 1, receivers on node 2, at a fixed rate");
    let steady = args(
        &cluster,
        1,
        &["--pairs", PAIRS, "--rate", "200", "--duration-secs", "2"],
    );
    let line = corvid_loadgen::run(&steady).await.unwrap();
    println!("{line}");
    assert_eq!(line["scenario"], "cluster", "{line}");
    assert_eq!(line["variant"], "steady", "{line}");
    assert_eq!(line["errors"], 0, "{line}");
    assert!(line["sent"].as_u64().unwrap() > 0, "{line}");
    // RFC 6120 §10: the server delivers each stanza once, in order, whichever node holds the
    // recipient's session.
    assert_eq!(line["received"], line["sent"], "{line}");
    assert_eq!(line["lost"], 0, "{line}");
    assert_eq!(line["duplicates"], 0, "{line}");
    assert_eq!(line["bounced"], 0, "{line}");
    assert_eq!(line["reordered"], 0, "{line}");
    assert!(line["latency_ms"]["p99"].is_number(), "{line}");

    println!("=== closed loop across edges: still nothing lost");
    let closed = args(&cluster, 1, &["--pairs", PAIRS, "--duration-secs", "1"]);
    let line = corvid_loadgen::run(&closed).await.unwrap();
    println!("{line}");
    assert_eq!(line["mode"], "saturation", "{line}");
    assert_eq!(line["errors"], 0, "{line}");
    assert_eq!(line["lost"], 0, "{line}");
    assert_eq!(line["received"], line["sent"], "{line}");

    println!("=== kill: receivers on node 3, killed after 2 s; they log in again on node 2");
    let pid = cluster.node(3).pid().expect("node 3 runs");
    let pid = pid.to_string();
    let kill = args(
        &cluster,
        5,
        &[
            "--pairs",
            PAIRS,
            "--rate",
            "200",
            "--duration-secs",
            "6",
            "--kill-pid",
            &pid,
            "--kill-after-secs",
            "2",
        ],
    );
    let line = corvid_loadgen::run(&kill).await.unwrap();
    println!("{line}");
    assert_eq!(line["variant"], "kill", "{line}");
    assert_eq!(line["errors"], 0, "{line}");
    // Every receiver came back on node 2 with the same full JID, and messages reached them
    // there.
    assert_eq!(line["relogged_in"], 2, "{line}");
    assert!(line["reconnect_ms"].is_number(), "{line}");
    assert!(line["recovery_ms"].is_number(), "{line}");
    assert_eq!(line["duplicates"], 0, "{line}");
    assert_eq!(line["unexpected"], 0, "{line}");
    // Every lost message is counted in the phase it was sent in.
    let phases = &line["lost_by_phase"];
    let by_phase = ["before_kill", "during_outage", "after_relogin"]
        .iter()
        .map(|k| phases[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(by_phase, line["lost"].as_u64().unwrap(), "{line}");
    // While node 3 is dead the table still names the receivers' sessions there; the router
    // handles a message no session takes as for an unavailable resource (RFC 6121 §8.5.3.2.1
    // then §8.5.2.2.1: offline storage, XEP-0160), and the receivers get it when they log in
    // again. So nothing sent after the kill is lost or bounced. (What node 3 had already taken
    // from the stream but not yet written to its client dies with it: only the client's
    // stream management can recover that, and at this rate it is rarely anything.)
    assert_eq!(phases["during_outage"], 0, "{line}");
    assert_eq!(phases["after_relogin"], 0, "{line}");
    assert_eq!(line["bounced"], 0, "{line}");
    assert!(
        // 50 ms of traffic at 200 msg/s.
        phases["before_kill"].as_u64().unwrap() <= 10,
        "more lost in flight than node 3 could have held: {line}"
    );
}
