//! Rebuilding the buffer from the WAL at start.

use std::collections::HashSet;

use hourglass_wal::Corruption;

use crate::batch::decode_entry;
use crate::buffer::keys_of;
use crate::dedupe::dedupe;
use crate::ingester::Shared;
use crate::{Result, metrics};

/// What replay found.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Segments replayed into the buffer.
    pub segments: usize,
    /// Events replayed into the buffer.
    pub events: usize,
    /// Segments at or below the persisted position, deleted.
    pub stale_segments: usize,
    /// Damaged segments: id, damage, and where a copy was kept.
    pub damaged: Vec<(u64, Corruption, String)>,
    /// Id the next segment will get.
    pub next_segment: u64,
}

pub(crate) async fn replay(shared: &Shared) -> Result<ReplayReport> {
    let ingester = shared.config.ingester_id.as_str();
    let persisted = shared.catalog.persisted_position(ingester).await?.unwrap_or(0);
    let segments = shared.wal.list_segments().await?;
    let mut report = ReplayReport { next_segment: persisted + 1, ..Default::default() };
    let mut seen = HashSet::new();
    for id in segments {
        if id <= persisted {
            report.stale_segments += 1;
            continue;
        }
        report.next_segment = report.next_segment.max(id + 1);
        let segment = shared.wal.read_segment(id).await?;
        let mut entry_damage = None;
        for (index, entry) in segment.entries.iter().enumerate() {
            let batches = match decode_entry(entry) {
                Ok(b) => b,
                // A whole, checksummed entry of another schema was written by another version:
                // skipping it would drop acknowledged events, so refuse to start instead.
                Err(crate::Error::WalSchema) => {
                    return Err(crate::Error::WalIncompatible { segment: id });
                }
                Err(e) => {
                    // The checksum matched, so this is not a torn write: keep going but report.
                    entry_damage = Some(Corruption {
                        offset: 0,
                        reason: format!("entry {index} does not decode: {}", hourglass_types::error::display_chain(&e)),
                    });
                    continue;
                }
            };
            for raw in batches {
                // One entry holds one tenant's request, so its first row names the tenant.
                let tenant = crate::buffer::tenant_of(&raw).unwrap_or_default();
                let options = shared.processor_options(&tenant).await?;
                let events = hourglass_processor::process(&raw, &options)?;
                let keys = keys_of(&raw)?;
                let mut buffer = shared.write_buffer();
                let d = dedupe(&buffer, &mut seen, raw, events, keys)?;
                report.events += d.raw.num_rows();
                buffer.insert(&d.raw, &d.events, &d.keys, id, shared.clock.now_ms())?;
            }
        }
        report.segments += 1;
        if let Some(damage) = segment.corruption.or(entry_damage) {
            metrics::WAL_CORRUPT_SEGMENTS.inc();
            let kept = match shared.wal.quarantine(id).await {
                Ok(copy) => copy,
                Err(e) => format!("(copy failed: {})", hourglass_types::error::display_chain(&e)),
            };
            tracing::error!(
                ingester,
                segment = id,
                damage = %damage,
                entries_kept = segment.entries.len(),
                copy = %kept,
                "WAL segment is damaged; kept every complete entry before the damage"
            );
            report.damaged.push((id, damage, kept));
        }
    }
    if report.stale_segments > 0 {
        shared.wal.delete_through(persisted).await?;
    }
    Shared::update_gauges(&shared.read_buffer());
    tracing::info!(
        ingester,
        persisted_through = persisted,
        segments = report.segments,
        events = report.events,
        damaged = report.damaged.len(),
        "WAL replayed"
    );
    Ok(report)
}
