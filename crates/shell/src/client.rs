//! The gRPC side of the shell: connecting and issuing Execute / Query calls.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sluice_proto::v1::sluice_client::SluiceClient;
use sluice_proto::v1::{ExecuteRequest, QueryRequest, QueryResponse, StatementResult};
use tonic::Status;
use tonic::codec::Streaming;

/// Results of SHOW / DESCRIBE can be large; the default 4 MiB limit would turn a big but
/// legitimate answer into an error.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A connected Sluice client.
#[derive(Clone)]
pub struct Client {
    inner: sluice_proto::AuthedClient,
    /// The highest log position this session's statements were acknowledged with: its
    /// queries ask the server to reflect it, so a script's `INSERT ...; SELECT ...;`
    /// always sees its own insert (read your writes).
    written: u64,
}

impl Client {
    /// Connects eagerly, so an unreachable server is reported before any statement runs.
    ///
    /// The error is a single human-readable line naming the server.
    pub async fn connect(server: &str) -> Result<Self, String> {
        Client::connect_with(server, None, None).await
    }

    /// Connects, sending `token` with every call (`--token`, `SLUICE_TOKEN`), over TLS
    /// verified against the PEM CA `tls_ca` when given (`--tls-ca`).
    pub async fn connect_with(
        server: &str,
        token: Option<&str>,
        tls_ca: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let url = match tls_ca {
            Some(_) if !server.contains("://") => format!("https://{}", server.trim()),
            _ => normalize_url(server),
        };
        let bearer = sluice_proto::Bearer::new(token)?;
        let fail = |cause: String| format!("cannot connect to Sluice server at {url}: {cause}");
        let endpoint = sluice_proto::endpoint(&url, tls_ca)
            .map_err(fail)?
            .connect_timeout(Duration::from_secs(10));
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        let inner = SluiceClient::with_interceptor(channel, bearer)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self { inner, written: 0 })
    }

    /// Runs one non-query statement.
    pub async fn execute(
        &mut self,
        sql: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Vec<StatementResult>, Status> {
        let request = ExecuteRequest {
            sql: sql.to_string(),
            properties: to_proto_map(properties),
        };
        let results = self.inner.execute(request).await?.into_inner().results;
        for r in &results {
            self.written = self.written.max(r.position);
        }
        Ok(results)
    }

    /// The position this session's pull queries wait for (0 before any write).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Starts a query; dropping the returned stream cancels it on the server.
    pub async fn query(
        &mut self,
        sql: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Streaming<QueryResponse>, Status> {
        let request = QueryRequest {
            sql: sql.to_string(),
            properties: to_proto_map(properties),
            start_from: Vec::new(),
            min_position: self.written,
            start_after: None,
            // A push query's rows come packed when several are ready (a catch-up from
            // earliest, a burst); each is printed as it would be on its own. As many as
            // the server allows: it caps the request at its own bound.
            max_rows_per_message: u32::MAX,
        };
        Ok(self.inner.query(request).await?.into_inner())
    }
}

fn to_proto_map(properties: &BTreeMap<String, String>) -> HashMap<String, String> {
    properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Accepts `host:port` as shorthand for `http://host:port`.
fn normalize_url(server: &str) -> String {
    let server = server.trim();
    if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    }
}

/// tonic's transport errors say little at the top level ("transport error"); the useful
/// part (e.g. "Connection refused") is further down the source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The text to show for a failed call: the server's message, or the status code's
/// description when the server sent none.
pub fn status_message(status: &Status) -> String {
    if status.message().is_empty() {
        status.code().description().to_string()
    } else {
        status.message().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_a_scheme() {
        assert_eq!(normalize_url("127.0.0.1:8815"), "http://127.0.0.1:8815");
        assert_eq!(normalize_url(" http://h:1 "), "http://h:1");
        assert_eq!(normalize_url("https://h:1"), "https://h:1");
    }

    #[test]
    fn status_messages() {
        assert_eq!(
            status_message(&Status::invalid_argument("bad (line 1:2)")),
            "bad (line 1:2)"
        );
        assert_eq!(
            status_message(&Status::unavailable("")),
            tonic::Code::Unavailable.description()
        );
    }

    #[tokio::test]
    async fn unreachable_server_is_reported() {
        // Port 9 on localhost (discard) is essentially never listening in test environments.
        let err = Client::connect("127.0.0.1:9")
            .await
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("cannot connect to Sluice server at http://127.0.0.1:9: "),
            "{err}"
        );
        let err = Client::connect("http://bad url")
            .await
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("cannot connect to Sluice server at http://bad url: "),
            "{err}"
        );
    }
}
