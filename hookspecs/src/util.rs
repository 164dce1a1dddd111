//! Small helpers plugins and the app share, so a plugin needs no crate of
//! its own for them.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Now, UTC, RFC 3339 with microseconds (`2026-12-05T07:10:25.082212Z`):
/// how the application stores times. Always the same width, so that times
/// stored as text sort as they happened.
///
/// ```
/// let t = hookspecs::now();
/// assert_eq!(t.len(), "2026-12-05T07:10:25.082212Z".len());
/// assert!(t.ends_with('Z') && t > "2026".to_owned());
/// ```
pub fn now() -> String {
    rfc3339_micros(OffsetDateTime::now_utc())
}

/// `ms` milliseconds after the Unix epoch, in [`now`]'s format; `None`
/// beyond the calendar's range.
///
/// ```
/// use hookspecs::time_of_unix_ms;
///
/// assert_eq!(time_of_unix_ms(0).as_deref(), Some("1970-01-01T00:00:00.000000Z"));
/// assert_eq!(time_of_unix_ms(1_500).as_deref(), Some("1970-01-01T00:00:01.500000Z"));
/// assert_eq!(time_of_unix_ms(i64::MAX), None);
/// ```
pub fn time_of_unix_ms(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(rfc3339_micros)
}

fn rfc3339_micros(t: OffsetDateTime) -> String {
    let (year, month, day) = t.to_calendar_date();
    let (hour, minute, second, micros) = t.to_hms_micro();
    let Ok(year @ 0..=9999) = u32::try_from(year) else {
        return rfc3339_micros_formatted(t);
    };
    // Digits put in place by hand: `format!` with its padding took about
    // 3,500 instructions a call (release), and a write with plugins makes
    // three (the entity's time, the event's, the audit entry's).
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |end: usize, mut value: u32| {
        for digit in text[..end].iter_mut().rev() {
            if !digit.is_ascii_digit() {
                break;
            }
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(4, year);
    put(7, u32::from(u8::from(month)));
    put(10, u32::from(day));
    put(13, u32::from(hour));
    put(16, u32::from(minute));
    put(19, u32::from(second));
    put(26, micros);
    String::from_utf8(text.to_vec()).expect("ASCII digits and separators")
}

/// [`rfc3339_micros`] through `format!`: years outside 0..=9999 (their
/// sign or fifth digit), and the reference its tests compare with.
fn rfc3339_micros_formatted(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// A new random secret: `prefix` then 48 hexadecimal digits (192 bits
/// from the operating system's generator).
///
/// # Errors
///
/// 500 when the operating system gives no randomness.
///
/// ```
/// let key = hookspecs::new_secret("key_")?;
/// assert_eq!(key.len(), "key_".len() + 48);
/// assert_ne!(key, hookspecs::new_secret("key_")?);
/// # Ok::<(), hookspecs::ApiError>(())
/// ```
pub fn new_secret(prefix: &str) -> Result<String, crate::ApiError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| crate::ApiError::internal(format!("no randomness: {e}")))?;
    let mut secret = String::with_capacity(prefix.len() + 2 * bytes.len());
    secret.push_str(prefix);
    push_hex(&mut secret, &bytes);
    Ok(secret)
}

/// Appends `bytes` to `out` in lowercase hexadecimal, two digits each:
/// what keys, hashes and signatures are written in. One table lookup per
/// digit, where `format!("{b:02x}")` ran the formatting machinery and
/// allocated per byte (on every event's key and every webhook's signature).
///
/// ```
/// let mut out = String::from("sha256=");
/// hookspecs::push_hex(&mut out, &[0x00, 0x7f, 0xff]);
/// assert_eq!(out, "sha256=007fff");
/// ```
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// SHA-256 of `text`, hexadecimal: how secrets are stored.
///
/// ```
/// assert_eq!(
///     hookspecs::sha256_hex("abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn sha256_hex(text: &str) -> String {
    let mut hex = String::new();
    push_hex(&mut hex, &Sha256::digest(text.as_bytes()));
    hex
}

/// `json`, written by the other side of the component boundary, as `T`; a
/// 500 naming `what` otherwise (no client sent it).
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    json: &str,
) -> Result<T, crate::ApiError> {
    serde_json::from_str(json)
        .map_err(|e| crate::ApiError::internal(format!("{what} is not as expected: {e}")))
}

/// `INSERT INTO table (columns) VALUES (...), ...`: `rows` rows of
/// parameters, numbered from `$first`.
pub(crate) fn insert_sql(table: &str, columns: &[&str], rows: usize, first: usize) -> String {
    use std::fmt::Write;
    // Written piece by piece into one string: it is built for every
    // operation that queues rows for its commit.
    let mut sql = String::with_capacity(40 + 16 * columns.len() + 6 * rows * columns.len());
    // Quoted: a plain name may still be a keyword (`order`, `user`).
    sql.push_str("INSERT INTO \"");
    sql.push_str(table);
    sql.push_str("\" (");
    for (i, column) in columns.iter().enumerate() {
        sql.push_str(if i == 0 { "\"" } else { ", \"" });
        sql.push_str(column);
        sql.push('"');
    }
    sql.push_str(") VALUES ");
    let mut n = first;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns.len() {
            sql.push_str(if column == 0 { "$" } else { ", $" });
            let _ = write!(sql, "{n}");
            n += 1;
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    #[test]
    fn times_have_one_width_and_parse_as_rfc3339() {
        use time::format_description::well_known::Rfc3339;
        for nanos in [0, 1_000, 120_000_000, 999_999_999] {
            let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_000_000_000 + nanos)
                .unwrap();
            let text = super::rfc3339_micros(t);
            assert_eq!(text.len(), "2023-11-14T22:13:20.000000Z".len(), "{text}");
            let back = OffsetDateTime::parse(&text, &Rfc3339).unwrap();
            assert_eq!(
                back.unix_timestamp_nanos() / 1000,
                t.unix_timestamp_nanos() / 1000
            );
        }
    }

    #[test]
    fn times_written_by_hand_are_those_format_writes() {
        // Every field at its widths' edges, and years without four digits.
        let seconds = [
            -62_167_219_200, // 0000-01-01T00:00:00
            -62_198_755_200, // -0001: formatted
            -1,
            0,
            951_782_400, // 2000-02-29
            1_700_000_000,
            253_402_300_799, // 9999-12-31T23:59:59
        ];
        for s in seconds {
            for micros in [0, 7, 999_999] {
                let t = OffsetDateTime::from_unix_timestamp(s).unwrap()
                    + time::Duration::microseconds(micros);
                assert_eq!(super::rfc3339_micros(t), super::rfc3339_micros_formatted(t));
            }
        }
        assert_eq!(
            super::time_of_unix_ms(-62_198_755_200_000).as_deref(),
            Some("-001-01-01T00:00:00.000000Z")
        );
    }
}
