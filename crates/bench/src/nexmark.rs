//! `nexmark`: the Nexmark benchmark's Person/Auction/Bid streams from a generator with the
//! standard parameters (the Beam/Flink generator: 1:3:46 proportions, hot auctions, sellers
//! and bidders, event-time timestamps), and the Nexmark queries Sluice's SQL can express.
//!
//! The events are loaded first; then each query is started on its own, reading from the
//! earliest offset, and measured until it has consumed every event of its source.

use crate::client::{Client, bulk_load, create_query, execute, row, wait_caught_up};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::{Ctx, Figure};
use pb::value::Kind;
use sluice_proto::v1 as pb;

// The standard generator configuration.
const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
const BID_PROPORTION: u64 = 46;
const TOTAL_PROPORTION: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_SELLER_RATIO: u64 = 4;
const HOT_BIDDER_RATIO: u64 = 4;
const HOT_CHANNEL_RATIO: u64 = 2;
const NUM_ACTIVE_PEOPLE: u64 = 1000;
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;
const FIRST_PERSON_ID: u64 = 1000;
const FIRST_AUCTION_ID: u64 = 1000;
const FIRST_CATEGORY_ID: u64 = 10;
const NUM_CATEGORIES: u64 = 5;
/// 10,000 events per second of event time (the generator's default first-event rate).
const INTER_EVENT_DELAY_US: u64 = 100;
/// 2026-01-01T00:00:00Z: event time starts here.
const BASE_TIME_MS: u64 = 1_767_225_600_000;
const AVG_PERSON_BYTES: usize = 200;
const AVG_AUCTION_BYTES: usize = 500;
const AVG_BID_BYTES: usize = 100;
const HOT_CHANNELS: &[&str] = &["Google", "Facebook", "Baidu", "Apple"];
const HOT_URLS: &[&str] = &[
    "https://www.nexmark.com/hbvl/vqbe/bnti/item.htm?query=1",
    "https://www.nexmark.com/kwtj/rgmz/qpvo/item.htm?query=1",
    "https://www.nexmark.com/fhzs/ueyu/xeyh/item.htm?query=1",
    "https://www.nexmark.com/wmks/vgyv/ykap/item.htm?query=1",
];
const CHANNELS: u64 = 10_000;
const FIRST_NAMES: &[&str] = &[
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: &[&str] = &[
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const CITIES: &[&str] = &[
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: &[&str] = &["AZ", "CA", "ID", "OR", "WA", "WY"];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind3 {
    Person,
    Auction,
    Bid,
}

pub fn kind_of(event_id: u64) -> Kind3 {
    let offset = event_id % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        Kind3::Person
    } else if offset < PERSON_PROPORTION + AUCTION_PROPORTION {
        Kind3::Auction
    } else {
        Kind3::Bid
    }
}

// The generator's formula, general in the proportions; with one person per epoch the
// `min` is constant, which clippy sees.
#[allow(clippy::unnecessary_min_or_max)]
fn last_base0_person_id(event_id: u64) -> u64 {
    let epoch = event_id / TOTAL_PROPORTION;
    let offset = (event_id % TOTAL_PROPORTION).min(PERSON_PROPORTION - 1);
    epoch * PERSON_PROPORTION + offset
}

fn last_base0_auction_id(event_id: u64) -> u64 {
    let epoch = event_id / TOTAL_PROPORTION;
    let mut offset = event_id % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        // About to generate a person: the last auction is of the previous epoch.
        return (epoch * AUCTION_PROPORTION).saturating_sub(1);
    }
    offset -= PERSON_PROPORTION;
    if offset >= AUCTION_PROPORTION {
        offset = AUCTION_PROPORTION - 1;
    }
    epoch * AUCTION_PROPORTION + offset
}

fn next_base0_person_id(r: &mut Rng, event_id: u64) -> u64 {
    let num_people = last_base0_person_id(event_id) + 1;
    let active = num_people.min(NUM_ACTIVE_PEOPLE);
    let n = r.below(active + PERSON_ID_LEAD);
    num_people - active + n
}

fn next_base0_auction_id(r: &mut Rng, event_id: u64) -> u64 {
    let max = last_base0_auction_id(event_id);
    let min = max.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
    min + r.below(max - min + 1 + AUCTION_ID_LEAD)
}

fn padding(r: &mut Rng, current: usize, desired: usize) -> String {
    let target = desired.saturating_sub(current);
    // The generator draws extra bytes around the average size: 90%..110%.
    let n = target * (90 + r.below(21) as usize) / 100;
    r.letters(n)
}

/// The event with this id; deterministic in (seed, id), so load streams can split the work.
pub fn event(seed: u64, id: u64) -> pb::Row {
    let mut r = Rng::new(seed ^ id.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let ts = (BASE_TIME_MS + id * INTER_EVENT_DELAY_US / 1000) as i64;
    match kind_of(id) {
        Kind3::Person => {
            let pid = last_base0_person_id(id) + FIRST_PERSON_ID;
            let name = format!(
                "{} {}",
                FIRST_NAMES[r.below(FIRST_NAMES.len() as u64) as usize],
                LAST_NAMES[r.below(LAST_NAMES.len() as u64) as usize]
            );
            let email = format!("{}@{}.com", r.letters(7), r.letters(5));
            let card = format!(
                "{:04} {:04} {:04} {:04}",
                r.below(10000),
                r.below(10000),
                r.below(10000),
                r.below(10000)
            );
            let city = CITIES[r.below(CITIES.len() as u64) as usize];
            let state = STATES[r.below(STATES.len() as u64) as usize];
            let extra = padding(
                &mut r,
                name.len() + email.len() + card.len() + city.len() + state.len() + 40,
                AVG_PERSON_BYTES,
            );
            row(vec![
                Kind::Bigint(pid as i64),
                Kind::String(name),
                Kind::String(email),
                Kind::String(card),
                Kind::String(city.into()),
                Kind::String(state.into()),
                Kind::Bigint(ts),
                Kind::String(extra),
            ])
        }
        Kind3::Auction => {
            let aid = last_base0_auction_id(id) + FIRST_AUCTION_ID;
            let seller = if r.below(HOT_SELLER_RATIO) > 0 {
                (last_base0_person_id(id) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
            } else {
                next_base0_person_id(&mut r, id)
            } + FIRST_PERSON_ID;
            let category = FIRST_CATEGORY_ID + r.below(NUM_CATEGORIES);
            let initial = price(&mut r);
            let reserve = initial + price(&mut r);
            let expires = ts + (r.below(10_000) as i64 + 1) * 10;
            let item = r.letters(20);
            let desc = r.letters(100);
            let extra = padding(&mut r, item.len() + desc.len() + 60, AVG_AUCTION_BYTES);
            row(vec![
                Kind::Bigint(aid as i64),
                Kind::String(item),
                Kind::String(desc),
                Kind::Bigint(initial),
                Kind::Bigint(reserve),
                Kind::Bigint(ts),
                Kind::Bigint(expires),
                Kind::Bigint(seller as i64),
                Kind::Bigint(category as i64),
                Kind::String(extra),
            ])
        }
        Kind3::Bid => {
            let auction = if r.below(HOT_AUCTION_RATIO) > 0 {
                (last_base0_auction_id(id) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
            } else {
                next_base0_auction_id(&mut r, id)
            } + FIRST_AUCTION_ID;
            let bidder = if r.below(HOT_BIDDER_RATIO) > 0 {
                (last_base0_person_id(id) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
            } else {
                next_base0_person_id(&mut r, id)
            } + FIRST_PERSON_ID;
            let p = price(&mut r);
            let (channel, url) = if r.below(HOT_CHANNEL_RATIO) > 0 {
                let i = r.below(HOT_CHANNELS.len() as u64) as usize;
                (HOT_CHANNELS[i].to_string(), HOT_URLS[i].to_string())
            } else {
                let c = r.below(CHANNELS);
                (
                    format!("channel-{c}"),
                    format!(
                        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1&channel_id={c}",
                        r.letters(4),
                        r.letters(4),
                        r.letters(4)
                    ),
                )
            };
            let extra = padding(&mut r, 40 + channel.len() + url.len() / 2, AVG_BID_BYTES);
            row(vec![
                Kind::Bigint(auction as i64),
                Kind::Bigint(bidder as i64),
                Kind::Bigint(p),
                Kind::String(channel),
                Kind::String(url),
                Kind::Bigint(ts),
                Kind::String(extra),
            ])
        }
    }
}

/// Prices are log-uniform between 1 and 1,000,000 (in cents, times 100 as the generator does).
fn price(r: &mut Rng) -> i64 {
    (10f64.powf(r.unit() * 6.0) * 100.0).round() as i64
}

fn ddl(name: &str, cols: &str, partitions: u32) -> String {
    format!(
        "CREATE STREAM {name} ({cols}) WITH (kafka_topic='{}', value_format='JSON', partitions={partitions}, timestamp='DATETIME');",
        name.to_lowercase()
    )
}

/// A Nexmark query as Sluice SQL: `{bid}` etc. are replaced with the run's stream names,
/// `{sink}` with the query's sink. Several statements (separated by `;`) are a chain of
/// persistent queries, each reading the one before it (ksqlDB's dialect has no
/// subqueries), started and caught up in order and measured together.
pub struct Query {
    pub name: &'static str,
    /// The streams it reads (a join reads two), whose events it processes.
    pub sources: &'static [Kind3],
    pub sql: &'static str,
}

const DAY: &str = "FORMAT_TIMESTAMP(FROM_UNIXTIME(DATETIME), 'yyyy-MM-dd', 'UTC')";

/// Every Nexmark query the dialect expresses today. q3 and q20 are Nexmark's unbounded
/// joins, written as stream-stream joins with a window wider than the whole run (ksqlDB's
/// dialect wants a window, and its projection the join key, here the seller / auction);
/// q4 and q8 are chains of persistent queries (ksqlDB's dialect has no subqueries).
/// The rest, and why: q9 (and q6) need the top-1 (top-N) row per group, which no
/// aggregate of the dialect returns whole; q5 and q7 a windowed aggregation joined back
/// to its input (q5 the hot items per hopping window, q7 the highest bid per tumbling
/// window): ksqlDB refuses persistent queries over windowed tables, and a windowed stream
/// joins only another windowed stream; q12 processing-time windows; q13 a side-input
/// join; q10 a file-system sink; q19 ROW_NUMBER top-N, which ksqlDB's dialect does not
/// have.
pub fn queries() -> Vec<Query> {
    vec![
        Query {
            name: "q3",
            sources: &[Kind3::Auction, Kind3::Person],
            // Local item suggestion: sellers in three states offering category 10.
            sql: "CREATE STREAM {sink} AS SELECT A.SELLER, P.NAME, P.CITY, P.STATE, A.ID \
                  FROM {auction} A JOIN {person} P WITHIN 30 DAYS ON A.SELLER = P.ID \
                  WHERE A.CATEGORY = 10 AND (P.STATE = 'OR' OR P.STATE = 'ID' OR P.STATE = 'CA');",
        },
        Query {
            name: "q4",
            sources: &[Kind3::Auction, Kind3::Bid],
            // Average price per category: each auction's winning (highest) bid placed
            // while it was open, then their average per category.
            sql: "CREATE TABLE {sink}_WINNING WITH (KEY_FORMAT='JSON') AS \
                  SELECT A.ID, A.CATEGORY, MAX(B.PRICE) AS FINAL \
                  FROM {auction} A JOIN {bid} B WITHIN 30 DAYS ON A.ID = B.AUCTION \
                  WHERE B.DATETIME BETWEEN A.DATETIME AND A.EXPIRES GROUP BY A.ID, A.CATEGORY; \
                  CREATE TABLE {sink} AS SELECT CATEGORY, AVG(FINAL) AS AVG_FINAL \
                  FROM {sink}_WINNING GROUP BY CATEGORY;",
        },
        Query {
            name: "q8",
            sources: &[Kind3::Person, Kind3::Auction],
            // Monitor new users: people who opened an auction in the same 10 s tumbling
            // window as they registered. Each side is a windowed aggregation emitting once
            // per window (EMIT FINAL); their changelogs, read as windowed streams, join on
            // key and window (ksqlDB refuses persistent queries over windowed tables).
            // Retention beyond size + grace (EMIT FINAL's grace is 0): with the default, a
            // window is gone from the store by the time a record past its end arrives to
            // close it, and Kafka Streams (so ksqlDB, so Sluice) never emits it.
            sql: "CREATE TABLE {sink}_P WITH (kafka_topic='{sink}_p') AS \
                  SELECT ID, LATEST_BY_OFFSET(NAME) AS NAME FROM {person} \
                  WINDOW TUMBLING (SIZE 10 SECONDS, RETENTION 1 MINUTE) GROUP BY ID EMIT FINAL; \
                  CREATE TABLE {sink}_S WITH (kafka_topic='{sink}_s') AS \
                  SELECT SELLER, COUNT(*) AS N FROM {auction} \
                  WINDOW TUMBLING (SIZE 10 SECONDS, RETENTION 1 MINUTE) GROUP BY SELLER EMIT FINAL; \
                  CREATE STREAM {sink}_PW (ID BIGINT KEY, NAME STRING) WITH (kafka_topic='{sink}_p', \
                  value_format='JSON', WINDOW_TYPE='TUMBLING', WINDOW_SIZE='10 SECONDS'); \
                  CREATE STREAM {sink}_SW (SELLER BIGINT KEY, N BIGINT) WITH (kafka_topic='{sink}_s', \
                  value_format='JSON', WINDOW_TYPE='TUMBLING', WINDOW_SIZE='10 SECONDS'); \
                  CREATE STREAM {sink} AS SELECT P.ID, P.NAME, P.WINDOWSTART AS STARTTIME \
                  FROM {sink}_PW P JOIN {sink}_SW S WITHIN 10 SECONDS ON P.ID = S.SELLER;",
        },
        Query {
            name: "q20",
            sources: &[Kind3::Bid, Kind3::Auction],
            // Expanded bids: each bid with its auction, for auctions of category 10.
            sql: "CREATE STREAM {sink} AS SELECT B.AUCTION, B.BIDDER, B.PRICE, B.CHANNEL, B.URL, \
                  B.DATETIME, B.EXTRA, A.ITEMNAME, A.DESCRIPTION, A.INITIALBID, A.RESERVE, \
                  A.DATETIME, A.EXPIRES, A.SELLER, A.CATEGORY, A.EXTRA \
                  FROM {bid} B JOIN {auction} A WITHIN 30 DAYS ON B.AUCTION = A.ID \
                  WHERE A.CATEGORY = 10;",
        },
        Query {
            name: "q0",
            sources: &[Kind3::Bid],
            sql: "CREATE STREAM {sink} AS SELECT AUCTION, BIDDER, PRICE, DATETIME, EXTRA FROM {bid};",
        },
        Query {
            name: "q1",
            sources: &[Kind3::Bid],
            sql: "CREATE STREAM {sink} AS SELECT AUCTION, BIDDER, 0.908 * PRICE AS PRICE, DATETIME, EXTRA FROM {bid};",
        },
        Query {
            name: "q2",
            sources: &[Kind3::Bid],
            sql: "CREATE STREAM {sink} AS SELECT AUCTION, PRICE FROM {bid} WHERE AUCTION % 123 = 0;",
        },
        Query {
            name: "q11",
            sources: &[Kind3::Bid],
            // User sessions: bids per bidder per session of activity (10 s gap).
            sql: "CREATE TABLE {sink} AS SELECT BIDDER, COUNT(*) AS BID_COUNT, \
                  WINDOWSTART AS STARTTIME, WINDOWEND AS ENDTIME \
                  FROM {bid} WINDOW SESSION (10 SECONDS) GROUP BY BIDDER;",
        },
        Query {
            name: "q14",
            sources: &[Kind3::Bid],
            sql: "CREATE STREAM {sink} AS SELECT AUCTION, BIDDER, 0.908 * PRICE AS PRICE, \
                  CASE WHEN CAST(FORMAT_TIMESTAMP(FROM_UNIXTIME(DATETIME), 'HH', 'UTC') AS INT) BETWEEN 8 AND 18 THEN 'dayTime' \
                  WHEN CAST(FORMAT_TIMESTAMP(FROM_UNIXTIME(DATETIME), 'HH', 'UTC') AS INT) <= 6 \
                  OR CAST(FORMAT_TIMESTAMP(FROM_UNIXTIME(DATETIME), 'HH', 'UTC') AS INT) >= 20 THEN 'nightTime' \
                  ELSE 'otherTime' END AS BIDTIMETYPE, DATETIME, EXTRA, \
                  LEN(EXTRA) - LEN(REPLACE(EXTRA, 'c', '')) AS C_COUNTS FROM {bid} \
                  WHERE 0.908 * PRICE > 1000000 AND 0.908 * PRICE < 50000000;",
        },
        Query {
            name: "q15",
            sources: &[Kind3::Bid],
            sql: "CREATE TABLE {sink} AS SELECT {day} AS DAY, COUNT(*) AS TOTAL_BIDS, \
                  SUM(CASE WHEN PRICE < 10000 THEN 1 ELSE 0 END) AS RANK1_BIDS, \
                  SUM(CASE WHEN PRICE >= 10000 AND PRICE < 1000000 THEN 1 ELSE 0 END) AS RANK2_BIDS, \
                  SUM(CASE WHEN PRICE >= 1000000 THEN 1 ELSE 0 END) AS RANK3_BIDS, \
                  COUNT_DISTINCT(BIDDER) AS TOTAL_BIDDERS, \
                  COUNT_DISTINCT(CASE WHEN PRICE < 10000 THEN BIDDER END) AS RANK1_BIDDERS, \
                  COUNT_DISTINCT(AUCTION) AS TOTAL_AUCTIONS \
                  FROM {bid} GROUP BY {day};",
        },
        Query {
            name: "q16",
            sources: &[Kind3::Bid],
            sql: "CREATE TABLE {sink} WITH (KEY_FORMAT='JSON') AS SELECT CHANNEL, {day} AS DAY, COUNT(*) AS TOTAL_BIDS, \
                  SUM(CASE WHEN PRICE < 10000 THEN 1 ELSE 0 END) AS RANK1_BIDS, \
                  COUNT_DISTINCT(BIDDER) AS TOTAL_BIDDERS, COUNT_DISTINCT(AUCTION) AS TOTAL_AUCTIONS \
                  FROM {bid} GROUP BY CHANNEL, {day};",
        },
        Query {
            name: "q17",
            sources: &[Kind3::Bid],
            sql: "CREATE TABLE {sink} WITH (KEY_FORMAT='JSON') AS SELECT AUCTION, {day} AS DAY, COUNT(*) AS TOTAL_BIDS, \
                  SUM(CASE WHEN PRICE < 10000 THEN 1 ELSE 0 END) AS RANK1_BIDS, \
                  SUM(CASE WHEN PRICE >= 10000 AND PRICE < 1000000 THEN 1 ELSE 0 END) AS RANK2_BIDS, \
                  SUM(CASE WHEN PRICE >= 1000000 THEN 1 ELSE 0 END) AS RANK3_BIDS, \
                  MIN(PRICE) AS MIN_PRICE, MAX(PRICE) AS MAX_PRICE, AVG(PRICE) AS AVG_PRICE, SUM(PRICE) AS SUM_PRICE \
                  FROM {bid} GROUP BY AUCTION, {day};",
        },
        Query {
            name: "q18",
            sources: &[Kind3::Bid],
            sql: "CREATE TABLE {sink} WITH (KEY_FORMAT='JSON') AS SELECT BIDDER, AUCTION, LATEST_BY_OFFSET(PRICE) AS PRICE, \
                  LATEST_BY_OFFSET(CHANNEL) AS CHANNEL, LATEST_BY_OFFSET(DATETIME) AS DATETIME \
                  FROM {bid} GROUP BY BIDDER, AUCTION;",
        },
        Query {
            name: "q21",
            sources: &[Kind3::Bid],
            sql: "CREATE STREAM {sink} AS SELECT AUCTION, BIDDER, PRICE, CHANNEL, \
                  CASE WHEN LCASE(CHANNEL) = 'apple' THEN '0' WHEN LCASE(CHANNEL) = 'google' THEN '1' \
                  WHEN LCASE(CHANNEL) = 'facebook' THEN '2' WHEN LCASE(CHANNEL) = 'baidu' THEN '3' \
                  ELSE REGEXP_EXTRACT('(&|^)channel_id=([^&]*)', URL, 2) END AS CHANNEL_ID FROM {bid} \
                  WHERE REGEXP_EXTRACT('(&|^)channel_id=([^&]*)', URL, 2) IS NOT NULL \
                  OR LCASE(CHANNEL) IN ('apple', 'google', 'facebook', 'baidu');",
        },
        Query {
            name: "q22",
            sources: &[Kind3::Bid],
            sql: "CREATE STREAM {sink} AS SELECT AUCTION, BIDDER, PRICE, CHANNEL, \
                  SPLIT(URL, '/')[4] AS DIR1, SPLIT(URL, '/')[5] AS DIR2, SPLIT(URL, '/')[6] AS DIR3 FROM {bid};",
        },
    ]
}

async fn load(ctx: &Ctx<'_>, c: &mut Client, names: &[String; 3]) -> anyhow::Result<[u64; 3]> {
    let o = ctx.opts;
    let p = o.partitions;
    execute(c, &ddl(&names[0], "ID BIGINT, NAME STRING, EMAILADDRESS STRING, CREDITCARD STRING, CITY STRING, STATE STRING, DATETIME BIGINT, EXTRA STRING", p)).await?;
    execute(c, &ddl(&names[1], "ID BIGINT, ITEMNAME STRING, DESCRIPTION STRING, INITIALBID BIGINT, RESERVE BIGINT, DATETIME BIGINT, EXPIRES BIGINT, SELLER BIGINT, CATEGORY BIGINT, EXTRA STRING", p)).await?;
    execute(c, &ddl(&names[2], "AUCTION BIGINT, BIDDER BIGINT, PRICE BIGINT, CHANNEL STRING, URL STRING, DATETIME BIGINT, EXTRA STRING", p)).await?;
    // Event ids of each kind, in order, so each stream's load is a dense 0..n range.
    let mut counts = [0u64; 3];
    for id in 0..o.events {
        counts[kind_of(id) as usize] += 1;
    }
    let progress = Progress::start("nexmark load", o.events);
    for (k, kind) in [Kind3::Person, Kind3::Auction, Kind3::Bid]
        .into_iter()
        .enumerate()
    {
        let seed = o.seed;
        // The i-th event of this kind: whole epochs of 50, then the offset within one.
        let (lo, width) = match kind {
            Kind3::Person => (0, PERSON_PROPORTION),
            Kind3::Auction => (PERSON_PROPORTION, AUCTION_PROPORTION),
            Kind3::Bid => (PERSON_PROPORTION + AUCTION_PROPORTION, BID_PROPORTION),
        };
        bulk_load(
            &ctx.target,
            &names[k],
            counts[k],
            o.batch,
            // One stream, so each stream's events reach the log in event-time order, as a
            // Nexmark generator emits them: parallel loaders interleave batches that each
            // span seconds of event time, and windowed queries would see that disorder as
            // late records. Loading is not measured.
            1,
            move |i| {
                let id = (i / width) * TOTAL_PROPORTION + lo + i % width;
                event(seed, id)
            },
            &progress,
        )
        .await?;
    }
    progress.finish();
    Ok(counts)
}

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> anyhow::Result<Vec<Figure>> {
    let o = ctx.opts;
    let names = [
        ctx.name("NX_PERSON"),
        ctx.name("NX_AUCTION"),
        ctx.name("NX_BID"),
    ];
    let mut c = ctx.target.client().await?;
    let counts = load(ctx, &mut c, &names).await?;
    let all = queries();
    let wanted: Vec<&Query> = if o.nexmark_queries.is_empty() {
        all.iter().collect()
    } else {
        let mut v = Vec::new();
        for q in &o.nexmark_queries {
            match all.iter().find(|x| x.name.eq_ignore_ascii_case(q)) {
                Some(x) => v.push(x),
                None => anyhow::bail!(
                    "Nexmark query '{q}' is not expressible in Sluice yet; available: {}",
                    all.iter().map(|q| q.name).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        v
    };
    let mut figures = Vec::new();
    for q in wanted {
        let sink = ctx.name(&format!("NX_{}", q.name.to_uppercase()));
        let fill = |t: &str| {
            t.replace("{day}", DAY)
                .replace("{sink}", &sink)
                .replace("{bid}", &names[2])
                .replace("{auction}", &names[1])
                .replace("{person}", &names[0])
        };
        let sql = fill(q.sql);
        let n: u64 = q.sources.iter().map(|k| counts[*k as usize]).sum();
        let meter = ctx.meter();
        let progress = Progress::start(&format!("nexmark {}", q.name), n);
        // A statement naming the event streams reads those events; a later one the
        // queries before it, to their end (a count not known ahead). Statements that
        // start no query (a stream declared over a query's topic) just run.
        let mut ids = Vec::new();
        let mut end = None;
        let mut read = 0u64;
        for template in q
            .sql
            .split_inclusive(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let stmt = fill(template);
            if !template.to_ascii_uppercase().contains(" AS SELECT ") {
                execute(&mut c, &stmt).await?;
                continue;
            }
            let id = create_query(&mut c, &stmt).await?;
            let expected: u64 = [
                (Kind3::Person, "{person}"),
                (Kind3::Auction, "{auction}"),
                (Kind3::Bid, "{bid}"),
            ]
            .iter()
            .filter(|(_, p)| template.contains(p))
            .map(|(k, _)| counts[*k as usize])
            .sum();
            read += expected;
            progress.set(read.min(n));
            end = Some(wait_caught_up(&mut c, &id, expected, &progress).await?);
            ids.push(id);
        }
        let end = end.ok_or_else(|| anyhow::anyhow!("Nexmark {} has no statement", q.name))?;
        progress.finish();
        let mut f = Figure::new(&format!("nexmark-{}", q.name));
        f.events = n;
        figures.push(meter.stop_at(f, end).param("query", sql));
        // Stop them so later queries are measured alone.
        for id in ids.iter().rev() {
            execute(&mut c, &format!("TERMINATE {id};")).await?;
        }
    }
    Ok(figures)
}
