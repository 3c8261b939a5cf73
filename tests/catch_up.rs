//! Catch-up subscriptions (issue #14): a push query started after a log position delivers
//! history, then live changes, in log order, each row carrying the position to resume
//! after; resuming after a disconnect or a kill -9 of the server continues exactly where
//! the subscriber stopped.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;

const CART: &str = "CREATE STREAM cart_events (cart_id STRING KEY, item STRING, qty INT) \
                    WITH (kafka_topic='cart_events', value_format='JSON', partitions=3);";

/// Appends items `from..to` (item `i{n}`, cart `c{n % 7}`), one insert each, in order.
async fn insert_items(c: &mut SluiceClient<Channel>, from: usize, to: usize) -> u64 {
    let mut last = 0;
    for n in from..to {
        let r = exec_ok(
            c,
            &format!(
                "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c{}', 'i{n}', {n});",
                n % 7
            ),
        )
        .await;
        last = r.results[0].position;
    }
    last
}

/// A push subscription on the whole stream.
struct Sub {
    stream: tonic::Streaming<pb::QueryResponse>,
    header_position: u64,
}

async fn subscribe(
    c: &mut SluiceClient<Channel>,
    start_after: Option<u64>,
) -> Result<Sub, tonic::Status> {
    let mut stream = c
        .query(pb::QueryRequest {
            sql: "SELECT item FROM cart_events EMIT CHANGES;".into(),
            start_after,
            ..Default::default()
        })
        .await?
        .into_inner();
    let first = stream.message().await?.expect("a header");
    let Some(pb::query_response::Kind::Header(h)) = first.kind else {
        panic!("expected a header, got {first:?}");
    };
    assert!(h.push);
    Ok(Sub {
        stream,
        header_position: h.position,
    })
}

impl Sub {
    /// The next `n` rows as (item number, position).
    async fn take(&mut self, n: usize) -> Vec<(usize, u64)> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let m = tokio::time::timeout(Duration::from_secs(60), self.stream.message())
                .await
                .expect("rows within 60 s")
                .unwrap()
                .expect("the subscription stays open");
            if let Some(pb::query_response::Kind::Row(r)) = m.kind {
                let item = show(&r.row.unwrap().values[0]);
                let n: usize = item.trim_start_matches('i').parse().unwrap();
                assert!(r.position > 0, "a push row carries its position");
                out.push((n, r.position));
            }
        }
        out
    }
}

/// Rows are items `from..to` in order, with strictly increasing positions.
fn assert_run(rows: &[(usize, u64)], from: usize, to: usize) {
    let items: Vec<usize> = rows.iter().map(|r| r.0).collect();
    assert_eq!(items, (from..to).collect::<Vec<_>>());
    assert!(
        rows.windows(2).all(|w| w[0].1 < w[1].1),
        "positions increase"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_catches_up_then_resumes_exactly_across_disconnects_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    exec_ok(&mut c, CART).await;
    insert_items(&mut c, 0, 150).await;

    // From the start of the log: the history in log order across the three partitions,
    // then live inserts made while it is reading, with no gap or repeat at the switch.
    let mut sub = subscribe(&mut c, Some(0)).await.unwrap();
    let writer = {
        let mut c = server.client().await;
        tokio::spawn(async move { insert_items(&mut c, 150, 300).await })
    };
    let first = sub.take(200).await;
    assert_run(&first, 0, 200);
    // Disconnect mid-stream; resume after the last position received.
    drop(sub);
    writer.await.unwrap();
    let mut sub = subscribe(&mut c, Some(first[199].1)).await.unwrap();
    let second = sub.take(100).await;
    assert_run(&second, 200, 300);
    assert!(second[0].1 > first[199].1);

    // Live rows keep coming on the resumed subscription.
    insert_items(&mut c, 300, 310).await;
    let live = sub.take(5).await;
    assert_run(&live, 300, 305);

    // kill -9 the server; resume from the last position received, after a restart.
    let resume_after = live[4].1;
    drop(sub);
    server.kill9();
    let server = Server::start(&data).await;
    let mut c = server.client().await;
    let mut sub = subscribe(&mut c, Some(resume_after)).await.unwrap();
    insert_items(&mut c, 310, 320).await;
    let after_restart = sub.take(15).await;
    assert_run(&after_restart, 305, 320);

    // A subscription from the latest records says where it starts: a subscriber that got
    // no row before it went away resumes from the header's position and misses nothing.
    let latest = subscribe(&mut c, None).await.unwrap();
    assert!(latest.header_position >= after_restart[14].1);
    drop(latest);
    insert_items(&mut c, 320, 325).await;
    let mut sub = subscribe(&mut c, Some(after_restart[14].1)).await.unwrap();
    assert_run(&sub.take(5).await, 320, 325);

    // An insert's acknowledged position is a start point too.
    let acked = insert_items(&mut c, 325, 326).await;
    insert_items(&mut c, 326, 328).await;
    let mut sub = subscribe(&mut c, Some(acked)).await.unwrap();
    assert_run(&sub.take(2).await, 326, 328);

    // A position the log has not reached is refused.
    let e = subscribe(&mut c, Some(acked + 1_000_000))
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(
        e.message().contains("beyond the end of the log"),
        "{}",
        e.message()
    );
}

/// Every row of a push query asking `max_rows_per_message`, as (item number, position),
/// and the number of messages they came in, until `n` rows or the final message.
async fn packed(
    c: &mut SluiceClient<Channel>,
    sql: &str,
    per_message: u32,
    n: usize,
) -> (Vec<(usize, u64)>, usize, Option<pb::QueryFinal>) {
    let mut stream = c
        .query(pb::QueryRequest {
            sql: sql.into(),
            start_after: Some(0),
            max_rows_per_message: per_message,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut rows, mut messages) = (Vec::new(), 0);
    while rows.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("rows within 60 s")
            .unwrap()
            .expect("the subscription stays open");
        let got = match m.kind {
            Some(pb::query_response::Kind::Row(r)) => vec![r],
            Some(pb::query_response::Kind::Rows(rs)) => {
                assert!(
                    !rs.rows.is_empty() && rs.rows.len() <= per_message as usize,
                    "a QueryRows message holds 1 to {per_message} rows, got {}",
                    rs.rows.len()
                );
                rs.rows
            }
            Some(pb::query_response::Kind::Final(f)) => return (rows, messages, Some(f)),
            _ => continue,
        };
        messages += 1;
        for r in got {
            let item = show(&r.row.unwrap().values[0]);
            rows.push((item.trim_start_matches('i').parse().unwrap(), r.position));
        }
    }
    (rows, messages, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_can_take_its_rows_several_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, CART).await;
    insert_items(&mut c, 0, 600).await;
    let all = "SELECT item FROM cart_events EMIT CHANGES;";

    // One row per message, as before QueryRows, unless the client asks.
    let (single, messages, _) = packed(&mut c, all, 0, 600).await;
    assert_run(&single, 0, 600);
    assert_eq!(messages, 600);

    // The history is ready at once, so it comes packed: the same rows and positions, in
    // the same order, in fewer messages.
    let (rows, messages, _) = packed(&mut c, all, 100, 600).await;
    assert_eq!(rows, single);
    assert!(messages < 600, "600 rows came in {messages} messages");

    // Live rows keep flowing on a packed subscription, and resuming after the last
    // position of a packed message misses nothing.
    let mut live = c
        .query(pb::QueryRequest {
            sql: all.into(),
            start_after: Some(single[599].1),
            max_rows_per_message: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    insert_items(&mut c, 600, 610).await;
    let mut got = Vec::new();
    while got.len() < 10 {
        let m = tokio::time::timeout(Duration::from_secs(60), live.message())
            .await
            .expect("rows within 60 s")
            .unwrap()
            .expect("open");
        match m.kind {
            Some(pb::query_response::Kind::Rows(rs)) => got.extend(rs.rows),
            Some(pb::query_response::Kind::Header(_)) => {}
            other => panic!("a packed subscription sends QueryRows, got {other:?}"),
        }
    }
    let items: Vec<String> = got
        .iter()
        .map(|r| show(&r.row.as_ref().unwrap().values[0]))
        .collect();
    assert_eq!(
        items,
        (600..610).map(|n| format!("i{n}")).collect::<Vec<_>>()
    );

    // LIMIT ends a packed stream after exactly its rows, with the final message.
    let (rows, _, last) = packed(
        &mut c,
        "SELECT item FROM cart_events EMIT CHANGES LIMIT 250;",
        64,
        usize::MAX,
    )
    .await;
    assert_eq!(rows, single[..250].to_vec());
    let last = last.expect("a final message");
    assert_eq!((last.message.as_str(), last.rows), ("Limit Reached", 250));
}
