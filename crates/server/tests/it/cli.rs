//! The `hourglass tenant create` and `hourglass query` commands against a running server.

use std::process::Command;

use crate::support::{ADMIN_TOKEN, TestServer, hourglass, pageviews};

#[tokio::test]
async fn tenant_create_and_query_commands() {
    let server = TestServer::start(&[]);
    let (ok, out, err) = hourglass(&["tenant", "create", "cli-shop"], ADMIN_TOKEN, &server.url);
    assert!(ok, "{err}");
    let creds: serde_json::Value = serde_json::from_str(&out).expect("tenant JSON");
    assert_eq!(creds["id"], "cli-shop");
    let write_key = creds["write_key"].as_str().expect("write_key");
    let read_token = creds["read_token"].as_str().expect("read_token");

    server.admin().with_token(write_key).ingest(pageviews("c", 3)).await.expect("ingest");

    let (ok, out, err) = hourglass(&["query", "SELECT count(*) AS n FROM events"], read_token, &server.url);
    assert!(ok, "{err}");
    assert!(out.contains("| n |") && out.contains("| 3 |"), "table output:\n{out}");
    let (ok, out, _) =
        hourglass(&["query", "--format", "csv", "SELECT count(*) AS n FROM events"], read_token, &server.url);
    assert!(ok);
    assert_eq!(out, "n\n3\n");
    let (ok, out, _) =
        hourglass(&["query", "--format", "json", "SELECT count(*) AS n FROM events"], read_token, &server.url);
    assert!(ok);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).expect("json"), serde_json::json!([{"n": 3}]));

    // Errors are reported with the server's message and a failing exit status.
    let (ok, _, err) = hourglass(&["tenant", "create", "cli-shop"], ADMIN_TOKEN, &server.url);
    assert!(!ok);
    assert!(err.contains("409") && err.contains("already exists"), "{err}");
    let (ok, _, err) = hourglass(&["query", "SELECT nope FROM events"], read_token, &server.url);
    assert!(!ok);
    assert!(err.contains("400"), "{err}");
}

#[test]
fn first_start_prints_an_admin_token_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    for run in 0..2 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hourglass"))
            .args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("HOURGLASS_ADMIN_TOKEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut stdout, &mut line).expect("read") == 0 {
                break;
            }
            let done = line.contains("hourglass ready");
            lines.push(line);
            if done {
                break;
            }
        }
        child.kill().expect("kill");
        child.wait().expect("wait");
        let printed = lines.iter().any(|l| l.contains("admin token") && l.contains("hga_"));
        assert_eq!(printed, run == 0, "run {run}: {lines:?}");
    }
}
