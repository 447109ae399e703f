//! Query governance through every SQL interface (`tests/governance/limits.py` drives HTTP,
//! the ADBC Flight SQL driver and psycopg): the result row limit, the per-query memory limit
//! and spilling, the timeout, the per-tenant concurrency limit with its queue, the admin's
//! `system.queries` and cancel, and PostgreSQL cancel requests. Each limit must answer with an
//! error of its own on each interface.

use crate::support::{ADMIN_TOKEN, TestServer, pageviews, run_python_client};

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_answers_with_its_own_error_on_every_interface() {
    let server = TestServer::start(&[
        "--query-timeout",
        "10s",
        "--query-memory-per-query",
        "16MiB",
        "--query-max-result-rows",
        "1000",
        "--max-concurrent-queries-per-tenant",
        "1",
        "--max-queued-queries-per-tenant",
        "1",
    ]);
    let mut readers = Vec::new();
    for id in ["gov-a", "gov-b", "gov-c"] {
        let (writer, reader) = server.tenant(id).await;
        writer.ingest(pageviews(id, 5)).await.expect("ingest");
        readers.push(reader.token().to_string());
    }
    let grpc = server.grpc_url.clone().expect("serve prints its Flight SQL address");
    let pg = server.pg_addr.clone().expect("serve prints its PostgreSQL address");
    let mut args = vec![server.url.as_str(), grpc.as_str(), pg.as_str(), ADMIN_TOKEN];
    args.extend(readers.iter().map(String::as_str));
    run_python_client(&server, "governance/limits.py", &args, "all checks passed");

    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metric(&metrics, "hourglass_query_spills_total") > 0.0, "the spilling sort wrote spill files");
    assert!(metric(&metrics, "hourglass_query_spilled_bytes_total") > 0.0);
    assert!(metric(&metrics, "hourglass_queries_refused_total") >= 3.0, "one refusal per interface");
    assert_eq!(metric(&metrics, "hourglass_queries_running"), 0.0, "every slot was handed back");
    assert_eq!(metric(&metrics, "hourglass_queries_queued"), 0.0, "no query is left waiting");
    // Each tenant still reads its own rows after all of it.
    for (token, id) in readers.iter().zip(["gov-a", "gov-b", "gov-c"]) {
        let count = crate::support::scalar(&server.admin().with_token(token), "SELECT count(*) FROM events").await;
        assert_eq!(count, 5, "{id}");
    }
}
