//! The Sluice server: opens the database, restores the catalog and persistent queries,
//! and serves the `sluice.v1` gRPC API with health checking and reflection.

pub mod auth;
mod convert;
mod drain;
mod limits;
pub mod metrics;
mod print;
mod service;
mod status;

use sluice_database::{ExecError, Executor};

pub use limits::Limits;
pub use sluice_expr::limits::ExprLimits;
pub use sluice_plan::PullLimits;
use sluice_proto::v1::sluice_server::SluiceServer;
use sluice_storage::EmbeddedLog;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// What one pull query may take (rows, bytes, time).
    pub pull_limits: PullLimits,
    /// What evaluating an expression may build (values, regular expressions, IN lists);
    /// process-wide, set when the server starts.
    pub expr_limits: ExprLimits,
    /// Serve on a non-loopback address although nothing authenticates clients.
    pub insecure: bool,
    pub limits: Limits,
    /// Tokens and their roles (`--auth-file`); `None`: every caller is admin.
    pub auth: Option<auth::Tokens>,
    /// Where to serve Prometheus metrics (`--metrics-listen`); `None`: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// TLS (`--tls-cert`, `--tls-key`, `--tls-client-ca`); `None`: plaintext.
    pub tls: Option<TlsFiles>,
}

/// PEM files for TLS: the server's certificate chain and key, and optionally the CA whose
/// client certificates are required (mutual TLS).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn config(&self) -> Result<tonic::transport::ServerTlsConfig, ServerError> {
        let read = |p: &PathBuf| {
            std::fs::read(p)
                .map_err(|e| ServerError::Tls(format!("cannot read {}: {e}", p.display())))
        };
        let identity = tonic::transport::Identity::from_pem(read(&self.cert)?, read(&self.key)?);
        let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        Ok(config)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the data directory {dir}: {source}")]
    Open {
        dir: PathBuf,
        source: sluice_storage::StorageError,
    },
    #[error("cannot restore the catalog: {0}")]
    Restore(ExecError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(
        "refusing to listen on {0}: {1}. Configure what is missing, listen on a loopback address (the default, 127.0.0.1:8815), or pass --insecure to serve it anyway"
    )]
    Insecure(SocketAddr, &'static str),
}

/// How long shutdown waits for open calls once streaming ones have been told to end.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The health-checking service name whose status says whether writes are accepted.
///
/// A full disk stops writes only (docs/operations.md, "A full disk"): pull and push queries
/// go on, so the server as a whole (`""` and `sluice.v1.Sluice`) stays SERVING and a
/// load balancer keeps sending it reads, while this name is NOT_SERVING until space is
/// freed, for whatever routes writes. Everything is NOT_SERVING once shutdown begins.
pub const WRITES_HEALTH: &str = "sluice.writes";

/// How often the free space behind [`WRITES_HEALTH`] is looked at.
const HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps the health statuses current until shutdown begins, then marks every service
/// NOT_SERVING (streaming calls are being ended, new ones should go elsewhere).
async fn report_health(
    reporter: tonic_health::server::HealthReporter,
    log: Arc<EmbeddedLog>,
    mut draining: tokio::sync::watch::Receiver<bool>,
) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let mut writable = true;
    loop {
        let (free, reserve) = log.disk_space();
        let now = free.is_none_or(|f| f >= reserve);
        if now != writable {
            writable = now;
            if writable {
                tracing::info!("disk space freed: writes are accepted again");
            } else {
                tracing::warn!(
                    free_bytes = free.unwrap_or(0),
                    reserve_bytes = reserve,
                    "disk space below the reserve: writes are refused, reads go on"
                );
            }
            let status = if writable { Serving } else { NotServing };
            reporter.set_service_status(WRITES_HEALTH, status).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = draining.wait_for(|d| *d) => break,
        }
    }
    for name in [
        "",
        WRITES_HEALTH,
        <SluiceServer<service::SluiceService> as tonic::server::NamedService>::NAME,
    ] {
        reporter.set_service_status(name, NotServing).await;
    }
}

/// Runs the server until `shutdown` resolves, then stops queries cleanly.
pub async fn run(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    // Checked before anything is opened: a refused start leaves nothing behind.
    if !config.listen.ip().is_loopback()
        && !config.insecure
        && (config.tls.is_none() || config.auth.is_none())
    {
        return Err(ServerError::Insecure(
            config.listen,
            match (config.tls.is_some(), config.auth.is_some()) {
                (false, false) => {
                    "without TLS (--tls-cert, --tls-key) tokens and data would cross the network unencrypted, and without --auth-file anyone who can reach it could run any statement"
                }
                (false, true) => {
                    "without TLS (--tls-cert, --tls-key) tokens and data would cross the network unencrypted"
                }
                _ => "without --auth-file anyone who can reach it could run any statement",
            },
        ));
    }
    // Read before anything is opened too: a bad certificate leaves nothing behind.
    let tls = config.tls.as_ref().map(TlsFiles::config).transpose()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| ServerError::Open {
        dir: config.data_dir.clone(),
        source: sluice_storage::StorageError::Corrupt {
            what: "data directory",
            detail: e.to_string(),
        },
    })?;
    sluice_expr::limits::set(config.expr_limits);
    let dir = config.data_dir.clone();
    let log = tokio::task::spawn_blocking(move || EmbeddedLog::open(&dir))
        .await
        .map_err(|e| ServerError::Reflection(e.to_string()))?
        .map_err(|source| ServerError::Open {
            dir: config.data_dir.clone(),
            source,
        })?;
    let exec = Arc::new(
        Executor::open(Arc::new(log), config.pull_limits)
            .await
            .map_err(ServerError::Restore)?,
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SluiceServer<service::SluiceService>>()
        .await;
    health_reporter
        .set_service_status(WRITES_HEALTH, tonic_health::ServingStatus::Serving)
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sluice_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sluice_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;

    // Scripts and tests wait for this line to know the server is ready.
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "Sluice server listening");
    // Shutdown: stop accepting calls, end the streaming ones (push queries, PRINT,
    // Consume tails never end by themselves) and wait for the rest, but at most
    // DRAIN_TIMEOUT: a client that keeps a call open must not keep the server (and the
    // data directory's lock) alive.
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let mut draining = drain_rx.clone();
    tokio::spawn(report_health(
        health_reporter,
        exec.log().clone(),
        drain_rx.clone(),
    ));
    let pushes = limits::PushCount::default();
    let metrics = metrics::Metrics::new(exec.clone(), pushes.clone());
    if let Some(at) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(at)
            .await
            .map_err(|source| ServerError::Bind { addr: at, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr: at, source })?;
        tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
        let mut until = drain_rx.clone();
        tokio::spawn(metrics::serve(listener, metrics.clone(), async move {
            let _ = until.wait_for(|d| *d).await;
        }));
    }
    let service = SluiceServer::new(service::SluiceService::new(
        exec.clone(),
        drain_rx,
        config.limits.clone(),
        pushes,
    ))
    .max_decoding_message_size(64 * 1024 * 1024)
    .max_encoding_message_size(64 * 1024 * 1024);
    if config.auth.is_none() {
        tracing::warn!("no --auth-file: every caller may run every statement");
    }
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
    }
    let serve = builder
        // Outermost first: calls refused by authentication are counted too.
        .layer(metrics::MetricsLayer::new(metrics))
        .layer(auth::AuthLayer::new(config.auth.clone()))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(
            // TCP_NODELAY: a push row or a pull answer is a small write that must leave at
            // once; with Nagle it waited for the client's delayed ACK (~40 ms at p99).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                shutdown.await;
                tracing::info!("shutting down: ending streaming calls");
                let _ = drain_tx.send(true);
            },
        );
    tokio::select! {
        served = serve => served?,
        _ = async {
            let _ = draining.wait_for(|d| *d).await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            tracing::warn!(
                timeout_s = DRAIN_TIMEOUT.as_secs(),
                "calls still open after the drain timeout; closing them"
            );
        }
    }
    tracing::info!("shutting down: stopping queries");
    exec.engine.shutdown().await;
    Ok(())
}
