//! The load generator (issue #7) against an in-process server: its `login` and `messages`
//! scenarios complete a few real sessions (STARTTLS, SCRAM, bind, presence) and account for
//! every message. No timing is asserted: benchmarks are not tests.
#![allow(clippy::unwrap_used)]

use corvid_loadgen::args::Args;
use corvid_tests::TestServer;

const PASSWORD: &str = "bench-pw";

async fn server_with(accounts: u64) -> TestServer {
    let mut builder = TestServer::builder();
    for n in 1..=accounts {
        builder = builder.user(&format!("bench{n}"), PASSWORD);
    }
    builder.start().await.unwrap()
}

fn args(server: &TestServer, mechanism: &str, scenario: &[&str]) -> Args {
    let port = server.starttls_addr().unwrap().port().to_string();
    let mut argv = vec![
        "corvid-loadgen",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--domain",
        "localhost",
        "--accounts",
        "bench{n}",
        "--account-count",
        "4",
        "--password",
        PASSWORD,
        "--mechanism",
        mechanism,
        "--insecure",
        "--timeout-secs",
        "20",
    ];
    argv.extend_from_slice(scenario);
    Args::from_argv(argv).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_scenario_logs_in_and_out_every_time_with_each_mechanism() {
    let server = server_with(4).await;
    for mechanism in ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"] {
        let a = args(
            &server,
            mechanism,
            &["login", "--count", "6", "--concurrency", "3"],
        );
        let line = corvid_loadgen::run(&a).await.unwrap();
        assert_eq!(line["scenario"], "login", "{line}");
        assert_eq!(line["mechanism"], mechanism, "{line}");
        assert_eq!(line["errors"], 0, "{line}");
        assert_eq!(line["logins"], 6, "{line}");
        assert!(line["setup_ms"]["p99"].is_number(), "{line}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_scenario_delivers_every_message_closed_loop_and_at_a_rate() {
    let server = server_with(4).await;
    let closed = args(
        &server,
        "SCRAM-SHA-1",
        &[
            "messages",
            "--pairs",
            "2",
            "--window",
            "4",
            "--duration-secs",
            "1",
        ],
    );
    let line = corvid_loadgen::run(&closed).await.unwrap();
    assert_eq!(line["mode"], "saturation", "{line}");
    assert_eq!(line["errors"], 0, "{line}");
    assert_eq!(line["lost"], 0, "{line}");
    assert_eq!(line["reordered"], 0, "{line}");
    assert!(line["sent"].as_u64().unwrap() > 0, "{line}");
    assert_eq!(line["sent"], line["received"], "{line}");

    let rated = args(
        &server,
        "SCRAM-SHA-1",
        &[
            "messages",
            "--pairs",
            "2",
            "--rate",
            "50",
            "--duration-secs",
            "1",
        ],
    );
    let line = corvid_loadgen::run(&rated).await.unwrap();
    assert_eq!(line["mode"], "rate", "{line}");
    assert_eq!(line["errors"], 0, "{line}");
    assert_eq!(line["lost"], 0, "{line}");
    assert!(line["sent"].as_u64().unwrap() > 0, "{line}");
    assert!(line["latency_ms"]["max"].is_number(), "{line}");
    server.stop().await;
}
