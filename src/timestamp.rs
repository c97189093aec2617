//! Timestamps as AWS writes them, reduced to seconds since the Unix epoch.
//!
//! AWS uses ISO 8601 in several dialects: `2024-05-01T10:00:00Z` (IAM, STS),
//! `2024-05-01T10:00:00+00:00` (the IAM credential report), fractional
//! seconds (`...00.000Z`, S3). Parsing is hand-written because the dialects
//! are few and the parser is fuzzed; nothing here reads the system clock.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, whole seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError(String);

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an ISO 8601 timestamp: {:?}", self.0)
    }
}

impl std::error::Error for TimestampError {}

impl Timestamp {
    /// The current time from the system clock.
    pub fn now() -> Timestamp {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Timestamp(secs)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM|+HHMM)`.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        parse_iso8601(text.trim()).ok_or_else(|| TimestampError(truncate(text)))
    }

    /// Parses an HTTP `Date` header (RFC 9110 IMF-fixdate:
    /// `Sun, 06 Nov 1994 08:49:37 GMT`), used to correct clock skew.
    pub fn parse_http_date(text: &str) -> Result<Timestamp, TimestampError> {
        parse_imf_fixdate(text.trim()).ok_or_else(|| TimestampError(truncate(text)))
    }

    /// Whole days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(self, later: Timestamp) -> i64 {
        (later.0 - self.0).div_euclid(86_400)
    }

    /// RFC 3339 in UTC, the form every report and inventory uses.
    pub fn to_rfc3339(self) -> String {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

fn parse_iso8601(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let mut rest = &b[19..];
    if let Some((b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = zone_offset(rest)?;

    let days = days_from_civil(year, month, day);
    let local = days * 86_400 + hour * 3600 + minute * 60 + second.min(59);
    let utc = local - offset;
    // A zone offset can carry year 0000 or 9999 out of the four-digit range
    // in UTC, which `to_rfc3339` cannot write back in a form this parser
    // reads (found by the fuzz round-trip check): such times are refused.
    let first = days_from_civil(0, 1, 1) * 86_400;
    let last = days_from_civil(9999, 12, 31) * 86_400 + 86_399;
    (first..=last).contains(&utc).then_some(Timestamp(utc))
}

fn parse_imf_fixdate(s: &str) -> Option<Timestamp> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = s.split(' ');
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day = digits(parts.next()?.as_bytes())?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as i64 + 1;
    let year = digits(parts.next()?.as_bytes())?;
    let time = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    let iso = format!("{year:04}-{month:02}-{day:02}T{time}Z");
    parse_iso8601(&iso)
}

/// The zone suffix in seconds east of UTC: `Z`, `+HH:MM`, `+HHMM` or `+HH`.
fn zone_offset(rest: &[u8]) -> Option<i64> {
    match rest {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (h, m) = match zone {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

/// The value of a run of ASCII digits. Checked arithmetic: an HTTP date's
/// day and year fields are not length-checked before they get here, and a
/// long digit run overflowed `i64` (found by fuzzing; a panic in debug
/// builds, a wrong date in release).
fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, c| {
        if !c.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(i64::from(c - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// well-known civil calendar algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_dialects_aws_writes() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2024-05-01T10:00:00Z", Some(1_714_557_600)),
            ("2024-05-01T10:00:00+00:00", Some(1_714_557_600)),
            ("2024-05-01T10:00:00.123Z", Some(1_714_557_600)),
            ("2024-05-01T19:00:00+09:00", Some(1_714_557_600)),
            ("2024-05-01T05:00:00-0500", Some(1_714_557_600)),
            ("2024-05-01T10:00:00+00", Some(1_714_557_600)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800)),
            ("2023-02-29T00:00:00Z", None),
            ("2024-13-01T00:00:00Z", None),
            ("2024-05-01T10:00:00", None),
            ("2024-05-01 10:00:00Z", Some(1_714_557_600)),
            ("N/A", None),
            ("no_information", None),
            ("", None),
            ("2024-05-01T10:00:00.Z", None),
            ("2024-05-01T24:00:00Z", None),
            ("２０２４-05-01T10:00:00Z", None),
            // The round trip through to_rfc3339 must hold: outside years
            // 0000-9999 in UTC it cannot, so those are refused.
            ("0000-01-01T00:00:00+01:00", None),
            ("9999-12-31T23:30:00-01:00", None),
            ("0000-01-01T00:00:00-01:00", Some(-62_167_215_600)),
            ("9999-12-31T23:59:59Z", Some(253_402_300_799)),
        ];
        for (text, want) in cases {
            assert_eq!(Timestamp::parse(text).ok().map(|t| t.0), *want, "{text}");
        }
    }

    #[test]
    fn parses_http_dates() {
        let cases: &[(&str, Option<i64>)] = &[
            ("Wed, 01 May 2024 10:00:00 GMT", Some(1_714_557_600)),
            ("Wed, 1 May 2024 10:00:00 GMT", Some(1_714_557_600)),
            ("Wed, 01 May 2024 10:00:00 UTC", None),
            ("01 May 2024 10:00:00 GMT", None),
            ("Wed, 01 Mai 2024 10:00:00 GMT", None),
            ("Wed, 01 May 2024 10:00 GMT", None),
            ("", None),
            // Found by fuzzing: a day longer than i64 overflowed.
            (", 666666666666666601", None),
            ("Wed, 99999999999999999999 May 2024 10:00:00 GMT", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                Timestamp::parse_http_date(text).ok().map(|t| t.0),
                *want,
                "{text}"
            );
        }
    }

    #[test]
    fn formats_and_round_trips() {
        for secs in [0, 1_714_557_600, 951_782_400, 4_102_444_799, -86_400] {
            let t = Timestamp(secs);
            assert_eq!(Timestamp::parse(&t.to_rfc3339()), Ok(t));
        }
        assert_eq!(
            Timestamp(1_714_557_600).to_rfc3339(),
            "2024-05-01T10:00:00Z"
        );
    }

    #[test]
    fn counts_whole_days() {
        let t = Timestamp(1_714_557_600);
        assert_eq!(t.days_until(Timestamp(t.0 + 45 * 86_400)), 45);
        assert_eq!(t.days_until(Timestamp(t.0 + 45 * 86_400 - 1)), 44);
        assert_eq!(t.days_until(Timestamp(t.0 - 1)), -1);
    }
}
