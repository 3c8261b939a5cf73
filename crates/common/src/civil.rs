//! The proleptic Gregorian calendar, as `java.time.LocalDate` counts it: day numbers since
//! 1970-01-01 to and from (year, month, day). One copy for every layer (expression
//! functions, casts, literals, the shell's rendering), so a date reads the same everywhere.
//!
//! Years are astronomical: 0 is 1 BC, -1 is 2 BC, as `LocalDate` has them.
//! Howard Hinnant's algorithms ("chrono-Compatible Low-Level Date Algorithms"): counted in
//! 400-year eras of 146,097 days, each the same, so no table and no loop.

pub const MILLIS_PER_DAY: i64 = 86_400_000;

/// Days in a 400-year era.
const DAYS_PER_ERA: i64 = 146_097;
/// Days from 0000-03-01 (the start of era 0, counted from March so leap days fall last)
/// to 1970-01-01.
const EPOCH_SHIFT: i64 = 719_468;

/// Days since 1970-01-01 of a date; month 1..=12, day 1..=31 (a day past the month's end
/// runs on into the next month, as the algorithm counts).
///
/// Exact whenever the answer fits an i64; saturates beyond, so no input can overflow it.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 {
        year.saturating_sub(1)
    } else {
        year
    };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    // In i128: near the ends of i64 the era's first day can lie outside it while the date
    // itself does not. (A year that saturated above is far outside anyway.)
    let days = i128::from(era) * i128::from(DAYS_PER_ERA) + i128::from(doe - EPOCH_SHIFT);
    days.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The (year, month, day) of a day number since 1970-01-01; exact for every i64.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // days + EPOCH_SHIFT, split into eras without forming the sum (it could overflow).
    let shifted = days.rem_euclid(DAYS_PER_ERA) + EPOCH_SHIFT;
    let era = days.div_euclid(DAYS_PER_ERA) + shifted / DAYS_PER_ERA;
    let doe = shifted % DAYS_PER_ERA; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (11_016, (2000, 2, 29)),
            (11_017, (2000, 3, 1)),
            (-25_509, (1900, 2, 28)),
            (-25_508, (1900, 3, 1)),
            (19_416, (2023, 2, 28)),
            (19_782, (2024, 2, 29)),
            (2_932_896, (9999, 12, 31)),
            (2_932_897, (10000, 1, 1)),
            // 0001-01-01 and the day before it, 0000-12-31 (1 BC, a leap year).
            (-719_162, (1, 1, 1)),
            (-719_163, (0, 12, 31)),
            (-719_528, (0, 1, 1)),
            (-719_529, (-1, 12, 31)),
            // LocalDate.MIN, -999999999-01-01.
            (-365_243_219_162, (-999_999_999, 1, 1)),
            // LocalDate.MAX, +999999999-12-31.
            (365_241_780_471, (999_999_999, 12, 31)),
        ] {
            assert_eq!(civil_from_days(days), date, "{days}");
            assert_eq!(days_from_civil(date.0, date.1, date.2), days, "{date:?}");
        }
    }

    #[test]
    fn round_trips_over_a_wide_range() {
        // Every day of 800 years around the epoch (two eras, both signs)...
        for days in -146_097..146_097 {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && (1..=days_in_month(y, m)).contains(&d));
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // ...and a spread of days out to millions of years either side.
        let mut days = -1_000_000_000_000i64;
        while days < 1_000_000_000_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days}");
            days += 7_777_777;
        }
    }

    #[test]
    fn consecutive_days_are_consecutive_dates() {
        // Walk day by day across the Julian-rule exceptions (1900, 2000, 2100) and through
        // year 0 into negative years, against a naive calendar.
        let mut date = (-3, 1, 1);
        let first = days_from_civil(-3, 1, 1);
        for days in first..days_from_civil(2101, 3, 1) {
            assert_eq!(civil_from_days(days), date, "{days}");
            let (y, m, d) = date;
            date = if d < days_in_month(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn leap_years() {
        assert!(is_leap(2000) && is_leap(2024) && is_leap(0) && is_leap(-4) && is_leap(-400));
        assert!(!is_leap(1900) && !is_leap(2023) && !is_leap(-1) && !is_leap(-100));
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(-4, 2), 29);
        assert_eq!(days_in_month(2023, 4), 30);
    }

    #[test]
    fn extremes_do_not_overflow() {
        for days in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d), "{days}");
            assert_eq!(days_from_civil(y, m, d), days, "{days}");
        }
        assert_eq!(days_from_civil(i64::MAX, 12, 31), i64::MAX);
        assert_eq!(days_from_civil(i64::MIN, 1, 1), i64::MIN);
    }
}
