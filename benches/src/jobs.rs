//! The jobs benchmark (`--jobs`): compaction and backfill in process, over a data set generated
//! like the dashboard's (`--events` over `--days` for `--dashboard-tenants` tenants) on the
//! local object store and a SQLite catalog.
//!
//! - **Compaction.** Every events partition is split into 8 files that overlap in time and
//!   tenants (row i goes to file i mod 8), as an hour of small persists would leave it, and
//!   the compactor merges them. Its baseline, on the same files in the same run, is the naive
//!   merge: read a partition's files whole, sort in memory, write one Parquet file.
//! - **Day objects.** After compaction, the compactor merges each settled day's hours into one
//!   object per (table, day, shard). Its figures are its rate, its heap, and the objects and
//!   bytes per event before and after.
//! - **Backfill.** The whole range is rebuilt from raw events with the current processor.
//!   Its baseline is the processor alone over the same raw rows, already in memory.
//!
//! Memory is the most heap each step held above what the process held when it started (the
//! benchmark's allocator counts heap bytes): a process's resident set also keeps what the
//! allocator retained from the data generation, which drowns the figure.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use bytes::Bytes;
use hourglass_catalog::{
    BackfillState, Catalog, CatalogOptions, FileFilter, FileRecord, NewBackfill, NewFile, SqlCatalog,
};
use hourglass_jobs::{BackfillConfig, Backfiller, Compactor, CompactorConfig};
use hourglass_storage::{ObjectStoreConfig, ParquetOptions, encode_parquet, sort_for_parquet};
use hourglass_types::{PartitionKey, SystemClock, TableName};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::dashboard::generate::{self, Shape};

/// Files each events partition is split into before compaction.
const PIECES: u32 = 8;

/// Options of the jobs benchmark.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub events: u64,
    pub days: u32,
    pub tenants: usize,
    pub runs: usize,
}

/// One run's figures.
#[derive(Debug, Clone, Default)]
struct Figures {
    events: u64,
    compaction: Duration,
    compaction_peak: Option<u64>,
    naive: Duration,
    naive_peak: Option<u64>,
    bytes_before: u64,
    bytes_after: u64,
    day_merge: Duration,
    day_merge_peak: Option<u64>,
    objects_before_days: usize,
    objects_after_days: usize,
    bytes_after_days: u64,
    raw_events: u64,
    backfill: Duration,
    backfill_peak: Option<u64>,
    processor: Duration,
}

/// Starts measuring a step's heap: returns the heap held now.
fn reset_peak() -> usize {
    crate::HEAP.reset_peak_usage();
    crate::HEAP.current_usage()
}

/// The most heap held since [`reset_peak`] returned `start`, above `start`, in bytes.
fn peak_held(start: usize) -> Option<u64> {
    Some(crate::HEAP.peak_usage().saturating_sub(start) as u64)
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".to_string(), |b| format!("{:.0}", b as f64 / (1024.0 * 1024.0)))
}

async fn files_of(catalog: &dyn Catalog, table: TableName) -> anyhow::Result<Vec<FileRecord>> {
    let filter = FileFilter { table, tenant: None, min_time_ms: None, max_time_ms: None };
    Ok(catalog.list_files(&filter).await?.files)
}

async fn read(store: &dyn ObjectStore, path: &str) -> anyhow::Result<RecordBatch> {
    let bytes: Bytes = store.get(&Path::from(path)).await?.bytes().await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let schema = batches.first().map(|b| b.schema()).context("an empty file")?;
    Ok(concat_batches(&schema, &batches)?)
}

async fn put(store: &dyn ObjectStore, key: PartitionKey, unique: &str, batch: &RecordBatch) -> anyhow::Result<NewFile> {
    let (sorted, stats) = sort_for_parquet(batch)?.context("an empty piece")?;
    let data = encode_parquet(&sorted, &ParquetOptions::default())?;
    let path = key.file_key(1, unique);
    let bytes = data.len() as u64;
    store.put(&Path::from(path.as_str()), PutPayload::from(data)).await?;
    Ok(NewFile::new(key, 1, path, bytes, stats, Some(hourglass_processor::PROCESSOR_VERSION)))
}

/// Splits every events partition into [`PIECES`] overlapping files; returns their bytes.
async fn split(store: &dyn ObjectStore, catalog: &dyn Catalog) -> anyhow::Result<u64> {
    let mut bytes = 0;
    for f in files_of(catalog, TableName::Events).await? {
        let batch = read(store, &f.file.path).await?;
        let key = PartitionKey { table: TableName::Events, hour: f.file.hour, shard: f.file.shard };
        let mut pieces = Vec::new();
        for piece in 0..PIECES {
            let rows = UInt32Array::from_iter_values((piece..batch.num_rows() as u32).step_by(PIECES as usize));
            let part = take_record_batch(&batch, &rows)?;
            if part.num_rows() > 0 {
                pieces.push(put(store, key, &format!("piece-{}-{piece}", f.id), &part).await?);
            }
        }
        bytes += pieces.iter().map(|p| p.bytes).sum::<u64>();
        catalog.replace_files("bench", &[f.id], &pieces).await?;
    }
    Ok(bytes)
}

/// The naive merge of every events partition: its files read whole, sorted in memory,
/// written as one file.
async fn naive_merge(store: &dyn ObjectStore, catalog: &dyn Catalog) -> anyhow::Result<()> {
    let files = files_of(catalog, TableName::Events).await?;
    let mut by_partition: std::collections::BTreeMap<(i64, u32), Vec<&FileRecord>> = Default::default();
    for f in &files {
        by_partition.entry((f.file.hour, f.file.shard)).or_default().push(f);
    }
    for ((hour, shard), group) in by_partition {
        let mut batches = Vec::new();
        for f in group {
            batches.push(read(store, &f.file.path).await?);
        }
        let schema = batches.first().map(|b| b.schema()).context("no files")?;
        let all = concat_batches(&schema, &batches)?;
        drop(batches);
        let key = PartitionKey { table: TableName::Events, hour, shard };
        put(store, key, &format!("naive-{hour}-{shard}"), &all).await?;
    }
    Ok(())
}

async fn one_run(options: &Options) -> anyhow::Result<Figures> {
    let scratch = tempfile::tempdir()?;
    std::fs::create_dir_all(scratch.path().join("objects"))?;
    let catalog_url = format!("sqlite://{}", scratch.path().join("catalog.db").display());
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::open(&catalog_url, &CatalogOptions::default()).await?);
    let store = ObjectStoreConfig::Local { dir: scratch.path().join("objects") }.build()?;
    let end_ms = crate::dashboard::chrono_now() - 2 * 3_600_000;
    let shape = Shape { events: options.events, days: options.days, tenants: options.tenants, end_ms };
    generate::generate(&shape, Arc::clone(&store), Arc::clone(&catalog), 42).await?;
    let mut figures = Figures { bytes_before: split(store.as_ref(), catalog.as_ref()).await?, ..Figures::default() };
    figures.events = files_of(catalog.as_ref(), TableName::Events).await?.iter().map(|f| f.file.rows).sum();

    let heap = reset_peak();
    let started = Instant::now();
    naive_merge(store.as_ref(), catalog.as_ref()).await?;
    figures.naive = started.elapsed();
    figures.naive_peak = peak_held(heap);

    let config = CompactorConfig { min_age: Duration::ZERO, merge_days_after: None, ..CompactorConfig::default() };
    let compactor = Compactor::new(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(SystemClock));
    let heap = reset_peak();
    let started = Instant::now();
    loop {
        let report = compactor.run_once().await?;
        if report.merged == 0 {
            break;
        }
    }
    figures.compaction = started.elapsed();
    figures.compaction_peak = peak_held(heap);
    let merged = files_of(catalog.as_ref(), TableName::Events).await?;
    anyhow::ensure!(
        merged.iter().map(|f| f.file.rows).sum::<u64>() == figures.events,
        "compaction changed the event count"
    );
    figures.bytes_after = merged.iter().map(|f| f.file.bytes).sum();

    // Every day that ended is merged into day objects, for both tables.
    let objects = |files: &[FileRecord]| files.iter().map(|f| f.file.path.clone()).collect::<HashSet<_>>().len();
    figures.objects_before_days = objects(&merged);
    let config = CompactorConfig { merge_days_after: Some(Duration::ZERO), ..CompactorConfig::default() };
    let days = Compactor::new(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(SystemClock));
    let heap = reset_peak();
    let started = Instant::now();
    while days.run_once().await?.days_merged > 0 {}
    figures.day_merge = started.elapsed();
    figures.day_merge_peak = peak_held(heap);
    let in_days = files_of(catalog.as_ref(), TableName::Events).await?;
    anyhow::ensure!(
        in_days.iter().map(|f| f.file.rows).sum::<u64>() == figures.events,
        "merging days changed the event count"
    );
    figures.objects_after_days = objects(&in_days);
    figures.bytes_after_days = in_days
        .iter()
        .map(|f| (f.file.path.clone(), f.file.object_bytes()))
        .collect::<std::collections::HashMap<_, _>>()
        .values()
        .sum();

    // The processor alone over the raw rows, read beforehand (each day object once: it holds
    // all of its hours).
    let raw_files = files_of(catalog.as_ref(), TableName::RawEvents).await?;
    let raw_objects: HashSet<&str> = raw_files.iter().map(|f| f.file.path.as_str()).collect();
    let mut raw = Vec::new();
    for path in raw_objects {
        raw.push(read(store.as_ref(), path).await?);
    }
    anyhow::ensure!(
        raw.iter().map(|b| b.num_rows() as u64).sum::<u64>() == raw_files.iter().map(|f| f.file.rows).sum::<u64>(),
        "raw objects hold other rows than the catalog says"
    );
    figures.raw_events = raw.iter().map(|b| b.num_rows() as u64).sum();
    let started = Instant::now();
    for batch in &raw {
        hourglass_processor::process(batch, &hourglass_processor::Options::default())?;
    }
    figures.processor = started.elapsed();
    drop(raw);

    let (first, last) = (
        raw_files.iter().map(|f| f.file.hour).min().context("no raw files")?,
        raw_files.iter().map(|f| f.file.hour).max().context("no raw files")?,
    );
    let spec = NewBackfill {
        table: TableName::Events,
        tenant: None,
        from_hour: first,
        to_hour: last + 1,
        processor_version: hourglass_processor::PROCESSOR_VERSION,
    };
    let job = catalog.create_backfill(&spec).await?;
    let backfiller = Backfiller::new(BackfillConfig::default(), Arc::clone(&store), Arc::clone(&catalog));
    let heap = reset_peak();
    let started = Instant::now();
    loop {
        backfiller.run_once().await?;
        let state = catalog.get_backfill(job.id).await?.context("the backfill")?;
        match state.state {
            BackfillState::Done => break,
            BackfillState::Failed => anyhow::bail!("backfill failed: {:?}", state.error),
            _ => {}
        }
    }
    figures.backfill = started.elapsed();
    figures.backfill_peak = peak_held(heap);
    Ok(figures)
}

fn rate(events: u64, d: Duration) -> f64 {
    events as f64 / d.as_secs_f64().max(1e-9)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The benchmark; prints Markdown.
pub(crate) async fn run(options: &Options) -> anyhow::Result<()> {
    println!("# Jobs benchmark\n");
    println!(
        "{} events over {} days, {} tenants (Zipf); events partitions split into {PIECES} overlapping files; {} runs.\n",
        options.events, options.days, options.tenants, options.runs
    );
    println!(
        "| run | events | compaction events/s | naive merge events/s | compaction / naive | compaction peak heap MiB | naive peak heap MiB | bytes/event before | bytes/event after | backfill events/s | processor alone events/s | backfill / processor |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut all = Vec::new();
    for run in 1..=options.runs {
        eprintln!("run {run} of {}", options.runs);
        let f = one_run(options).await?;
        let row = [
            rate(f.events, f.compaction),
            rate(f.events, f.naive),
            f.naive.as_secs_f64() / f.compaction.as_secs_f64().max(1e-9),
            f.bytes_before as f64 / f.events.max(1) as f64,
            f.bytes_after as f64 / f.events.max(1) as f64,
            rate(f.raw_events, f.backfill),
            rate(f.raw_events, f.processor),
            f.processor.as_secs_f64() / f.backfill.as_secs_f64().max(1e-9),
        ];
        println!(
            "| {run} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.2} |",
            f.events,
            row[0],
            row[1],
            row[2],
            mib(f.compaction_peak),
            mib(f.naive_peak),
            row[3],
            row[4],
            row[5],
            row[6],
            row[7]
        );
        all.push((row, f));
    }
    let col = |i: usize| median(all.iter().map(|(r, _)| r[i]).collect());
    let peak = |g: fn(&Figures) -> Option<u64>| {
        let v: Vec<f64> = all.iter().filter_map(|(_, f)| g(f)).map(|b| b as f64).collect();
        (!v.is_empty()).then(|| median(v) as u64)
    };
    println!(
        "| median | | {:.0} | {:.0} | {:.2} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.2} |",
        col(0),
        col(1),
        col(2),
        mib(peak(|f| f.compaction_peak)),
        mib(peak(|f| f.naive_peak)),
        col(3),
        col(4),
        col(5),
        col(6),
        col(7)
    );
    println!("\nBackfill peak heap (median): {} MiB.", mib(peak(|f| f.backfill_peak)));
    println!("\n## Day objects (events and raw events)\n");
    println!(
        "| run | day merge events/s (both tables) | peak heap MiB | events objects before | after | bytes/event in day objects |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (run, (_, f)) in all.iter().enumerate() {
        println!(
            "| {} | {:.0} | {} | {} | {} | {:.1} |",
            run + 1,
            rate(f.events + f.raw_events, f.day_merge),
            mib(f.day_merge_peak),
            f.objects_before_days,
            f.objects_after_days,
            f.bytes_after_days as f64 / f.events.max(1) as f64
        );
    }
    println!(
        "| median | {:.0} | {} | | | |",
        median(all.iter().map(|(_, f)| rate(f.events + f.raw_events, f.day_merge)).collect()),
        mib(peak(|f| f.day_merge_peak))
    );
    Ok(())
}
