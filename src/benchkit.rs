//! What the benchmark binaries share: a closed-loop load of concurrent requests for a fixed
//! time, and its figures (rate, latency percentiles). Measurement only; the server never
//! uses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The `p` quantile of sorted figures (nearest rank); zero for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// One closed-loop phase: what succeeded and failed, how long it took, each latency.
pub struct Phase {
    pub done: usize,
    pub failed: usize,
    pub elapsed: Duration,
    pub latencies_ms: Vec<f64>,
}

impl Phase {
    pub fn print(&self, title: &str) {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        #[allow(clippy::cast_precision_loss)]
        let rate = self.done as f64 / self.elapsed.as_secs_f64();
        println!(
            "{title}: {} ok, {} failed in {:.1} s = {rate:.0}/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.done,
            self.failed,
            self.elapsed.as_secs_f64(),
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
            sorted.last().copied().unwrap_or(0.0)
        );
    }
}

/// Runs `request(i)` from `concurrency` loops for `seconds`.
pub async fn closed_loop<F, Fut>(concurrency: usize, seconds: u64, request: F) -> Phase
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let counter = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (request, counter, stop) = (request.clone(), counter.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                if request(i).await {
                    ok += 1;
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                } else {
                    failed += 1;
                }
            }
            (ok, failed, latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut phase = Phase { done: 0, failed: 0, elapsed: Duration::ZERO, latencies_ms: Vec::new() };
    for worker in workers {
        if let Ok((ok, failed, latencies)) = worker.await {
            phase.done += ok;
            phase.failed += failed;
            phase.latencies_ms.extend(latencies);
        }
    }
    phase.elapsed = started.elapsed();
    phase
}
