//! Dates, times and time zones as ksqlDB (Java's `java.time`) sees them: a formatter and
//! parser for `DateTimeFormatter` patterns (`yyyy-MM-dd'T'HH:mm:ss.SSSX`), the proleptic
//! Gregorian calendar, and `ZoneId`-style zone ids (`UTC`, `+05:30`, `GMT+1`, IANA names).
//!
//! Values follow Sluice's representation: a timestamp is milliseconds since the epoch
//! (UTC), a date is days since the epoch and a time is milliseconds since midnight.
//! Patterns are compiled per call; they are short and compiling is cheap next to a row.

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::{OffsetName, Tz};

// The calendar lives in sluice-common, shared with the shell; re-exported as part of this
// module's interface.
pub use sluice_common::civil::{
    MILLIS_PER_DAY, civil_from_days, days_from_civil, days_in_month, is_leap,
};

// ---------------------------------------------------------------------------------------
// Zones
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum ZoneKind {
    Fixed(i32),
    Region(Tz),
}

/// A time zone as `java.time.ZoneId` accepts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    id: String,
    kind: ZoneKind,
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            id: "UTC".into(),
            kind: ZoneKind::Fixed(0),
        }
    }

    pub fn fixed(id: &str, offset_secs: i32) -> Zone {
        Zone {
            id: id.into(),
            kind: ZoneKind::Fixed(offset_secs),
        }
    }

    /// Parses a zone id with `ZoneId.of` rules: `Z`, `+h[h][[:]mm[[:]ss]]`,
    /// `UTC`/`GMT`/`UT` optionally followed by an offset, or a region id.
    pub fn parse(id: &str) -> Option<Zone> {
        if id == "Z" {
            return Some(Zone::fixed("Z", 0));
        }
        if id.starts_with('+') || id.starts_with('-') {
            let secs = parse_offset_id(id)?;
            return Some(Zone::fixed(&offset_id(secs), secs));
        }
        for prefix in ["UTC", "GMT", "UT"] {
            if let Some(rest) = id.strip_prefix(prefix) {
                if rest.is_empty() {
                    return Some(Zone::fixed(prefix, 0));
                }
                if rest.starts_with('+') || rest.starts_with('-') {
                    let secs = parse_offset_id(rest)?;
                    let suffix = if secs == 0 {
                        String::new()
                    } else {
                        offset_id(secs)
                    };
                    return Some(Zone::fixed(&format!("{prefix}{suffix}"), secs));
                }
            }
        }
        let tz: Tz = id.parse().ok()?;
        Some(Zone {
            id: id.into(),
            kind: ZoneKind::Region(tz),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The zone's offset from UTC in seconds at an instant.
    pub fn offset_at(&self, millis: i64) -> Option<i32> {
        match &self.kind {
            ZoneKind::Fixed(s) => Some(*s),
            ZoneKind::Region(tz) => {
                let utc = DateTime::from_timestamp_millis(millis)?.naive_utc();
                Some(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
            }
        }
    }

    /// The short display name at an instant, as Java's `z` prints it.
    fn short_name(&self, millis: i64) -> Option<String> {
        match &self.kind {
            ZoneKind::Fixed(_) => Some(self.id.clone()),
            ZoneKind::Region(tz) => {
                let utc = DateTime::from_timestamp_millis(millis)?.naive_utc();
                let off = tz.offset_from_utc_datetime(&utc);
                Some(off.abbreviation().unwrap_or(&self.id).to_string())
            }
        }
    }

    /// The instant of a local date-time in this zone. In an overlap the earlier offset
    /// wins; in a gap the time moves forward by the gap's length, as in `java.time`.
    pub fn local_to_instant(&self, local_millis: i64) -> Option<i64> {
        match &self.kind {
            ZoneKind::Fixed(s) => local_millis.checked_sub(i64::from(*s) * 1000),
            ZoneKind::Region(tz) => {
                let naive = DateTime::from_timestamp_millis(local_millis)?.naive_utc();
                let offset = match tz.offset_from_local_datetime(&naive) {
                    chrono::LocalResult::Single(o) => o.fix().local_minus_utc(),
                    chrono::LocalResult::Ambiguous(a, b) => {
                        a.fix().local_minus_utc().max(b.fix().local_minus_utc())
                    }
                    // The offset in force before the gap: a day earlier is before it.
                    chrono::LocalResult::None => self.offset_at(local_millis - MILLIS_PER_DAY)?,
                };
                local_millis.checked_sub(i64::from(offset) * 1000)
            }
        }
    }
}

/// `ZoneOffset.of` syntax after the sign: h, hh, hh:mm, hhmm, hh:mm:ss, hhmmss.
fn parse_offset_id(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    // The fields below are found by byte position, which is only safe on ASCII text (a
    // zone like `+1é34` has a two-byte character where a digit belongs).
    if !rest.is_ascii() {
        return None;
    }
    let num = |s: &str| -> Option<i32> {
        if s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (h, m, s) = match rest.len() {
        1 if rest.as_bytes()[0].is_ascii_digit() => (rest.parse().ok()?, 0, 0),
        2 => (num(rest)?, 0, 0),
        4 => (num(&rest[..2])?, num(&rest[2..])?, 0),
        5 if &rest[2..3] == ":" => (num(&rest[..2])?, num(&rest[3..])?, 0),
        6 => (num(&rest[..2])?, num(&rest[2..4])?, num(&rest[4..])?),
        8 if &rest[2..3] == ":" && &rest[5..6] == ":" => {
            (num(&rest[..2])?, num(&rest[3..5])?, num(&rest[6..])?)
        }
        _ => return None,
    };
    if h > 18 || m > 59 || s > 59 || (h == 18 && (m > 0 || s > 0)) {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + s))
}

/// A `ZoneOffset` id: `Z`, `+05:30`, `-08:00:30`.
fn offset_id(secs: i32) -> String {
    if secs == 0 {
        return "Z".into();
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    if s == 0 {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    }
}

/// Zone abbreviations Java's `z` parser understands, mapped to the zone they stand for.
/// Java resolves most of them to a region, so daylight saving still applies.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("PST", "America/Los_Angeles"),
    ("PDT", "America/Los_Angeles"),
    ("PT", "America/Los_Angeles"),
    ("MST", "America/Denver"),
    ("MDT", "America/Denver"),
    ("CST", "America/Chicago"),
    ("CDT", "America/Chicago"),
    ("EST", "America/New_York"),
    ("EDT", "America/New_York"),
    ("AKST", "America/Anchorage"),
    ("AKDT", "America/Anchorage"),
    ("HST", "Pacific/Honolulu"),
    ("BST", "Europe/London"),
    ("CET", "Europe/Paris"),
    ("CEST", "Europe/Paris"),
    ("EET", "Europe/Bucharest"),
    ("EEST", "Europe/Bucharest"),
    ("IST", "Asia/Kolkata"),
    ("JST", "Asia/Tokyo"),
    ("KST", "Asia/Seoul"),
    ("AEST", "Australia/Sydney"),
    ("AEDT", "Australia/Sydney"),
];

// ---------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(String),
    Field(char, usize),
    Optional(Vec<Item>),
}

/// A compiled `DateTimeFormatter` pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    items: Vec<Item>,
}

/// The largest run of each pattern letter `DateTimeFormatter` accepts (`usize::MAX`: any).
fn max_count(letter: char) -> Option<usize> {
    Some(match letter {
        'G' | 'M' | 'L' | 'Q' | 'q' | 'E' | 'e' | 'c' | 'X' | 'x' | 'Z' => 5,
        'z' => 4,
        'd' | 'H' | 'h' | 'K' | 'k' | 'm' | 's' | 'w' => 2,
        'D' => 3,
        'a' | 'W' | 'F' => 1,
        'V' => 2,
        'O' => 4,
        'y' | 'u' | 'Y' | 'S' | 'n' | 'N' | 'A' => usize::MAX,
        _ => return None,
    })
}

impl Pattern {
    pub fn compile(pattern: &str) -> Result<Pattern, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let items = Self::compile_items(&chars, &mut pos, false)?;
        Ok(Pattern { items })
    }

    fn compile_items(chars: &[char], pos: &mut usize, nested: bool) -> Result<Vec<Item>, String> {
        let mut items = Vec::new();
        let push_lit = |items: &mut Vec<Item>, s: &str| {
            if let Some(Item::Literal(prev)) = items.last_mut() {
                prev.push_str(s);
            } else {
                items.push(Item::Literal(s.to_string()));
            }
        };
        while *pos < chars.len() {
            let c = chars[*pos];
            if c.is_ascii_alphabetic() {
                let mut n = 1;
                while *pos + n < chars.len() && chars[*pos + n] == c {
                    n += 1;
                }
                *pos += n;
                let max = max_count(c).ok_or_else(|| format!("Unknown pattern letter: {c}"))?;
                if n > max || (c == 'V' && n != 2) || (c == 'O' && n != 1 && n != 4) {
                    return Err(format!("Too many pattern letters: {c}"));
                }
                items.push(Item::Field(c, n));
            } else if c == '\'' {
                *pos += 1;
                let mut lit = String::new();
                loop {
                    match chars.get(*pos) {
                        None => {
                            return Err(
                                "Pattern ends with an incomplete string literal".to_string()
                            );
                        }
                        Some('\'') if chars.get(*pos + 1) == Some(&'\'') => {
                            lit.push('\'');
                            *pos += 2;
                        }
                        Some('\'') => {
                            *pos += 1;
                            break;
                        }
                        Some(ch) => {
                            lit.push(*ch);
                            *pos += 1;
                        }
                    }
                }
                // '' on its own is a quote character.
                push_lit(&mut items, if lit.is_empty() { "'" } else { &lit });
            } else if c == '[' {
                *pos += 1;
                let inner = Self::compile_items(chars, pos, true)?;
                items.push(Item::Optional(inner));
            } else if c == ']' {
                *pos += 1;
                if nested {
                    return Ok(items);
                }
                return Err("Pattern invalid as it contains ] without previous [".into());
            } else if matches!(c, '{' | '}' | '#') {
                return Err(format!("Pattern includes reserved character: '{c}'"));
            } else {
                *pos += 1;
                push_lit(&mut items, &c.to_string());
            }
        }
        Ok(items)
    }

    /// Formats the fields; None when the pattern asks for a field the value lacks (an
    /// hour of a DATE) or a number overflows its width, where Java throws.
    fn format(&self, f: &Fields) -> Option<String> {
        let mut out = String::new();
        format_items(&self.items, f, &mut out)?;
        Some(out)
    }
}

/// What a value offers a formatter.
struct Fields<'a> {
    date: Option<(i64, u32, u32, i64)>, // year, month, day, day number
    time: Option<i64>,                  // nanos of day
    zone: Option<(&'a Zone, i32, i64)>, // zone, offset seconds, instant millis
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn text_style(name: &str, count: usize) -> String {
    match count {
        4 => name.to_string(),
        5 => name.chars().take(1).collect(),
        _ => name.chars().take(3).collect(),
    }
}

fn pad(out: &mut String, v: i64, width: usize) -> Option<()> {
    let s = v.unsigned_abs().to_string();
    if width > 1 && s.len() > width && width < 4 {
        return None;
    }
    if v < 0 {
        out.push('-');
    }
    for _ in s.len()..width {
        out.push('0');
    }
    out.push_str(&s);
    Some(())
}

fn format_offset(out: &mut String, secs: i32, with_colon: bool, seconds: Seconds, zero: &str) {
    if secs == 0 && !zero.is_empty() {
        out.push_str(zero);
        return;
    }
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    out.push(if secs < 0 { '-' } else { '+' });
    out.push_str(&format!("{h:02}"));
    let colon = if with_colon { ":" } else { "" };
    match seconds {
        Seconds::HourOnlyIfRound if m == 0 && s == 0 => {}
        Seconds::HourOnlyIfRound | Seconds::Never => out.push_str(&format!("{colon}{m:02}")),
        Seconds::IfNonZero => {
            out.push_str(&format!("{colon}{m:02}"));
            if s != 0 {
                out.push_str(&format!("{colon}{s:02}"));
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Seconds {
    HourOnlyIfRound,
    Never,
    IfNonZero,
}

fn format_localized_offset(out: &mut String, secs: i32, full: bool) {
    out.push_str("GMT");
    if secs == 0 {
        return;
    }
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    out.push(if secs < 0 { '-' } else { '+' });
    if full {
        out.push_str(&format!("{h:02}:{m:02}"));
        if s != 0 {
            out.push_str(&format!(":{s:02}"));
        }
    } else {
        out.push_str(&h.to_string());
        if m != 0 || s != 0 {
            out.push_str(&format!(":{m:02}"));
            if s != 0 {
                out.push_str(&format!(":{s:02}"));
            }
        }
    }
}

fn format_items(items: &[Item], f: &Fields, out: &mut String) -> Option<()> {
    for item in items {
        match item {
            Item::Literal(s) => out.push_str(s),
            Item::Optional(inner) => {
                let mut tmp = String::new();
                if format_items(inner, f, &mut tmp).is_some() {
                    out.push_str(&tmp);
                }
            }
            Item::Field(c, n) => format_field(*c, *n, f, out)?,
        }
    }
    Some(())
}

fn format_field(c: char, n: usize, f: &Fields, out: &mut String) -> Option<()> {
    let date = || f.date;
    let nanos = || f.time;
    match c {
        'G' => {
            let (y, ..) = date()?;
            let (short, long) = if y > 0 {
                ("AD", "Anno Domini")
            } else {
                ("BC", "Before Christ")
            };
            out.push_str(match n {
                4 => long,
                5 => &short[..1],
                _ => short,
            });
        }
        'y' | 'u' | 'Y' => {
            let (y, ..) = date()?;
            let y = if c == 'y' && y <= 0 { 1 - y } else { y };
            if n == 2 {
                pad(out, y.rem_euclid(100), 2)?;
            } else if n >= 4 && y > 9999 {
                out.push('+');
                pad(out, y, n)?;
            } else {
                pad(out, y, n)?;
            }
        }
        'M' | 'L' => {
            let (_, m, ..) = date()?;
            if n <= 2 {
                pad(out, m as i64, n)?;
            } else {
                out.push_str(&text_style(MONTHS[m as usize - 1], n));
            }
        }
        'Q' | 'q' => {
            let (_, m, ..) = date()?;
            let q = (m - 1) / 3 + 1;
            match n {
                1 | 2 => pad(out, q as i64, n)?,
                3 => out.push_str(&format!("Q{q}")),
                4 => out.push_str(&format!(
                    "{} quarter",
                    ["1st", "2nd", "3rd", "4th"][q as usize - 1]
                )),
                _ => out.push_str(&q.to_string()),
            }
        }
        'd' => pad(out, date()?.2 as i64, n)?,
        'D' => {
            let (y, .., days) = date()?;
            pad(out, days - days_from_civil(y, 1, 1) + 1, n)?;
        }
        'E' | 'e' | 'c' => {
            let days = date()?.3;
            let iso = (days + 3).rem_euclid(7); // 0 = Monday
            if (c == 'e' || c == 'c') && n <= 2 {
                // Localized day number; the US week starts on Sunday.
                pad(out, (iso + 1) % 7 + 1, n)?;
            } else {
                out.push_str(&text_style(DAYS[iso as usize], n));
            }
        }
        'a' => {
            let h = nanos()? / 3_600_000_000_000;
            out.push_str(if h < 12 { "AM" } else { "PM" });
        }
        'H' => pad(out, nanos()? / 3_600_000_000_000, n)?,
        'k' => {
            let h = nanos()? / 3_600_000_000_000;
            pad(out, if h == 0 { 24 } else { h }, n)?;
        }
        'h' => {
            let h = nanos()? / 3_600_000_000_000 % 12;
            pad(out, if h == 0 { 12 } else { h }, n)?;
        }
        'K' => pad(out, nanos()? / 3_600_000_000_000 % 12, n)?,
        'm' => pad(out, nanos()? / 60_000_000_000 % 60, n)?,
        's' => pad(out, nanos()? / 1_000_000_000 % 60, n)?,
        'S' => {
            let frac = format!("{:09}", nanos()? % 1_000_000_000);
            out.push_str(&frac[..n.min(9)]);
            for _ in 9..n {
                out.push('0');
            }
        }
        'n' => pad(out, nanos()? % 1_000_000_000, n)?,
        'N' => pad(out, nanos()?, n)?,
        'A' => pad(out, nanos()? / 1_000_000, n)?,
        'V' => out.push_str(f.zone?.0.id()),
        'z' => {
            let (zone, _, millis) = f.zone?;
            out.push_str(&zone.short_name(millis)?);
        }
        'O' => format_localized_offset(out, f.zone?.1, n == 4),
        'X' | 'x' => {
            let secs = f.zone?.1;
            let zero = if c == 'X' { "Z" } else { "" };
            match n {
                1 => format_offset(out, secs, false, Seconds::HourOnlyIfRound, zero),
                2 => format_offset(out, secs, false, Seconds::Never, zero),
                3 => format_offset(out, secs, true, Seconds::Never, zero),
                4 => format_offset(out, secs, false, Seconds::IfNonZero, zero),
                _ => format_offset(out, secs, true, Seconds::IfNonZero, zero),
            }
        }
        'Z' => {
            let secs = f.zone?.1;
            match n {
                4 => format_localized_offset(out, secs, true),
                5 => format_offset(out, secs, true, Seconds::IfNonZero, "Z"),
                _ => format_offset(out, secs, false, Seconds::Never, ""),
            }
        }
        // Week-based fields depend on a locale's week definition: not supported.
        _ => return None,
    }
    Some(())
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct Parsed {
    year: Option<i64>,
    year_of_era: Option<i64>,
    reduced_year: Option<i64>,
    bc: Option<bool>,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    dow: Option<i64>, // 0 = Monday
    hour: Option<i64>,
    clock_hour: Option<i64>,
    hour_of_ampm: Option<i64>,
    pm: Option<bool>,
    minute: Option<i64>,
    second: Option<i64>,
    nano: Option<i64>,
    milli_of_day: Option<i64>,
    nano_of_day: Option<i64>,
    offset: Option<i32>,
    zone: Option<Zone>,
}

impl Parsed {
    fn has_date(&self) -> bool {
        self.year.is_some()
            || self.year_of_era.is_some()
            || self.reduced_year.is_some()
            || self.month.is_some()
            || self.day.is_some()
            || self.day_of_year.is_some()
            || self.dow.is_some()
    }

    fn has_time(&self) -> bool {
        self.hour.is_some()
            || self.clock_hour.is_some()
            || self.hour_of_ampm.is_some()
            || self.minute.is_some()
            || self.second.is_some()
            || self.nano.is_some()
            || self.milli_of_day.is_some()
            || self.nano_of_day.is_some()
    }

    /// Sets a field, failing when the text gave it two different values.
    fn set<T: PartialEq>(slot: &mut Option<T>, v: T) -> Option<()> {
        match slot {
            Some(old) if *old != v => None,
            _ => {
                *slot = Some(v);
                Some(())
            }
        }
    }

    /// The local date (day number), with the defaults ksqlDB's parsers use: year 1970,
    /// January, the 1st. An invalid day is clipped to the month's length (SMART mode).
    fn resolve_date(&self) -> Option<i64> {
        let year = if let Some(y) = self.year {
            y
        } else if let Some(yoe) = self.year_of_era {
            if self.bc == Some(true) { 1 - yoe } else { yoe }
        } else if let Some(r) = self.reduced_year {
            2000 + r
        } else {
            1970
        };
        let days = if let (Some(doy), None, None) = (self.day_of_year, self.month, self.day) {
            let len = if is_leap(year) { 366 } else { 365 };
            if doy == 0 || doy > len {
                return None;
            }
            days_from_civil(year, 1, 1) + i64::from(doy) - 1
        } else {
            let month = self.month.unwrap_or(1);
            let day = self.day.unwrap_or(1);
            if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
                return None;
            }
            let days = days_from_civil(year, month, day.min(days_in_month(year, month)));
            if let Some(doy) = self.day_of_year
                && days - days_from_civil(year, 1, 1) + 1 != i64::from(doy)
            {
                return None;
            }
            days
        };
        if let Some(dow) = self.dow
            && (days + 3).rem_euclid(7) != dow
        {
            return None;
        }
        Some(days)
    }

    /// Nanoseconds of the day; midnight by default.
    fn resolve_time(&self) -> Option<i64> {
        if let Some(n) = self.nano_of_day {
            return (0..MILLIS_PER_DAY * 1_000_000).contains(&n).then_some(n);
        }
        if let Some(ms) = self.milli_of_day {
            return (0..MILLIS_PER_DAY).contains(&ms).then_some(ms * 1_000_000);
        }
        let hour = if let Some(h) = self.hour {
            h
        } else if let Some(k) = self.clock_hour {
            if !(1..=24).contains(&k) {
                return None;
            }
            k % 24
        } else if let Some(h) = self.hour_of_ampm {
            h + if self.pm == Some(true) { 12 } else { 0 }
        } else {
            0
        };
        let (m, s, n) = (
            self.minute.unwrap_or(0),
            self.second.unwrap_or(0),
            self.nano.unwrap_or(0),
        );
        if !(0..24).contains(&hour) || !(0..60).contains(&m) || !(0..60).contains(&s) {
            return None;
        }
        Some(((hour * 60 + m) * 60 + s) * 1_000_000_000 + n)
    }
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn eat_ci(&mut self, s: &str) -> bool {
        let rest = self.rest();
        if rest.len() >= s.len()
            && rest.is_char_boundary(s.len())
            && rest[..s.len()].eq_ignore_ascii_case(s)
        {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn digits_available(&self) -> usize {
        self.rest().bytes().take_while(u8::is_ascii_digit).count()
    }

    /// Reads between min and max digits (as many as there are, up to max).
    fn number(&mut self, min: usize, max: usize) -> Option<i64> {
        let n = self.digits_available().min(max);
        if n < min || n == 0 || n > 18 {
            return None;
        }
        let v = self.rest()[..n].parse().ok()?;
        self.pos += n;
        Some(v)
    }

    /// Matches the longest of several names, case-insensitively; gives its index.
    fn choice(&mut self, names: &[String]) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (i, name) in names.iter().enumerate() {
            let rest = self.rest();
            if rest.len() >= name.len()
                && rest.is_char_boundary(name.len())
                && rest[..name.len()].eq_ignore_ascii_case(name)
                && best.is_none_or(|(_, l)| name.len() > l)
            {
                best = Some((i, name.len()));
            }
        }
        let (i, len) = best?;
        self.pos += len;
        Some(i)
    }
}

/// The fixed width a numeric field always takes, if any (for adjacent value parsing).
fn fixed_width(item: &Item) -> Option<usize> {
    match item {
        Item::Field(c, n) => match c {
            'M' | 'L' | 'd' | 'H' | 'h' | 'K' | 'k' | 'm' | 's' | 'Q' | 'q' | 'e' | 'c' | 'w'
                if *n == 2 =>
            {
                Some(2)
            }
            'y' | 'u' | 'Y' if *n == 2 => Some(2),
            'D' if *n == 3 => Some(3),
            'S' => Some(*n),
            _ => None,
        },
        _ => None,
    }
}

/// How many digits the fixed-width numeric fields right after item `i` need, so that a
/// variable-width number before them leaves those digits alone (Java's adjacent parsing).
fn reserved_after(items: &[Item], i: usize) -> usize {
    items[i + 1..].iter().map_while(fixed_width).sum()
}

fn parse_items(items: &[Item], cur: &mut Cursor, p: &mut Parsed) -> Option<()> {
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Literal(s) => {
                if !cur.eat_ci(s) {
                    return None;
                }
            }
            Item::Optional(inner) => {
                // Parse into a copy so a section that does not match leaves no trace.
                let save = cur.pos;
                let mut attempt = p.clone();
                if parse_items(inner, cur, &mut attempt).is_some() {
                    *p = attempt;
                } else {
                    cur.pos = save;
                }
            }
            Item::Field(c, n) => {
                let reserved = reserved_after(items, i);
                parse_field(*c, *n, reserved, cur, p)?;
            }
        }
    }
    Some(())
}

fn parse_field(c: char, n: usize, reserved: usize, cur: &mut Cursor, p: &mut Parsed) -> Option<()> {
    // Variable-width numbers stop short of the digits later fixed-width fields need.
    let var = |cur: &Cursor, min: usize| -> usize {
        let avail = cur.digits_available();
        avail.saturating_sub(reserved).max(min).min(avail)
    };
    let num = |cur: &mut Cursor, n: usize, fixed_two: bool| -> Option<i64> {
        if fixed_two && n == 2 {
            cur.number(2, 2)
        } else {
            let max = var(cur, 1);
            cur.number(1, max)
        }
    };
    match c {
        'G' => {
            let names: Vec<String> = match n {
                4 => vec!["Anno Domini".into(), "Before Christ".into()],
                5 => vec!["A".into(), "B".into()],
                _ => vec!["AD".into(), "BC".into()],
            };
            Parsed::set(&mut p.bc, cur.choice(&names)? == 1)?;
        }
        'y' | 'u' | 'Y' => {
            if n == 2 {
                let v = cur.number(2, 2)?;
                Parsed::set(&mut p.reduced_year, v)?;
            } else {
                let neg = c == 'u' && cur.eat_ci("-");
                if !neg {
                    cur.eat_ci("+");
                }
                let min = if n >= 3 { n } else { 1 };
                let max = var(cur, min);
                let v = cur.number(min, max)?;
                let v = if neg { -v } else { v };
                if c == 'y' {
                    Parsed::set(&mut p.year_of_era, v)?;
                } else {
                    Parsed::set(&mut p.year, v)?;
                }
            }
        }
        'M' | 'L' => {
            let m = if n <= 2 {
                num(cur, n, true)? as u32
            } else {
                let names: Vec<String> = MONTHS.iter().map(|m| text_style(m, n)).collect();
                cur.choice(&names)? as u32 + 1
            };
            Parsed::set(&mut p.month, m)?;
        }
        'Q' | 'q' => {
            // Quarters only cross-check nothing here; read and ignore.
            match n {
                1 | 2 => {
                    num(cur, n, true)?;
                }
                3 => {
                    let names: Vec<String> = (1..=4).map(|q| format!("Q{q}")).collect();
                    cur.choice(&names)?;
                }
                _ => return None,
            }
        }
        'd' => {
            let v = num(cur, n, true)? as u32;
            Parsed::set(&mut p.day, v)?;
        }
        'D' => {
            let v = if n == 3 {
                cur.number(3, 3)?
            } else {
                let max = var(cur, n).min(3);
                cur.number(n, max)?
            };
            Parsed::set(&mut p.day_of_year, v as u32)?;
        }
        'E' | 'e' | 'c' => {
            let dow = if (c == 'e' || c == 'c') && n <= 2 {
                let v = num(cur, n, true)?;
                if !(1..=7).contains(&v) {
                    return None;
                }
                (v + 5) % 7
            } else {
                let names: Vec<String> = DAYS.iter().map(|d| text_style(d, n)).collect();
                cur.choice(&names)? as i64
            };
            Parsed::set(&mut p.dow, dow)?;
        }
        'a' => {
            let pm = cur.choice(&["AM".into(), "PM".into()])? == 1;
            Parsed::set(&mut p.pm, pm)?;
        }
        'H' => {
            let v = num(cur, n, true)?;
            Parsed::set(&mut p.hour, v)?;
        }
        'k' => {
            let v = num(cur, n, true)?;
            Parsed::set(&mut p.clock_hour, v)?;
        }
        'h' => {
            let v = num(cur, n, true)?;
            if !(1..=12).contains(&v) {
                return None;
            }
            Parsed::set(&mut p.hour_of_ampm, v % 12)?;
        }
        'K' => {
            let v = num(cur, n, true)?;
            if !(0..12).contains(&v) {
                return None;
            }
            Parsed::set(&mut p.hour_of_ampm, v)?;
        }
        'm' => {
            let v = num(cur, n, true)?;
            Parsed::set(&mut p.minute, v)?;
        }
        's' => {
            let v = num(cur, n, true)?;
            Parsed::set(&mut p.second, v)?;
        }
        'S' => {
            let start = cur.pos;
            cur.number(n, n)?;
            let digits = &cur.text[start..cur.pos];
            let mut nanos: i64 = 0;
            for (i, d) in digits.bytes().take(9).enumerate() {
                nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
            }
            Parsed::set(&mut p.nano, nanos)?;
        }
        'n' => {
            let max = var(cur, n);
            let v = cur.number(n, max)?;
            Parsed::set(&mut p.nano, v)?;
        }
        'N' => {
            let max = var(cur, n);
            let v = cur.number(n, max)?;
            Parsed::set(&mut p.nano_of_day, v)?;
        }
        'A' => {
            let max = var(cur, n);
            let v = cur.number(n, max)?;
            Parsed::set(&mut p.milli_of_day, v)?;
        }
        'X' | 'x' | 'Z' => {
            let zero_ok = c == 'X' || (c == 'Z' && n == 5);
            if c == 'Z' && n == 4 {
                let secs = parse_localized_offset(cur)?;
                Parsed::set(&mut p.offset, secs)?;
            } else if zero_ok && cur.eat_ci("Z") {
                Parsed::set(&mut p.offset, 0)?;
            } else {
                let secs = parse_offset_text(cur)?;
                Parsed::set(&mut p.offset, secs)?;
            }
        }
        'O' => {
            let secs = parse_localized_offset(cur)?;
            Parsed::set(&mut p.offset, secs)?;
        }
        'V' | 'z' => {
            let zone = parse_zone_text(cur, c == 'z')?;
            p.zone = Some(zone);
        }
        _ => return None,
    }
    Some(())
}

/// `+HH`, `+HHMM`, `+HH:MM`, `+HHMMss`, `+HH:MM:ss`: whichever the text holds.
fn parse_offset_text(cur: &mut Cursor) -> Option<i32> {
    let sign = if cur.eat_ci("+") {
        1
    } else if cur.eat_ci("-") {
        -1
    } else {
        return None;
    };
    let h = cur.number(2, 2)? as i32;
    let mut m = 0;
    let mut s = 0;
    let save = cur.pos;
    let colon = cur.eat_ci(":");
    if let Some(v) = cur.number(2, 2) {
        m = v as i32;
        let save2 = cur.pos;
        if colon && !cur.eat_ci(":") {
            // No seconds.
        } else if let Some(v) = cur.number(2, 2) {
            s = v as i32;
        } else {
            cur.pos = save2;
        }
    } else {
        cur.pos = save;
    }
    if h > 18 || m > 59 || s > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + s))
}

/// `GMT`, `GMT+8`, `GMT+08:00`.
fn parse_localized_offset(cur: &mut Cursor) -> Option<i32> {
    if !cur.eat_ci("GMT") {
        return None;
    }
    let sign = if cur.eat_ci("+") {
        1
    } else if cur.eat_ci("-") {
        -1
    } else {
        return Some(0);
    };
    let h = cur.number(1, 2)? as i32;
    let mut m = 0;
    if cur.eat_ci(":") {
        m = cur.number(2, 2)? as i32;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// A zone id or (for `z`) a zone abbreviation.
fn parse_zone_text(cur: &mut Cursor, names: bool) -> Option<Zone> {
    let rest = cur.rest();
    let len = rest
        .find(|ch: char| !(ch.is_ascii_alphanumeric() || matches!(ch, '/' | '_' | '+' | '-' | ':')))
        .unwrap_or(rest.len());
    let word = &rest[..len];
    // Longest prefix that names a zone.
    for end in (1..=word.len()).rev() {
        let cand = &word[..end];
        if names {
            let upper = cand.to_ascii_uppercase();
            if let Some((_, region)) = ABBREVIATIONS.iter().find(|(a, _)| *a == upper) {
                let zone = Zone::parse(region)?;
                cur.pos += end;
                return Some(zone);
            }
            if upper == "UTC" || upper == "GMT" || upper == "UT" || upper == "Z" {
                cur.pos += end;
                return Zone::parse(&upper);
            }
        }
        if let Some(zone) = Zone::parse(cand) {
            cur.pos += end;
            return Some(zone);
        }
    }
    None
}

impl Pattern {
    /// Parses the whole text, or (with `allow_trailing`) a prefix of it.
    fn parse(&self, text: &str, allow_trailing: bool) -> Option<Parsed> {
        let mut cur = Cursor { text, pos: 0 };
        let mut p = Parsed::default();
        parse_items(&self.items, &mut cur, &mut p)?;
        (allow_trailing || cur.pos == text.len()).then_some(p)
    }
}

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

fn date_fields(days: i64) -> (i64, u32, u32, i64) {
    let (y, m, d) = civil_from_days(days);
    (y, m, d, days)
}

/// Formats an instant in a zone. None for a bad pattern or an unformattable value.
pub fn format_timestamp(millis: i64, pattern: &str, zone: &Zone) -> Option<String> {
    let pattern = Pattern::compile(pattern).ok()?;
    let offset = zone.offset_at(millis)?;
    let local = millis.checked_add(i64::from(offset) * 1000)?;
    pattern.format(&Fields {
        date: Some(date_fields(local.div_euclid(MILLIS_PER_DAY))),
        time: Some(local.rem_euclid(MILLIS_PER_DAY) * 1_000_000),
        zone: Some((zone, offset, millis)),
    })
}

/// Parses text to an instant. A zone in the text wins over `zone`, which is the zone of
/// text that has none.
pub fn parse_timestamp(text: &str, pattern: &str, zone: &Zone) -> Option<i64> {
    let p = Pattern::compile(pattern).ok()?.parse(text, false)?;
    let days = p.resolve_date()?;
    let nanos = p.resolve_time()?;
    let local = days
        .checked_mul(MILLIS_PER_DAY)?
        .checked_add(nanos / 1_000_000)?;
    if let Some(off) = p.offset {
        return local.checked_sub(i64::from(off) * 1000);
    }
    match &p.zone {
        Some(z) => z.local_to_instant(local),
        None => zone.local_to_instant(local),
    }
}

/// Formats a date (days since the epoch); time-of-day or zone letters give None.
pub fn format_date(days: i64, pattern: &str) -> Option<String> {
    Pattern::compile(pattern).ok()?.format(&Fields {
        date: Some(date_fields(days)),
        time: None,
        zone: None,
    })
}

/// Parses a date; a pattern with time-of-day fields gives None, as ksqlDB refuses it.
/// Text after the pattern's end is ignored, as ksqlDB's PARSE_DATE does
/// (`'2003-12-24-01-01'` reads as 2003-12-24 with `yyyy-MM-dd`).
pub fn parse_date(text: &str, pattern: &str) -> Option<i64> {
    let p = Pattern::compile(pattern).ok()?.parse(text, true)?;
    if p.has_time() {
        return None;
    }
    p.resolve_date()
}

/// Formats a time (milliseconds since midnight); date or zone letters give None.
pub fn format_time(millis: i64, pattern: &str) -> Option<String> {
    if !(0..MILLIS_PER_DAY).contains(&millis) {
        return None;
    }
    Pattern::compile(pattern).ok()?.format(&Fields {
        date: None,
        time: Some(millis * 1_000_000),
        zone: None,
    })
}

/// Parses a time of day; a pattern with date fields gives None.
pub fn parse_time(text: &str, pattern: &str) -> Option<i64> {
    let p = Pattern::compile(pattern).ok()?.parse(text, false)?;
    if p.has_date() {
        return None;
    }
    Some(p.resolve_time()? / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids() {
        let off = |id: &str| Zone::parse(id).and_then(|z| z.offset_at(0));
        assert_eq!(off("UTC"), Some(0));
        assert_eq!(off("Z"), Some(0));
        assert_eq!(off("+05:30"), Some(19_800));
        assert_eq!(off("-0800"), Some(-28_800));
        assert_eq!(off("+5"), Some(18_000));
        assert_eq!(off("GMT+1"), Some(3_600));
        assert_eq!(off("UTC-01:30"), Some(-5_400));
        assert_eq!(off("Asia/Kolkata"), Some(19_800));
        assert_eq!(off("+19:00"), None);
        assert_eq!(off("+5:30"), None);
        assert_eq!(off("Mars/Olympus"), None);
        assert_eq!(off(""), None);
        assert_eq!(
            Zone::parse("GMT+1").map(|z| z.id().to_string()),
            Some("GMT+01:00".into())
        );
    }

    #[test]
    fn dst_gaps_and_overlaps() {
        let la = Zone::parse("America/Los_Angeles").unwrap();
        // 2021-03-14 02:30 does not exist in Los Angeles; java.time moves it to 03:30 PDT.
        let gap = parse_timestamp("2021-03-14 02:30", "yyyy-MM-dd HH:mm", &la);
        assert_eq!(
            gap,
            parse_timestamp("2021-03-14 10:30", "yyyy-MM-dd HH:mm", &Zone::utc())
        );
        // 2021-11-07 01:30 happens twice; the earlier offset (PDT) wins.
        let overlap = parse_timestamp("2021-11-07 01:30", "yyyy-MM-dd HH:mm", &la);
        assert_eq!(
            overlap,
            parse_timestamp("2021-11-07 08:30", "yyyy-MM-dd HH:mm", &Zone::utc())
        );
    }

    #[test]
    fn bad_patterns() {
        for p in ["yyyy'", "ddd", "aa", "t", "yyyy]", "{", "V", "OO", "#"] {
            assert!(Pattern::compile(p).is_err(), "{p}");
        }
        assert!(Pattern::compile("'It''s' yyyy [HH]").is_ok());
        assert_eq!(format_date(0, "'It''s' ''yy''"), Some("It's '70'".into()));
    }

    #[test]
    fn adjacent_numbers() {
        assert_eq!(parse_date("19700102", "yyyyMMdd"), Some(1));
        assert_eq!(parse_time("235959999", "HHmmssSSS"), Some(86_399_999));
        // yy counts from 2000, as in java.time.
        assert_eq!(parse_date("0012", "yyD"), Some(10_968));
        assert_eq!(parse_date("2000-060", "yyyy-DDD"), Some(11_016));
        assert_eq!(parse_date("2000-06-01 Monday", "yyyy-MM-dd EEEE"), None);
        assert_eq!(parse_date("2000-06-01 Thu", "yyyy-MM-dd E"), Some(11_109));
    }

    #[test]
    fn offsets_print_like_java() {
        let z = Zone::parse("+05:30").unwrap();
        let f = |p: &str| format_timestamp(0, p, &z).unwrap();
        assert_eq!(f("X"), "+0530");
        assert_eq!(f("XX"), "+0530");
        assert_eq!(f("XXX"), "+05:30");
        assert_eq!(f("xxxx"), "+0530");
        assert_eq!(f("Z"), "+0530");
        assert_eq!(f("ZZZZ"), "GMT+05:30");
        assert_eq!(f("O"), "GMT+5:30");
        assert_eq!(f("z"), "+05:30");
        let u = Zone::utc();
        assert_eq!(
            format_timestamp(0, "X x Z ZZZZZ O z", &u).unwrap(),
            "Z +00 +0000 Z GMT UTC"
        );
        assert_eq!(
            parse_timestamp("1970-01-01 05:30 GMT+05:30", "yyyy-MM-dd HH:mm O", &u),
            Some(0)
        );
        assert_eq!(
            parse_timestamp("1970-01-01 05:30 +05:30", "yyyy-MM-dd HH:mm ZZZZZ", &u),
            Some(0)
        );
    }
}
