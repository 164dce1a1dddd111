//! The concurrency claims, taken to their edges: many clients released at
//! once on the same rows, through the real app with every shipped plugin
//! (three instances on one PostgreSQL database, one on SQLite), then the
//! database and the API checked for exact rows, memberships, audit entries
//! and outbox events per real change.
//!
//! The docs checked (README "The HTTP API", "The shipped plugins";
//! ARCHITECTURE "The unit of work"): "Every operation behaves as if it ran
//! alone", "Concurrent requests on the same rows end as if they had come one
//! after the other", "PostgreSQL: every unit of work is SERIALIZABLE, and an
//! operation that loses a race ... is rolled back and run again whole ...
//! then 503", the shipped plugins' invariants (autoinvite, parent_access,
//! child_removal, audit_log "records every change ... in the operation's
//! transaction").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use e2e_tests::receiver::Receiver;
use e2e_tests::*;
use serde_json::{Value, json};

/// Retries enough that contention never turns into 503s here, and few
/// writing connections per instance (three instances share one server's
/// connection limit with other tests).
const DATABASE: &str = "[database]\nmax_attempts = 40\nbackoff_ms = 2\nwriters = 4\n";

/// Three instances on one PostgreSQL database (one on SQLite) with every
/// shipped plugin, webhooks posting to a receiver, so that every change
/// is recorded in the outbox.
struct Cluster {
    apps: Vec<TestApp>,
    receiver: Receiver,
}

impl Cluster {
    fn start(backend: Backend) -> Cluster {
        Cluster::with_database(backend, DATABASE)
    }

    fn with_database(backend: Backend, database: &str) -> Cluster {
        let receiver = Receiver::start();
        let config = format!(
            "{database}\n[plugins.webhooks]\nurl = \"{}\"\nsecret = \"race-secret\"\n\n\
             [deliveries]\nbackoff_ms = 50\npoll_ms = 100\n",
            receiver.url
        );
        let db = Arc::new(TestDb::create(backend));
        let options = Options::default()
            .real_app()
            .config(&config)
            .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap());
        let n = if backend == Backend::Postgres { 3 } else { 1 };
        let apps = (0..n)
            .map(|_| TestApp::start_on(db.clone(), &options))
            .collect();
        Cluster { apps, receiver }
    }

    fn db(&self) -> &TestDb {
        &self.apps[0].db
    }

    fn admin(&self) -> Client {
        self.apps[0].client.clone()
    }

    fn clients(&self) -> Vec<Client> {
        self.apps.iter().map(|a| a.client.clone()).collect()
    }
}

fn space(client: &Client, name: &str, access: &str, parent: Option<i64>) -> i64 {
    let body = json!({"name": name, "access": access, "parent_id": parent});
    id(&expect(201, client.post("/api/spaces", ADMIN, body)))
}

fn user(client: &Client, name: &str) -> i64 {
    id(&client.create_user(name))
}

fn member(space: i64, user: i64) -> String {
    format!("/api/spaces/{space}/members/{user}")
}

fn put(client: &Client, space: i64, user: i64, role: &str) -> Response {
    client.put(&member(space, user), ADMIN, json!({"role": role}))
}

/// `SELECT COUNT(*) FROM <from_where>`.
fn count(db: &TestDb, from_where: &str) -> i64 {
    db.count(&format!("SELECT COUNT(*) FROM {from_where}"))
}

/// Audit entries of `kind` about `entity` (`space 3 user 5`).
fn audit(db: &TestDb, kind: &str, entity: &str) -> i64 {
    count(
        db,
        &format!("plugin_audit_log_entries WHERE kind = '{kind}' AND entity = '{entity}'"),
    )
}

fn sorted(mut statuses: Vec<u16>) -> Vec<u16> {
    statuses.sort_unstable();
    statuses
}

/// Replays a history of `(verb, entity)` (`created`, `modified`,
/// `deleted`) in its order, as one serial order of changes: an entity is
/// created while absent, changed and deleted while present; a user or a
/// space (whose ids are never reused) is created once. The entities present
/// at its end.
#[track_caller]
fn replay(what: &str, history: &[(String, String)]) -> BTreeSet<String> {
    let mut present = BTreeSet::new();
    let mut ever = BTreeSet::new();
    for (verb, entity) in history {
        let here = present.contains(entity);
        match verb.as_str() {
            "created" => {
                assert!(!here, "{what}: {entity} created while it existed");
                let reusable = entity.contains(" user ");
                assert!(
                    reusable || ever.insert(entity.clone()),
                    "{what}: {entity} created twice"
                );
                present.insert(entity.clone());
            }
            "modified" => assert!(here, "{what}: {entity} changed while it did not exist"),
            "deleted" => {
                assert!(here, "{what}: {entity} deleted while it did not exist");
                present.remove(entity);
            }
            other => panic!("{what}: {other}"),
        }
    }
    present
}

/// The invariants every race must leave, read from the database:
/// - the audit log, in its order, and the outbox, in the log's (commit)
///   order, are each a serial history of the changes (see [`replay`]) that
///   ends in the rows there are: nothing exists that was not recorded as
///   created, nothing recorded as existing is missing;
/// - the outbox holds one event per audit entry, kind by kind;
/// - no space's parent is missing and the tree has no cycle.
fn check_ledger(db: &TestDb) {
    let mut kinds: BTreeMap<String, i64> = BTreeMap::new();
    let mut audited = Vec::new();
    for entry in db.column("SELECT kind || '|' || entity FROM plugin_audit_log_entries ORDER BY id")
    {
        let (kind, entity) = entry.split_once('|').expect("kind|entity");
        let (noun, verb) = kind.rsplit_once('_').expect("a kind");
        *kinds.entry(format!("{noun}.{verb}")).or_default() += 1;
        audited.push((verb.to_owned(), entity.to_owned()));
    }
    let rows: BTreeSet<String> = [
        "SELECT 'user ' || CAST(id AS TEXT) FROM users",
        "SELECT 'space ' || CAST(id AS TEXT) FROM spaces",
        "SELECT 'space ' || CAST(space_id AS TEXT) || ' user ' || CAST(user_id AS TEXT) FROM memberships",
    ]
    .iter()
    .flat_map(|sql| db.column(sql))
    .collect();
    assert_eq!(
        replay("the audit log", &audited),
        rows,
        "the audit log's end against the rows"
    );
    let logged: Vec<(String, String)> = db
        .column("SELECT change FROM outbox_events ORDER BY txid, id")
        .iter()
        .map(|text| {
            let change: Value = serde_json::from_str(text).expect("a change");
            let event = change["event"].as_str().expect("an event");
            let (noun, verb) = event.split_once('.').expect("noun.verb");
            let data = &change["data"];
            let it = if data["before"].is_object() {
                &data["after"]
            } else {
                data
            };
            let entity = match noun {
                "membership" => format!("space {} user {}", it["space_id"], it["user_id"]),
                _ => format!("{noun} {}", it["id"]),
            };
            (verb.to_owned(), entity)
        })
        .collect();
    assert_eq!(
        replay("the outbox", &logged),
        rows,
        "the outbox's end against the rows"
    );
    let mut events: BTreeMap<String, i64> = BTreeMap::new();
    for name in db.column("SELECT event_name FROM outbox_events") {
        *events.entry(name).or_default() += 1;
    }
    assert_eq!(
        events, kinds,
        "outbox events against audit entries, by kind"
    );
    assert_eq!(
        count(
            db,
            "spaces s WHERE s.parent_id IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM spaces p WHERE p.id = s.parent_id)"
        ),
        0,
        "a space whose parent does not exist"
    );
    let parents: BTreeMap<i64, i64> = db
        .column(
            "SELECT CAST(id AS TEXT) || ':' || CAST(COALESCE(parent_id, 0) AS TEXT) FROM spaces",
        )
        .iter()
        .map(|pair| {
            let (id, parent) = pair.split_once(':').unwrap();
            (id.parse().unwrap(), parent.parse().unwrap())
        })
        .collect();
    for start in parents.keys() {
        let (mut at, mut steps) = (*start, 0);
        while at != 0 {
            at = parents[&at];
            steps += 1;
            assert!(
                steps <= parents.len(),
                "space {start} is in a cycle: {parents:?}"
            );
        }
    }
}

/// parent_access: every member of a sub-space is a member of its parent.
fn members_of_children_are_members_of_parents(db: &TestDb) -> i64 {
    count(
        db,
        "memberships m JOIN spaces s ON s.id = m.space_id WHERE s.parent_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM memberships p \
         WHERE p.space_id = s.parent_id AND p.user_id = m.user_id)",
    )
}

/// autoinvite: the (user, open space) pairs without a membership.
fn users_missing_from_open_spaces(db: &TestDb) -> i64 {
    count(
        db,
        "users u, spaces s WHERE s.access = 'open' AND NOT EXISTS \
         (SELECT 1 FROM memberships m WHERE m.space_id = s.id AND m.user_id = u.id)",
    )
}

/// Through the API, on every instance: the spaces listed are the
/// database's, each readable with the parent the database has, and each
/// member list is the database's.
fn api_agrees(cluster: &Cluster) {
    let db = cluster.db();
    let spaces: Vec<String> =
        db.column("SELECT CAST(id AS TEXT) || ':' || CAST(COALESCE(parent_id, 0) AS TEXT) FROM spaces ORDER BY id");
    assert!(spaces.len() < 500, "one page");
    for app in &cluster.apps {
        let listed = expect(200, app.get("/api/spaces?limit=500", ADMIN));
        let listed: Vec<String> = listed
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| format!("{}:{}", s["id"], s["parent_id"].as_i64().unwrap_or(0)))
            .collect();
        assert_eq!(listed, spaces);
        for pair in &spaces {
            let (space, parent) = pair.split_once(':').unwrap();
            let one = expect(200, app.get(&format!("/api/spaces/{space}"), ADMIN));
            assert_eq!(one["parent_id"].as_i64().unwrap_or(0).to_string(), parent);
            let members = expect(
                200,
                app.get(&format!("/api/spaces/{space}/members?limit=500"), ADMIN),
            );
            let in_db = count(db, &format!("memberships WHERE space_id = {space}"));
            assert_eq!(members.as_array().expect("a list").len() as i64, in_db);
        }
    }
}

/// After-commit: every event of the outbox reaches the receiver (at least
/// once, as each `Idempotency-Key` names one event), and no key names an
/// event the log does not hold.
fn deliveries_match_the_log(cluster: &Cluster) {
    let keys: BTreeSet<String> = cluster
        .db()
        .column("SELECT event_key FROM outbox_events")
        .into_iter()
        .collect();
    let got = || -> BTreeSet<String> {
        let received = cluster.receiver.received();
        received.into_iter().map(|r| r.key).collect()
    };
    wait_until("every event at the receiver", || got().len() >= keys.len());
    assert_eq!(got(), keys, "the receiver's keys against the outbox's");
}

/// A membership's history in the outbox, in the log's (commit) order:
/// `(event, before role, after role)`.
fn membership_history(db: &TestDb, space: i64, user: i64) -> Vec<(String, String, String)> {
    db.column(
        "SELECT change FROM outbox_events WHERE event_name LIKE 'membership.%' ORDER BY txid, id",
    )
    .iter()
    .map(|text| serde_json::from_str::<Value>(text).expect("a change"))
    .filter_map(|change| {
        let data = &change["data"];
        let it = if data["before"].is_object() {
            &data["after"]
        } else {
            data
        };
        (it["space_id"] == space && it["user_id"] == user).then(|| {
            let role = |v: &Value| v["role"].as_str().unwrap_or_default().to_owned();
            let event = change["event"].as_str().unwrap_or_default().to_owned();
            (event, role(&data["before"]), role(it))
        })
    })
    .collect()
}

e2e! {
    /// "Every operation behaves as if it ran alone" (ARCHITECTURE, "The unit
    /// of work"), for moves: A under B and B under A at the same moment (and
    /// three spaces moved in a ring) end as one after the other would: the
    /// first moves, the last is refused (422 naming `parent_id`: "a space
    /// cannot be placed inside itself or its sub-spaces"), never a cycle.
    fn spaces_moved_under_each_other_at_once_never_form_a_cycle(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        for round in 0..6 {
            let ring = if round % 2 == 0 { 2 } else { 3 };
            let spaces: Vec<i64> = (0..ring)
                .map(|k| space(&admin, &format!("ring{round}-{k}"), "confidential", None))
                .collect();
            let clients = cluster.clients();
            let ids = spaces.clone();
            let answers = at_once(ring, move |i| {
                let (moved, under) = (ids[i], ids[(i + 1) % ids.len()]);
                let client = &clients[i % clients.len()];
                client.patch(&format!("/api/spaces/{moved}"), ADMIN, json!({"parent_id": under}))
            });
            let statuses = sorted(answers.iter().map(|a| a.0).collect());
            let mut serial = vec![200; ring - 1];
            serial.push(422);
            assert_eq!(statuses, serial, "round {round}: {answers:?}");
            for (status, body) in &answers {
                if *status == 422 {
                    assert_eq!(body["error"]["field"], "parent_id", "{body}");
                }
            }
            let db = cluster.db();
            let modified: i64 = spaces.iter().map(|s| audit(db, "space_modified", &format!("space {s}"))).sum();
            assert_eq!(modified, ring as i64 - 1, "round {round}: one entry per move made");
            let tops = count(db, &format!(
                "spaces WHERE parent_id IS NULL AND id IN ({})",
                spaces.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            ));
            assert_eq!(tops, 1, "round {round}: the ring's one top space");
            check_ledger(db);
        }
        api_agrees(&cluster);
        deliveries_match_the_log(&cluster);
    }

    /// "A request that lost a race with a related one ... answers 404 or 422
    /// naming the resource, never 500", and the API table's "delete (with its
    /// sub-spaces and memberships, each firing its hook)": a space moved under
    /// a grandchild of a space being deleted, and one created under its
    /// child, either go with it (the move or the creation came first) or are
    /// refused with 422 `parent_id`; no row is left under a missing parent.
    fn moves_and_creations_under_a_tree_being_deleted_end_whole(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        let ann = user(&admin, "ann");
        for round in 0..5 {
            let top = space(&admin, &format!("top{round}"), "confidential", None);
            let child = space(&admin, &format!("child{round}"), "confidential", Some(top));
            let grandchild = space(&admin, &format!("grand{round}"), "confidential", Some(child));
            let moved = space(&admin, &format!("moved{round}"), "confidential", None);
            expect(201, put(&admin, moved, ann, "contributor"));
            expect(201, put(&admin, grandchild, ann, "reader"));
            let clients = cluster.clients();
            let answers = at_once(3, move |i| {
                let client = &clients[i % clients.len()];
                match i {
                    0 => client.delete(&format!("/api/spaces/{top}"), ADMIN),
                    1 => client.patch(&format!("/api/spaces/{moved}"), ADMIN, json!({"parent_id": grandchild})),
                    _ => client.post(
                        "/api/spaces",
                        ADMIN,
                        json!({"name": format!("late{round}"), "access": "open", "parent_id": child}),
                    ),
                }
            });
            assert_eq!(answers[0].0, 204, "delete: {}", answers[0].1);
            for (status, body) in &answers[1..] {
                assert!(*status == 200 || *status == 201 || *status == 422, "{status} {body}");
                if *status == 422 {
                    assert_eq!(body["error"]["field"], "parent_id", "{body}");
                }
            }
            let db = cluster.db();
            let moved_went = answers[1].0 == 200;
            let late = (answers[2].0 == 201).then(|| id(&answers[2].1));
            assert_eq!(count(db, &format!("spaces WHERE id IN ({top}, {child}, {grandchild})")), 0);
            assert_eq!(count(db, &format!("spaces WHERE id = {moved}")), i64::from(!moved_went));
            if let Some(late) = late {
                assert_eq!(count(db, &format!("spaces WHERE id = {late}")), 0, "round {round}");
            }
            if !moved_went {
                assert_eq!(count(db, &format!("spaces WHERE id = {moved} AND parent_id IS NULL")), 1);
            }
            // Ann's membership of the moved space goes with it, or stays.
            assert_eq!(count(db, &format!("memberships WHERE space_id = {moved}")), i64::from(!moved_went));
            let deleted = 3 + i64::from(moved_went) + i64::from(late.is_some());
            let label = |s: i64| format!("space {s}");
            let mut gone = vec![top, child, grandchild, moved];
            gone.extend(late);
            let entries: i64 = gone.iter().map(|s| audit(db, "space_deleted", &label(*s))).sum();
            assert_eq!(entries, deleted, "round {round}: {answers:?}");
            check_ledger(db);
        }
        api_agrees(&cluster);
        deliveries_match_the_log(&cluster);
    }

    /// "DELETE /api/users/:id: 204; removes their memberships first (each
    /// fires its hook)", raced by additions of that user to spaces (nested
    /// ones, so parent_access adds more), a key minted for them (api_keys:
    /// "a user's keys are deleted with the user") and a change of the user: the
    /// additions answer 200, 201 or 404 naming the user, and no membership
    /// of the deleted user remains, in the database or through the API.
    fn a_user_deleted_while_joining_spaces_keeps_no_membership(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        let stays = user(&admin, "stays");
        for round in 0..5 {
            let top = space(&admin, &format!("t{round}"), "confidential", None);
            let mid = space(&admin, &format!("m{round}"), "confidential", Some(top));
            let low = space(&admin, &format!("l{round}"), "confidential", Some(mid));
            let side = space(&admin, &format!("s{round}"), "confidential", None);
            let gone = user(&admin, &format!("gone{round}"));
            expect(201, put(&admin, mid, gone, "reader"));
            let clients = cluster.clients();
            let answers = at_once(7, move |i| {
                let client = &clients[i % clients.len()];
                match i {
                    0 => client.delete(&format!("/api/users/{gone}"), ADMIN),
                    6 => client.post("/plugins/api_keys/keys", ADMIN, json!({"user_id": gone})),
                    1 => put(client, low, gone, "contributor"),
                    2 => put(client, side, gone, "reader"),
                    3 => put(client, mid, gone, "space_manager"),
                    4 => client.patch(&format!("/api/users/{gone}"), ADMIN, json!({"display_name": "Gone"})),
                    _ => put(client, side, stays, "reader"),
                }
            });
            assert_eq!(answers[0].0, 204, "{}", answers[0].1);
            for (status, body) in &answers[1..4] {
                assert!([200, 201, 404].contains(status), "{status} {body}");
                if *status == 404 {
                    let message = body["error"]["message"].as_str().unwrap_or_default();
                    assert!(message.contains("user"), "the 404 names the user: {body}");
                }
            }
            assert!([200, 404].contains(&answers[4].0), "{:?}", answers[4]);
            assert_eq!(answers[5].0, 201, "{}", answers[5].1);
            // api_keys: "a user's keys are deleted with the user": a key
            // minted at the same moment is gone too, and opens nothing.
            let (status, body) = &answers[6];
            assert!(*status == 201 || *status == 404, "{status} {body}");
            if let Some(key) = body["key"].as_str() {
                let (status, body) = admin.get(&format!("/api/users/{stays}"), Some(key));
                assert_eq!(status, 401, "a deleted user's key still signs in: {body}");
            }
            let db = cluster.db();
            assert_eq!(count(db, &format!("plugin_api_keys_keys WHERE user_id = {gone}")), 0, "round {round}: {answers:?}");
            assert_eq!(count(db, &format!("memberships WHERE user_id = {gone}")), 0, "round {round}");
            assert_eq!(count(db, &format!("users WHERE id = {gone}")), 0);
            assert_eq!(count(db, &format!("memberships WHERE user_id = {stays} AND space_id = {side}")), 1);
            expect_error(404, "not_found", admin.get(&format!("/api/users/{gone}"), ADMIN));
            assert_eq!(audit(db, "user_deleted", &format!("user {gone}")), 1);
            assert_eq!(
                audit(db, "user_modified", &format!("user {gone}")),
                i64::from(answers[4].0 == 200),
                "one entry per change made"
            );
            check_ledger(db);
            assert_eq!(members_of_children_are_members_of_parents(db), 0);
        }
        api_agrees(&cluster);
        deliveries_match_the_log(&cluster);
    }

    /// "delete (with its sub-spaces and memberships, each firing its hook)"
    /// against a move of one of those sub-spaces out to the top at the same
    /// moment: either the delete came first (the move answers 404 naming the
    /// space, the sub-space and its memberships are gone) or the move did
    /// (the sub-space survives at the top with every membership it had).
    fn a_child_moved_out_of_a_space_being_deleted_survives_whole_or_goes_whole(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        let users: Vec<i64> = (0..3).map(|k| user(&admin, &format!("m{k}"))).collect();
        for round in 0..6 {
            let parent = space(&admin, &format!("p{round}"), "confidential", None);
            let child = space(&admin, &format!("c{round}"), "confidential", Some(parent));
            for u in &users {
                expect(201, put(&admin, child, *u, "contributor"));
            }
            let clients = cluster.clients();
            let answers = at_once(2, move |i| {
                let client = &clients[i % clients.len()];
                if i == 0 {
                    client.delete(&format!("/api/spaces/{parent}"), ADMIN)
                } else {
                    let top: Option<i64> = None;
                    client.patch(&format!("/api/spaces/{child}"), ADMIN, json!({"parent_id": top}))
                }
            });
            assert_eq!(answers[0].0, 204, "{}", answers[0].1);
            let db = cluster.db();
            match answers[1].0 {
                200 => {
                    assert_eq!(count(db, &format!("spaces WHERE id = {child} AND parent_id IS NULL")), 1);
                    assert_eq!(count(db, &format!("memberships WHERE space_id = {child}")), 3, "{answers:?}");
                }
                404 => {
                    let message = answers[1].1["error"]["message"].as_str().unwrap_or_default();
                    assert!(message.contains("space"), "{answers:?}");
                    assert_eq!(count(db, &format!("spaces WHERE id = {child}")), 0);
                    assert_eq!(count(db, &format!("memberships WHERE space_id = {child}")), 0);
                }
                other => panic!("the move answered {other}: {answers:?}"),
            }
            assert_eq!(count(db, &format!("spaces WHERE id = {parent}")), 0);
            assert_eq!(count(db, &format!("memberships WHERE space_id = {parent}")), 0);
            check_ledger(db);
            assert_eq!(members_of_children_are_members_of_parents(db), 0);
        }
        api_agrees(&cluster);
        deliveries_match_the_log(&cluster);
    }

    /// "Concurrent requests on the same rows end as if they had come one
    /// after the other ... a membership PUT is idempotent", "deleting what is
    /// already gone is 404 and fires nothing", and ARCHITECTURE's "The
    /// events are a log in commit order": role changes and removals of one
    /// membership at once leave a history that replays as one serial order
    /// (each creation of an absent membership, each change of a present one
    /// to another role, each removal of a present one), whose end is the
    /// row; its counts are the answers' (201s, 204s), the audit log's and
    /// the outbox's.
    fn role_changes_and_removals_of_one_membership_replay_as_one_history(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        let team = space(&admin, "team", "confidential", None);
        const ROLES: [&str; 4] = ["contributor", "content_manager", "space_manager", "reader"];
        for round in 0..4 {
            let who = user(&admin, &format!("churn{round}"));
            expect(201, put(&admin, team, who, "reader"));
            let clients = cluster.clients();
            let answers = at_once(8, move |i| {
                let client = &clients[i % clients.len()];
                if i >= 6 {
                    client.delete(&member(team, who), ADMIN)
                } else {
                    put(client, team, who, ROLES[i % 4])
                }
            });
            let (mut created, mut removed) = (1, 0);
            for (i, (status, body)) in answers.iter().enumerate() {
                if i >= 6 {
                    assert!(*status == 204 || *status == 404, "{status} {body}");
                    removed += i64::from(*status == 204);
                } else {
                    assert!(*status == 200 || *status == 201, "{status} {body}");
                    assert_eq!(body["role"], ROLES[i % 4], "{body}");
                    created += i64::from(*status == 201);
                }
            }
            assert!(removed >= 1, "the first removal found the member: {answers:?}");
            let db = cluster.db();
            let history = membership_history(db, team, who);
            let mut state: Option<String> = None;
            let mut changes = 0;
            for (event, before, after) in &history {
                match event.as_str() {
                    "membership.created" => {
                        assert_eq!(state, None, "created while present: {history:?}");
                        state = Some(after.clone());
                    }
                    "membership.modified" => {
                        assert_eq!(state.as_ref(), Some(before), "changed from a role it did not have: {history:?}");
                        assert_ne!(before, after, "a change that changed nothing: {history:?}");
                        state = Some(after.clone());
                        changes += 1;
                    }
                    "membership.deleted" => {
                        assert!(state.is_some(), "removed while absent: {history:?}");
                        state = None;
                    }
                    other => panic!("{other}"),
                }
            }
            let row = db.column(&format!("SELECT role FROM memberships WHERE space_id = {team} AND user_id = {who}"));
            assert_eq!(row.first(), state.as_ref(), "the row against the history {history:?}");
            let label = format!("space {team} user {who}");
            let kinds = |kind: &str| history.iter().filter(|h| h.0 == kind).count() as i64;
            assert_eq!(kinds("membership.created"), created, "{history:?} {answers:?}");
            assert_eq!(kinds("membership.deleted"), removed, "{history:?} {answers:?}");
            assert_eq!(audit(db, "membership_created", &label), created);
            assert_eq!(audit(db, "membership_deleted", &label), removed);
            assert_eq!(audit(db, "membership_modified", &label), changes);
            let listed = expect(200, admin.get(&format!("/api/spaces/{team}/members?limit=500"), ADMIN));
            let role = listed.as_array().unwrap().iter().find(|m| m["user_id"] == who).map(|m| m["role"].as_str().unwrap().to_owned());
            assert_eq!(role, state);
            check_ledger(db);
        }
        deliveries_match_the_log(&cluster);
    }

    /// "409 duplicate username or email (with `field`)" under "end as if they
    /// had come one after the other": users renamed to one name at once, and
    /// users created with one name (or one email) at once: exactly one
    /// succeeds, every other answers 409 naming the field, and the losers
    /// leave nothing (no user, no autoinvite membership, no entry).
    fn one_name_claimed_by_many_at_once_goes_to_exactly_one(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        let lobby = space(&admin, "lobby", "open", None);
        const N: usize = 6;
        for round in 0..3 {
            let users: Vec<i64> = (0..N).map(|k| user(&admin, &format!("r{round}k{k}"))).collect();
            let clients = cluster.clients();
            let ids = users.clone();
            let taken = format!("taken{round}");
            let name = taken.clone();
            let renames = at_once(N, move |i| {
                let client = &clients[i % clients.len()];
                client.patch(&format!("/api/users/{}", ids[i]), ADMIN, json!({"username": name}))
            });
            let winners: Vec<usize> = (0..N).filter(|i| renames[*i].0 == 200).collect();
            assert_eq!(winners.len(), 1, "{renames:?}");
            for (status, body) in &renames {
                if *status != 200 {
                    assert_eq!(*status, 409, "{body}");
                    assert_eq!(body["error"]["code"], "conflict", "{body}");
                    assert_eq!(body["error"]["field"], "username", "{body}");
                }
            }
            let db = cluster.db();
            assert_eq!(
                db.column(&format!("SELECT CAST(id AS TEXT) FROM users WHERE username = '{taken}'")),
                [users[winners[0]].to_string()]
            );
            let modified: i64 = users.iter().map(|u| audit(db, "user_modified", &format!("user {u}"))).sum();
            assert_eq!(modified, 1, "one entry for the one rename");
            for field in ["username", "email"] {
                let clients = cluster.clients();
                let creations = at_once(N, move |i| {
                    let client = &clients[i % clients.len()];
                    let (username, email) = match field {
                        "username" => (format!("dup{round}"), format!("dup{round}-{i}@example.org")),
                        _ => (format!("mail{round}-{i}"), format!("mail{round}@example.org")),
                    };
                    client.post("/api/users", ADMIN, json!({"username": username, "email": email}))
                });
                let statuses = sorted(creations.iter().map(|c| c.0).collect());
                assert_eq!(statuses, [201, 409, 409, 409, 409, 409], "{creations:?}");
                for (status, body) in &creations {
                    if *status == 409 {
                        assert_eq!(body["error"]["field"], field, "{body}");
                    }
                }
            }
            let users = count(db, "users");
            assert_eq!(users, (N as i64 + 2) * (round + 1));
            assert_eq!(count(db, &format!("memberships WHERE space_id = {lobby}")), users);
            assert_eq!(users_missing_from_open_spaces(db), 0);
            assert_eq!(count(db, "plugin_audit_log_entries WHERE kind = 'user_created'"), users);
            check_ledger(db);
        }
        deliveries_match_the_log(&cluster);
    }

    /// Space names are not unique (the docs name 409 "duplicate username or
    /// email" only): different spaces renamed to one name at once all answer
    /// 200 and all have it, each with one entry and one event.
    fn spaces_renamed_to_one_name_at_once_all_have_it(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        let spaces: Vec<i64> = (0..6).map(|k| space(&admin, &format!("s{k}"), "on_request", None)).collect();
        let clients = cluster.clients();
        let ids = spaces.clone();
        let answers = at_once(6, move |i| {
            clients[i % clients.len()].patch(&format!("/api/spaces/{}", ids[i]), ADMIN, json!({"name": "same"}))
        });
        assert_eq!(sorted(answers.iter().map(|a| a.0).collect()), [200; 6], "{answers:?}");
        let db = cluster.db();
        assert_eq!(count(db, "spaces WHERE name = 'same'"), 6);
        assert_eq!(count(db, "plugin_audit_log_entries WHERE kind = 'space_modified'"), 6);
        check_ledger(db);
        deliveries_match_the_log(&cluster);
    }

    /// "a hook fires once per real change" / audit_log "records every
    /// change": one space (and one user) renamed to one new name by six
    /// clients at once is changed once, as six requests one after the other
    /// would change it once; the API's other repeated request that changes
    /// nothing (a membership PUT with the role it has) fires nothing. The
    /// docs do not say what a PATCH that changes nothing fires.
    fn one_entity_renamed_to_one_name_by_many_records_one_change(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        let one = space(&admin, "before", "on_request", None);
        let ann = user(&admin, "ann");
        let clients = cluster.clients();
        let answers = at_once(12, move |i| {
            let client = &clients[i % clients.len()];
            if i % 2 == 0 {
                client.patch(&format!("/api/spaces/{one}"), ADMIN, json!({"name": "renamed"}))
            } else {
                client.patch(&format!("/api/users/{ann}"), ADMIN, json!({"username": "anna"}))
            }
        });
        for (status, body) in &answers {
            assert_eq!(*status, 200, "{body}");
        }
        let db = cluster.db();
        check_ledger(db);
        assert_eq!(audit(db, "space_modified", &format!("space {one}")), 1, "one rename made");
        assert_eq!(audit(db, "user_modified", &format!("user {ann}")), 1, "one rename made");
        assert_eq!(count(db, "outbox_events WHERE event_name LIKE '%.modified'"), 2);
    }

    /// parent_access ("a member of a space becomes a member of every ancestor
    /// space too") and child_removal ("a user removed from a space is removed
    /// from its sub-spaces too") under racing joins of the deepest spaces and
    /// leaves of their ancestors: afterwards every member of a sub-space is a
    /// member of its parent, and the audit log is each membership's history.
    fn joins_of_children_racing_leaves_of_parents_keep_parent_access(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        let top = space(&admin, "top", "confidential", None);
        let mid = space(&admin, "mid", "confidential", Some(top));
        let low = space(&admin, "low", "confidential", Some(mid));
        let side = space(&admin, "side", "confidential", Some(top));
        let users: Vec<i64> = (0..3).map(|k| user(&admin, &format!("kid{k}"))).collect();
        for round in 0..5 {
            let clients = cluster.clients();
            let ids = users.clone();
            let answers = at_once(12, move |i| {
                let client = &clients[i % clients.len()];
                let who = ids[i % 3];
                match (i / 3 + round) % 4 {
                    0 => put(client, low, who, "contributor"),
                    1 => client.delete(&member(top, who), ADMIN),
                    2 => put(client, side, who, "reader"),
                    _ => client.delete(&member(mid, who), ADMIN),
                }
            });
            for (status, body) in &answers {
                assert!([200, 201, 204, 404].contains(status), "{status} {body}");
            }
            let db = cluster.db();
            assert_eq!(members_of_children_are_members_of_parents(db), 0, "round {round}: {answers:?}");
            check_ledger(db);
        }
        api_agrees(&cluster);
        deliveries_match_the_log(&cluster);
    }

    /// "DELETE /api/spaces/:id ... (with its sub-spaces and memberships, each
    /// firing its hook)" and autoinvite ("a new user joins every open space")
    /// at once: an open space with many members (and an open sub-space) is
    /// deleted while users are created (autoinvite puts them in it), members
    /// are added to its sub-space and one leaves: every creation answers 201
    /// as alone, nothing of the deleted spaces remains, every user is in
    /// every open space left, and the counts are exact.
    fn an_open_space_deleted_while_users_arrive_leaves_nothing_behind(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        let lobby = space(&admin, "lobby", "open", None);
        let first: Vec<i64> = (0..10).map(|k| user(&admin, &format!("old{k}"))).collect();
        for round in 0..3 {
            let doomed = space(&admin, &format!("doomed{round}"), "open", None);
            let sub = space(&admin, &format!("sub{round}"), "open", Some(doomed));
            let before = count(cluster.db(), "users");
            assert_eq!(count(cluster.db(), &format!("memberships WHERE space_id = {doomed}")), before);
            let clients = cluster.clients();
            let old = first.clone();
            let answers = at_once(8, move |i| {
                let client = &clients[i % clients.len()];
                match i {
                    0 => vec![client.delete(&format!("/api/spaces/{doomed}"), ADMIN)],
                    1..=4 => (0..3)
                        .map(|k| {
                            let name = format!("new{round}-{i}-{k}");
                            let body = json!({"username": name, "email": format!("{name}@example.org")});
                            client.post("/api/users", ADMIN, body)
                        })
                        .collect(),
                    5 | 6 => old[(i - 5) * 3..(i - 5) * 3 + 3]
                        .iter()
                        .map(|u| put(client, sub, *u, "contributor"))
                        .collect(),
                    _ => vec![client.delete(&member(doomed, old[9]), ADMIN)],
                }
            });
            assert_eq!(answers[0][0].0, 204, "{}", answers[0][0].1);
            for (status, body) in answers[1..=4].iter().flatten() {
                assert_eq!(*status, 201, "a creation answers as alone: {body}");
            }
            for (status, body) in answers[5..=6].iter().flatten() {
                assert!([200, 404].contains(status), "{status} {body}");
            }
            assert!([204, 404].contains(&answers[7][0].0), "{:?}", answers[7]);
            let db = cluster.db();
            assert_eq!(count(db, &format!("spaces WHERE id IN ({doomed}, {sub})")), 0);
            assert_eq!(count(db, &format!("memberships WHERE space_id IN ({doomed}, {sub})")), 0);
            let users = count(db, "users");
            assert_eq!(users, before + 12);
            assert_eq!(count(db, &format!("memberships WHERE space_id = {lobby}")), users);
            assert_eq!(count(db, "memberships"), users, "everyone in the lobby, nowhere else");
            assert_eq!(users_missing_from_open_spaces(db), 0);
            for s in [doomed, sub] {
                let created = count(db, &format!("plugin_audit_log_entries WHERE kind = 'membership_created' AND entity LIKE 'space {s} user %'"));
                let deleted = count(db, &format!("plugin_audit_log_entries WHERE kind = 'membership_deleted' AND entity LIKE 'space {s} user %'"));
                assert_eq!(created, deleted, "space {s}: every membership made was removed, once");
                assert!(created >= before, "space {s}: {created} memberships for {before} users");
            }
            check_ledger(db);
        }
        api_agrees(&cluster);
        deliveries_match_the_log(&cluster);
    }

    /// "[database] max_attempts: runs in all; then 503 with Retry-After,
    /// nothing written" and "SQLite: writers queue in the app": with one run
    /// allowed, heavily colliding creations (users and open spaces, which
    /// autoinvite joins to each other) and deletions of spaces with members
    /// answer 201/204 or, on PostgreSQL only, 503 `busy` with `Retry-After`;
    /// a 503 leaves no row, entry or event of its operation (a half-deleted
    /// space would show in the ledger), and every instance counts it as given
    /// up. On SQLite, nothing collides: no 503 at all.
    fn operations_that_give_up_leave_no_partial_rows(backend) {
        let cluster = Cluster::with_database(backend, "[database]\nmax_attempts = 1\n");
        let admin = cluster.admin();
        let mut gave_up = 0;
        let mut made_users = BTreeSet::new();
        for round in 0..4 {
            let victims: Vec<i64> = (0..2).map(|k| space(&admin, &format!("victim{round}-{k}"), "open", None)).collect();
            let clients = cluster.clients();
            let answers = at_once(10, move |i| {
                let client = &clients[i % clients.len()];
                (0..4)
                    .map(|k| {
                        let name = format!("c{round}-{i}-{k}");
                        let (what, path) = match (i % 5, k) {
                            (0, 0) => (format!("delete {}", victims[i / 5]), format!("/api/spaces/{}", victims[i / 5])),
                            (0, _) => (format!("space {name}"), "/api/spaces".to_owned()),
                            _ => (format!("user {name}"), "/api/users".to_owned()),
                        };
                        let body = if what.starts_with("space") {
                            Some(json!({"name": name, "access": "open"}).to_string())
                        } else if what.starts_with("user") {
                            Some(json!({"username": name, "email": format!("{name}@example.org")}).to_string())
                        } else {
                            None
                        };
                        let method = if body.is_some() { "POST" } else { "DELETE" };
                        let whole = client.try_whole(method, &path, ADMIN, body.as_deref()).expect("an answer");
                        (what, whole)
                    })
                    .collect::<Vec<_>>()
            });
            for (what, whole) in answers.iter().flatten() {
                match whole.status {
                    201 | 204 => {
                        if let Some(name) = what.strip_prefix("user ") {
                            made_users.insert(name.to_owned());
                        }
                    }
                    503 => {
                        assert_eq!(backend, Backend::Postgres, "SQLite's writers queue: {what}: {}", whole.text);
                        assert_eq!(whole.body["error"]["code"], "busy", "{}", whole.text);
                        assert!(whole.header("retry-after").is_some(), "{what}: {:?}", whole.headers);
                        gave_up += 1;
                    }
                    other => panic!("{what}: {other} {}", whole.text),
                }
            }
            let db = cluster.db();
            let users: BTreeSet<String> = db.column("SELECT username FROM users").into_iter().collect();
            assert_eq!(users, made_users, "round {round}: the users are the 201s");
            assert_eq!(users_missing_from_open_spaces(db), 0);
            let (users, spaces) = (count(db, "users"), count(db, "spaces"));
            assert_eq!(count(db, "memberships"), users * spaces, "round {round}");
            check_ledger(db);
            if backend == Backend::Postgres && gave_up > 0 && round >= 1 {
                break;
            }
        }
        let counted: i64 = cluster
            .apps
            .iter()
            .map(|app| expect(200, app.get("/api/admin/plugins", ADMIN))["operations"]["gave_up"].as_i64().unwrap())
            .sum();
        assert_eq!(counted, gave_up, "every 503 counted as given up");
        if backend == Backend::Postgres {
            assert!(gave_up > 0, "no operation gave up: the path was not exercised");
        }
        deliveries_match_the_log(&cluster);
    }

    /// parent_access's invariant as the brief states it ("a member of a child
    /// space is a member of its parents") when a space is moved under a
    /// parent while users join it: the docs say only that a member "becomes"
    /// a member of every ancestor; a user would expect the members of a space
    /// moved under another to be members of their new ancestors too.
    fn a_space_moved_while_members_join_keeps_parent_access(backend) {
        let cluster = Cluster::start(backend);
        let admin = cluster.admin();
        let parent = space(&admin, "parent", "confidential", None);
        let moved = space(&admin, "moved", "confidential", None);
        let users: Vec<i64> = (0..4).map(|k| user(&admin, &format!("j{k}"))).collect();
        expect(201, put(&admin, moved, users[0], "reader"));
        let clients = cluster.clients();
        let ids = users.clone();
        let answers = at_once(4, move |i| {
            let client = &clients[i % clients.len()];
            if i == 0 {
                client.patch(&format!("/api/spaces/{moved}"), ADMIN, json!({"parent_id": parent}))
            } else {
                put(client, moved, ids[i], "contributor")
            }
        });
        for (status, body) in &answers {
            assert!(*status == 200 || *status == 201, "{status} {body}");
        }
        let db = cluster.db();
        check_ledger(db);
        assert_eq!(members_of_children_are_members_of_parents(db), 0, "{answers:?}");
    }
}
