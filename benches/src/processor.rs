//! `--processor`: the processor alone, in process, on the benchmark's generated events: rows
//! per second through `process`, and what a user-agent parse costs with and without the
//! shared cache.

use std::time::{Duration, Instant};

use hourglass_ingest::batch::{HashedEvent, build_raw_batch};
use hourglass_ingest::limits::IngestLimits;
use hourglass_ingest::parse::parse_events;
use hourglass_processor::{Options, process, user_agent};

use crate::median;

/// User agents of the kinds merchants see, for the parse measurements.
const AGENTS: [&str; 8] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];

fn per_call(elapsed: Duration, calls: usize) -> f64 {
    elapsed.as_secs_f64() * 1e9 / calls as f64
}

/// Prints the processor figures, each the median of `runs`.
pub(crate) fn report(bodies: &[bytes::Bytes], runs: usize) -> anyhow::Result<()> {
    println!("## Processor (in process, one core)\n");
    let started = Instant::now();
    let _ = user_agent::parse(AGENTS[0]);
    println!("First parse, which compiles uap-core's rules: {:.0} ms.\n", started.elapsed().as_secs_f64() * 1e3);

    // Distinct strings defeat the cache: a version suffix makes each agent new.
    let calls = 2_000;
    let mut uncached = Vec::new();
    let mut cached = Vec::new();
    for run in 0..runs {
        let fresh: Vec<String> = (0..calls).map(|i| format!("{} r{run}x{i}", AGENTS[i % AGENTS.len()])).collect();
        let t = Instant::now();
        for ua in &fresh {
            std::hint::black_box(user_agent::parse(ua));
        }
        uncached.push(t.elapsed());
        let t = Instant::now();
        for i in 0..calls * 50 {
            std::hint::black_box(user_agent::parse_cached(AGENTS[i % AGENTS.len()]));
        }
        cached.push(t.elapsed());
    }
    let (uncached, cached) = (per_call(median(uncached), calls), per_call(median(cached), calls * 50));
    println!("| user-agent parse | ns/call | vs cached |\n|---|---:|---:|");
    println!("| uncached (`user_agent::parse`, every agent new) | {uncached:.0} | {:.0}x |", uncached / cached);
    println!("| shared cache hit (`parse_cached`) | {cached:.0} | 1x |\n");

    let limits = IngestLimits::default();
    let now = chrono_now_ms();
    let mut batches = Vec::new();
    for body in bodies {
        let events: Vec<HashedEvent> = parse_events(body, &limits, now)?
            .into_iter()
            .filter_map(Result::ok)
            .map(|event| HashedEvent { event, ip_hash: None, ip_hash_prev: None })
            .collect();
        batches.push(build_raw_batch("t000", now, &events)?);
    }
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for batch in &batches {
            std::hint::black_box(process(batch, &Options::default())?);
        }
        samples.push(t.elapsed());
    }
    let t = median(samples);
    println!(
        "`process` over {} requests of the benchmark's events ({rows} rows): {:.0} rows/s, {:.2} µs/row.\n",
        batches.len(),
        rows as f64 / t.as_secs_f64(),
        t.as_secs_f64() * 1e6 / rows as f64
    );
    Ok(())
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
