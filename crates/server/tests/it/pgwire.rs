//! The PostgreSQL wire protocol through clients nobody on this team wrote: `psql` (its `\dt`
//! and `\d events` catalog queries, errors with SQLSTATE codes, refused passwords) and psycopg 3
//! (`tests/pgwire/psycopg_client.py`: parameters, prepared statements, binary results,
//! transactions, a large result, per-tenant scope).

use std::process::{Command, Output};

use crate::support::{TestServer, pageviews, run_python_client};

/// Events of the tenant under test: half pageviews with a screen width and props, half signups.
fn mixed_events(n: usize) -> String {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!(
                    "{{\"event_id\":\"e-{i:03}\",\"name\":\"pageview\",\"url\":\"https://shop.example/p/{i}\",\"screen_width\":{},\"revenue\":1.5,\"props\":{{\"plan\":\"pro\"}}}}\n",
                    800 + i
                )
            } else {
                format!("{{\"event_id\":\"e-{i:03}\",\"name\":\"signup\",\"client_id\":\"c{i}\"}}\n")
            }
        })
        .collect()
}

fn psql(addr: &str, password: &str, args: &[&str]) -> Output {
    let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
    tokio::task::block_in_place(|| {
        Command::new("psql")
            .args(["-X", "-h", host, "-p", port, "-U", "analyst", "-d", "hourglass", "-v", "VERBOSITY=verbose"])
            .args(args)
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql (scripts/test-deps installs it)")
    })
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_browses_and_queries_with_a_read_token() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("pg").await;
    let (other_writer, _) = server.tenant("pg-other").await;
    writer.ingest(mixed_events(40)).await.expect("ingest");
    other_writer.ingest(pageviews("other", 7)).await.expect("ingest");
    server.admin().flush().await.expect("flush");
    writer.ingest(mixed_events(4).replace("e-", "late-")).await.expect("ingest into the buffer");
    let addr = server.pg_addr.clone().expect("serve prints its PostgreSQL address");

    let out = psql(&addr, reader.token(), &["-At", "-c", "SELECT count(*) FROM events"]);
    assert!(out.status.success(), "{}\n{}", text(&out), server.logs());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "44", "persisted and buffered rows, no others");

    let out = psql(&addr, reader.token(), &["-c", r"\dt"]);
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    assert!(listing.contains("public | events     | table") && listing.contains("raw_events"), "{listing}");
    assert!(listing.contains("public | rollups    | table") && listing.contains("(4 rows)"), "{listing}");
    assert!(listing.contains("public | sessions   | table"), "{listing}");

    let out = psql(&addr, reader.token(), &["-c", r"\d events"]);
    let described = text(&out);
    assert!(out.status.success(), "{described}");
    assert!(described.contains("Table \"public.events\""), "{described}");
    for line in [
        "timestamp         | timestamp with time zone |           | not null |",
        "screen_width      | integer                  |           |          |",
        "revenue           | double precision         |           |          |",
        "props             | json                     |           |          |",
        "interactive       | boolean                  |           | not null |",
    ] {
        assert!(described.contains(line), "missing {line:?} in:\n{described}");
    }

    for (sql, code) in [
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELECT no_such_column FROM events", "42703"),
        ("SELEC 1", "42601"),
        ("DELETE FROM events", "25006"),
    ] {
        let out = psql(&addr, reader.token(), &["-c", sql]);
        assert!(!out.status.success(), "{sql} should fail");
        assert!(text(&out).contains(&format!("ERROR:  {code}:")), "{sql}: expected {code}:\n{}", text(&out));
    }

    let out = psql(&addr, "not-a-token", &["-c", "SELECT 1"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("Password authentication failed"), "{}", text(&out));

    // The admin token reads system tables, and no tenant's rows.
    let out = psql(&addr, crate::support::ADMIN_TOKEN, &["-At", "-c", "SELECT count(*) FROM system.nodes"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = psql(&addr, crate::support::ADMIN_TOKEN, &["-c", "SELECT count(*) FROM events"]);
    assert!(!out.status.success() && text(&out).contains("42P01"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_prepares_binds_and_reads_every_type() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("psycopg").await;
    let (other_writer, other_reader) = server.tenant("psycopg-other").await;
    writer.ingest(mixed_events(30)).await.expect("ingest");
    server.admin().flush().await.expect("flush");
    writer.ingest(mixed_events(30).replace("e-", "buffered-")).await.expect("ingest into the buffer");
    other_writer.ingest(pageviews("other", 7)).await.expect("ingest");
    let addr = server.pg_addr.clone().expect("serve prints its PostgreSQL address");
    let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
    let args = [host, port, reader.token(), "60", other_reader.token(), "7", writer.token()];
    run_python_client(&server, "pgwire/psycopg_client.py", &args, "psycopg: ok");
}
