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
    Ok(bytes.iter().fold(prefix.to_owned(), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    }))
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
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
    // Quoted: a plain name may still be a keyword (`order`, `user`).
    let columns: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let mut sql = format!("INSERT INTO \"{table}\" ({}) VALUES ", columns.join(", "));
    let mut n = first;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns.len() {
            let _ = write!(sql, "{}${n}", if column == 0 { "" } else { ", " });
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
}
