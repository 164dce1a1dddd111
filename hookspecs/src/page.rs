//! Which page of a list an operation answers: read from a request by
//! [`Request::page`](crate::Request::page), taken by the list operations of
//! [`Services`](crate::Services), answered by [`Reply::page`](crate::Reply::page).
//! A module of its own so that `context` and `http` both use it without
//! importing each other.

/// Which page of a list: the items whose key (id) is above `after`, at
/// most `limit` of them. Read from `?after=N&limit=M` by [`Request::page`](crate::Request::page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Page {
    /// Only items whose key is greater than this.
    pub after: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

impl Page {
    /// Items per page when the request does not say.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page a request may ask for.
    pub const MAX_LIMIT: u32 = 500;

    /// The first `limit` items.
    pub fn first(limit: u32) -> Self {
        Page { after: None, limit }
    }

    /// Every item, in one page: for code that needs the whole list.
    pub fn all() -> Self {
        Page {
            after: None,
            limit: u32::MAX,
        }
    }
}
