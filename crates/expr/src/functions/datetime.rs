//! Date, time and timestamp functions. Patterns are Java `DateTimeFormatter` patterns and
//! zones `ZoneId` ids, handled by [`crate::temporal`]. Bad input, a bad pattern or an
//! unknown zone gives NULL, as ksqlDB logs the error and emits NULL.

use super::ScalarFunction;
use crate::temporal::{self, MILLIS_PER_DAY, Zone};
use sluice_common::{DataType, Value};

/// ksqlDB's message when no overload of a function takes the argument types.
pub(super) fn rejected(args: &[DataType]) -> String {
    let list: Vec<String> = args.iter().map(ToString::to_string).collect();
    format!("does not accept parameters ({}).", list.join(", "))
}

/// The result type when the arguments fit one of the overloads (with implicit widening).
fn overloads(args: &[DataType], sigs: &[&[DataType]], ret: DataType) -> Result<DataType, String> {
    let fits = |sig: &[DataType]| {
        sig.len() == args.len() && args.iter().zip(sig).all(|(a, p)| a.coerces_to(p))
    };
    if sigs.iter().any(|s| fits(s)) {
        Ok(ret)
    } else {
        Err(rejected(args))
    }
}

use DataType::{BigInt, Date, Int, String as Str, Time, Timestamp};

fn millis(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Timestamp(t) | Value::Time(t) => Some(*t),
        v => v.as_i64(),
    }
}

fn days(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Date(d) => Some(i64::from(*d)),
        v => v.as_i64(),
    }
}

fn text(v: Option<&Value>) -> Option<&str> {
    v?.as_str()
}

/// The zone named by argument `i`, UTC-like `default` when the argument is absent.
fn zone_arg(args: &[Value], i: usize, default: &str) -> Option<Zone> {
    match args.get(i) {
        None => Zone::parse(default),
        Some(v) => Zone::parse(v.as_str()?),
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `java.util.concurrent.TimeUnit.toMillis`: truncates small units, saturates big ones.
fn unit_to_millis(unit: &str, n: i64) -> Option<i64> {
    let u = unit.trim().to_ascii_uppercase();
    let u = u.strip_suffix('S').unwrap_or(&u);
    Some(match u {
        "NANOSECOND" => n / 1_000_000,
        "MICROSECOND" => n / 1_000,
        "MILLISECOND" => n,
        "SECOND" => n.saturating_mul(1_000),
        "MINUTE" => n.saturating_mul(60_000),
        "HOUR" => n.saturating_mul(3_600_000),
        "DAY" => n.saturating_mul(MILLIS_PER_DAY),
        _ => return None,
    })
}

/// DATEADD / DATESUB: whole days of the shifted instant, truncated toward zero as Java's
/// `TimeUnit.MILLISECONDS.toDays` does.
fn date_add(args: &[Value], sign: i64) -> Option<Value> {
    let unit = text(args.first())?;
    let n = args.get(1)?.as_i64()?.checked_mul(sign)?;
    let d = days(args.get(2))?;
    let ms = i128::from(d) * i128::from(MILLIS_PER_DAY) + i128::from(unit_to_millis(unit, n)?);
    let out = ms / i128::from(MILLIS_PER_DAY);
    Some(Value::Date(i32::try_from(out).ok()?))
}

fn timestamp_add(args: &[Value], sign: i64) -> Option<Value> {
    let unit = text(args.first())?;
    let n = args.get(1)?.as_i64()?.checked_mul(sign)?;
    let ts = millis(args.get(2))?;
    Some(Value::Timestamp(ts.checked_add(unit_to_millis(unit, n)?)?))
}

/// TIMEADD / TIMESUB wrap around midnight.
fn time_add(args: &[Value], sign: i64) -> Option<Value> {
    let unit = text(args.first())?;
    let n = args.get(1)?.as_i64()?.checked_mul(sign)?;
    let t = millis(args.get(2))?;
    let total = i128::from(t) + i128::from(unit_to_millis(unit, n)?);
    let wrapped = total.rem_euclid(i128::from(MILLIS_PER_DAY));
    Some(Value::Time(wrapped as i64))
}

fn format_ts(args: &[Value], default_zone: &str) -> Option<Value> {
    let ms = millis(args.first())?;
    let pattern = text(args.get(1))?;
    let zone = zone_arg(args, 2, default_zone)?;
    temporal::format_timestamp(ms, pattern, &zone).map(Value::String)
}

fn parse_ts(args: &[Value]) -> Option<i64> {
    let s = text(args.first())?;
    let pattern = text(args.get(1))?;
    let zone = zone_arg(args, 2, "UTC")?;
    temporal::parse_timestamp(s, pattern, &zone)
}

fn convert_tz(args: &[Value]) -> Option<Value> {
    let ts = millis(args.first())?;
    let from = Zone::parse(text(args.get(1))?)?;
    let to = Zone::parse(text(args.get(2))?)?;
    // Both offsets are taken at the instant the value names when read as UTC, as ksqlDB does.
    let shift = i64::from(to.offset_at(ts)?) - i64::from(from.offset_at(ts)?);
    Some(Value::Timestamp(ts.checked_add(shift * 1000)?))
}

fn or_null(v: Option<Value>) -> Value {
    v.unwrap_or(Value::Null)
}

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "UNIX_TIMESTAMP",
        sigs: &[],
        signature: "UNIX_TIMESTAMP([timestamp])",
        description: "Milliseconds since the epoch of the timestamp, or of now when called without one.",
        return_type: |a| overloads(a, &[&[], &[Timestamp]], BigInt),
        eval: |a| match a.first() {
            None => Value::BigInt(now_millis()),
            v => or_null(millis(v).map(Value::BigInt)),
        },
    },
    ScalarFunction {
        name: "UNIX_DATE",
        sigs: &[],
        signature: "UNIX_DATE([date])",
        description: "Days since the epoch of the date, or of today (UTC) when called without one.",
        return_type: |a| overloads(a, &[&[], &[Date]], Int),
        eval: |a| match a.first() {
            None => Value::Int(now_millis().div_euclid(MILLIS_PER_DAY) as i32),
            v => or_null(days(v).and_then(|d| i32::try_from(d).ok()).map(Value::Int)),
        },
    },
    ScalarFunction {
        name: "FROM_UNIXTIME",
        sigs: &[],
        signature: "FROM_UNIXTIME(millis)",
        description: "The TIMESTAMP that is the given milliseconds since the epoch.",
        return_type: |a| overloads(a, &[&[BigInt]], Timestamp),
        eval: |a| or_null(millis(a.first()).map(Value::Timestamp)),
    },
    ScalarFunction {
        name: "FROM_DAYS",
        sigs: &[],
        signature: "FROM_DAYS(days)",
        description: "The DATE that is the given days since the epoch.",
        return_type: |a| overloads(a, &[&[Int]], Date),
        eval: |a| {
            or_null(
                days(a.first())
                    .and_then(|d| i32::try_from(d).ok())
                    .map(Value::Date),
            )
        },
    },
    ScalarFunction {
        name: "DATETOSTRING",
        sigs: &[],
        signature: "DATETOSTRING(days, pattern)",
        description: "Formats days since the epoch with a DateTimeFormatter pattern (legacy; see FORMAT_DATE).",
        return_type: |a| overloads(a, &[&[Int, Str]], Str),
        eval: |a| {
            or_null(
                (|| temporal::format_date(days(a.first())?, text(a.get(1))?))().map(Value::String),
            )
        },
    },
    ScalarFunction {
        name: "STRINGTODATE",
        sigs: &[],
        signature: "STRINGTODATE(string, pattern)",
        description: "Parses a date with a DateTimeFormatter pattern into days since the epoch (legacy; see PARSE_DATE).",
        return_type: |a| overloads(a, &[&[Str, Str]], Int),
        eval: |a| {
            or_null(
                (|| temporal::parse_date(text(a.first())?, text(a.get(1))?))()
                    .and_then(|d| i32::try_from(d).ok())
                    .map(Value::Int),
            )
        },
    },
    ScalarFunction {
        name: "TIMESTAMPTOSTRING",
        sigs: &[],
        signature: "TIMESTAMPTOSTRING(millis, pattern [, zone])",
        description: "Formats milliseconds since the epoch with a DateTimeFormatter pattern, in UTC or the given zone (legacy; see FORMAT_TIMESTAMP).",
        return_type: |a| overloads(a, &[&[BigInt, Str], &[BigInt, Str, Str]], Str),
        eval: |a| or_null(format_ts(a, "UTC")),
    },
    ScalarFunction {
        name: "STRINGTOTIMESTAMP",
        sigs: &[],
        signature: "STRINGTOTIMESTAMP(string, pattern [, zone])",
        description: "Parses a timestamp with a DateTimeFormatter pattern into milliseconds since the epoch; text without a zone is read in UTC or the given zone (legacy; see PARSE_TIMESTAMP).",
        return_type: |a| overloads(a, &[&[Str, Str], &[Str, Str, Str]], BigInt),
        eval: |a| or_null(parse_ts(a).map(Value::BigInt)),
    },
    ScalarFunction {
        name: "FORMAT_TIMESTAMP",
        sigs: &[],
        signature: "FORMAT_TIMESTAMP(timestamp, pattern [, zone])",
        description: "Formats a TIMESTAMP with a DateTimeFormatter pattern, in UTC or the given zone.",
        return_type: |a| overloads(a, &[&[Timestamp, Str], &[Timestamp, Str, Str]], Str),
        eval: |a| or_null(format_ts(a, "UTC")),
    },
    ScalarFunction {
        name: "PARSE_TIMESTAMP",
        sigs: &[],
        signature: "PARSE_TIMESTAMP(string, pattern [, zone])",
        description: "Parses a TIMESTAMP with a DateTimeFormatter pattern; text without a zone is read in UTC or the given zone.",
        return_type: |a| overloads(a, &[&[Str, Str], &[Str, Str, Str]], Timestamp),
        eval: |a| or_null(parse_ts(a).map(Value::Timestamp)),
    },
    ScalarFunction {
        name: "FORMAT_DATE",
        sigs: &[],
        signature: "FORMAT_DATE(date, pattern)",
        description: "Formats a DATE with a DateTimeFormatter pattern.",
        return_type: |a| overloads(a, &[&[Date, Str]], Str),
        eval: |a| {
            or_null(
                (|| temporal::format_date(days(a.first())?, text(a.get(1))?))().map(Value::String),
            )
        },
    },
    ScalarFunction {
        name: "PARSE_DATE",
        sigs: &[],
        signature: "PARSE_DATE(string, pattern)",
        description: "Parses a DATE with a DateTimeFormatter pattern; missing fields default to 1970, January, the 1st.",
        return_type: |a| overloads(a, &[&[Str, Str]], Date),
        eval: |a| {
            or_null(
                (|| temporal::parse_date(text(a.first())?, text(a.get(1))?))()
                    .and_then(|d| i32::try_from(d).ok())
                    .map(Value::Date),
            )
        },
    },
    ScalarFunction {
        name: "FORMAT_TIME",
        sigs: &[],
        signature: "FORMAT_TIME(time, pattern)",
        description: "Formats a TIME with a DateTimeFormatter pattern.",
        return_type: |a| overloads(a, &[&[Time, Str]], Str),
        eval: |a| {
            or_null(
                (|| temporal::format_time(millis(a.first())?, text(a.get(1))?))()
                    .map(Value::String),
            )
        },
    },
    ScalarFunction {
        name: "PARSE_TIME",
        sigs: &[],
        signature: "PARSE_TIME(string, pattern)",
        description: "Parses a TIME with a DateTimeFormatter pattern.",
        return_type: |a| overloads(a, &[&[Str, Str]], Time),
        eval: |a| {
            or_null((|| temporal::parse_time(text(a.first())?, text(a.get(1))?))().map(Value::Time))
        },
    },
    ScalarFunction {
        name: "CONVERT_TZ",
        sigs: &[],
        signature: "CONVERT_TZ(timestamp, from_zone, to_zone)",
        description: "Shifts a TIMESTAMP read as local time in one zone to the local time of another.",
        return_type: |a| overloads(a, &[&[Timestamp, Str, Str]], Timestamp),
        eval: |a| or_null(convert_tz(a)),
    },
    ScalarFunction {
        name: "DATEADD",
        sigs: &[],
        signature: "DATEADD(unit, interval, date)",
        description: "The DATE plus interval units (DAYS, HOURS, ...).",
        return_type: |a| overloads(a, &[&[Str, Int, Date]], Date),
        eval: |a| or_null(date_add(a, 1)),
    },
    ScalarFunction {
        name: "DATESUB",
        sigs: &[],
        signature: "DATESUB(unit, interval, date)",
        description: "The DATE minus interval units (DAYS, HOURS, ...).",
        return_type: |a| overloads(a, &[&[Str, Int, Date]], Date),
        eval: |a| or_null(date_add(a, -1)),
    },
    ScalarFunction {
        name: "TIMESTAMPADD",
        sigs: &[],
        signature: "TIMESTAMPADD(unit, interval, timestamp)",
        description: "The TIMESTAMP plus interval units (MILLISECONDS, SECONDS, ..., DAYS).",
        return_type: |a| overloads(a, &[&[Str, BigInt, Timestamp]], Timestamp),
        eval: |a| or_null(timestamp_add(a, 1)),
    },
    ScalarFunction {
        name: "TIMESTAMPSUB",
        sigs: &[],
        signature: "TIMESTAMPSUB(unit, interval, timestamp)",
        description: "The TIMESTAMP minus interval units (MILLISECONDS, SECONDS, ..., DAYS).",
        return_type: |a| overloads(a, &[&[Str, BigInt, Timestamp]], Timestamp),
        eval: |a| or_null(timestamp_add(a, -1)),
    },
    ScalarFunction {
        name: "TIMEADD",
        sigs: &[],
        signature: "TIMEADD(unit, interval, time)",
        description: "The TIME plus interval units, wrapping around midnight.",
        return_type: |a| overloads(a, &[&[Str, Int, Time]], Time),
        eval: |a| or_null(time_add(a, 1)),
    },
    ScalarFunction {
        name: "TIMESUB",
        sigs: &[],
        signature: "TIMESUB(unit, interval, time)",
        description: "The TIME minus interval units, wrapping around midnight.",
        return_type: |a| overloads(a, &[&[Str, Int, Time]], Time),
        eval: |a| or_null(time_add(a, -1)),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::lookup;
    use crate::functions::testing::call;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn ty(name: &str, args: &[DataType]) -> Result<DataType, String> {
        (lookup(name).unwrap().return_type)(args)
    }

    #[test]
    fn formats_dates() {
        let cases = [
            (17662, "yyyy-MM-dd", "2018-05-11"),
            (18027, "dd/MM/yyyy", "11/05/2019"),
            (18993, "dd-MMM-yyyy", "01-Jan-2022"),
            (0, "dd-MM-yyyy", "01-01-1970"),
            (-1, "dd-MM-yyyy'Sophia'", "31-12-1969Sophia"),
            (0, "EEEE d MMMM yy, D", "Thursday 1 January 70, 1"),
            (-719_162, "yyyy-MM-dd G", "0001-01-01 AD"),
        ];
        for (d, p, want) in cases {
            assert_eq!(call("FORMAT_DATE", &[Value::Date(d), s(p)]), s(want), "{p}");
            assert_eq!(call("DATETOSTRING", &[Value::Int(d), s(p)]), s(want), "{p}");
        }
        // A date has no hour; a bad pattern has no output.
        assert_eq!(
            call("FORMAT_DATE", &[Value::Date(0), s("yyyy HH")]),
            Value::Null
        );
        assert_eq!(
            call("FORMAT_DATE", &[Value::Date(0), s("yyyy'")]),
            Value::Null
        );
        assert_eq!(call("FORMAT_DATE", &[Value::Date(0), s("bb")]), Value::Null);
        assert_eq!(call("FORMAT_DATE", &[Value::Null, s("yyyy")]), Value::Null);
        assert_eq!(
            call("FORMAT_DATE", &[Value::Date(0), s("yyyy-[MM][HH]")]),
            s("1970-01")
        );
    }

    #[test]
    fn parses_dates() {
        let cases = [
            ("2018-05-11Lit", "yyyy-MM-dd'Lit'", 17662),
            ("11/05/2019", "dd/MM/yyyy", 18027),
            ("01-Jan-2022", "dd-MMM-yyyy", 18993),
            ("01-JAN-2022", "dd-MMM-yyyy", 18993),
            ("JAN-2022", "MMM-yyyy", 18993),
            ("01-01-1970", "dd-MM-yyyy", 0),
            ("20220101", "yyyyMMdd", 18993),
            ("2021-02-31", "yyyy-MM-dd", 18686), // clipped to the 28th
            ("2003-12-24-01-01", "yyyy-MM-dd", 12410),
        ];
        for (t, p, want) in cases {
            assert_eq!(call("PARSE_DATE", &[s(t), s(p)]), Value::Date(want), "{t}");
            assert_eq!(call("STRINGTODATE", &[s(t), s(p)]), Value::Int(want), "{t}");
        }
        for (t, p) in [
            ("foo", "yyyyMMdd"),
            ("2022-13-01", "yyyy-MM-dd"),
            ("2022-01-01 10", "yyyy-MM-dd HH"),
            ("2022-1-01", "yyyy-MM-dd"),
        ] {
            assert_eq!(call("PARSE_DATE", &[s(t), s(p)]), Value::Null, "{t}");
        }
    }

    #[test]
    fn formats_and_parses_times() {
        let fmt = |ms: i64, p: &str| call("FORMAT_TIME", &[Value::Time(ms), s(p)]);
        assert_eq!(fmt(65000, "HH_mm_ss_SSS"), s("00_01_05_000"));
        assert_eq!(fmt(1_234_567, "HHmmss'AAAAA'"), s("002034AAAAA"));
        assert_eq!(fmt(0, "HH:mm:ss"), s("00:00:00"));
        assert_eq!(fmt(46_800_123, "h:mm a, k, K, S"), s("1:00 PM, 13, 1, 1"));
        assert_eq!(fmt(0, "yyyy"), Value::Null);
        assert_eq!(call("FORMAT_TIME", &[Value::Null, s("HH")]), Value::Null);

        let parse = |t: &str, p: &str| call("PARSE_TIME", &[s(t), s(p)]);
        assert_eq!(parse("00:01:05Lit", "HH:mm:ss'Lit'"), Value::Time(65000));
        assert_eq!(parse("11/05/19", "HH/mm/ss"), Value::Time(39_919_000));
        assert_eq!(parse("01:00:00 PM", "hh:mm:ss a"), Value::Time(46_800_000));
        assert_eq!(parse("01:00:00 Pm", "hh:mm:ss a"), Value::Time(46_800_000));
        assert_eq!(parse("12:00:00 AM", "hh:mm:ss a"), Value::Time(0));
        assert_eq!(parse("10:00:00.5", "HH:mm:ss.S"), Value::Time(36_000_500));
        assert_eq!(parse("25:00", "HH:mm"), Value::Null);
        assert_eq!(parse("2020 10", "yyyy HH"), Value::Null);
    }

    #[test]
    fn formats_timestamps() {
        let ts = Value::Timestamp(1_526_075_913_000);
        assert_eq!(
            call("FORMAT_TIMESTAMP", &[ts.clone(), s("yyyy-MM-dd HH:mm:ss")]),
            s("2018-05-11 21:58:33")
        );
        assert_eq!(
            call(
                "FORMAT_TIMESTAMP",
                &[
                    ts.clone(),
                    s("yyyy-MM-dd HH:mm:ss zzz"),
                    s("America/Los_Angeles")
                ]
            ),
            s("2018-05-11 14:58:33 PDT")
        );
        assert_eq!(
            call(
                "TIMESTAMPTOSTRING",
                &[
                    Value::BigInt(1_526_075_913_000),
                    s("yyyy-MM-dd HH:mm:ss zzz"),
                    s("Europe/London")
                ]
            ),
            s("2018-05-11 22:58:33 BST")
        );
        let iso = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX";
        assert_eq!(
            call("FORMAT_TIMESTAMP", &[ts.clone(), s(iso), s("+05:30")]),
            s("2018-05-12T03:28:33.000+05:30")
        );
        assert_eq!(
            call("FORMAT_TIMESTAMP", &[ts.clone(), s(iso)]),
            s("2018-05-11T21:58:33.000Z")
        );
        assert_eq!(
            call(
                "FORMAT_TIMESTAMP",
                &[ts.clone(), s("HH X Z O VV"), s("GMT+1")]
            ),
            s("22 +01 +0100 GMT+1 GMT+01:00")
        );
        assert_eq!(
            call(
                "FORMAT_TIMESTAMP",
                &[Value::Timestamp(-1), s("yyyy-MM-dd HH:mm:ss.SSS")]
            ),
            s("1969-12-31 23:59:59.999")
        );
        assert_eq!(
            call("FORMAT_TIMESTAMP", &[ts.clone(), s("yyyy"), s("Not/AZone")]),
            Value::Null
        );
        // Years past 9999 get a sign, as java.time prints them.
        assert_eq!(
            call("FORMAT_TIMESTAMP", &[Value::Timestamp(i64::MAX), s("yyyy")]),
            s("+292278994")
        );
        assert_eq!(
            call(
                "FORMAT_TIMESTAMP",
                &[
                    Value::Timestamp(i64::MAX),
                    s("yyyy"),
                    s("America/Los_Angeles")
                ]
            ),
            Value::Null
        );
    }

    #[test]
    fn parses_timestamps() {
        let p = |t: &str, pat: &str| call("PARSE_TIMESTAMP", &[s(t), s(pat)]);
        let x = "yyyy-MM-dd'T'HH:mm:ssX";
        assert_eq!(
            p("2018-05-11T21:58:33Z", x),
            Value::Timestamp(1_526_075_913_000)
        );
        assert_eq!(
            p("2020-05-11T21:58:33z", x),
            Value::Timestamp(1_589_234_313_000)
        );
        assert_eq!(
            p("2019-08-27T13:31:09.2+0000", "yyyy-MM-dd'T'HH:mm:ss.SX"),
            Value::Timestamp(1_566_912_669_200)
        );
        assert_eq!(
            p("2018-05-11T21:58:33", "yyyy-MM-dd'T'HH:mm:ss"),
            Value::Timestamp(1_526_075_913_000)
        );
        assert_eq!(
            p("2018-05-11T21:58:33 PST", "yyyy-MM-dd'T'HH:mm:ss zzz"),
            Value::Timestamp(1_526_101_113_000)
        );
        assert_eq!(
            p("2018-05-11T23:58:33+02:00", "yyyy-MM-dd'T'HH:mm:ssXXX"),
            Value::Timestamp(1_526_075_913_000)
        );
        assert_eq!(
            p("2018-05-11 21:58:33.123 UTC", "yyyy-MM-dd HH:mm:ss.SSS VV"),
            Value::Timestamp(1_526_075_913_123)
        );
        assert_eq!(p("not a timestamp", x), Value::Null);
        assert_eq!(
            call(
                "STRINGTOTIMESTAMP",
                &[
                    s("2018-05-11 14:58:33"),
                    s("yyyy-MM-dd HH:mm:ss"),
                    s("America/Los_Angeles")
                ]
            ),
            Value::BigInt(1_526_075_913_000)
        );
        assert_eq!(
            call("STRINGTOTIMESTAMP", &[s("2018"), s("yyyy"), s("bad zone")]),
            Value::Null
        );
    }

    #[test]
    fn converts_zones() {
        let c = |ts: i64, a: &str, b: &str| call("CONVERT_TZ", &[Value::Timestamp(ts), s(a), s(b)]);
        assert_eq!(c(100, "+0200", "+0500"), Value::Timestamp(10_800_100));
        assert_eq!(
            c(1_589_234_313_000, "America/Los_Angeles", "America/New_York"),
            Value::Timestamp(1_589_245_113_000)
        );
        assert_eq!(c(0, "UTC", "GMT-1"), Value::Timestamp(-3_600_000));
        assert_eq!(c(0, "UTC", "+19:00"), Value::Null);
        assert_eq!(
            call("CONVERT_TZ", &[Value::Null, s("UTC"), s("UTC")]),
            Value::Null
        );
    }

    #[test]
    fn unix_and_days() {
        assert_eq!(
            call("UNIX_TIMESTAMP", &[Value::Timestamp(100)]),
            Value::BigInt(100)
        );
        assert!(matches!(call("UNIX_TIMESTAMP", &[]), Value::BigInt(n) if n > 1_600_000_000_000));
        assert!(matches!(call("UNIX_DATE", &[]), Value::Int(n) if n > 18_000));
        assert_eq!(call("UNIX_DATE", &[Value::Date(10)]), Value::Int(10));
        assert_eq!(call("UNIX_DATE", &[Value::Null]), Value::Null);
        assert_eq!(
            call("FROM_UNIXTIME", &[Value::BigInt(5)]),
            Value::Timestamp(5)
        );
        assert_eq!(call("FROM_DAYS", &[Value::Int(-10)]), Value::Date(-10));
        assert_eq!(call("FROM_DAYS", &[Value::Null]), Value::Null);
    }

    #[test]
    fn adds_and_subtracts() {
        let u = |x: &str| s(x);
        assert_eq!(
            call("DATESUB", &[u("DAYS"), Value::Int(10), Value::Date(5)]),
            Value::Date(-5)
        );
        assert_eq!(
            call("DATEADD", &[u("day"), Value::Int(3), Value::Date(5)]),
            Value::Date(8)
        );
        assert_eq!(
            call("DATEADD", &[u("HOURS"), Value::Int(47), Value::Date(0)]),
            Value::Date(1)
        );
        assert_eq!(
            call(
                "DATEADD",
                &[u("DAYS"), Value::Int(i32::MAX), Value::Date(i32::MAX)]
            ),
            Value::Null
        );
        assert_eq!(
            call(
                "TIMESTAMPSUB",
                &[u("MILLISECONDS"), Value::Int(10), Value::Timestamp(20)]
            ),
            Value::Timestamp(10)
        );
        assert_eq!(
            call(
                "TIMESTAMPADD",
                &[u("SECONDS"), Value::BigInt(2), Value::Timestamp(0)]
            ),
            Value::Timestamp(2000)
        );
        assert_eq!(
            call(
                "TIMESTAMPADD",
                &[u("DAYS"), Value::BigInt(i64::MAX), Value::Timestamp(1)]
            ),
            Value::Null
        );
        assert_eq!(
            call(
                "TIMEADD",
                &[u("MILLISECONDS"), Value::Int(10), Value::Time(86_399_995)]
            ),
            Value::Time(5)
        );
        assert_eq!(
            call(
                "TIMESUB",
                &[u("MILLISECONDS"), Value::Int(10), Value::Time(5)]
            ),
            Value::Time(86_399_995)
        );
        assert_eq!(
            call("TIMEADD", &[u("FORTNIGHTS"), Value::Int(1), Value::Time(5)]),
            Value::Null
        );
        assert_eq!(
            call("TIMEADD", &[u("HOURS"), Value::Null, Value::Time(5)]),
            Value::Null
        );
    }

    #[test]
    fn type_rules() {
        assert_eq!(
            ty("DATESUB", &[Date, Int, Date]),
            Err("does not accept parameters (DATE, INTEGER, DATE).".into())
        );
        assert!(ty("TIMESTAMPSUB", &[Timestamp, Int, Timestamp]).is_err());
        assert_eq!(ty("TIMESTAMPADD", &[Str, Int, Timestamp]), Ok(Timestamp));
        assert!(ty("TIMEADD", &[Time, Int, Time]).is_err());
        assert_eq!(ty("UNIX_TIMESTAMP", &[]), Ok(BigInt));
        assert!(ty("UNIX_TIMESTAMP", &[Str]).is_err());
        assert_eq!(ty("TIMESTAMPTOSTRING", &[Int, Str]), Ok(Str));
        assert_eq!(ty("FORMAT_TIMESTAMP", &[Timestamp, Str, Str]), Ok(Str));
        assert!(ty("FORMAT_TIMESTAMP", &[Date, Str]).is_err());
        assert_eq!(ty("PARSE_TIME", &[Str, Str]), Ok(Time));
        assert!(ty("FROM_DAYS", &[BigInt]).is_err());
    }
}
