//! Arrow Flight SQL through the Python ADBC driver: queries, a prepared statement with
//! parameters, metadata, a million-row result, and refused credentials.

use crate::support::{TestServer, pageviews, run_python_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_driver_queries_prepares_and_browses() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("adbc").await;
    let (other_writer, _) = server.tenant("adbc-other").await;
    writer.ingest(pageviews("a", 120)).await.expect("ingest");
    other_writer.ingest(pageviews("b", 7)).await.expect("ingest other tenant");
    let uri = server.grpc_url.clone().expect("serve prints its Flight SQL address");
    let args = [uri.as_str(), reader.token(), "120", writer.token()];
    run_python_client(&server, "flightsql/adbc_client.py", &args, "all checks passed");
}
