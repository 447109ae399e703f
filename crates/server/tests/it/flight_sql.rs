//! Arrow Flight SQL through the Python ADBC driver: queries, a prepared statement with
//! parameters, metadata, a million-row result, and refused credentials.

use std::process::Command;

use crate::support::{TestServer, pageviews};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_driver_queries_prepares_and_browses() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("adbc").await;
    let (other_writer, _) = server.tenant("adbc-other").await;
    writer.ingest(pageviews("a", 120)).await.expect("ingest");
    other_writer.ingest(pageviews("b", 7)).await.expect("ingest other tenant");
    let uri = server.grpc_url.clone().expect("serve prints its Flight SQL address");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/flightsql/adbc_client.py");
    let output = tokio::task::block_in_place(|| {
        Command::new("python3")
            .args([script, &uri, reader.token(), "120", writer.token()])
            .output()
            .expect("python3 (scripts/test-deps installs the ADBC driver)")
    });
    assert!(
        output.status.success(),
        "the ADBC client failed:\n{}{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.logs()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("all checks passed"), "the ADBC client stopped early:\n{stdout}");
}
