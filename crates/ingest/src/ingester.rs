//! The ingester: wiring of validation, group commit, buffer and persister.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use hourglass_catalog::{Catalog, SettingsCache};
use hourglass_processor::Options;
use hourglass_storage::ParquetOptions;
use hourglass_types::partition::hour_of;
use hourglass_types::settings::MAX_SESSION_TIMEOUT_MS;
use hourglass_types::{Clock, TableName, TenantId};
use hourglass_wal::WalStore;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::batch::{HashedEvent, build_raw_batch, encode_entry};
use crate::buffer::{Buffer, ChunkSnapshot, filter_snapshot, keys_of};
use crate::committer::{CommitRequest, run_committer};
use crate::geoip::GeoIp;
use crate::limits::IngestLimits;
use crate::parse::{EventError, ValidEvent, parse_events};
use crate::persister::{PersistCommand, run_persister};
use crate::replay::{ReplayReport, replay};
use crate::{Error, Result, metrics};

/// Ingester settings.
#[derive(Debug, Clone)]
pub struct IngesterConfig {
    /// Names this ingester's WAL (`wal/{id}/`) and its position in the catalog. Two live
    /// processes must never share an id.
    pub ingester_id: String,
    /// Number of shards tenants are spread over (`hash(tenant) mod shards`).
    pub shards: u32,
    /// Request limits.
    pub limits: IngestLimits,
    /// Persist once the active buffer holds this many bytes.
    pub persist_max_bytes: usize,
    /// Persist once the oldest buffered event has waited this long (ms).
    pub persist_max_age_ms: i64,
    /// Refuse ingest (503, retry) while the buffer holds more than this many bytes.
    pub max_buffer_bytes: usize,
    /// Parquet layout.
    pub parquet: ParquetOptions,
    /// Where the country of an event that carries none comes from, by its address.
    pub geoip: Option<Arc<GeoIp>>,
    /// The processor version new events are derived with (one of the processor's supported
    /// versions; the newest by default). WAL replay derives with it too.
    pub processor_version: i32,
}

impl Default for IngesterConfig {
    fn default() -> Self {
        Self {
            ingester_id: "ingester-0".into(),
            shards: 1,
            limits: IngestLimits::default(),
            persist_max_bytes: 256 * 1024 * 1024,
            persist_max_age_ms: 5 * 60 * 1000,
            max_buffer_bytes: 1024 * 1024 * 1024,
            parquet: ParquetOptions::default(),
            geoip: None,
            processor_version: hourglass_processor::PROCESSOR_VERSION,
        }
    }
}

/// What happened to the events of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Events now durable (including re-sends of events already stored).
    pub accepted: usize,
    /// Of the accepted, how many were re-sends stored only once.
    pub duplicates: usize,
    /// Events rejected, with the reason for each.
    pub errors: Vec<EventError>,
}

/// State shared by the ingester's tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: IngesterConfig,
    pub store: Arc<dyn ObjectStore>,
    pub catalog: Arc<dyn Catalog>,
    pub clock: Arc<dyn Clock>,
    pub wal: WalStore,
    pub buffer: RwLock<Buffer>,
    pub settings: SettingsCache,
}

impl Shared {
    /// The processor options of `tenant`'s settings (the defaults for a tenant the catalog
    /// does not know, which only happens when it was deleted after its key was checked).
    pub(crate) async fn processor_options(&self, tenant: &str) -> Result<Options> {
        let version = self.config.processor_version;
        let Ok(tenant) = TenantId::new(tenant) else {
            return Ok(Options::for_tenant(None, version));
        };
        let config = self.settings.get(&tenant).await?;
        Ok(Options::for_tenant(config.as_ref().map(|c| &c.settings), version))
    }

    pub(crate) fn update_gauges(buffer: &Buffer) {
        metrics::BUFFER_BYTES.set(buffer.bytes() as i64);
        metrics::BUFFER_EVENTS.set(buffer.rows() as i64);
    }

    pub(crate) fn read_buffer(&self) -> std::sync::RwLockReadGuard<'_, Buffer> {
        // A panic while holding the lock cannot leave the buffer half-updated in a way that
        // matters more than stopping ingest would, so poisoning is ignored.
        self.buffer.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_buffer(&self) -> std::sync::RwLockWriteGuard<'_, Buffer> {
        self.buffer.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running ingester. Create with [`Ingester::start`]; stop with [`Ingester::shutdown`].
#[derive(Debug)]
pub struct Ingester {
    shared: Arc<Shared>,
    commit_tx: Mutex<Option<mpsc::Sender<CommitRequest>>>,
    persist_tx: mpsc::Sender<PersistCommand>,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    salts: Mutex<HashMap<String, Arc<[u8]>>>,
    replay: ReplayReport,
}

impl Ingester {
    /// Replays the WAL into the buffer, then starts the committer and persister tasks.
    pub async fn start(
        config: IngesterConfig,
        store: Arc<dyn ObjectStore>,
        catalog: Arc<dyn Catalog>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>> {
        hourglass_processor::supported(config.processor_version).map_err(hourglass_processor::ProcessError::from)?;
        let wal = WalStore::new(Arc::clone(&store), &config.ingester_id);
        let settings = SettingsCache::new(Arc::clone(&catalog));
        let buffer = RwLock::new(Buffer::new(config.shards));
        let shared = Arc::new(Shared { buffer, config, store, catalog, clock, wal, settings });
        let report = replay(&shared).await?;
        let (commit_tx, commit_rx) = mpsc::channel(4096);
        let (persist_tx, persist_rx) = mpsc::channel(64);
        let committer = tokio::spawn(run_committer(Arc::clone(&shared), commit_rx, report.next_segment));
        let persister = tokio::spawn(run_persister(Arc::clone(&shared), persist_rx));
        Ok(Arc::new(Self {
            shared,
            commit_tx: Mutex::new(Some(commit_tx)),
            persist_tx,
            tasks: tokio::sync::Mutex::new(vec![committer, persister]),
            salts: Mutex::new(HashMap::new()),
            replay: report,
        }))
    }

    /// This ingester's id.
    pub fn ingester_id(&self) -> &str {
        &self.shared.config.ingester_id
    }

    /// The limits requests are held to.
    pub fn limits(&self) -> &IngestLimits {
        &self.shared.config.limits
    }

    /// What the WAL replay at start found.
    pub fn replay_report(&self) -> &ReplayReport {
        &self.replay
    }

    /// Validates and stores one request body for `tenant`; returns once the accepted events
    /// are durable. `gzip` says the body is gzip-compressed.
    pub async fn ingest(&self, tenant: &TenantId, body: Bytes, gzip: bool) -> Result<IngestOutcome> {
        let limits = &self.shared.config.limits;
        let body = if gzip { Bytes::from(crate::parse::gunzip(&body, limits.max_decompressed_bytes)?) } else { body };
        metrics::BYTES_INGESTED.add(body.len() as u64);
        let now = self.shared.clock.now_ms();
        let items = parse_events(&body, limits, now)?;
        self.ingest_validated(tenant, items).await
    }

    /// The server clock (epoch ms) that timestamps are validated against and missing ones
    /// default to.
    pub fn now_ms(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    /// Stores events validated by [`crate::parse::check_fields`] (or rejected by it) for
    /// `tenant`: the second half of [`Ingester::ingest`] for inputs that are not a JSON body,
    /// such as Arrow record batches. Returns once the accepted events are durable.
    pub async fn ingest_validated(
        &self,
        tenant: &TenantId,
        items: Vec<Result<ValidEvent, EventError>>,
    ) -> Result<IngestOutcome> {
        let now = self.shared.clock.now_ms();
        let mut errors = Vec::new();
        let mut valid = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Ok(event) => valid.push(event),
                Err(e) => errors.push(e),
            }
        }
        metrics::EVENTS_REJECTED.add(errors.len() as u64);
        crate::parse::assign_event_ids(&mut valid);
        if valid.is_empty() {
            return Ok(IngestOutcome { accepted: 0, duplicates: 0, errors });
        }
        let buffered = self.shared.read_buffer().bytes();
        if buffered > self.shared.config.max_buffer_bytes {
            return Err(Error::Overloaded { buffered, limit: self.shared.config.max_buffer_bytes });
        }

        let mut hashed = Vec::with_capacity(valid.len());
        for mut event in valid {
            if event.country.is_none()
                && let (Some(geoip), Some(ip)) = (&self.shared.config.geoip, event.ip)
            {
                event.country = geoip.country(ip);
            }
            let (ip_hash, ip_hash_prev) = match event.ip {
                Some(ip) => {
                    let day = day_start_ms(event.timestamp_ms);
                    let today = self.hash_ip(tenant, day, ip).await?;
                    // Only an event within the longest session timeout after midnight can
                    // continue a session of the previous day.
                    let previous = if event.timestamp_ms - day <= MAX_SESSION_TIMEOUT_MS {
                        Some(self.hash_ip(tenant, day - DAY_MS, ip).await?)
                    } else {
                        None
                    };
                    (Some(today), previous)
                }
                None => (None, None),
            };
            hashed.push(HashedEvent { event, ip_hash, ip_hash_prev });
        }
        let raw = build_raw_batch(tenant.as_str(), now, &hashed)?;
        let options = self.shared.processor_options(tenant.as_str()).await?;
        let events = hourglass_processor::process(&raw, &options)?;
        let keys = keys_of(&raw)?;
        let entry = encode_entry(&raw)?;
        let (reply, answer) = oneshot::channel();
        let request = CommitRequest { raw, events, keys, entry, reply };
        let sender = self.commit_tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let sender = sender.ok_or(Error::ShuttingDown)?;
        sender.send(request).await.map_err(|_| Error::ShuttingDown)?;
        let committed = answer.await.map_err(|_| Error::ShuttingDown)??;
        Ok(IngestOutcome { accepted: committed.accepted, duplicates: committed.duplicates, errors })
    }

    /// The address hashed with the salt of the UTC day that starts at `day_ms`.
    async fn hash_ip(&self, tenant: &TenantId, day_ms: i64, ip: IpAddr) -> Result<String> {
        let day = chrono::DateTime::from_timestamp_millis(day_ms)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let cached = self.salts.lock().unwrap_or_else(|e| e.into_inner()).get(&day).cloned();
        let salt = match cached {
            Some(s) => s,
            None => {
                let salt: Arc<[u8]> = self.shared.catalog.daily_salt(&day).await?.into();
                self.salts.lock().unwrap_or_else(|e| e.into_inner()).insert(day, Arc::clone(&salt));
                salt
            }
        };
        let mut h = Sha256::new();
        h.update(&salt);
        h.update(tenant.as_str().as_bytes());
        h.update([0]);
        h.update(ip.to_string().as_bytes());
        Ok(hex::encode(&h.finalize()[..8]))
    }

    /// `tenant`'s buffered rows of `table` in the hours `[from_ms, to_ms]` (inclusive bounds,
    /// epoch ms), per chunk with the chunk's highest WAL segment.
    pub fn snapshot(
        &self,
        table: TableName,
        tenant: &TenantId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ChunkSnapshot>> {
        let chunks = self.shared.read_buffer().snapshot(table, tenant, (hour_of(from_ms), hour_of(to_ms)));
        filter_snapshot(tenant, chunks)
    }

    /// Persists everything buffered now and returns when it is in the catalog.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.persist_tx.send(PersistCommand::Flush(tx)).await.map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Stops taking requests, commits what is queued, persists the whole buffer and stops the
    /// tasks. Events that could not be persisted stay in the WAL for the next start.
    pub async fn shutdown(&self) -> Result<()> {
        drop(self.commit_tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let mut tasks = self.tasks.lock().await;
        if tasks.is_empty() {
            return Ok(());
        }
        // The committer ends once every sender is gone and its queue is drained.
        let committer = tasks.remove(0);
        let _ = committer.await;
        let (tx, rx) = oneshot::channel();
        let result = match self.persist_tx.send(PersistCommand::Shutdown(tx)).await {
            Ok(()) => rx.await.unwrap_or(Err(Error::ShuttingDown)),
            Err(_) => Err(Error::ShuttingDown),
        };
        for task in tasks.drain(..) {
            let _ = task.await;
        }
        result
    }
}

const DAY_MS: i64 = 86_400_000;

/// Midnight UTC at the start of the day holding `timestamp_ms`.
fn day_start_ms(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(DAY_MS) * DAY_MS
}
