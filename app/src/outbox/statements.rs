//! The delivery worker's statements built per dialect or per batch shape:
//! where a new plugin's cursor starts, the look at a plugin's queue, the
//! claim of a batch and its settle (with the values the settle binds).
//! Each builder's doc says what its statement does and why it is shaped
//! so; the worker writes each text once (the settle's once per shape of
//! batch) and binds the parameters the doc names. The statements that
//! release leases and prune are written where `worker.rs` sends them.

use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use crate::db::Dialect;

/// PostgreSQL: the oldest transaction of this database that may still
/// commit an event (its id; the snapshot's `xmax` when none runs), as the
/// statement's snapshot sees them. Transaction ids are the server's, so
/// `pg_snapshot_xmin` also counts the transactions of its other databases,
/// which cannot write this one's log: a long one elsewhere (a report, a
/// migration, another app) would hold every plugin back for as long as it
/// runs. Those are left out, known by their backend's database; a
/// transaction that ends meanwhile, or whose backend is not shown
/// (`pg_stat_activity` hides what the role may not see), stays in, which
/// only ever holds the log back, never lets an event be overtaken.
const OLDEST_RUNNING: &str = "COALESCE(\
     (SELECT MIN(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) x \
      WHERE x::text::bigint % 4294967296 NOT IN (\
          SELECT a.backend_xid::text::bigint FROM pg_stat_activity a \
          WHERE a.backend_xid IS NOT NULL AND a.datid <> \
              (SELECT oid FROM pg_database WHERE datname = current_database()))), \
     pg_snapshot_xmax(pg_current_snapshot())::text::bigint)";

/// A plugin's cursor (`$1` the plugin) at the head of the log, unless it
/// has one: PostgreSQL, just below the oldest running transaction (every
/// event below it is past), with the statement's snapshot as its `born`
/// (of the events at or above it, those the snapshot sees are past too);
/// SQLite, after the last event. Either way its `kept_ms` is raised to `$2`
/// (see [`KEEP`]).
pub(super) fn head_sql(dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => format!(
            "INSERT INTO outbox_cursors (plugin, txid, event_id, kept_ms, born) \
             VALUES ($1, {OLDEST_RUNNING} - 1, 9223372036854775807, $2, \
                 pg_current_snapshot()::text) \
             ON CONFLICT (plugin) DO UPDATE SET {KEEP}"
        ),
        Dialect::Sqlite => format!(
            "INSERT INTO outbox_cursors (plugin, txid, event_id, kept_ms) \
             VALUES ($1, 0, (SELECT COALESCE(MAX(id), 0) FROM outbox_events), $2) \
             ON CONFLICT (plugin) DO UPDATE SET {KEEP}"
        ),
    }
}

/// A cursor's `kept_ms` raised to `$2`, never lowered: the promise of the
/// instance that marks least often stands until it runs out.
const KEEP: &str = "kept_ms = CASE WHEN outbox_cursors.kept_ms < $2 THEN $2 \
                    ELSE outbox_cursors.kept_ms END";

/// The plugins' cursors (`$2`, `$3`, ...: `plugins` of them) kept until at
/// least `$1`.
pub(super) fn mark_sql(plugins: usize) -> String {
    let marks: Vec<String> = (0..plugins).map(|i| format!("${}", i + 2)).collect();
    format!(
        "UPDATE outbox_cursors SET kept_ms = $1 WHERE kept_ms < $1 AND plugin IN ({})",
        marks.join(", ")
    )
}

/// Where `cursor`'s next events are in the log `e`, and the log's order:
/// PostgreSQL, after (txid, id) (index `outbox_events_log`); SQLite, whose
/// one writer at a time commits in id order (every txid 0), after the id,
/// a range of the table's own key where the pair would scan the whole log.
fn after(dialect: Dialect, txid: &str, event_id: &str) -> (String, &'static str) {
    match dialect {
        Dialect::Postgres => (
            format!("(e.txid, e.id) > ({txid}, {event_id})"),
            "e.txid, e.id",
        ),
        Dialect::Sqlite => (format!("e.id > {event_id}"), "e.id"),
    }
}

/// The look at one plugin's queue (`$1`): who holds its lease, until when;
/// when its next retry is due (`retry_at`: the earliest parked delivery's
/// time; for an `ordered` plugin the first parked one's in commit order,
/// which no later one may overtake); whether the log has events after its
/// cursor (`more`, 1 or 0).
///
/// `more` asks for the first event after the cursor in the log's order,
/// not `EXISTS`: PostgreSQL drops the `ORDER BY` and `LIMIT` of an
/// `EXISTS` and, guessing that a third of the log lies after the cursor,
/// scanned the table from its start for one, past every event already
/// handled (the whole table when none is left: 6 ms for 30,000 events, on
/// every look); ordered and limited, it reads one entry of the log's index.
pub(super) fn look_sql(dialect: Dialect, ordered: bool) -> String {
    let (after, order) = after(dialect, "c.txid", "c.event_id");
    let retry_at = if ordered {
        format!(
            "(SELECT d.next_attempt_ms FROM outbox_deliveries d \
              JOIN outbox_events e ON e.id = d.event_id \
              WHERE d.plugin = c.plugin AND d.status = 'pending' ORDER BY {order} LIMIT 1)"
        )
    } else {
        "(SELECT MIN(d.next_attempt_ms) FROM outbox_deliveries d \
          WHERE d.plugin = c.plugin AND d.status = 'pending')"
            .to_owned()
    };
    format!(
        "SELECT c.lease_owner, c.lease_until_ms, {retry_at} AS retry_at, \
             CAST(CASE WHEN (SELECT e.id FROM outbox_events e WHERE {after} \
                  ORDER BY {order} LIMIT 1) IS NULL THEN 0 ELSE 1 END AS BIGINT) AS more \
         FROM outbox_cursors c WHERE c.plugin = $1"
    )
}

const EVENT_COLUMNS: &str = "e.id AS event_id, e.txid, e.event_key, e.event_name, e.change, \
                             e.recorded_at";

/// The claim of a batch for one plugin, one statement (PostgreSQL: its own
/// transaction, no `BEGIN` or `COMMIT`; SQLite: a read, out of the writers'
/// queue). Parameters: `$1` the plugin, `$2` now (ms), `$3` the batch's
/// size, `$4` this instance, `$5` the lease's end (ms).
///
/// Its rows: the parked deliveries due for a retry (`retry` 1; for an
/// `ordered` plugin only those before the first one not due), then the
/// log's events after the cursor (`retry` 0; for an `ordered` plugin none
/// while one is parked), each in commit order, at most `$3` of each. On
/// PostgreSQL the cursor's row is taken `FOR UPDATE SKIP LOCKED` unless
/// another instance's lease on it runs (then no rows), and only if it is
/// still the version the statement's snapshot sees (`xmin`): at READ
/// COMMITTED a row lock follows the row to its newest committed version
/// and checks only that row again, while the parked rows and the log are
/// read with the snapshot; every lease taken and every settle rewrites
/// the cursor's row, so one committed after the snapshot gives no rows
/// rather than a batch read from a state that no longer holds (an
/// `ordered` plugin's events delivered past one just parked, a retry past
/// an earlier one). Only events below the oldest running transaction are
/// read ([`OLDEST_RUNNING`]), the due
/// retries' rows are locked too and checked again once locked (so a retry
/// that another instance settled as this statement began is seen settled,
/// not sent again; those not due are not locked), and the lease is taken
/// in the same statement if there is anything to deliver. An event of the
/// log is `past` (1) if the cursor's `born` snapshot sees it: committed
/// before the plugin came, though after the cursor in the log's order
/// ([`head_sql`]).
/// SQLite takes no lease: the one process delivers, one task per plugin;
/// nothing is past.
pub(super) fn claim_sql(dialect: Dialect, ordered: bool) -> String {
    let (free, lock_due, below_running, lease, past) = match dialect {
        Dialect::Postgres => (
            "AND (lease_until_ms <= $2 OR lease_owner = $4) \
             AND xmin = (SELECT xmin FROM outbox_cursors WHERE plugin = $1) \
             FOR UPDATE SKIP LOCKED",
            "FOR UPDATE OF d",
            format!("AND e.txid < {OLDEST_RUNNING}"),
            ", leased AS (UPDATE outbox_cursors SET lease_owner = $4, lease_until_ms = $5 \
             WHERE plugin = (SELECT plugin FROM claimable) \
             AND (EXISTS (SELECT 1 FROM due) OR EXISTS (SELECT 1 FROM fresh)))",
            "CAST(CASE WHEN pg_visible_in_snapshot(e.txid::text::xid8, \
                 (SELECT born::pg_snapshot FROM outbox_cursors WHERE plugin = $1)) \
             THEN 1 ELSE 0 END AS BIGINT)",
        ),
        Dialect::Sqlite => ("", "", String::new(), "", "0"),
    };
    // Ordered: no retry overtakes an earlier parked event, no event of the
    // log any parked one.
    // Not ordered: only due rows are parked's concern, filtered before
    // its LIMIT (else the first `$3` in commit order, not due, would hide
    // every later due one for ever).
    let (only_due, in_order, none_parked) = if ordered {
        (
            "",
            "AND NOT EXISTS (SELECT 1 FROM parked q WHERE q.next_attempt_ms > $2 \
             AND (q.txid, q.event_id) < (p.txid, p.event_id))",
            "AND NOT EXISTS (SELECT 1 FROM parked)",
        )
    } else {
        ("AND d.next_attempt_ms <= $2", "", "")
    };
    let (after, order) = after(
        dialect,
        "(SELECT txid FROM claimable)",
        "(SELECT event_id FROM claimable)",
    );
    format!(
        "WITH claimable AS (SELECT plugin, txid, event_id FROM outbox_cursors \
             WHERE plugin = $1 {free}), \
         parked AS (SELECT d.id, d.next_attempt_ms, e.txid, e.id AS event_id \
             FROM claimable c JOIN outbox_deliveries d ON d.plugin = c.plugin \
             JOIN outbox_events e ON e.id = d.event_id \
             WHERE d.status = 'pending' {only_due} ORDER BY {order} LIMIT $3), \
         due AS (SELECT d.id, d.attempts, {EVENT_COLUMNS} \
             FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id \
             WHERE d.plugin = $1 AND d.status = 'pending' AND d.next_attempt_ms <= $2 \
             AND d.id IN \
                 (SELECT p.id FROM parked p WHERE p.next_attempt_ms <= $2 {in_order}) \
             {lock_due}), \
         fresh AS (SELECT {EVENT_COLUMNS}, {past} AS past FROM outbox_events e WHERE {after} \
             {below_running} {none_parked} ORDER BY {order} LIMIT $3){lease} \
         SELECT CAST(1 AS BIGINT) AS retry, id, attempts, CAST(0 AS BIGINT) AS past, \
             {CLAIMED} FROM due \
         UNION ALL SELECT 0, NULL, 0, past, {CLAIMED} FROM fresh \
         ORDER BY retry DESC, txid, event_id"
    )
}

/// The event's columns of a claimed row, as [`EVENT_COLUMNS`] names them.
const CLAIMED: &str = "event_id, txid, event_key, event_name, change, recorded_at";

/// A delivery row's columns that a [`Fate`] sets, in the order bound.
const FATE: &str = "status, attempts, last_error, next_attempt_ms, done_ms";

/// A delivery row's new values.
pub(super) struct Fate {
    pub(super) status: &'static str,
    pub(super) attempts: i64,
    pub(super) error: Option<String>,
    pub(super) next_attempt_ms: i64,
    pub(super) done_ms: Option<i64>,
}

/// A batch's outcome, as [`settle_sql`]'s statements take it: `$1` the
/// plugin, `$2` this instance, `$3` and `$4` the cursor's new place (NULL:
/// it stays), then per retried event (its parked row's id) and per
/// handled event of the log (its event's id) that id and its [`FATE`].
pub(super) struct Settled {
    pub(super) plugin: &'static str,
    pub(super) owner: String,
    pub(super) position: Option<(i64, i64)>,
    pub(super) retried: Vec<(i64, Fate)>,
    pub(super) handled: Vec<(i64, Fate)>,
}

impl Settled {
    /// `sql` with every parameter bound (SQLite ignores those it does not use).
    pub(super) fn bind<'q>(&self, sql: &'q str) -> Query<'q, Any, AnyArguments<'q>> {
        let query = sqlx::query(sql)
            .bind(self.plugin)
            .bind(self.owner.clone())
            .bind(self.position.map(|(txid, _)| txid))
            .bind(self.position.map(|(_, event_id)| event_id));
        let fates = self.retried.iter().chain(&self.handled);
        fates.fold(query, |q, (row, f)| {
            q.bind(*row)
                .bind(f.status)
                .bind(f.attempts)
                .bind(f.error.clone())
                .bind(f.next_attempt_ms)
                .bind(f.done_ms)
        })
    }
}

/// The settle of a batch of `retried` retried events and `handled` events
/// of the log that leave a row ([`Settled`] binds them): the cursor moved
/// (and the lease given back), which returns a row if it did; the parked
/// rows updated; the new rows inserted. PostgreSQL: one statement, whose
/// writes all wait on the cursor's (which needs this instance's lease);
/// SQLite (no lease): one statement per table, run in one transaction.
pub(super) fn settle_sql(dialect: Dialect, retried: usize, handled: usize) -> Vec<String> {
    let postgres = dialect == Dialect::Postgres;
    let move_cursor = format!(
        "UPDATE outbox_cursors SET txid = COALESCE($3, txid), event_id = COALESCE($4, event_id), \
         lease_owner = NULL, lease_until_ms = 0 WHERE plugin = $1 {} RETURNING 1",
        if postgres { "AND lease_owner = $2" } else { "" }
    );
    // `name (row_id, <FATE>) AS (VALUES ...)`: `rows` fates bound from
    // `$first`, six parameters each, in [`Settled::bind`]'s order after its
    // first four.
    let fates = |name: &str, rows: usize, first: usize| {
        let values: Vec<String> = (0..rows)
            .map(|i| {
                let at = first + 6 * i;
                let row: Vec<String> = (at..at + 6).map(|n| format!("${n}")).collect();
                format!("({})", row.join(", "))
            })
            .collect();
        format!("{name} (row_id, {FATE}) AS (VALUES {})", values.join(", "))
    };
    let gate = if postgres {
        "EXISTS (SELECT 1 FROM moved)"
    } else {
        "TRUE"
    };
    let update = format!(
        "UPDATE outbox_deliveries SET status = r.status, attempts = r.attempts, \
         last_error = r.last_error, next_attempt_ms = r.next_attempt_ms, done_ms = r.done_ms \
         FROM retried r WHERE outbox_deliveries.id = r.row_id AND {gate}"
    );
    // `WHERE` also tells SQLite's parser the `ON CONFLICT` is the insert's.
    let insert = format!(
        "INSERT INTO outbox_deliveries (event_id, plugin, {FATE}) \
         SELECT row_id, $1, {FATE} FROM handled WHERE {gate} \
         ON CONFLICT (event_id, plugin) DO NOTHING"
    );
    let mut writes = Vec::new();
    if retried > 0 {
        writes.push((fates("retried", retried, 5), update));
    }
    if handled > 0 {
        writes.push((fates("handled", handled, 5 + 6 * retried), insert));
    }
    if postgres {
        let mut ctes = vec![format!("moved AS ({move_cursor})")];
        for (i, (values, write)) in writes.into_iter().enumerate() {
            ctes.extend([values, format!("w{i} AS ({write})")]);
        }
        vec![format!("WITH {} SELECT 1 FROM moved", ctes.join(", "))]
    } else {
        let writes = writes
            .into_iter()
            .map(|(values, write)| format!("WITH {values} {write}"));
        std::iter::once(move_cursor).chain(writes).collect()
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::look_sql;
    use crate::db::{Db, Dialect, Scratch};

    /// Events in the log: 20,000 on each database, the cursor before the
    /// last one or at it.
    const EVENTS: i64 = 20_000;

    /// The look on a long log, for a plugin in any order and an `ordered`
    /// one: whether anything is after the cursor comes from the log's
    /// index (on PostgreSQL with the table's statistics taken, as
    /// autovacuum would), never from a walk through the log.
    #[tokio::test]
    async fn the_look_reads_the_log_from_its_index_however_long_the_log() {
        let file = std::env::temp_dir().join(format!("look-{}.db", std::process::id()));
        look_on(&format!("sqlite://{}?mode=rwc", file.display())).await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
        let name = format!("outbox_look_{}", std::process::id());
        if let Some(scratch) = Scratch::postgres(&name).await {
            look_on(&scratch.url).await;
            scratch.drop().await;
        }
    }

    async fn look_on(url: &str) {
        let db = Db::open(url).await.unwrap();
        let dialect = db.dialect();
        let fill = match dialect {
            Dialect::Postgres => format!(
                "INSERT INTO outbox_events (event_key, event_name, change, recorded_at, txid) \
                 SELECT 'k' || g, 'user.created', '{{}}', 'now', g \
                 FROM generate_series(1, {EVENTS}) g"
            ),
            Dialect::Sqlite => format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {EVENTS}) \
                 INSERT INTO outbox_events (event_key, event_name, change, recorded_at) \
                 SELECT 'k' || n, 'user.created', '{{}}', 'now' FROM g"
            ),
        };
        sqlx::query(&fill).execute(&db.pool).await.unwrap();
        // Before the last event (SQLite's log is ordered by id alone).
        sqlx::query("INSERT INTO outbox_cursors (plugin, txid, event_id) VALUES ('p', $1, $1)")
            .bind(EVENTS - 1)
            .execute(&db.pool)
            .await
            .unwrap();
        sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();
        // How the log must be read: a search of its index from the cursor.
        let (explain, column, searched) = match dialect {
            Dialect::Postgres => (
                "EXPLAIN",
                "QUERY PLAN",
                "Index Only Scan using outbox_events_log on outbox_events e",
            ),
            Dialect::Sqlite => (
                "EXPLAIN QUERY PLAN",
                "detail",
                "SEARCH e USING INTEGER PRIMARY KEY (rowid>?)",
            ),
        };
        for ordered in [false, true] {
            let look = look_sql(dialect, ordered);
            assert_eq!(
                more(&db, &look).await,
                1,
                "the last event is after the cursor"
            );
            let plan: Vec<String> = sqlx::query(&format!("{explain} {look}"))
                .bind("p")
                .fetch_all(&db.pool)
                .await
                .unwrap()
                .iter()
                .map(|row| row.try_get::<String, _>(column).unwrap())
                .collect();
            assert!(
                plan.iter().any(|line| line.contains(searched)) && !walks_the_log(&plan),
                "ordered: {ordered}; the look reads the log otherwise than by `{searched}`:\n{}",
                plan.join("\n")
            );
        }
        let moved = "UPDATE outbox_cursors SET txid = $1, event_id = $1 WHERE plugin = 'p'";
        sqlx::query(moved)
            .bind(EVENTS)
            .execute(&db.pool)
            .await
            .unwrap();
        for ordered in [false, true] {
            let look = look_sql(dialect, ordered);
            assert_eq!(more(&db, &look).await, 0, "nothing after the last event");
        }
        db.close().await;
    }

    /// Whether `plan` reads the log `e` other than by a search of one of
    /// its indexes: a scan of the table, or of an index with no condition.
    fn walks_the_log(plan: &[String]) -> bool {
        plan.iter().enumerate().any(|(i, line)| {
            let line = line.trim_start().trim_start_matches("->  ");
            line.starts_with("SCAN e")
                || (line.contains(" on outbox_events e")
                    && !plan
                        .get(i + 1)
                        .is_some_and(|next| next.contains("Index Cond")))
        })
    }

    /// The look's `more` for plugin `p`.
    async fn more(db: &Db, look: &str) -> i64 {
        let row = sqlx::query(look)
            .bind("p")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        row.try_get("more").unwrap()
    }
}
