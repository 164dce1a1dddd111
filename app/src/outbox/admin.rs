//! What an admin sees and does with deliveries: `GET /api/admin/deliveries`,
//! `POST /api/admin/deliveries/{id}/retry`, the per-plugin counts in
//! `GET /api/admin/plugins`, and `app deliveries list|retry`.

use std::collections::BTreeMap;

use hookspecs::ApiError;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::STATUSES;

const COLUMNS: &str = "d.id, e.event_key, e.event_name, e.recorded_at, d.plugin, d.status, \
                       d.attempts, d.last_error, d.next_attempt_ms, d.done_ms";

/// The deliveries `rest` picks (its `WHERE`, then any order, limit and
/// offset), with their events' columns that [`delivery`] reads.
fn select(rest: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id {rest}"
    )
}

/// Each status counted 0: a plugin with no deliveries.
fn no_deliveries() -> Value {
    Value::Object(
        STATUSES
            .iter()
            .map(|s| ((*s).to_owned(), json!(0)))
            .collect(),
    )
}

/// Which deliveries to list.
#[derive(Clone, Debug)]
pub struct Filter {
    /// `pending`, `dead` or `delivered`; `None`: all.
    pub status: Option<String>,
    /// At most this many (1 to 500).
    pub limit: i64,
    /// Skipping this many, oldest first.
    pub offset: i64,
}

impl Filter {
    /// From query parameters `status`, `limit` (default 50), `offset`.
    ///
    /// # Errors
    ///
    /// 422 naming the parameter that does not fit.
    pub fn parse(
        status: Option<&str>,
        limit: Option<&str>,
        offset: Option<&str>,
    ) -> Result<Self, ApiError> {
        let status = match status {
            None | Some("") => None,
            Some(s) if STATUSES.contains(&s) => Some(s.to_owned()),
            Some(_) => {
                return Err(ApiError::invalid(
                    "status",
                    "status must be pending, dead or delivered",
                ));
            }
        };
        let number = |name: &str, raw: Option<&str>, default: i64, max: i64| match raw {
            None => Ok(default),
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=max).contains(n))
                .ok_or_else(|| ApiError::invalid(name, format!("{name} must be 0 to {max}"))),
        };
        Ok(Filter {
            status,
            limit: number("limit", limit, 50, 500)?,
            offset: number("offset", offset, 0, i64::MAX)?,
        })
    }
}

/// A time kept in milliseconds, as every time the API shows.
fn time(ms: Option<i64>) -> Value {
    ms.and_then(hookspecs::time_of_unix_ms)
        .map_or(Value::Null, Value::String)
}

fn delivery(row: &AnyRow) -> Result<Value, ApiError> {
    let status: String = row.try_get("status")?;
    let next: i64 = row.try_get("next_attempt_ms")?;
    Ok(json!({
        "id": row.try_get::<i64, _>("id")?,
        "event_id": row.try_get::<String, _>("event_key")?,
        "event": row.try_get::<String, _>("event_name")?,
        "recorded_at": row.try_get::<String, _>("recorded_at")?,
        "plugin": row.try_get::<String, _>("plugin")?,
        "attempts": row.try_get::<i64, _>("attempts")?,
        "last_error": row.try_get::<Option<String>, _>("last_error")?,
        // Due now (a retried or never tried event) reads `null`, not 1970.
        "next_attempt_at": if status == "pending" && next > 0 { time(Some(next)) } else { Value::Null },
        "done_at": time(row.try_get("done_ms")?),
        "status": status,
    }))
}

/// A page of deliveries, oldest first: `{"deliveries": [...], "total",
/// "limit", "offset"}`.
///
/// # Errors
///
/// The database's.
pub async fn list(db: &mut AnyConnection, filter: &Filter) -> Result<Value, ApiError> {
    let (condition, status) = match &filter.status {
        Some(status) => ("WHERE d.status = $1", status.as_str()),
        // `$1 = $1` keeps one parameter list for both forms.
        None => ("WHERE $1 = $1", ""),
    };
    let sql = select(&format!("{condition} ORDER BY d.id LIMIT $2 OFFSET $3"));
    let rows = sqlx::query(&sql)
        .bind(status)
        .bind(filter.limit)
        .bind(filter.offset)
        .fetch_all(&mut *db)
        .await?;
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM outbox_deliveries d {condition}"
    ))
    .bind(status)
    .fetch_one(&mut *db)
    .await?;
    let deliveries = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "deliveries": deliveries,
        "total": total,
        "limit": filter.limit,
        "offset": filter.offset,
    }))
}

/// Makes dead delivery `id` pending again, due now, with its attempts
/// counted afresh; answers it.
///
/// # Errors
///
/// 404 if there is no such delivery, 409 if it is not dead.
pub async fn retry(db: &mut AnyConnection, id: i64) -> Result<Value, ApiError> {
    let done = sqlx::query(
        "UPDATE outbox_deliveries SET status = 'pending', attempts = 0, next_attempt_ms = 0, \
         done_ms = NULL WHERE id = $1 AND status = 'dead'",
    )
    .bind(id)
    .execute(&mut *db)
    .await?;
    let sql = select("WHERE d.id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *db)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery", id))?;
    let found = delivery(&row)?;
    if done.rows_affected() == 0 {
        return Err(ApiError::conflict(format!(
            "delivery {id} is {}, not dead",
            found["status"].as_str().unwrap_or("?")
        )));
    }
    Ok(found)
}

/// Per plugin, how many deliveries are pending, dead and delivered.
///
/// # Errors
///
/// The database's.
pub async fn counts(db: &mut AnyConnection) -> Result<BTreeMap<String, Value>, ApiError> {
    let rows = sqlx::query(
        "SELECT plugin, status, COUNT(*) AS n FROM outbox_deliveries GROUP BY plugin, status",
    )
    .fetch_all(&mut *db)
    .await?;
    let mut counts = BTreeMap::new();
    for row in &rows {
        let plugin: String = row.try_get("plugin")?;
        let status: String = row.try_get("status")?;
        let entry = counts.entry(plugin).or_insert_with(no_deliveries);
        entry[status.as_str()] = json!(row.try_get::<i64, _>("n")?);
    }
    Ok(counts)
}

/// The plugin report with each plugin's delivery counts added
/// (`"deliveries": {"pending", "dead", "delivered"}`).
///
/// # Errors
///
/// The database's.
pub async fn with_counts(mut report: Value, db: &mut AnyConnection) -> Result<Value, ApiError> {
    let counts = counts(db).await?;
    let zero = no_deliveries();
    if let Some(plugins) = report["plugins"].as_array_mut() {
        for plugin in plugins {
            let name = plugin["name"].as_str().unwrap_or_default();
            plugin["deliveries"] = counts.get(name).unwrap_or(&zero).clone();
        }
    }
    Ok(report)
}
