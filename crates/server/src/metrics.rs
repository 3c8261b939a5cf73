//! Prometheus metrics on `--metrics-listen HOST:PORT` (`GET /metrics`, OpenMetrics text,
//! the `prometheus-client` crate): per RPC its calls and latency, per persistent query
//! its records, lag, errors and state size, open push subscriptions, the committer's
//! group sizes and fsync latency, and RocksDB's memory and compaction backlog. Query,
//! committer and RocksDB figures are read at scrape time (a collector), so nothing is
//! counted twice and the hot paths only keep the atomics they already had.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sluice_database::Executor;
use sluice_storage::HistogramSnapshot;

use crate::limits::PushCount;

type Labels = Vec<(String, String)>;

/// The RPC paths metrics name; any other path is counted as `other`, so a client cannot
/// grow the label set.
const KNOWN_RPCS: &[&str] = &[
    "/sluice.v1.Sluice/Execute",
    "/sluice.v1.Sluice/Query",
    "/sluice.v1.Sluice/Pull",
    "/sluice.v1.Sluice/BulkInsert",
    "/sluice.v1.Sluice/Produce",
    "/sluice.v1.Sluice/Consume",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Latency buckets in seconds, from a cached key lookup to a slow DDL statement.
const RPC_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// The server's metrics: the RPC families it updates, and the registry that encodes them
/// with the scrape-time figures.
pub struct Metrics {
    calls: Family<Labels, Counter>,
    seconds: Family<Labels, Histogram, fn() -> Histogram>,
    registry: Registry,
}

impl Metrics {
    pub(crate) fn new(exec: Arc<Executor>, pushes: PushCount) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("sluice");
        let calls = Family::<Labels, Counter>::default();
        let seconds = Family::<Labels, Histogram>::new_with_constructor(
            (|| Histogram::new(RPC_SECONDS.iter().copied())) as fn() -> Histogram,
        );
        registry.register(
            "rpc_calls",
            "gRPC calls by method and the status they began with (a stream that fails later counts as OK)",
            calls.clone(),
        );
        registry.register(
            "rpc_seconds",
            "gRPC call latency until the response starts (for streams: until the first message can flow)",
            seconds.clone(),
        );
        registry.register_collector(Box::new(Scraped { exec, pushes }));
        Arc::new(Metrics {
            calls,
            seconds,
            registry,
        })
    }

    /// The OpenMetrics text of every metric now.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("encoding metrics failed: {e}");
        }
        out
    }

    fn observe(&self, path: &str, code: &str, elapsed: f64) {
        let method = if KNOWN_RPCS.contains(&path) {
            path.trim_start_matches('/').to_string()
        } else {
            "other".to_string()
        };
        self.calls
            .get_or_create(&vec![
                ("method".to_string(), method.clone()),
                ("code".to_string(), code.to_string()),
            ])
            .inc();
        self.seconds
            .get_or_create(&vec![("method".to_string(), method)])
            .observe(elapsed);
    }
}

/// Figures read at scrape time.
struct Scraped {
    exec: Arc<Executor>,
    pushes: PushCount,
}

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scraped")
    }
}

fn per_query(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: &[(String, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (query, v) in values {
        let labels = [("query", query.as_str())];
        let m = family.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*v).encode(m)?,
            _ => ConstGauge::new(*v as i64).encode(m)?,
        }
    }
    Ok(())
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.sum, h.count, &h.buckets, None)
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let statuses = self.exec.engine.statuses();
        let pick = |f: fn(&sluice_engine::QueryStatus) -> u64| -> Vec<(String, u64)> {
            statuses.iter().map(|s| (s.id.clone(), f(s))).collect()
        };
        per_query(
            &mut encoder,
            "query_processed_records",
            "Source records a persistent query has processed since the server started",
            MetricType::Counter,
            &pick(|s| s.processed),
        )?;
        per_query(
            &mut encoder,
            "query_errors",
            "Records a persistent query skipped with an error (see the processing log) since the server started",
            MetricType::Counter,
            &pick(|s| s.errors),
        )?;
        per_query(
            &mut encoder,
            "query_late_records",
            "Records dropped for arriving after their window's grace period since the server started",
            MetricType::Counter,
            &pick(|s| s.late),
        )?;
        per_query(
            &mut encoder,
            "query_lag_records",
            "Records in a persistent query's inputs it has not processed yet",
            MetricType::Gauge,
            &pick(|s| s.lag),
        )?;
        per_query(
            &mut encoder,
            "query_running",
            "1 while a persistent query runs without error, else 0 (its status in SHOW QUERIES says why)",
            MetricType::Gauge,
            &pick(|s| u64::from(s.state == "RUNNING" || s.state.starts_with("CATCHING UP"))),
        )?;
        per_query(
            &mut encoder,
            "query_state_bytes",
            "Bytes a persistent query's state and table rows take in RocksDB's table files, as RocksDB estimates them (compressed; entries still in the memtable are in rocksdb_memtable_bytes)",
            MetricType::Gauge,
            &self.exec.engine.state_sizes(),
        )?;
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, v: u64| {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m)
        };
        gauge(
            &mut encoder,
            "push_subscriptions",
            "Push queries open now",
            self.pushes.open() as u64,
        )?;
        gauge(
            &mut encoder,
            "push_shared_readers",
            "Topics with a shared reader now: one per topic that caught-up push subscribers follow",
            self.exec.engine.push_shared_readers() as u64,
        )?;
        let log = self.exec.log();
        gauge(
            &mut encoder,
            "log_next_position",
            "The log position the next appended record gets (every position below is durable)",
            log.next_seq(),
        )?;
        let stats = log.commit_stats();
        histogram(
            &mut encoder,
            "commit_write_seconds",
            "Time to write one group commit to RocksDB with fsync",
            &stats.write_seconds.snapshot(),
        )?;
        histogram(
            &mut encoder,
            "commit_group_records",
            "Records appended by one group commit",
            &stats.group_records.snapshot(),
        )?;
        let m = encoder.encode_descriptor(
            "commit_failed_groups",
            "Group commits whose write failed (none of their transactions acknowledged)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(
            stats
                .failed_groups
                .load(std::sync::atomic::Ordering::Relaxed),
        )
        .encode(m)?;
        let (free, reserve) = log.disk_space();
        if let Some(free) = free {
            gauge(
                &mut encoder,
                "disk_free_bytes",
                "Bytes free on the data directory's filesystem",
                free,
            )?;
        }
        gauge(
            &mut encoder,
            "disk_reserve_bytes",
            "Free space below which writes are refused (SLUICE_DISK_RESERVE_MB)",
            reserve,
        )?;
        for (name, help, v) in log.rocksdb_figures() {
            gauge(&mut encoder, name, help, v)?;
        }
        Ok(())
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("metrics endpoint failed: {e}");
    }
}

/// Counts every gRPC call and times it until its response starts.
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    pub(crate) fn new(metrics: Arc<Metrics>) -> MetricsLayer {
        MetricsLayer { metrics }
    }
}

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Measured<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for Measured<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = crate::auth::BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let metrics = self.metrics.clone();
        let mut inner = crate::auth::take_ready(&mut self.inner);
        let started = Instant::now();
        Box::pin(async move {
            let response = inner.call(req).await;
            let code = match &response {
                // A status in the headers: the call ended before any message (an error,
                // or a trailers-only response); otherwise it started fine.
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or_else(
                        || "Ok".to_string(),
                        |c| format!("{:?}", tonic::Code::from_i32(c)),
                    ),
                Err(_) => "transport".to_string(),
            };
            metrics.observe(&path, &code, started.elapsed().as_secs_f64());
            response
        })
    }
}
