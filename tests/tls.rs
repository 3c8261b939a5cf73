//! TLS (issue #15): `--tls-cert/--tls-key` serve gRPC over TLS, `--tls-client-ca`
//! requires client certificates (mutual TLS), the shell connects with `--tls-ca`, and a
//! non-loopback address is refused without TLS and authentication. Certificates are made
//! per run with rcgen.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: String,
    client_key: String,
}

fn pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(vec!["localhost".into()]);
    let (client_cert, client_key) = leaf(vec!["client".into()]);
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", &ca.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert,
        client_key,
    }
}

/// Starts the server with `args`; returns it once its log says it listens (a plaintext
/// readiness probe would not get through TLS).
fn start(dir: &Path, port: u16, args: &[&str]) -> Child {
    let log = dir.join(format!("server-{port}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["server", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("Sluice server listening")
    {
        assert!(
            Instant::now() < deadline,
            "the server did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

async fn show_streams(endpoint: Endpoint) -> Result<pb::ExecuteResponse, String> {
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    SluiceClient::new(channel)
        .execute(pb::ExecuteRequest {
            sql: "SHOW STREAMS;".into(),
            properties: Default::default(),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mutual_tls_serve_verified_clients_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let ca_pem = std::fs::read(&pki.ca).unwrap();
    let port = free_port();
    let url = format!("https://localhost:{port}");
    let tls = |identity: bool| {
        let mut t = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca_pem));
        if identity {
            t = t.identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
        }
        Endpoint::from_shared(url.clone())
            .unwrap()
            .tls_config(t)
            .unwrap()
    };

    // TLS: a client trusting the CA gets through; a plaintext one does not.
    let mut args = vec![
        "--tls-cert",
        pki.server_cert.to_str().unwrap(),
        "--tls-key",
        pki.server_key.to_str().unwrap(),
    ];
    let mut server = start(dir.path(), port, &args);
    show_streams(tls(false))
        .await
        .expect("a TLS client verifying the server");
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    assert!(show_streams(plain).await.is_err(), "plaintext is refused");
    // The shell connects with --tls-ca.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "shell",
            "--server",
            &format!("localhost:{port}"),
            "--tls-ca",
        ])
        .arg(&pki.ca)
        .args(["-e", "SHOW STREAMS;"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let untrusted = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "shell",
            "--server",
            &format!("https://localhost:{port}"),
            "-e",
            "SHOW STREAMS;",
        ])
        .output()
        .unwrap();
    assert!(
        !untrusted.status.success(),
        "a server certificate the shell cannot verify"
    );
    let _ = server.kill();
    let _ = server.wait();

    // Mutual TLS: only a client with a certificate from the client CA.
    args.extend(["--tls-client-ca", pki.ca.to_str().unwrap()]);
    let mut server = start(dir.path(), port, &args);
    show_streams(tls(true))
        .await
        .expect("a client with a certificate");
    assert!(
        show_streams(tls(false)).await.is_err(),
        "a client without one is refused"
    );
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_non_loopback_address_needs_tls_and_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let auth = dir.path().join("auth.txt");
    std::fs::write(&auth, "admin admin-3f6e1d2c9b8a7f60\n").unwrap();
    let refuse = |extra: &[&str], want: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["server", "--listen", "0.0.0.0:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{extra:?}: {err}");
    };
    let tls = [
        "--tls-cert",
        pki.server_cert.to_str().unwrap(),
        "--tls-key",
        pki.server_key.to_str().unwrap(),
    ];
    refuse(
        &[],
        "without TLS (--tls-cert, --tls-key) tokens and data would cross the network unencrypted, and without --auth-file",
    );
    refuse(
        &["--auth-file", auth.to_str().unwrap()],
        "without TLS (--tls-cert, --tls-key)",
    );
    refuse(&tls, "without --auth-file anyone who can reach it");
    // A bad certificate file is named.
    refuse(
        &[
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            pki.server_key.to_str().unwrap(),
            "--auth-file",
            auth.to_str().unwrap(),
        ],
        "cannot read /nonexistent/cert.pem",
    );
}
