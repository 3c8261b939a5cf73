//! Generated gRPC code for the `sluice.v1` API (see proto/sluice/v1/sluice.proto).

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("sluice.v1");

    /// Encoded file descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("sluice_descriptor");
}

/// A client interceptor adding `authorization: Bearer TOKEN` to every call (servers
/// started with `--auth-file` require it); without a token it adds nothing.
#[derive(Clone, Default)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    /// Fails on a token that cannot travel in a header (not printable ASCII).
    pub fn new(token: Option<&str>) -> Result<Bearer, String> {
        match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(Bearer(None)),
            Some(t) => format!("Bearer {t}")
                .parse()
                .map(|v| Bearer(Some(v)))
                .map_err(|_| "the token is not printable ASCII".to_string()),
        }
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.write_str(if self.0.is_some() {
            "Bearer(..)"
        } else {
            "Bearer(none)"
        })
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A `sluice.v1` client that sends a bearer token.
pub type AuthedClient = v1::sluice_client::SluiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

/// An endpoint for `url`, verifying the server's certificate against the PEM CA at
/// `tls_ca` when given (an `https://` URL; a bare `host:port` becomes one).
pub fn endpoint(
    url: &str,
    tls_ca: Option<&std::path::Path>,
) -> Result<tonic::transport::Endpoint, String> {
    let url = url.trim();
    let url = match (url.contains("://"), tls_ca.is_some()) {
        (true, _) => url.to_string(),
        (false, true) => format!("https://{url}"),
        (false, false) => format!("http://{url}"),
    };
    let endpoint =
        tonic::transport::Endpoint::from_shared(url.clone()).map_err(|e| format!("{url}: {e}"))?;
    let Some(ca) = tls_ca else {
        return Ok(endpoint);
    };
    let pem =
        std::fs::read(ca).map_err(|e| format!("cannot read the CA file {}: {e}", ca.display()))?;
    endpoint
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
        )
        .map_err(|e| format!("TLS: {e}"))
}
