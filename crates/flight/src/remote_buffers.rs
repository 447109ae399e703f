//! The querier's side: every live ingester's buffer, read over Flight at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_flight::Ticket;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use async_trait::async_trait;
use futures::TryStreamExt;
use hourglass_catalog::Membership;
use hourglass_catalog::membership::role;
use hourglass_proto::internal::v1::{BufferTicket, ChunkMetadata};
use hourglass_query::{BufferSource, BufferedChunk};
use hourglass_types::{TableName, TenantId};
use prost::Message;
use tonic::transport::{Channel, Endpoint};

use crate::{BUFFER_TICKET_PREFIX, ClusterSecret, Error};

/// Reads the buffers of every ingester the membership lists as alive.
///
/// An ingester that is alive but does not answer fails the query (503, retryable) rather than
/// leaving its acknowledged rows silently out of the result.
#[derive(Debug)]
pub struct RemoteBuffers {
    membership: Arc<Membership>,
    secret: ClusterSecret,
    channels: Mutex<HashMap<String, Channel>>,
    timeout: Duration,
}

impl RemoteBuffers {
    /// Buffers of the live ingesters in `membership`; each call may take up to `timeout`.
    pub fn new(membership: Arc<Membership>, secret: ClusterSecret, timeout: Duration) -> Self {
        Self { membership, secret, channels: Mutex::new(HashMap::new()), timeout }
    }

    fn channel(&self, ingester: &str, url: &str) -> Result<Channel, Error> {
        let mut channels = self.channels.lock().map_err(|_| Error::Protocol {
            ingester: ingester.to_string(),
            what: "nothing (the channel cache was poisoned)",
        })?;
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|_| Error::BadUrl { ingester: ingester.to_string(), url: url.to_string() })?
            .connect_timeout(Duration::from_secs(2))
            .timeout(self.timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.insert(url.to_string(), channel.clone());
        Ok(channel)
    }

    async fn read_one(&self, ingester: String, url: String, ticket: Ticket) -> Result<Vec<BufferedChunk>, Error> {
        let channel = self.channel(&ingester, &url)?;
        let mut client = FlightServiceClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);
        let mut request = tonic::Request::new(ticket);
        let header = self.secret.header().parse().map_err(|_| Error::Protocol {
            ingester: ingester.clone(),
            what: "nothing (the secret is not a header value)",
        })?;
        request.metadata_mut().insert("authorization", header);
        let response = client.do_get(request).await.map_err(|source| {
            // A broken channel is rebuilt on the next call.
            if let Ok(mut channels) = self.channels.lock() {
                channels.remove(&url);
            }
            Error::Call { ingester: ingester.clone(), source }
        })?;
        let mut decoder = FlightDataDecoder::new(response.into_inner().map_err(|s| FlightError::Tonic(Box::new(s))));
        let mut chunks: Vec<BufferedChunk> = Vec::new();
        while let Some(message) =
            decoder.try_next().await.map_err(|source| Error::Decode { ingester: ingester.clone(), source })?
        {
            match message.payload {
                // Every chunk starts with a schema message carrying its metadata.
                DecodedPayload::Schema(_) => {
                    let meta = ChunkMetadata::decode(message.inner.app_metadata.as_ref()).map_err(|_| {
                        Error::Protocol { ingester: ingester.clone(), what: "undecodable chunk metadata" }
                    })?;
                    chunks.push(BufferedChunk {
                        ingester_id: meta.ingester_id,
                        max_seq: meta.max_seq,
                        batches: Vec::new(),
                    });
                }
                DecodedPayload::RecordBatch(batch) => match chunks.last_mut() {
                    Some(chunk) => chunk.batches.push(batch),
                    None => return Err(Error::Protocol { ingester, what: "a batch before any chunk metadata" }),
                },
                DecodedPayload::None => {}
            }
        }
        Ok(chunks)
    }
}

#[async_trait]
impl BufferSource for RemoteBuffers {
    async fn snapshot(
        &self,
        table: TableName,
        tenant: &TenantId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<BufferedChunk>, Box<dyn std::error::Error + Send + Sync>> {
        let body = BufferTicket { table: table.as_str().to_string(), tenant: tenant.to_string(), from_ms, to_ms };
        let mut bytes = BUFFER_TICKET_PREFIX.to_vec();
        bytes.extend(body.encode_to_vec());
        let ticket = Ticket { ticket: bytes.into() };
        let calls = self.membership.live(role::INGESTER).into_iter().filter_map(|node| {
            let url = node.info.flight_url?;
            Some(self.read_one(node.info.id, url, ticket.clone()))
        });
        let mut chunks = Vec::new();
        for result in futures::future::join_all(calls).await {
            chunks.extend(result?);
        }
        Ok(chunks)
    }
}
