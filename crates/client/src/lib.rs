//! Hourglass client: a small HTTP client for the CLI, tests and benchmarks.

use arrow::array::RecordBatch;
use bytes::Bytes;
use serde::Deserialize;

/// A streamed request body, for [`Client::import_table`].
pub use reqwest::Body;

/// Errors from talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be sent or the response not read.
    #[error("request to {url} failed")]
    Http {
        /// The URL.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("server answered {status}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The server's error message (or body).
        message: String,
    },
    /// The response body is not what the API promises.
    #[error("unexpected response: {0}")]
    Decode(String),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A tenant's credentials, as returned by tenant creation.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct TenantCredentials {
    /// The tenant id.
    pub id: String,
    /// The key for `POST /api/v1/events`.
    pub write_key: String,
    /// The token for queries.
    pub read_token: String,
    /// The public key web pages send events with (`/api/v1/collect`).
    #[serde(default)]
    pub site_key: Option<String>,
}

/// The answer to an ingest request.
#[derive(Debug, Clone, Deserialize)]
pub struct IngestResponse {
    /// Events durable now.
    pub accepted: usize,
    /// Events rejected.
    pub rejected: usize,
    /// Accepted events that were re-sends of already stored ones.
    #[serde(default)]
    pub duplicates: usize,
    /// One entry per rejected event.
    pub errors: Vec<serde_json::Value>,
}

/// Result formats of `POST /api/v1/query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFormat {
    /// A JSON array of objects.
    Json,
    /// CSV with a header row.
    Csv,
    /// An Arrow IPC stream.
    Arrow,
}

impl QueryFormat {
    fn accept(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv",
            Self::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// A client of one server with one token.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `base` (`http://host:port`) using `token`.
    pub fn new(base: &str, token: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_string(), token: token.to_string(), http: reqwest::Client::new() }
    }

    /// The token this client sends.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The same server with another token.
    pub fn with_token(&self, token: &str) -> Self {
        Self { base: self.base.clone(), token: token.to_string(), http: self.http.clone() }
    }

    async fn send(&self, path: &str, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let response =
            request.bearer_auth(&self.token).send().await.map_err(|source| Error::Http { url: url.clone(), source })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or(text);
        Err(Error::Status { status: status.as_u16(), message })
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }

    /// Creates a tenant (admin token).
    pub async fn create_tenant(&self, id: &str) -> Result<TenantCredentials> {
        let path = "/api/v1/admin/tenants";
        let response = self.send(path, self.post(path).json(&serde_json::json!({"id": id}))).await?;
        response.json().await.map_err(|e| Error::Decode(e.to_string()))
    }

    /// A tenant's settings and site key, as `GET /api/v1/admin/tenants/{id}/settings` answers
    /// (admin token).
    pub async fn tenant_settings(&self, id: &str) -> Result<serde_json::Value> {
        self.get_json(&format!("/api/v1/admin/tenants/{id}/settings")).await
    }

    /// Changes the settings `patch` names (a JSON object of setting to value) and returns the
    /// tenant's settings after the change (admin token).
    pub async fn update_tenant_settings(&self, id: &str, patch: &serde_json::Value) -> Result<serde_json::Value> {
        let path = format!("/api/v1/admin/tenants/{id}/settings");
        let response = self.send(&path, self.http.patch(format!("{}{path}", self.base)).json(patch)).await?;
        response.json().await.map_err(|e| Error::Decode(e.to_string()))
    }

    /// Queues a backfill (admin token): `request` is the body of
    /// `POST /api/v1/admin/backfills`; returns the queued job.
    pub async fn create_backfill(&self, request: &serde_json::Value) -> Result<serde_json::Value> {
        self.post_json("/api/v1/admin/backfills", request).await
    }

    /// A backfill with its progress (admin token).
    pub async fn backfill(&self, id: i64) -> Result<serde_json::Value> {
        self.get_json(&format!("/api/v1/admin/backfills/{id}")).await
    }

    /// The newest backfills (admin token).
    pub async fn backfills(&self) -> Result<serde_json::Value> {
        self.get_json("/api/v1/admin/backfills").await
    }

    /// Cancels a backfill and returns it (admin token).
    pub async fn cancel_backfill(&self, id: i64) -> Result<serde_json::Value> {
        let path = format!("/api/v1/admin/backfills/{id}");
        let response = self.send(&path, self.http.delete(format!("{}{path}", self.base))).await?;
        response.json().await.map_err(|e| Error::Decode(e.to_string()))
    }

    /// Which processor versions derived which ranges of `events` (admin token).
    pub async fn processor_versions(&self) -> Result<serde_json::Value> {
        self.get_json("/api/v1/admin/processor-versions").await
    }

    async fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let response = self.send(path, self.http.get(format!("{}{path}", self.base))).await?;
        response.json().await.map_err(|e| Error::Decode(e.to_string()))
    }

    /// Persists every buffered event now (admin token).
    pub async fn flush(&self) -> Result<()> {
        let path = "/api/v1/admin/flush";
        self.send(path, self.post(path)).await.map(|_| ())
    }

    /// Sends an ingest body (NDJSON or a JSON array) with the write key.
    pub async fn ingest(&self, body: impl Into<Bytes>) -> Result<IngestResponse> {
        let path = "/api/v1/events";
        let response = self.send(path, self.post(path).body(body.into())).await?;
        response.json().await.map_err(|e| Error::Decode(e.to_string()))
    }

    /// Imports a file as the tenant's table `name` (write key), replacing an earlier import of
    /// the name. `params` are the endpoint's query parameters (`format`, `header`,
    /// `delimiter`, `schema`); `body` streams the file. Returns the server's summary.
    pub async fn import_table(
        &self,
        name: &str,
        params: &[(&str, String)],
        body: reqwest::Body,
    ) -> Result<serde_json::Value> {
        let path = format!("/api/v1/tables/{name}/import");
        let response = self.send(&path, self.post(&path).query(params).body(body)).await?;
        response.json().await.map_err(|e| Error::Decode(e.to_string()))
    }

    /// Runs SQL and returns the raw response body in `format`.
    pub async fn query_raw(&self, sql: &str, format: QueryFormat) -> Result<Bytes> {
        let path = "/api/v1/query";
        let request = self.post(path).header("accept", format.accept()).json(&serde_json::json!({"sql": sql}));
        let response = self.send(path, request).await?;
        response.bytes().await.map_err(|e| Error::Decode(e.to_string()))
    }

    /// Runs SQL and returns rows as JSON objects.
    pub async fn query_json(&self, sql: &str) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
        let body = self.query_raw(sql, QueryFormat::Json).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))
    }

    /// Asks `POST /api/v1/report` (read token) and returns the response body.
    pub async fn report(&self, request: &serde_json::Value) -> Result<serde_json::Value> {
        self.post_json("/api/v1/report", request).await
    }

    /// Asks `POST /api/v1/report/realtime` (read token) and returns the response body.
    pub async fn report_realtime(&self, request: &serde_json::Value) -> Result<serde_json::Value> {
        self.post_json("/api/v1/report/realtime", request).await
    }

    /// `GET /api/v1/metadata` (read token): the dimensions, metrics and prop keys.
    pub async fn metadata(&self) -> Result<serde_json::Value> {
        self.get_json("/api/v1/metadata").await
    }

    async fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        let response = self.send(path, self.post(path).json(body)).await?;
        response.json().await.map_err(|e| Error::Decode(e.to_string()))
    }

    /// Runs SQL and returns Arrow record batches.
    pub async fn query_arrow(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let body = self.query_raw(sql, QueryFormat::Arrow).await?;
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
            .map_err(|e| Error::Decode(e.to_string()))?;
        reader.collect::<Result<Vec<_>, _>>().map_err(|e| Error::Decode(e.to_string()))
    }
}
