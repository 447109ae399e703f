//! A Parquet file written the way the persister writes it, read back through ranged reads with
//! its page index, from the S3-protocol server.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use hourglass_storage::{ParquetOptions, encode_parquet, sort_for_parquet};
use hourglass_testkit::S3Server;
use hourglass_types::schema::col;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use crate::contract::s3_store;

fn batch(rows: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(col::TENANT_ID, DataType::Utf8, false),
        Field::new(col::TIMESTAMP, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("n", DataType::Int64, false),
    ]));
    let tenants = StringArray::from_iter_values((0..rows).map(|i| format!("t{}", i % 7)));
    let times = TimestampMillisecondArray::from_iter_values((0..rows).map(|i| 1_700_000_000_000 + (rows - i) as i64))
        .with_timezone("UTC");
    let n = Int64Array::from_iter_values((0..rows).map(|i| i as i64));
    RecordBatch::try_new(schema, vec![Arc::new(tenants), Arc::new(times), Arc::new(n)]).expect("batch")
}

/// Reads a Parquet object with ranged GETs only.
struct RangedReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

impl AsyncFileReader for RangedReader {
    fn get_bytes(&mut self, range: std::ops::Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let reader = ParquetMetaDataReader::new().with_page_index_policy(PageIndexPolicy::Required);
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}

#[tokio::test]
async fn parquet_file_reads_back_from_s3_with_its_page_index() {
    let server = S3Server::start().await;
    let store = s3_store(&server);
    let rows = 50_000;
    let (sorted, stats) = sort_for_parquet(&batch(rows)).expect("sort").expect("non-empty");
    assert_eq!((stats.min_tenant.as_str(), stats.max_tenant.as_str(), stats.rows), ("t0", "t6", rows as u64));
    let options = ParquetOptions { row_group_rows: 16_384, page_rows: 2_048, ..ParquetOptions::default() };
    let bytes = encode_parquet(&sorted, &options).expect("encode");
    let path = Path::from("events/date=2026-01-01/hour=00/shard=0/1-test.parquet");
    store.put(&path, PutPayload::from(bytes.clone())).await.expect("put");

    let reader = RangedReader { store: store.clone(), path, size: bytes.len() as u64 };
    let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, ArrowReaderOptions::new())
        .await
        .expect("footer and page index through ranged reads");
    let metadata = builder.metadata().clone();
    assert_eq!(metadata.num_row_groups(), 4);
    assert!(metadata.offset_index().is_some(), "the page index was read");
    let mut stream = builder.build().expect("stream");
    let mut batches: Vec<RecordBatch> = Vec::new();
    while let Some(batch) = stream.try_next().await.expect("read") {
        batches.push(batch);
    }
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, rows);
    let first = batches[0].column(0).as_any().downcast_ref::<StringArray>().expect("tenant column");
    assert_eq!(first.value(0), "t0");
    assert!(first.is_valid(0));
}
