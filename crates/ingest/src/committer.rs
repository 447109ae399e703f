//! Group commit: one task takes every request waiting, de-duplicates them, writes them as one
//! WAL segment, inserts them into the buffer and answers them all. Concurrent requests thus
//! share one durable write; a lone request is written at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::batch::encode_entry;
use crate::buffer::DedupKey;
use crate::dedupe::dedupe;
use crate::ingester::Shared;
use crate::{Result, metrics};

/// Largest WAL segment a group grows to before it is written.
const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;

/// One request waiting to be committed.
pub(crate) struct CommitRequest {
    pub raw: RecordBatch,
    pub events: RecordBatch,
    pub keys: Vec<DedupKey>,
    /// The raw batch already encoded, reused when nothing is de-duplicated away.
    pub entry: Bytes,
    pub reply: oneshot::Sender<Result<Committed>>,
}

/// The answer to a committed request.
#[derive(Debug)]
pub(crate) struct Committed {
    pub accepted: usize,
    pub duplicates: usize,
}

struct Prepared {
    raw: RecordBatch,
    events: RecordBatch,
    keys: Vec<DedupKey>,
    entry: Option<Bytes>,
    received: usize,
    duplicates: usize,
    reply: oneshot::Sender<Result<Committed>>,
}

/// Runs until every sender is dropped and the queue is empty.
pub(crate) async fn run_committer(shared: Arc<Shared>, mut rx: mpsc::Receiver<CommitRequest>, mut next_seq: u64) {
    while let Some(first) = rx.recv().await {
        let mut bytes = first.entry.len();
        let mut group = vec![first];
        while bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(request) => {
                    bytes += request.entry.len();
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        let prepared = prepare(&shared, group);
        let entries: Vec<Bytes> = prepared.iter().filter_map(|p| p.entry.clone()).collect();
        if entries.is_empty() {
            answer(prepared, |p| Ok(Committed { accepted: p.received, duplicates: p.duplicates }));
            continue;
        }
        let seq = next_seq;
        // A failed write may still have reached storage; never reuse its number.
        next_seq += 1;
        let started = Instant::now();
        let written = shared.wal.write_segment(seq, &entries).await;
        metrics::WAL_SYNC_SECONDS.observe(started.elapsed());
        metrics::WAL_GROUPED_REQUESTS.add(prepared.len() as u64);
        match written {
            Ok(_) => {
                let now = shared.clock.now_ms();
                let mut inserted = Vec::with_capacity(prepared.len());
                {
                    let mut buffer = shared.write_buffer();
                    for p in prepared {
                        let result = buffer.insert(&p.raw, &p.events, &p.keys, seq, now);
                        inserted.push((p, result));
                    }
                    Shared::update_gauges(&buffer);
                }
                for (p, result) in inserted {
                    let outcome = result.map(|()| {
                        metrics::EVENTS_INGESTED.add(p.raw.num_rows() as u64);
                        metrics::EVENTS_DUPLICATE.add(p.duplicates as u64);
                        Committed { accepted: p.received, duplicates: p.duplicates }
                    });
                    let _ = p.reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(segment = seq, error = %hourglass_types::error::display_chain(&e), "WAL write failed");
                let message = hourglass_types::error::display_chain(&e);
                answer(prepared, |_| Err(crate::Error::WalWrite { message: message.clone() }));
            }
        }
    }
}

fn answer(prepared: Vec<Prepared>, outcome: impl Fn(&Prepared) -> Result<Committed>) {
    for p in prepared {
        let result = outcome(&p);
        let _ = p.reply.send(result);
    }
}

/// De-duplicates every request of the group against the buffer and each other.
fn prepare(shared: &Shared, group: Vec<CommitRequest>) -> Vec<Prepared> {
    let buffer = shared.read_buffer();
    let mut seen = HashSet::new();
    let mut prepared = Vec::with_capacity(group.len());
    for request in group {
        let received = request.raw.num_rows();
        let result = dedupe(&buffer, &mut seen, request.raw, request.events, request.keys).and_then(|d| {
            let entry = match d.duplicates {
                0 => Some(request.entry),
                _ if d.raw.num_rows() == 0 => None,
                _ => Some(encode_entry(&d.raw)?),
            };
            Ok((d, entry))
        });
        match result {
            Ok((d, entry)) => prepared.push(Prepared {
                raw: d.raw,
                events: d.events,
                keys: d.keys,
                entry,
                received,
                duplicates: d.duplicates,
                reply: request.reply,
            }),
            Err(e) => {
                let _ = request.reply.send(Err(e));
            }
        }
    }
    prepared
}
