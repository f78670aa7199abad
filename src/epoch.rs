//! Time as integer nanoseconds since 1970-01-01T00:00:00 UTC, and the day
//! arithmetic the pipeline is built on (one UTC day is the unit of work).
//!
//! Integer nanoseconds keep sample positions exact over decades of data;
//! floating-point seconds since the epoch lose sub-microsecond precision.

use time::{Date, Month, OffsetDateTime};

/// Nanoseconds since the Unix epoch (UTC).
pub type Nanos = i64;

pub const NS_PER_S: i64 = 1_000_000_000;
pub const NS_PER_DAY: i64 = 86_400 * NS_PER_S;

/// A UTC day as the number of days since 1970-01-01.
pub type Day = i64;

pub fn day_of(t: Nanos) -> Day {
    t.div_euclid(NS_PER_DAY)
}

pub fn day_start(day: Day) -> Nanos {
    day * NS_PER_DAY
}

/// Offset of `t` from `start` in samples at `rate`, rounded: the inverse
/// of [`sample_time`].
pub fn samples_between(start: Nanos, t: Nanos, rate: f64) -> i64 {
    ((t - start) as f64 * rate / 1e9).round() as i64
}

/// Time of sample `i` of the grid `start + i / rate`.
pub fn sample_time(start: Nanos, i: i64, rate: f64) -> Nanos {
    start + (i as f64 * 1e9 / rate).round() as i64
}

fn date_of_day(day: Day) -> Date {
    Date::from_julian_day((day + 2_440_588) as i32).expect("day within the calendar")
}

fn day_of_date(date: Date) -> Day {
    date.to_julian_day() as i64 - 2_440_588
}

/// `2012-09-02`
pub fn format_day(day: Day) -> String {
    let d = date_of_day(day);
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

/// Day of the year, 1-based (SDS file names).
pub fn day_of_year(day: Day) -> u16 {
    date_of_day(day).ordinal()
}

/// `2012-09-02T03:20:05.860000Z` (microseconds, as ObsPy prints).
pub fn format_time(t: Nanos) -> String {
    let day = day_of(t);
    let rem = t - day_start(day);
    let secs = rem / NS_PER_S;
    let micros = (rem % NS_PER_S) / 1_000;
    format!(
        "{}T{:02}:{:02}:{:02}.{:06}Z",
        format_day(day),
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        micros
    )
}

pub fn from_offset_datetime(t: OffsetDateTime) -> Nanos {
    t.unix_timestamp_nanos() as Nanos
}

pub fn to_offset_datetime(t: Nanos) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(t as i128).expect("time within range")
}

fn parse_int(s: &str, what: &str, full: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} in '{full}'"));
    }
    s.parse::<i64>()
        .map_err(|_| format!("bad {what} in '{full}'"))
}

/// A calendar date `YYYY-MM-DD` or an ordinal date `YYYY-DDD`.
pub fn parse_day(s: &str) -> Result<Day, String> {
    let parts: Vec<&str> = s.trim().split('-').collect();
    let date = match parts.as_slice() {
        [y, m, d] => {
            let y = parse_int(y, "year", s)? as i32;
            let m = parse_int(m, "month", s)? as u8;
            let d = parse_int(d, "day", s)? as u8;
            let month = Month::try_from(m).map_err(|_| format!("bad month in '{s}'"))?;
            Date::from_calendar_date(y, month, d).map_err(|e| format!("bad date '{s}': {e}"))?
        }
        [y, doy] if doy.len() == 3 => {
            let y = parse_int(y, "year", s)? as i32;
            let doy = parse_int(doy, "day of year", s)? as u16;
            Date::from_ordinal_date(y, doy).map_err(|e| format!("bad date '{s}': {e}"))?
        }
        _ => return Err(format!("'{s}' is not a date (YYYY-MM-DD or YYYY-DDD)")),
    };
    Ok(day_of_date(date))
}

/// ISO 8601 UTC time: `2012-09-02T03:22:30.08Z`, with `T` or a space, an
/// optional `Z` or `+00:00`, and up to nine fractional digits.
pub fn parse_time(s: &str) -> Result<Nanos, String> {
    let t = s.trim();
    let (date, clock) = t
        .split_once(['T', ' '])
        .ok_or_else(|| format!("'{s}' is not an ISO 8601 time (YYYY-MM-DDThh:mm:ss[.f]Z)"))?;
    let clock = clock
        .strip_suffix('Z')
        .or_else(|| clock.strip_suffix("+00:00"))
        .unwrap_or(clock);
    let day = parse_day(date)?;
    let (hms, frac) = match clock.split_once('.') {
        Some((a, b)) => (a, b),
        None => (clock, ""),
    };
    let f: Vec<&str> = hms.split(':').collect();
    let [h, m, sec] = f.as_slice() else {
        return Err(format!("'{s}' has no hh:mm:ss"));
    };
    let (h, m, sec) = (
        parse_int(h, "hour", s)?,
        parse_int(m, "minute", s)?,
        parse_int(sec, "second", s)?,
    );
    if h > 23 || m > 59 || sec > 60 {
        return Err(format!("'{s}' is not a valid time of day"));
    }
    if frac.len() > 9 || (!frac.is_empty() && !frac.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("bad fraction of a second in '{s}'"));
    }
    let mut ns = 0i64;
    for (i, b) in frac.bytes().enumerate() {
        ns += (b - b'0') as i64 * 10i64.pow(8 - i as u32);
    }
    Ok(day_start(day) + (h * 3600 + m * 60 + sec) * NS_PER_S + ns)
}

/// The days named by a `--days` argument: a year (`2012`), a year range
/// (`2010-2020`, both years whole), a date or day of year (`2012-09-02`,
/// `2012-246`), or a range of those joined by `..` (inclusive).
pub fn parse_days(spec: &str) -> Result<Vec<Day>, String> {
    let spec = spec.trim();
    let is_year = |s: &str| s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit());
    let year_bounds = |y: &str| -> Result<(Day, Day), String> {
        let y = parse_int(y, "year", spec)?;
        Ok((
            parse_day(&format!("{y:04}-01-01"))?,
            parse_day(&format!("{y:04}-12-31"))?,
        ))
    };
    let (first, last) = if let Some((a, b)) = spec.split_once("..") {
        let a = if is_year(a) {
            year_bounds(a)?.0
        } else {
            parse_day(a)?
        };
        let b = if is_year(b) {
            year_bounds(b)?.1
        } else {
            parse_day(b)?
        };
        (a, b)
    } else if is_year(spec) {
        year_bounds(spec)?
    } else if let Some((a, b)) = spec
        .split_once('-')
        .filter(|(a, b)| is_year(a) && is_year(b))
    {
        (year_bounds(a)?.0, year_bounds(b)?.1)
    } else {
        let d = parse_day(spec)?;
        (d, d)
    };
    if last < first {
        return Err(format!("day range '{spec}' ends before it starts"));
    }
    Ok((first..=last).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = parse_time("2012-09-02T03:22:30.080000Z").unwrap();
        assert_eq!(format_time(t), "2012-09-02T03:22:30.080000Z");
        assert_eq!(t % NS_PER_S, 80_000_000);
        assert_eq!(parse_time("1970-01-01 00:00:01").unwrap(), NS_PER_S);
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999999Z");
        assert!(parse_time("2012-09-02").is_err());
        assert!(parse_time("2012-09-02T25:00:00").is_err());
    }

    #[test]
    fn day_forms() {
        let d = parse_day("2012-09-02").unwrap();
        assert_eq!(parse_day("2012-246").unwrap(), d);
        assert_eq!(format_day(d), "2012-09-02");
        assert_eq!(parse_days("2012-246").unwrap(), vec![d]);
        assert_eq!(parse_days("2012-09-01..2012-09-03").unwrap().len(), 3);
        assert_eq!(parse_days("2010-2011").unwrap().len(), 365 * 2);
        assert_eq!(parse_days("2012").unwrap().len(), 366);
        assert!(parse_days("2012-09-03..2012-09-01").is_err());
        assert!(parse_days("yesterday").is_err());
    }
}
