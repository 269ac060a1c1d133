//! Timestamps written into JSON the way chrono writes them (RFC 3339 in UTC with `Z`, and
//! as many fractional digits, none, 3, 6 or 9, as the value needs), only faster. chrono
//! formats through `core::fmt` a piece at a time, and serde_json escapes each piece as it
//! comes: with three timestamps a row, that was a tenth of the server's CPU for a page of
//! contacts (0.198 against 0.179 ms per request, BENCHMARKS.md). Used on the fields of the rows lists and sockets send most; every other
//! timestamp is written by chrono, to the same text.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// `#[serde(serialize_with = "crate::domain::timestamps::serialize")]`
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; 30];
    match write_rfc3339(at, &mut text).and_then(|len| std::str::from_utf8(&text[..len]).ok()) {
        Some(written) => serializer.serialize_str(written),
        // Years before 0 or after 9999, and leap seconds: chrono's own way.
        None => at.serialize(serializer),
    }
}

/// `#[serde(serialize_with = "crate::domain::timestamps::serialize_option")]`
pub fn serialize_option<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// The text's length, or `None` for what only chrono writes.
fn write_rfc3339(at: &DateTime<Utc>, out: &mut [u8; 30]) -> Option<usize> {
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    put_digits(&mut out[0..4], year);
    out[4] = b'-';
    put_digits(&mut out[5..7], at.month());
    out[7] = b'-';
    put_digits(&mut out[8..10], at.day());
    out[10] = b'T';
    put_digits(&mut out[11..13], at.hour());
    out[13] = b':';
    put_digits(&mut out[14..16], at.minute());
    out[16] = b':';
    put_digits(&mut out[17..19], at.second());
    let (fraction, width) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    let mut len = 19;
    if width > 0 {
        out[len] = b'.';
        put_digits(&mut out[len + 1..len + 1 + width], fraction);
        len += 1 + width;
    }
    out[len] = b'Z';
    Some(len + 1)
}

/// `value` in decimal, zero-padded to fill `out`.
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[derive(Serialize)]
    struct Ours {
        #[serde(serialize_with = "serialize")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "serialize_option")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chronos {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
    }

    fn same_as_chrono(at: DateTime<Utc>) {
        for maybe in [Some(at), None] {
            let ours = serde_json::to_string(&Ours { at, maybe }).expect("serialises");
            let chronos = serde_json::to_string(&Chronos { at, maybe }).expect("serialises");
            assert_eq!(ours, chronos, "for {at:?}");
        }
    }

    #[test]
    fn writes_what_chrono_writes() {
        let seconds = [
            Utc.with_ymd_and_hms(2026, 12, 3, 16, 12, 51).single().expect("valid"),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).single().expect("valid"),
            Utc.with_ymd_and_hms(999, 2, 28, 23, 59, 59).single().expect("valid"),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single().expect("valid"),
            // Outside what this module writes: chrono's own text.
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).single().expect("valid"),
            Utc.with_ymd_and_hms(-1, 6, 15, 12, 0, 0).single().expect("valid"),
        ];
        let nanos = [0, 1, 7, 999, 1_000, 120_000, 792_296_000, 5_000_000, 999_000_000, 999_999_999, 123_456_789];
        for second in seconds {
            for n in nanos {
                same_as_chrono(second + chrono::Duration::nanoseconds(n));
            }
        }
        // A spread of instants up to the year 11,500, microsecond precision as PostgreSQL keeps them.
        let mut micros: i64 = 1_796_334_237_000_000;
        for step in 0..2_000i64 {
            micros = micros.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(step) % 300_000_000_000_000_000;
            same_as_chrono(DateTime::from_timestamp_micros(micros.abs()).expect("in range"));
        }
    }

    #[test]
    fn a_leap_second_is_written_by_chrono() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second")
            .and_utc();
        same_as_chrono(leap);
    }
}
