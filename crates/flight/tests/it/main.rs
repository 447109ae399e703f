//! The Flight SQL service over a real gRPC connection, with arrow-flight's own client: the
//! metadata calls a JDBC or ODBC client makes, and credentials refused.

use std::sync::Arc;

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetXdbcTypeInfo, SqlInfo};
use futures::TryStreamExt;
use hourglass_catalog::{Catalog, SqlCatalog, TokenCache, secret};
use hourglass_flight::FlightSqlServer;
use hourglass_query::{Querier, QueryConfig};
use hourglass_storage::ObjectStoreConfig;
use hourglass_types::TenantId;
use tonic::transport::{Channel, Endpoint};

const READ: &str = "hgr_flight-sql-test-read-token";
const WRITE: &str = "hgw_flight-sql-test-write-key";

async fn server() -> Channel {
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    let tenant = TenantId::new("flight").expect("tenant");
    catalog.create_tenant(&tenant, &secret::hash(WRITE), &secret::hash(READ)).await.expect("tenant");
    let store = ObjectStoreConfig::Memory.build().expect("store");
    let querier =
        Arc::new(Querier::new(QueryConfig::default(), Arc::clone(&catalog), store, Vec::new(), None).expect("querier"));
    let service = FlightSqlServer::new(querier, Arc::new(TokenCache::new(catalog))).expect("service");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect().await.expect("connect")
}

async fn rows(client: &mut FlightSqlServiceClient<Channel>, info: arrow_flight::FlightInfo) -> usize {
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let batches: Vec<_> = client.do_get(ticket).await.expect("do_get").try_collect().await.expect("batches");
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test]
async fn metadata_calls_answer_and_bad_tokens_are_refused() {
    let channel = server().await;
    let mut client = FlightSqlServiceClient::new(channel.clone());
    client.handshake("analyst", READ).await.expect("basic auth handshake with a read token");

    let types = client.get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None }).await.expect("xdbc info");
    assert_eq!(rows(&mut client, types).await, 6, "BOOLEAN, INTEGER, BIGINT, DOUBLE, VARCHAR, TIMESTAMP");
    let info = client.get_sql_info(vec![SqlInfo::FlightSqlServerName, SqlInfo::FlightSqlServerReadOnly]).await;
    assert_eq!(rows(&mut client, info.expect("sql info")).await, 2);
    let result = client.execute("SELECT count(*) FROM events".to_string(), None).await.expect("statement");
    assert_eq!(rows(&mut client, result).await, 1);

    for (user, password) in [("analyst", "hgr_wrong"), ("analyst", WRITE)] {
        let mut refused = FlightSqlServiceClient::new(channel.clone());
        let err = refused.handshake(user, password).await.expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("unknown token") || text.contains("read token"), "{text}");
    }
    let mut anonymous = FlightSqlServiceClient::new(channel);
    let err = anonymous.execute("SELECT 1".to_string(), None).await.expect_err("no credentials");
    assert!(err.to_string().contains("authorization"), "{err}");
}
