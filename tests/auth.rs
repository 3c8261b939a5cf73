//! Authentication and roles (issue #15): with `--auth-file`, every RPC of the service but
//! health checking needs a valid bearer token (UNAUTHENTICATED otherwise), and each role
//! may do only what it may (PERMISSION_DENIED naming the statement kind or RPC). The RPCs
//! are enumerated from the service descriptor, so a new one cannot slip past the check.

mod common;

use common::*;
use prost::Message;
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use sluice_proto::{AuthedClient, Bearer};
use std::str::FromStr;
use tonic::Code;
use tonic::transport::Channel;

const READER: &str = "reader-51be02c4d1e8a7f3";
const WRITER: &str = "writer-9a0c77e1f2b34d5e";
const ADMIN: &str = "admin-3f6e1d2c9b8a7f60";

async fn channel(server: &Server) -> Channel {
    tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn as_role(server: &Server, token: Option<&str>) -> AuthedClient {
    SluiceClient::with_interceptor(channel(server).await, Bearer::new(token).unwrap())
}

/// Calls `path` with an empty message and `token`: the status it is refused with, or Ok.
async fn raw_call(ch: &Channel, path: &str, token: Option<&str>) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(());
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    grpc.unary(req, http::uri::PathAndQuery::from_str(path).unwrap(), codec)
        .await
        .map(|_| ())
}

/// Every method of every service in Sluice's descriptor, as a gRPC path.
fn rpc_paths() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for file in &set.file {
        for svc in &file.service {
            for m in &svc.method {
                out.push(format!("/{}.{}/{}", file.package(), svc.name(), m.name()));
            }
        }
    }
    out
}

async fn start(dir: &tempfile::TempDir) -> Server {
    let auth = dir.path().join("auth.txt");
    std::fs::write(
        &auth,
        format!("# roles\nreader {READER}\nwriter {WRITER}\nadmin {ADMIN}\n"),
    )
    .unwrap();
    Server::start_with_env(
        &dir.path().join("data"),
        free_port(),
        &[("SLUICE_AUTH_FILE", auth.to_str().unwrap())],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_needs_a_token_and_each_role_only_what_it_may() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir).await;
    let ch = channel(&server).await;

    let paths = rpc_paths();
    assert!(paths.len() >= 6, "{paths:?}");
    for path in &paths {
        for token in [None, Some("not-a-valid-token-at-all")] {
            let e = raw_call(&ch, path, token).await.expect_err(path);
            assert_eq!(e.code(), Code::Unauthenticated, "{path} {token:?}: {e:?}");
        }
    }
    // Reflection is authenticated too; health checking is not.
    for path in [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ] {
        let e = raw_call(&ch, path, None).await.expect_err(path);
        assert_eq!(e.code(), Code::Unauthenticated, "{path}");
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health checking needs no token")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // The RPCs that write need a writer.
    for rpc in ["BulkInsert", "Produce"] {
        let path = format!("/sluice.v1.Sluice/{rpc}");
        let e = raw_call(&ch, &path, Some(READER)).await.expect_err(&path);
        assert_eq!(e.code(), Code::PermissionDenied, "{path}");
        assert!(
            e.message()
                .contains(&format!("role reader may not call {rpc}")),
            "{}",
            e.message()
        );
    }

    let mut admin = as_role(&server, Some(ADMIN)).await;
    let mut writer = as_role(&server, Some(WRITER)).await;
    let mut reader = as_role(&server, Some(READER)).await;
    let run = |sql: &str| pb::ExecuteRequest {
        sql: sql.into(),
        properties: Default::default(),
    };
    let create =
        "CREATE STREAM s (k STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON');";
    for c in [&mut reader, &mut writer] {
        let e = c.execute(run(create)).await.expect_err("DDL needs admin");
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(
            e.message()
                .contains("may not run CREATE STREAM/TABLE statements (they need admin)"),
            "{}",
            e.message()
        );
    }
    admin.execute(run(create)).await.unwrap();
    let insert = "INSERT INTO s (k, v) VALUES ('a', 1);";
    let e = reader
        .execute(run(insert))
        .await
        .expect_err("a reader cannot insert");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("role reader may not run INSERT"),
        "{}",
        e.message()
    );
    writer.execute(run(insert)).await.unwrap();
    // A script is checked whole before any of it runs.
    let e = writer
        .execute(run("INSERT INTO s (k, v) VALUES ('b', 2); DROP STREAM s;"))
        .await
        .expect_err("DROP needs admin");
    assert_eq!(e.code(), Code::PermissionDenied);
    // Readers read: SHOW, DESCRIBE, pull queries (through Query too).
    reader.execute(run("SHOW STREAMS;")).await.unwrap();
    reader.execute(run("DESCRIBE s;")).await.unwrap();
    let mut rows = reader
        .query(pb::QueryRequest {
            sql: "SELECT * FROM s WHERE k = 'a';".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = 0;
    while let Some(m) = rows.message().await.unwrap() {
        if let Some(pb::query_response::Kind::Row(_)) = m.kind {
            got += 1;
        }
    }
    assert_eq!(got, 1, "the writer's insert ('b' was never run)");
    let e = reader
        .query(pb::QueryRequest {
            sql: "TERMINATE ALL;".into(),
            ..Default::default()
        })
        .await
        .expect_err("Query checks the statement too");
    assert_eq!(e.code(), Code::PermissionDenied);

    // The shell sends --token (or SLUICE_TOKEN); without one it is refused.
    let shell = |token: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["shell", "--server", &server.url(), "-e", "SHOW STREAMS;"])
            .env_remove("SLUICE_TOKEN");
        if let Some(t) = token {
            cmd.env("SLUICE_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let ok = shell(Some(READER));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("S"));
    let refused = shell(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("authorization: Bearer TOKEN"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Tokens never reach the log.
    let log = server.log();
    for t in [READER, WRITER, ADMIN] {
        assert!(!log.contains(t), "a token in the server log");
    }
}

#[test]
fn a_bad_auth_file_stops_the_start_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.txt");
    std::fs::write(&auth, format!("reader {READER}\nsuperuser {ADMIN}\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--auth-file")
        .arg(&auth)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: unknown role 'superuser'"), "{err}");
    assert!(!err.contains(ADMIN), "the token in an error: {err}");
}
