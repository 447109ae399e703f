//! An S3-protocol server on loopback for tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, unique_name};

/// A running S3-protocol server with one bucket made for the test.
///
/// Uses the server at `HOURGLASS_TEST_S3_ENDPOINT` when set (CI starts one for the whole run);
/// otherwise spawns `moto_server` on a free port and kills it on drop.
pub struct S3Server {
    child: Option<Child>,
    endpoint: String,
    bucket: String,
}

impl S3Server {
    /// Starts (or reuses) the server and creates a fresh bucket on it.
    pub async fn start() -> Self {
        let (child, endpoint) = match std::env::var("HOURGLASS_TEST_S3_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => (None, endpoint.trim_end_matches('/').to_string()),
            _ => {
                let port = free_port();
                let child = Command::new("moto_server")
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| {
                        panic!(
                            "cannot start moto_server ({e}); install it with `pip install 'moto[server]'` \
                             (scripts/test-deps does) or point HOURGLASS_TEST_S3_ENDPOINT at an S3 server"
                        )
                    });
                (Some(child), format!("http://127.0.0.1:{port}"))
            }
        };
        let mut server = Self { child, endpoint, bucket: unique_name("hg") };
        server.wait_ready().await;
        server.create_bucket().await;
        server
    }

    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http.get(&self.endpoint).send().await.is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("moto_server exited with {status} before it was ready");
            }
            assert!(Instant::now() < deadline, "S3 server at {} did not become ready", self.endpoint);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn create_bucket(&self) {
        let response = reqwest::Client::new()
            .put(format!("{}/{}", self.endpoint, self.bucket))
            .send()
            .await
            .expect("creating a bucket");
        assert!(response.status().is_success(), "creating bucket {}: {}", self.bucket, response.status());
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The server's socket address.
    pub fn addr(&self) -> std::net::SocketAddr {
        let host = self.endpoint.trim_start_matches("http://");
        host.parse().unwrap_or_else(|_| panic!("S3 endpoint {} is not http://IP:PORT", self.endpoint))
    }

    /// The bucket made for this test.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Environment variables that point an AWS client at this server (any credentials work).
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "hourglass-test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "hourglass-test-secret".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
