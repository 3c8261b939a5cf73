//! `fanout`: S concurrent push subscribers, each filtering one key of a table, while N
//! events over those S keys are inserted; delivery rate to all subscribers and server RSS.

use crate::client::{bulk_load, execute, push_rows, subscribe};
use crate::events::{EventGen, key};
use crate::progress::Progress;
use crate::{Ctx, Figure};
use anyhow::{anyhow, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    let o = ctx.opts;
    let table = ctx.name("FAN");
    let subscribers = o.subscribers.max(1) as u64;
    let mut c = ctx.target.client().await?;
    execute(&mut c, &super::create_event_table(ctx, &table)).await?;
    let generator = EventGen::new(o.seed, subscribers, o.value_size);
    // How many events each subscriber's key gets, to know when each is done.
    let mut expected = vec![0u64; subscribers as usize];
    for i in 0..o.events {
        expected[generator.key_of(i) as usize] += 1;
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("fanout", o.events);
    let mut subs = Vec::new();
    // One connection per 50 subscribers: HTTP/2 multiplexes them, as a real gateway would.
    let mut client = ctx.target.client().await?;
    for s in 0..subscribers {
        if s % 50 == 0 && s > 0 {
            client = ctx.target.client().await?;
        }
        let mut rows = subscribe(
            &mut client,
            format!("SELECT * FROM {table} WHERE K = '{}' EMIT CHANGES;", key(s)),
            o.push_rows_per_message,
        )
        .await?;
        let want = expected[s as usize];
        let delivered = delivered.clone();
        let progress = progress.clone();
        subs.push(tokio::spawn(async move {
            let mut got = 0u64;
            while got < want {
                match rows.message().await {
                    Ok(Some(m)) => {
                        let n = push_rows(m).len() as u64;
                        got += n;
                        delivered.fetch_add(n, Ordering::Relaxed);
                        progress.add(n);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            got
        }));
    }
    let meter = ctx.meter();
    let gen2 = generator.clone();
    bulk_load(
        &ctx.target,
        &table,
        o.events,
        o.batch,
        o.concurrency,
        move |i| gen2.row(i),
        &Progress::hidden(o.events),
    )
    .await?;
    let rss_after_load = meter.rss_bytes();
    let mut got = 0;
    for s in subs {
        got += tokio::time::timeout(Duration::from_secs(120), s)
            .await
            .map_err(|_| anyhow!("subscribers still waiting 120 s after the last insert"))??;
    }
    let end = Instant::now();
    progress.finish();
    if got != o.events {
        bail!("subscribers received {got} of {} events", o.events);
    }
    let mut f = Figure::new("fanout");
    f.events = got;
    Ok(meter
        .stop_at(f, end)
        .param("subscribers", subscribers)
        .param("rss_after_load_bytes", rss_after_load))
}
