//! Event time and durations.
//!
//! Event time is milliseconds since the Unix epoch (UTC) in an `i64`. Durations in
//! configuration are written as an integer and a unit: `250ms`, `30s`, `5m`, `1h`, `1d`, `2w`;
//! several parts may be joined (`1h30m`).

use thiserror::Error;

/// Milliseconds since the Unix epoch, or a span of milliseconds.
pub type Millis = i64;

/// Why a duration or timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeError {
    /// The text is not `<integer><unit>` with a unit of ms, s, m, h, d or w.
    #[error("`{0}` is not a duration; write an integer and a unit (ms, s, m, h, d, w), e.g. `5m` or `1h30m`")]
    BadDuration(String),
    /// The text is neither RFC 3339 nor an integer number of epoch milliseconds.
    #[error(
        "`{0}` is not a timestamp; use RFC 3339 (`2026-01-02T03:04:05.678Z`) or epoch milliseconds"
    )]
    BadTimestamp(String),
}

/// Parses a duration such as `5m`, `1h`, `1d`, `250ms` or `1h30m` into milliseconds.
///
/// ```
/// assert_eq!(nowcast_core::parse_duration("5m"), Ok(300_000));
/// assert_eq!(nowcast_core::parse_duration("1h30m"), Ok(5_400_000));
/// assert!(nowcast_core::parse_duration("5 minutes").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Millis, TimeError> {
    let bad = || TimeError::BadDuration(text.to_string());
    let bytes = text.trim().as_bytes();
    if bytes.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(bad());
        }
        let n: i64 = std::str::from_utf8(&bytes[start..i])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit: i64 = match &bytes[ustart..i] {
            b"ms" => 1,
            b"s" => 1_000,
            b"m" => 60_000,
            b"h" => 3_600_000,
            b"d" => 86_400_000,
            b"w" => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Formats milliseconds as the shortest exact duration text (`300000` → `5m`).
pub fn format_duration(ms: Millis) -> String {
    const UNITS: [(i64, &str); 6] = [
        (7 * 86_400_000, "w"),
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    if ms == 0 {
        return "0s".into();
    }
    let mut rest = ms;
    let mut out = String::new();
    if rest < 0 {
        out.push('-');
        rest = -rest;
    }
    for (unit, name) in UNITS {
        if rest >= unit {
            out.push_str(&format!("{}{}", rest / unit, name));
            rest %= unit;
        }
    }
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an event time: RFC 3339 text (`2026-01-02T03:04:05Z`, fractional seconds and
/// `±HH:MM` offsets allowed) or an integer of epoch milliseconds.
///
/// ```
/// use nowcast_core::parse_event_time;
/// assert_eq!(parse_event_time("1970-01-01T00:00:01.5Z"), Ok(1_500));
/// assert_eq!(parse_event_time("1700000000000"), Ok(1_700_000_000_000));
/// assert_eq!(parse_event_time("2026-01-01T01:00:00+01:00"), parse_event_time("2026-01-01T00:00:00Z"));
/// ```
pub fn parse_event_time(text: &str) -> Result<Millis, TimeError> {
    let bad = || TimeError::BadTimestamp(text.to_string());
    let s = text.as_bytes();
    if !s.is_empty() && s.iter().all(|b| b.is_ascii_digit() || *b == b'-') && s.len() < 20 {
        return text.parse::<i64>().map_err(|_| bad());
    }
    if s.len() < 20 {
        return Err(bad());
    }
    let num = |a: usize, b: usize| -> Result<i64, TimeError> {
        let mut v = 0i64;
        for &c in &s[a..b] {
            if !c.is_ascii_digit() {
                return Err(bad());
            }
            v = v * 10 + (c - b'0') as i64;
        }
        Ok(v)
    };
    if s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b't' | b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return Err(bad());
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, min, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return Err(bad());
    }
    let mut i = 19;
    let mut millis = 0i64;
    if s[i] == b'.' {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + (s[i] - b'0') as i64;
            }
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_min = match s.get(i) {
        Some(b'Z' | b'z') if i + 1 == s.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == s.len() && s[i + 3] == b':' => {
            let v = num(i + 1, i + 3)? * 60 + num(i + 4, i + 6)?;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + min * 60 + sec - offset_min * 60;
    Ok(secs * 1_000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for text in ["5m", "1h", "1d", "250ms", "1h30m", "2w", "59s"] {
            let ms = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(ms)).unwrap(), ms);
        }
        assert_eq!(format_duration(90_061_001), "1d1h1m1s1ms");
    }

    #[test]
    fn bad_durations_are_refused() {
        for text in [
            "",
            "5",
            "m",
            "5 m",
            "5min",
            "-5m",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(
            parse_event_time("2000-03-01T00:00:00Z").unwrap(),
            951_868_800_000
        );
        assert_eq!(parse_event_time("1969-12-31T23:59:59Z").unwrap(), -1_000);
        assert_eq!(
            parse_event_time("2026-11-27T10:00:00.123456Z").unwrap() % 1000,
            123
        );
        for text in [
            "2026-13-01T00:00:00Z",
            "2026-01-01 00:00:00",
            "yesterday",
            "2026-01-01T00:00:00+0100",
        ] {
            assert!(parse_event_time(text).is_err(), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_agrees_with_epoch_arithmetic(secs in 0i64..4_102_444_800, ms in 0i64..1000) {
            // Render with the inverse algorithm and parse it back.
            let days = secs.div_euclid(86_400);
            let rem = secs.rem_euclid(86_400);
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z - era * 146_097;
            let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let d = doy - (153 * mp + 2) / 5 + 1;
            let m = if mp < 10 { mp + 3 } else { mp - 9 };
            let y = yoe + era * 400 + i64::from(m <= 2);
            let text = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem % 3600 / 60, rem % 60);
            proptest::prop_assert_eq!(parse_event_time(&text).unwrap(), secs * 1000 + ms);
        }
    }
}
