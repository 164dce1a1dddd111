//! Small helpers plugins and the app share, so a plugin needs no crate of
//! its own for them.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, UTC, RFC 3339: how the application stores times.
pub fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("UTC now is formattable")
}

/// A new random secret: `prefix` then 48 hexadecimal digits (192 bits
/// from the operating system's generator).
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
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
