//! Who may do what, taken to its edges: README's "Who may do what" table
//! and the sentences around it, ARCHITECTURE.md and the SDK's rustdoc
//! (hookspecs/src/context.rs, services.rs, authz.rs), checked end to end
//! on the real app (SQLite) with the shipped plugins, and on the test app
//! where a test plugin (`gate`, `tokens`) is needed.
//!
//! The usual cast, unless a test says otherwise: three nested confidential
//! spaces `g` > `p` > `c`; alice is `space_manager` of `g` (a manager above
//! `p` and `c`), bob a `reader` of `p`, carol `space_manager` of `c`, dave
//! in nothing. autoinvite and parent_access are disabled for it, so that the
//! memberships are exactly the ones the test made. Every refusal is checked
//! against a snapshot of the users, spaces, memberships, audit entries,
//! after-commit events and API keys: nothing written, no hook fired.

use e2e_tests::*;
use serde_json::{Value, json};

/// One test's app and its users, each with an API key (shipped api_keys).
struct World {
    app: TestApp,
    people: Vec<(String, i64, String)>,
}

/// The nested confidential spaces of the usual cast.
struct Tree {
    g: i64,
    p: i64,
    c: i64,
}

impl World {
    /// The real app with the shipped plugins but `disabled`, and `names`
    /// as users, each with a key minted by the admin.
    fn start(names: &[&str], disabled: &[&str]) -> World {
        let list: Vec<String> = disabled.iter().map(|d| format!("{d:?}")).collect();
        let options = Options::default()
            .real_app()
            .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap())
            .config(&format!("[plugins]\ndisabled = [{}]\n", list.join(", ")));
        let app = TestApp::start_with(Backend::Sqlite, options);
        let mut people = Vec::new();
        for name in names {
            let user = id(&app.create_user(name));
            let minted = expect(
                201,
                app.post("/plugins/api_keys/keys", ADMIN, json!({"user_id": user})),
            );
            let key = minted["key"].as_str().unwrap().to_owned();
            people.push(((*name).to_owned(), user, key));
        }
        World { app, people }
    }

    /// The usual cast (see the module's comment).
    fn cast() -> (World, Tree) {
        let w = World::start(
            &["alice", "bob", "carol", "dave"],
            &["autoinvite", "parent_access"],
        );
        let g = w.space("admin", "g", "confidential", None);
        let p = w.space("admin", "p", "confidential", Some(g));
        let c = w.space("admin", "c", "confidential", Some(p));
        w.member("admin", g, "alice", "space_manager");
        w.member("admin", p, "bob", "reader");
        w.member("admin", c, "carol", "space_manager");
        (w, Tree { g, p, c })
    }

    fn uid(&self, who: &str) -> i64 {
        self.people
            .iter()
            .find(|p| p.0 == who)
            .unwrap_or_else(|| panic!("no user {who}"))
            .1
    }

    fn token(&self, who: &str) -> Option<&str> {
        match who {
            "admin" => ADMIN,
            "none" => None,
            name => Some(
                self.people
                    .iter()
                    .find(|p| p.0 == name)
                    .unwrap_or_else(|| panic!("no user {name}"))
                    .2
                    .as_str(),
            ),
        }
    }

    fn send(&self, method: &str, path: &str, who: &str, body: Option<Value>) -> Response {
        self.app
            .request(method, path, self.token(who), body.as_ref())
    }

    /// `method path` as `who` answers `status`; its body.
    #[track_caller]
    fn ok(&self, status: u16, method: &str, path: &str, who: &str, body: Option<Value>) -> Value {
        let (got, answer) = self.send(method, path, who, body);
        assert_eq!(got, status, "{method} {path} as {who}: {answer}");
        answer
    }

    /// A space created by `who`; its id.
    #[track_caller]
    fn space(&self, who: &str, name: &str, access: &str, parent: Option<i64>) -> i64 {
        let body = json!({"name": name, "access": access, "parent_id": parent});
        id(&self.ok(201, "POST", "/api/spaces", who, Some(body)))
    }

    /// `user` made a member of `space` with `role` by `who` (201 or 200).
    #[track_caller]
    fn member(&self, who: &str, space: i64, user: &str, role: &str) {
        let path = format!("/api/spaces/{space}/members/{}", self.uid(user));
        let (status, body) = self.send("PUT", &path, who, Some(json!({"role": role})));
        assert!(
            status == 200 || status == 201,
            "PUT {path} as {who}: {body}"
        );
    }

    /// `user`'s role in `space`, from the database.
    fn role(&self, space: i64, user: &str) -> Option<String> {
        let uid = self.uid(user);
        self.app
            .db
            .column(&format!(
                "SELECT role FROM memberships WHERE space_id = {space} AND user_id = {uid}"
            ))
            .pop()
    }

    /// The ids `GET /api/spaces` shows `who`.
    #[track_caller]
    fn visible(&self, who: &str) -> Vec<i64> {
        let list = self.ok(200, "GET", "/api/spaces?limit=500", who, None);
        list.as_array()
            .unwrap_or_else(|| panic!("not a list: {list}"))
            .iter()
            .map(id)
            .collect()
    }

    /// Everything a refused request must leave as it was: the core rows,
    /// and how many audit entries, after-commit events and keys there are
    /// (an audit entry or an event would mean a hook fired).
    fn snapshot(&self) -> Vec<String> {
        let db = &self.app.db;
        let mut all = db.column(
            "SELECT CAST(id AS TEXT) || '|' || username || '|' || email || '|' || \
             COALESCE(display_name, '') FROM users ORDER BY id",
        );
        all.extend(db.column(
            "SELECT CAST(id AS TEXT) || '|' || name || '|' || access || '|' || default_role \
             || '|' || COALESCE(CAST(parent_id AS TEXT), '') FROM spaces ORDER BY id",
        ));
        all.extend(db.column(
            "SELECT CAST(space_id AS TEXT) || '|' || CAST(user_id AS TEXT) || '|' || role \
             FROM memberships ORDER BY space_id, user_id",
        ));
        for table in [
            "plugin_audit_log_entries",
            "outbox_events",
            "plugin_api_keys_keys",
        ] {
            let n = db.count(&format!("SELECT COUNT(*) FROM {table}"));
            all.push(format!("{table}: {n}"));
        }
        all
    }

    /// `method path` as `who` is refused with `status`, and nothing was
    /// written; the `error` object.
    #[track_caller]
    fn refused(
        &self,
        status: u16,
        method: &str,
        path: &str,
        who: &str,
        body: Option<Value>,
    ) -> Value {
        let before = self.snapshot();
        let (got, answer) = self.send(method, path, who, body);
        assert_eq!(got, status, "{method} {path} as {who}: {answer}");
        assert_eq!(
            self.snapshot(),
            before,
            "{method} {path} as {who} was refused ({got}) but wrote something"
        );
        let error = answer["error"].clone();
        let code = match status {
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            422 => "invalid",
            _ => panic!("not a refusal: {status}"),
        };
        assert_eq!(error["code"], code, "{method} {path} as {who}: {answer}");
        assert!(error["message"].is_string(), "{answer}");
        error
    }

    /// A 403 naming `action`, nothing written.
    #[track_caller]
    fn forbids(&self, action: &str, method: &str, path: &str, who: &str, body: Option<Value>) {
        let error = self.refused(403, method, path, who, body);
        assert_eq!(error["action"], action, "{method} {path} as {who}: {error}");
    }

    /// A 404 exactly as for a missing id, nothing written.
    #[track_caller]
    fn hides(&self, method: &str, path: &str, who: &str, body: Option<Value>) {
        let error = self.refused(404, method, path, who, body);
        assert!(
            !error.to_string().contains("forbidden") && error.get("action").is_none(),
            "a hidden resource says no more than a missing one: {error}"
        );
    }
}

/// The error object without its request id, as text.
fn bare(error: &Value) -> String {
    let mut error = error.clone();
    if let Some(map) = error.as_object_mut() {
        map.remove("request_id");
    }
    error.to_string()
}

const MISSING: i64 = 999_999;

/// README ("Who may do what"): "see a space | open and on-request spaces:
/// anyone signed in; confidential ones: their members and the
/// `space_manager`s above them (others get 404)"; README: "A page holds
/// what the caller may see". A reader of the middle space is a member, not a
/// manager above: the space below it stays hidden from him, and so does
/// the one above; a manager of the child alone sees nothing above it.
#[test]
fn nested_confidential_spaces_are_seen_by_their_members_and_the_managers_above_only() {
    let (w, Tree { g, p, c }) = World::cast();
    let o = w.space("admin", "open", "open", None);
    let r = w.space("admin", "on request", "on_request", None);
    let sees: [(&str, &[i64]); 5] = [
        ("admin", &[g, p, c, o, r]),
        ("alice", &[g, p, c, o, r]),
        ("bob", &[p, o, r]),
        ("carol", &[c, o, r]),
        ("dave", &[o, r]),
    ];
    for (who, seen) in sees {
        assert_eq!(w.visible(who), seen, "GET /api/spaces as {who}");
        for space in [g, p, c, o, r] {
            let path = format!("/api/spaces/{space}");
            if seen.contains(&space) {
                assert_eq!(id(&w.ok(200, "GET", &path, who, None)), space);
            } else {
                w.hides("GET", &path, who, None);
            }
        }
    }
    w.refused(401, "GET", &format!("/api/spaces/{o}"), "none", None);
}

/// README: "see the member list | the space's members and the
/// `space_manager`s above it"; a confidential space's list is as hidden as
/// the space (404), an open or on-request one's is refused (403 naming the
/// action) to one who sees the space but is no member of it.
#[test]
fn the_member_list_is_for_members_and_managers_above_and_hidden_with_its_space() {
    let (w, Tree { g, p, c }) = World::cast();
    let o = w.space("admin", "open", "open", None);
    let r = w.space("admin", "on request", "on_request", None);
    w.member("admin", o, "bob", "reader");
    w.member("admin", r, "carol", "reader");
    let list = |space: i64| format!("/api/spaces/{space}/members");
    let users = |answer: &Value| -> Vec<i64> {
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["user_id"].as_i64().unwrap())
            .collect()
    };
    for who in ["admin", "alice"] {
        for (space, members) in [(g, vec!["alice"]), (p, vec!["bob"]), (c, vec!["carol"])] {
            let shown = w.ok(200, "GET", &list(space), who, None);
            let expected: Vec<i64> = members.iter().map(|m| w.uid(m)).collect();
            assert_eq!(users(&shown), expected, "{who} lists {space}");
        }
    }
    w.ok(200, "GET", &list(p), "bob", None);
    w.ok(200, "GET", &list(c), "carol", None);
    w.ok(200, "GET", &list(o), "bob", None);
    w.ok(200, "GET", &list(r), "carol", None);
    for (who, space) in [
        ("bob", g),
        ("bob", c),
        ("carol", g),
        ("carol", p),
        ("dave", g),
        ("dave", p),
        ("dave", c),
    ] {
        w.hides("GET", &list(space), who, None);
    }
    for (who, space) in [
        ("dave", o),
        ("dave", r),
        ("alice", o),
        ("bob", r),
        ("carol", o),
    ] {
        w.forbids("member.list", "GET", &list(space), who, None);
    }
}

/// README: "change or delete a space, add members or change their roles |
/// a `space_manager` of the space or of one of its ancestors"; "create a
/// space | ... inside a parent: a `space_manager` of the parent or above
/// it", "who becomes its `space_manager`"; "remove a member | those
/// managers". alice manages only the top space, two levels up.
#[test]
fn a_manager_two_levels_up_manages_everything_below() {
    let (w, Tree { p, c, .. }) = World::cast();
    let dave = w.uid("dave");
    let carol = w.uid("carol");
    let renamed = w.ok(
        200,
        "PATCH",
        &format!("/api/spaces/{c}"),
        "alice",
        Some(json!({"name": "c by alice"})),
    );
    assert_eq!(renamed["name"], "c by alice");
    let path = format!("/api/spaces/{c}/members/{dave}");
    w.ok(201, "PUT", &path, "alice", Some(json!({"role": "reader"})));
    let changed = w.ok(
        200,
        "PUT",
        &path,
        "alice",
        Some(json!({"role": "contributor"})),
    );
    assert_eq!(changed["role"], "contributor");
    let s = w.space("alice", "s", "confidential", Some(c));
    assert_eq!(
        w.role(s, "alice").as_deref(),
        Some("space_manager"),
        "its creator manages it"
    );
    // carol manages c, so s below it too.
    w.ok(200, "GET", &format!("/api/spaces/{s}"), "carol", None);
    w.ok(
        200,
        "PATCH",
        &format!("/api/spaces/{s}"),
        "carol",
        Some(json!({"access": "on_request"})),
    );
    w.ok(
        204,
        "DELETE",
        &format!("/api/spaces/{c}/members/{carol}"),
        "alice",
        None,
    );
    assert_eq!(w.role(c, "carol"), None);
    w.ok(204, "DELETE", &format!("/api/spaces/{c}"), "alice", None);
    let left = w.app.db.column("SELECT name FROM spaces ORDER BY id");
    assert_eq!(left, ["g", "p"], "c and the sub-space below it are gone");
    let members = w.app.db.count(&format!(
        "SELECT COUNT(*) FROM memberships WHERE space_id IN ({c}, {s})"
    ));
    assert_eq!(members, 0);
    assert_eq!(
        w.role(p, "bob").as_deref(),
        Some("reader"),
        "p is untouched"
    );
}

/// README: the managing rows name "a `space_manager` of the space or of one
/// of its ancestors" (a sub-space: "of the parent or above it"): a reader of
/// a space is neither. Refused where he sees (403 naming the action),
/// hidden where he does not (404, or the 422 of a missing parent).
#[test]
fn a_reader_above_is_no_manager_above() {
    let (w, Tree { p, c, .. }) = World::cast();
    w.member("admin", p, "dave", "contributor");
    let (dave, carol) = (w.uid("dave"), w.uid("carol"));
    let rename = Some(json!({"name": "by bob"}));
    w.forbids(
        "space.update",
        "PATCH",
        &format!("/api/spaces/{p}"),
        "bob",
        rename.clone(),
    );
    w.forbids(
        "space.delete",
        "DELETE",
        &format!("/api/spaces/{p}"),
        "bob",
        None,
    );
    let reader = Some(json!({"role": "reader"}));
    w.forbids(
        "member.put",
        "PUT",
        &format!("/api/spaces/{p}/members/{dave}"),
        "bob",
        reader.clone(),
    );
    w.forbids(
        "member.put",
        "PUT",
        &format!("/api/spaces/{p}/members/{carol}"),
        "bob",
        reader.clone(),
    );
    w.forbids(
        "member.delete",
        "DELETE",
        &format!("/api/spaces/{p}/members/{dave}"),
        "bob",
        None,
    );
    let sub = |parent: i64| Some(json!({"name": "sub", "access": "open", "parent_id": parent}));
    w.forbids("space.create", "POST", "/api/spaces", "bob", sub(p));
    // c, below p, is confidential: to bob it does not exist.
    w.hides("GET", &format!("/api/spaces/{c}"), "bob", None);
    w.hides("PATCH", &format!("/api/spaces/{c}"), "bob", rename);
    w.hides("DELETE", &format!("/api/spaces/{c}"), "bob", None);
    w.hides(
        "PUT",
        &format!("/api/spaces/{c}/members/{dave}"),
        "bob",
        reader,
    );
    w.hides(
        "DELETE",
        &format!("/api/spaces/{c}/members/{carol}"),
        "bob",
        None,
    );
    let error = w.refused(422, "POST", "/api/spaces", "bob", sub(c));
    assert_eq!(error["field"], "parent_id", "{error}");
}

/// Authz.rs: "`Hide`: Not even visible: 404, exactly as if the resource did
/// not exist"; README: "`Hide`: 404, the very answer a missing id gets"; a
/// parent one may not see "is answered like one that does not exist". Every
/// route that names a space, for an outsider, against an id that was never
/// used: the same status and the same error (but for the id itself).
#[test]
fn a_hidden_space_answers_every_route_exactly_as_a_missing_one() {
    let (w, Tree { c, .. }) = World::cast();
    let own = w.space("dave", "dave's", "open", None);
    let (dave, carol) = (w.uid("dave"), w.uid("carol"));
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/spaces/{}".into(), None),
        ("PATCH", "/api/spaces/{}".into(), Some(json!({"name": "x"}))),
        ("DELETE", "/api/spaces/{}".into(), None),
        ("GET", "/api/spaces/{}/members".into(), None),
        (
            "PUT",
            format!("/api/spaces/{{}}/members/{dave}"),
            Some(json!({"role": "reader"})),
        ),
        (
            "PUT",
            format!("/api/spaces/{{}}/members/{carol}"),
            Some(json!({"role": "space_manager"})),
        ),
        ("DELETE", format!("/api/spaces/{{}}/members/{carol}"), None),
        ("DELETE", format!("/api/spaces/{{}}/members/{dave}"), None),
    ];
    for (method, path, body) in cases {
        let hidden = w.refused(
            404,
            method,
            &path.replace("{}", &c.to_string()),
            "dave",
            body.clone(),
        );
        let missing = w.refused(
            404,
            method,
            &path.replace("{}", &MISSING.to_string()),
            "dave",
            body,
        );
        assert_eq!(
            bare(&hidden),
            bare(&missing).replace(&MISSING.to_string(), &c.to_string()),
            "{method} {path}"
        );
    }
    // As a parent: creating inside it, and moving one's own space under it.
    let under = |parent: i64| Some(json!({"name": "x", "access": "open", "parent_id": parent}));
    let hidden = w.refused(422, "POST", "/api/spaces", "dave", under(c));
    let missing = w.refused(422, "POST", "/api/spaces", "dave", under(MISSING));
    assert_eq!(
        bare(&hidden),
        bare(&missing).replace(&MISSING.to_string(), &c.to_string())
    );
    let mine = format!("/api/spaces/{own}");
    let hidden = w.refused(422, "PATCH", &mine, "dave", Some(json!({"parent_id": c})));
    let missing = w.refused(
        422,
        "PATCH",
        &mine,
        "dave",
        Some(json!({"parent_id": MISSING})),
    );
    assert_eq!(
        bare(&hidden),
        bare(&missing).replace(&MISSING.to_string(), &c.to_string())
    );
}

/// README: "change ... a space | a `space_manager` of the space"; "create a
/// space | anyone signed in ...; inside a parent (or moving a space there): a
/// `space_manager` of the parent or above it". carol manages `c` only: she
/// may take it out to the top (where anyone may create) and under a space
/// of her own, not under one she cannot see (answered as a missing parent;
/// naming the parent it has, also hidden from her, moves nothing: see
/// `naming_the_current_parent_in_a_patch_is_not_a_move`); once out, the
/// manager above has lost it (404).
#[test]
fn a_spaces_own_manager_moves_it_out_and_under_her_own_but_never_under_a_hidden_one() {
    let (w, Tree { g, p, c }) = World::cast();
    let path = format!("/api/spaces/{c}");
    let error = w.refused(
        422,
        "PATCH",
        &path,
        "carol",
        Some(json!({"parent_id": g, "name": "moved"})),
    );
    assert_eq!(error["field"], "parent_id");
    let top = w.ok(
        200,
        "PATCH",
        &path,
        "carol",
        Some(json!({"parent_id": null})),
    );
    assert_eq!(top["parent_id"], Value::Null);
    w.hides("GET", &path, "alice", None);
    w.hides("PATCH", &path, "alice", Some(json!({"parent_id": p})));
    let own = w.space("carol", "carol's", "confidential", None);
    let under = w.ok(
        200,
        "PATCH",
        &path,
        "carol",
        Some(json!({"parent_id": own})),
    );
    assert_eq!(under["parent_id"], own);
    // alice may not pull it back under her tree: she does not even see it.
    w.hides("PATCH", &path, "alice", Some(json!({"parent_id": g})));
    let parent = w
        .app
        .db
        .column(&format!("SELECT parent_id FROM spaces WHERE id = {c}"));
    assert_eq!(parent, [own.to_string()]);
}

/// README: "change or delete a space | a `space_manager` of the space";
/// creating "inside a parent (or moving a space there)" needs a manager of
/// the parent. A PATCH that names the parent the space already has moves
/// nothing, so the space's own manager may send it (a client writing back
/// what it read, `parent_id` included, to rename the space).
#[test]
fn naming_the_current_parent_in_a_patch_is_not_a_move() {
    let (w, Tree { p, c, .. }) = World::cast();
    let path = format!("/api/spaces/{c}");
    let read = w.ok(200, "GET", &path, "carol", None);
    assert_eq!(read["parent_id"], p, "carol reads c's parent id");
    let renamed = w.ok(
        200,
        "PATCH",
        &path,
        "carol",
        Some(json!({"name": "c renamed", "parent_id": p})),
    );
    assert_eq!(
        (renamed["name"].clone(), renamed["parent_id"].clone()),
        (json!("c renamed"), json!(p))
    );
}

/// README: confidential spaces are seen by "their members and the
/// `space_manager`s above them (others get 404)"; "see the member list |
/// the space's members". A member removed mid-sequence loses all of it at
/// once, leaving is 404 like for any hidden space, and comes back with the
/// membership.
#[test]
fn a_member_removed_mid_sequence_loses_the_confidential_space_at_once() {
    let (w, Tree { p, c, .. }) = World::cast();
    w.member("carol", c, "bob", "reader");
    let bob = w.uid("bob");
    let space = format!("/api/spaces/{c}");
    let list = format!("{space}/members");
    let own = format!("{space}/members/{bob}");
    w.ok(200, "GET", &space, "bob", None);
    w.ok(200, "GET", &list, "bob", None);
    assert_eq!(w.visible("bob"), [p, c]);
    w.ok(204, "DELETE", &own, "carol", None);
    w.hides("GET", &space, "bob", None);
    w.hides("GET", &list, "bob", None);
    w.hides("DELETE", &own, "bob", None);
    w.hides("PUT", &own, "bob", Some(json!({"role": "reader"})));
    assert_eq!(w.visible("bob"), [p]);
    w.member("carol", c, "bob", "reader");
    w.ok(200, "GET", &list, "bob", None);
    assert_eq!(w.visible("bob"), [p, c]);
}

/// README: "remove a member | those managers, and the member themselves
/// (leaving)". Nothing keeps the last direct manager in: carol leaves `c`,
/// loses it (404, even to come back), and the manager above still has it.
#[test]
fn the_last_manager_may_leave_and_the_manager_above_keeps_the_space() {
    let (w, Tree { c, .. }) = World::cast();
    let carol = w.uid("carol");
    w.ok(
        204,
        "DELETE",
        &format!("/api/spaces/{c}/members/{carol}"),
        "carol",
        None,
    );
    let direct = w.app.db.count(&format!(
        "SELECT COUNT(*) FROM memberships WHERE space_id = {c}"
    ));
    assert_eq!(direct, 0, "c has no member left");
    w.hides("GET", &format!("/api/spaces/{c}"), "carol", None);
    w.hides(
        "PUT",
        &format!("/api/spaces/{c}/members/{carol}"),
        "carol",
        Some(json!({"role": "space_manager"})),
    );
    w.ok(
        200,
        "PATCH",
        &format!("/api/spaces/{c}"),
        "alice",
        Some(json!({"name": "kept"})),
    );
    w.ok(
        201,
        "PUT",
        &format!("/api/spaces/{c}/members/{carol}"),
        "alice",
        Some(json!({"role": "space_manager"})),
    );
    w.ok(200, "GET", &format!("/api/spaces/{c}"), "carol", None);
}

/// README: "add members or change their roles | a `space_manager` of the
/// space or of one of its ancestors": a manager may change her own role;
/// demoted, she is no manager any more, at once, here and below.
#[test]
fn a_manager_who_demotes_herself_loses_the_spaces_below_at_once() {
    let (w, Tree { g, p, c }) = World::cast();
    let alice = w.uid("alice");
    let own = format!("/api/spaces/{g}/members/{alice}");
    let demoted = w.ok(200, "PUT", &own, "alice", Some(json!({"role": "reader"})));
    assert_eq!(demoted["role"], "reader");
    assert_eq!(w.role(g, "alice").as_deref(), Some("reader"));
    assert_eq!(w.visible("alice"), [g]);
    w.hides("GET", &format!("/api/spaces/{p}"), "alice", None);
    w.hides("GET", &format!("/api/spaces/{c}"), "alice", None);
    w.hides("DELETE", &format!("/api/spaces/{c}"), "alice", None);
    w.forbids(
        "member.put",
        "PUT",
        &own,
        "alice",
        Some(json!({"role": "space_manager"})),
    );
    w.forbids(
        "space.update",
        "PATCH",
        &format!("/api/spaces/{g}"),
        "alice",
        Some(json!({"name": "mine"})),
    );
    let sub = Some(json!({"name": "sub", "access": "open", "parent_id": g}));
    w.forbids("space.create", "POST", "/api/spaces", "alice", sub);
    // She still sees the member list of the space she is a member of.
    w.ok(
        200,
        "GET",
        &format!("/api/spaces/{g}/members"),
        "alice",
        None,
    );
}

/// README: "add members or change their roles | a `space_manager` of the
/// space or of one of its ancestors": not the member themselves. No role
/// promotes itself, whatever it is, and nothing is written.
#[test]
fn nobody_below_space_manager_promotes_themselves() {
    let (w, Tree { p, .. }) = World::cast();
    w.member("admin", p, "dave", "content_manager");
    w.member("admin", p, "carol", "contributor");
    for (who, to) in [
        ("bob", "contributor"),
        ("bob", "space_manager"),
        ("carol", "content_manager"),
        ("dave", "space_manager"),
    ] {
        let path = format!("/api/spaces/{p}/members/{}", w.uid(who));
        w.forbids("member.put", "PUT", &path, who, Some(json!({"role": to})));
    }
    // Nor does a content manager promote another.
    let path = format!("/api/spaces/{p}/members/{}", w.uid("bob"));
    w.forbids(
        "member.put",
        "PUT",
        &path,
        "dave",
        Some(json!({"role": "contributor"})),
    );
    assert_eq!(w.role(p, "bob").as_deref(), Some("reader"));
    assert_eq!(w.role(p, "dave").as_deref(), Some("content_manager"));
}

/// README: "see a space | open and on-request spaces: anyone signed in";
/// "see the member list | the space's members and the `space_manager`s
/// above it"; managing is "a `space_manager` of the space". An on-request
/// space is seen by an outsider, and nothing more: he neither joins it
/// himself nor reads who is in it (403: he sees the space).
#[test]
fn an_on_request_space_is_seen_by_outsiders_and_nothing_more() {
    let w = World::start(&["alice", "dave"], &["autoinvite", "parent_access"]);
    let r = w.space("alice", "club", "on_request", None);
    assert_eq!(w.role(r, "alice").as_deref(), Some("space_manager"));
    let space = format!("/api/spaces/{r}");
    let (alice, dave) = (w.uid("alice"), w.uid("dave"));
    assert_eq!(
        w.ok(200, "GET", &space, "dave", None)["access"],
        "on_request"
    );
    assert_eq!(w.visible("dave"), [r]);
    w.forbids(
        "member.list",
        "GET",
        &format!("{space}/members"),
        "dave",
        None,
    );
    for role in ["reader", "space_manager"] {
        w.forbids(
            "member.put",
            "PUT",
            &format!("{space}/members/{dave}"),
            "dave",
            Some(json!({"role": role})),
        );
    }
    w.forbids(
        "member.delete",
        "DELETE",
        &format!("{space}/members/{alice}"),
        "dave",
        None,
    );
    w.forbids(
        "space.update",
        "PATCH",
        &space,
        "dave",
        Some(json!({"access": "open"})),
    );
    w.forbids("space.delete", "DELETE", &space, "dave", None);
    let sub = Some(json!({"name": "sub", "access": "open", "parent_id": r}));
    w.forbids("space.create", "POST", "/api/spaces", "dave", sub);
    // Leaving what one is not in: allowed, but there is nothing to remove.
    let error = w.refused(
        404,
        "DELETE",
        &format!("{space}/members/{dave}"),
        "dave",
        None,
    );
    assert!(
        error["message"].as_str().unwrap().contains("not a member"),
        "{error}"
    );
}

/// README: autoinvite puts every user in every open space; "remove a member
/// | ... the member themselves (leaving)"; "see the member list | the
/// space's members"; adding members is a manager's. A member who left an
/// open space still sees it, but no longer its members, and may not put
/// himself back.
#[test]
fn one_who_left_an_open_space_sees_it_but_neither_its_members_nor_a_way_back() {
    let w = World::start(&["alice", "dave"], &["parent_access"]);
    let o = w.space("alice", "lobby", "open", None);
    assert_eq!(w.role(o, "dave").as_deref(), Some("reader"), "autoinvite");
    let space = format!("/api/spaces/{o}");
    let dave = w.uid("dave");
    assert_eq!(
        w.ok(200, "GET", &format!("{space}/members"), "dave", None)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    w.ok(
        204,
        "DELETE",
        &format!("{space}/members/{dave}"),
        "dave",
        None,
    );
    assert_eq!(w.role(o, "dave"), None);
    w.ok(200, "GET", &space, "dave", None);
    w.forbids(
        "member.list",
        "GET",
        &format!("{space}/members"),
        "dave",
        None,
    );
    w.forbids(
        "member.put",
        "PUT",
        &format!("{space}/members/{dave}"),
        "dave",
        Some(json!({"role": "reader"})),
    );
    w.ok(
        201,
        "PUT",
        &format!("{space}/members/{dave}"),
        "alice",
        Some(json!({"role": "reader"})),
    );
}

/// README: "A credential whose user no longer exists is 401, like no
/// credential, and api_keys deletes a user's keys with the user, in the same
/// transaction"; "DELETE /api/users/:id | 204; removes their memberships
/// first". A user deleted by the admin, with two keys (one minted by the
/// admin, one by himself), loses both and every membership at once.
#[test]
fn a_user_deleted_by_the_admin_loses_every_key_and_membership_at_once() {
    let w = World::start(&["bob", "dave"], &["autoinvite", "parent_access"]);
    let bob = w.uid("bob");
    let second = w.ok(201, "POST", "/plugins/api_keys/keys", "bob", None);
    assert_eq!(second["user_id"], bob);
    let second = second["key"].as_str().unwrap().to_owned();
    let own = w.space("bob", "bob's", "confidential", None);
    w.member("bob", own, "dave", "reader");
    let keys = format!("SELECT COUNT(*) FROM plugin_api_keys_keys WHERE user_id = {bob}");
    assert_eq!(w.app.db.count(&keys), 2);
    w.ok(204, "DELETE", &format!("/api/users/{bob}"), "admin", None);
    assert_eq!(w.app.db.count(&keys), 0);
    let memberships = format!("SELECT COUNT(*) FROM memberships WHERE user_id = {bob}");
    assert_eq!(w.app.db.count(&memberships), 0);
    let nobody = w.app.try_whole("GET", "/api/users", None, None).unwrap();
    for key in [w.token("bob").unwrap(), second.as_str()] {
        for (method, path) in [
            ("GET", "/api/users".to_owned()),
            ("GET", format!("/api/spaces/{own}")),
            ("DELETE", format!("/api/spaces/{own}")),
        ] {
            let answer = w.app.try_whole(method, &path, Some(key), None).unwrap();
            assert_eq!(
                answer.status, 401,
                "{method} {path} with a deleted user's key: {}",
                answer.text
            );
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
            assert_eq!(
                answer.body["error"]["message"],
                nobody.body["error"]["message"]
            );
        }
    }
    assert_eq!(
        w.app.db.count("SELECT COUNT(*) FROM spaces"),
        1,
        "the space stays"
    );
}

/// README: "A credential whose user no longer exists is 401, like no
/// credential" (said of any credential: the token is "resolved by the
/// `authenticate` hook (plugins first, the admin token last)"). The test
/// app's `tokens` plugin maps `user-token` to user 1; once user 1 is
/// deleted, that credential's user no longer exists.
#[test]
fn a_deleted_users_token_from_any_authenticator_is_401() {
    let app = TestApp::start(Backend::Sqlite);
    assert_eq!(id(&app.create_user("one")), 1);
    expect(200, app.get("/api/users", USER));
    expect(204, app.delete("/api/users/1", ADMIN));
    let nobody = app.try_whole("GET", "/api/users", None, None).unwrap();
    let stale = app.try_whole("GET", "/api/users", USER, None).unwrap();
    assert_eq!(stale.status, 401, "a deleted user's token: {}", stale.text);
    assert_eq!(stale.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        stale.body["error"]["message"],
        nobody.body["error"]["message"]
    );
    let spaces = app.db.count("SELECT COUNT(*) FROM spaces");
    let (status, body) = app.post(
        "/api/spaces",
        USER,
        json!({"name": "ghost's", "access": "open"}),
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM spaces"), spaces);
}

/// README: "change or delete a user | the user themselves"; "create a user
/// | the admin only"; "the `email` field only for the user themselves (and
/// the admin)". Managing a space gives no say over its members' accounts.
#[test]
fn a_space_manager_has_no_say_over_the_accounts_of_its_members() {
    let (w, Tree { p, .. }) = World::cast();
    let bob = w.uid("bob");
    let path = format!("/api/users/{bob}");
    w.forbids(
        "user.update",
        "PATCH",
        &path,
        "alice",
        Some(json!({"display_name": "Bobby"})),
    );
    w.forbids(
        "user.update",
        "PATCH",
        &path,
        "alice",
        Some(json!({"email": "alice2@example.org"})),
    );
    w.forbids("user.delete", "DELETE", &path, "alice", None);
    w.forbids(
        "user.create",
        "POST",
        "/api/users",
        "alice",
        Some(json!({"username": "eve", "email": "eve@example.org"})),
    );
    let seen = w.ok(200, "GET", &path, "alice", None);
    assert!(seen.get("email").is_none(), "{seen}");
    let members = w.ok(
        200,
        "GET",
        &format!("/api/spaces/{p}/members"),
        "alice",
        None,
    );
    assert!(
        !members.to_string().contains("bob@example.org"),
        "{members}"
    );
    // An unknown user is 404 whoever asks.
    w.refused(
        404,
        "PATCH",
        &format!("/api/users/{MISSING}"),
        "alice",
        Some(json!({"display_name": "x"})),
    );
    w.refused(
        404,
        "DELETE",
        &format!("/api/users/{MISSING}"),
        "alice",
        None,
    );
    let own = w.ok(
        200,
        "PATCH",
        &path,
        "bob",
        Some(json!({"display_name": "Bob"})),
    );
    assert_eq!(own["email"], "bob@example.org");
}

/// README: "A signed-in user mints more keys for themselves with `POST
/// /plugins/api_keys/keys` and no body"; "The admin creates the user, then
/// mints a key for them". A user may not mint a key for someone else
/// (that key would be that user's every right), and nothing is stored.
#[test]
fn a_user_mints_keys_for_themselves_only() {
    let w = World::start(&["bob", "dave"], &["autoinvite", "parent_access"]);
    let (bob, dave) = (w.uid("bob"), w.uid("dave"));
    w.refused(
        403,
        "POST",
        "/plugins/api_keys/keys",
        "bob",
        Some(json!({"user_id": dave})),
    );
    w.refused(
        403,
        "POST",
        "/plugins/api_keys/keys",
        "bob",
        Some(json!({"user_id": MISSING})),
    );
    w.refused(
        401,
        "POST",
        "/plugins/api_keys/keys",
        "none",
        Some(json!({"user_id": dave})),
    );
    let own = w.ok(
        201,
        "POST",
        "/plugins/api_keys/keys",
        "bob",
        Some(json!({"user_id": bob})),
    );
    assert_eq!(own["user_id"], bob);
    let count = |user: i64| {
        w.app.db.count(&format!(
            "SELECT COUNT(*) FROM plugin_api_keys_keys WHERE user_id = {user}"
        ))
    };
    assert_eq!((count(bob), count(dave)), (2, 1));
}

/// README: "create a space | anyone signed in, who becomes its
/// `space_manager`; inside a parent ...: a `space_manager` of the parent or
/// above it"; confidential spaces are seen by "their members and the
/// `space_manager`s above them". A space made inside a confidential one by a
/// manager above is managed by its creator and by the manager of its
/// parent, and hidden from a reader further up.
#[test]
fn a_sub_space_is_managed_by_its_creator_and_every_manager_above() {
    let (w, Tree { p, c, .. }) = World::cast();
    let s = w.space("alice", "deep", "confidential", Some(c));
    assert_eq!(w.role(s, "alice").as_deref(), Some("space_manager"));
    assert_eq!(
        w.role(s, "carol"),
        None,
        "carol manages s through c, without a membership"
    );
    w.ok(
        200,
        "PATCH",
        &format!("/api/spaces/{s}"),
        "carol",
        Some(json!({"name": "deeper"})),
    );
    w.ok(
        201,
        "PUT",
        &format!("/api/spaces/{s}/members/{}", w.uid("dave")),
        "carol",
        Some(json!({"role": "reader"})),
    );
    w.hides("GET", &format!("/api/spaces/{s}"), "bob", None);
    assert_eq!(w.visible("bob"), [p]);
    // dave, a reader of s, sees s and nothing above it; he may not nest there.
    w.ok(200, "GET", &format!("/api/spaces/{s}"), "dave", None);
    assert_eq!(w.visible("dave"), [s]);
    let sub = |parent: i64| Some(json!({"name": "x", "access": "open", "parent_id": parent}));
    w.forbids("space.create", "POST", "/api/spaces", "dave", sub(s));
    let error = w.refused(422, "POST", "/api/spaces", "dave", sub(c));
    assert_eq!(error["field"], "parent_id");
    // A top-level space is anyone's.
    let t = w.space("dave", "dave's", "open", None);
    assert_eq!(w.role(t, "dave").as_deref(), Some("space_manager"));
    w.forbids("space.create", "POST", "/api/spaces", "alice", sub(t));
}

/// README: "Inside a hook, a plugin acts with the application's authority:
/// what it does through `ctx.services()` is not checked, so autoinvite and
/// parent_access do their job whoever caused the hook (`ctx.actor()` still
/// says who that was)". carol manages only the child: her adding dave there
/// makes him a member of the parent she may not manage, and audit_log
/// records carol as the actor of both memberships.
#[test]
fn a_hook_acts_with_the_apps_authority_and_names_the_real_actor() {
    let w = World::start(&["carol", "dave"], &["autoinvite"]);
    let p = w.space("admin", "p", "confidential", None);
    let c = w.space("admin", "c", "confidential", Some(p));
    w.member("admin", c, "carol", "space_manager");
    assert_eq!(
        w.role(p, "carol").as_deref(),
        Some("reader"),
        "parent_access"
    );
    let dave = w.uid("dave");
    w.ok(
        201,
        "PUT",
        &format!("/api/spaces/{c}/members/{dave}"),
        "carol",
        Some(json!({"role": "contributor"})),
    );
    assert_eq!(
        w.role(p, "dave").as_deref(),
        Some("reader"),
        "parent_access, with p's default role"
    );
    let actor = |space: i64| {
        w.app.db.column(&format!(
            "SELECT COALESCE(actor, 'NULL') FROM plugin_audit_log_entries \
             WHERE kind = 'membership_created' AND entity = 'space {space} user {dave}'"
        ))
    };
    assert_eq!(actor(c), ["carol"]);
    assert_eq!(actor(p), ["carol"], "the hook's change names who caused it");
    // Through the API, carol still has only her own rights over p.
    w.forbids(
        "member.put",
        "PUT",
        &format!("/api/spaces/{p}/members/{dave}"),
        "carol",
        Some(json!({"role": "space_manager"})),
    );
    w.forbids(
        "member.delete",
        "DELETE",
        &format!("/api/spaces/{p}/members/{dave}"),
        "carol",
        None,
    );
}

/// README: "The first plugin with an opinion decides (`Decision::Allow`,
/// `Deny(reason)`: 403 naming the action ...); the application's default
/// policy answers last" (the one that lets the admin do "anything"). The
/// test app's `gate` denies spaces named `forbidden-*`: to the admin too,
/// and when such a space is moved under a parent ("or moving a space
/// there"), which is asked as a creation; nothing written, no hook fired.
#[test]
fn the_first_plugin_with_an_opinion_decides_even_for_the_admin() {
    let app = TestApp::start(Backend::Sqlite);
    let events = app.events().len();
    let error = expect_error(
        403,
        "forbidden",
        app.post(
            "/api/spaces",
            ADMIN,
            json!({"name": "forbidden-x", "access": "open"}),
        ),
    );
    assert_eq!(error["action"], "space.create");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("the gate says no"),
        "{error}"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM spaces"), 0);
    assert_eq!(app.events().len(), events);
    let parent = id(&app.create_space("parent", None));
    let plain = id(&app.create_space("plain", None));
    // Renaming is no creation: the gate has no opinion.
    expect(
        200,
        app.patch(
            &format!("/api/spaces/{plain}"),
            ADMIN,
            json!({"name": "forbidden-y"}),
        ),
    );
    let events = app.events().len();
    let error = expect_error(
        403,
        "forbidden",
        app.patch(
            &format!("/api/spaces/{plain}"),
            ADMIN,
            json!({"parent_id": parent}),
        ),
    );
    assert_eq!(error["action"], "space.create");
    assert_eq!(
        app.db.column(&format!(
            "SELECT COALESCE(CAST(parent_id AS TEXT), 'top') FROM spaces WHERE id = {plain}"
        )),
        ["top"]
    );
    assert_eq!(app.events().len(), events);
}

/// README: "A plugin route asks about its own resources with
/// `ctx.services().authorize(ctx, Action::Plugin("x.read"), Resource::Plugin
/// { .. })` (403 or 404 when refused), so every plugin's `authorize` takes
/// part there too"; routes declared `.signed_in()` are "refused with
/// 401/403 before the handler runs"; the admin may do "anything". The test
/// app's `gate` lets user 1 peek at secret 1 only.
#[test]
fn a_plugin_route_asks_authorize_about_its_own_resources() {
    let app = TestApp::start(Backend::Sqlite);
    assert_eq!(id(&app.create_user("one")), 1, "the user of USER's token");
    assert_eq!(
        expect(200, app.get("/plugins/gate/secrets/1", USER))["secret"],
        1
    );
    let error = expect_error(403, "forbidden", app.get("/plugins/gate/secrets/2", USER));
    assert_eq!(error["action"], "gate.peek");
    assert_eq!(
        expect(200, app.get("/plugins/gate/secrets/2", ADMIN))["secret"],
        2
    );
    let nobody = app
        .try_whole("GET", "/plugins/gate/secrets/1", None, None)
        .unwrap();
    assert_eq!(nobody.status, 401, "{}", nobody.text);
    assert_eq!(nobody.header("www-authenticate"), Some("Bearer"));
    let stranger = app
        .try_whole("GET", "/plugins/gate/secrets/1", Some("not-a-token"), None)
        .unwrap();
    assert_eq!(stranger.status, 401, "{}", stranger.text);
}

/// README: "delete (with its sub-spaces and memberships, each firing its
/// hook)", allowed to "a `space_manager` of the space or of one of its
/// ancestors". The manager of the child may not delete the parent, even
/// though deleting it would only take the child she manages with it; the
/// manager above deletes the whole branch.
#[test]
fn deleting_a_branch_needs_a_manager_of_its_top() {
    let (w, Tree { g, p, c }) = World::cast();
    w.member("admin", p, "carol", "reader");
    w.forbids(
        "space.delete",
        "DELETE",
        &format!("/api/spaces/{p}"),
        "carol",
        None,
    );
    w.hides("DELETE", &format!("/api/spaces/{g}"), "carol", None);
    w.forbids(
        "space.delete",
        "DELETE",
        &format!("/api/spaces/{p}"),
        "bob",
        None,
    );
    let audit = w
        .app
        .db
        .count("SELECT COUNT(*) FROM plugin_audit_log_entries");
    w.ok(204, "DELETE", &format!("/api/spaces/{p}"), "alice", None);
    assert_eq!(w.app.db.column("SELECT name FROM spaces"), ["g"]);
    let gone = w.app.db.count(&format!(
        "SELECT COUNT(*) FROM memberships WHERE space_id IN ({p}, {c})"
    ));
    assert_eq!(gone, 0);
    // Deleted: p's two memberships, c's one, c and p.
    assert_eq!(
        w.app
            .db
            .count("SELECT COUNT(*) FROM plugin_audit_log_entries"),
        audit + 5
    );
    w.hides("GET", &format!("/api/spaces/{c}"), "carol", None);
}

/// README: "change or delete a space, add members or change their roles |
/// a `space_manager` of the space or of one of its ancestors". A lower role
/// held directly in a space does not take away the manager's role above it.
#[test]
fn a_lower_role_below_does_not_shadow_a_manager_role_above() {
    let (w, Tree { c, .. }) = World::cast();
    let alice = w.uid("alice");
    w.ok(
        201,
        "PUT",
        &format!("/api/spaces/{c}/members/{alice}"),
        "carol",
        Some(json!({"role": "reader"})),
    );
    assert_eq!(w.role(c, "alice").as_deref(), Some("reader"));
    w.ok(
        200,
        "PATCH",
        &format!("/api/spaces/{c}"),
        "alice",
        Some(json!({"name": "still alice's"})),
    );
    w.ok(
        201,
        "PUT",
        &format!("/api/spaces/{c}/members/{}", w.uid("dave")),
        "alice",
        Some(json!({"role": "reader"})),
    );
    let carol = w.uid("carol");
    w.ok(
        200,
        "PUT",
        &format!("/api/spaces/{c}/members/{carol}"),
        "alice",
        Some(json!({"role": "reader"})),
    );
    // carol, demoted by the manager above, is a mere reader now.
    w.forbids(
        "member.put",
        "PUT",
        &format!("/api/spaces/{c}/members/{alice}"),
        "carol",
        Some(json!({"role": "contributor"})),
    );
}

/// README: "Every operation asks the `authorize` hook before it changes or
/// reveals anything". Adding a user who does not exist is refused (403) to
/// one who may not add members, hidden (404 naming the space) from one who
/// does not see the space, and only a manager learns that the user is
/// missing (404 naming the user). Nothing is written in any case.
#[test]
fn authorization_comes_before_the_member_is_looked_up() {
    let (w, Tree { p, c, .. }) = World::cast();
    let body = Some(json!({"role": "reader"}));
    w.forbids(
        "member.put",
        "PUT",
        &format!("/api/spaces/{p}/members/{MISSING}"),
        "bob",
        body.clone(),
    );
    let hidden = w.refused(
        404,
        "PUT",
        &format!("/api/spaces/{c}/members/{MISSING}"),
        "bob",
        body.clone(),
    );
    assert_eq!(hidden["resource"], "space", "{hidden}");
    let missing = w.refused(
        404,
        "PUT",
        &format!("/api/spaces/{c}/members/{MISSING}"),
        "carol",
        body,
    );
    assert_eq!(missing["resource"], "user", "{missing}");
    w.forbids(
        "member.delete",
        "DELETE",
        &format!("/api/spaces/{p}/members/{MISSING}"),
        "bob",
        None,
    );
    let gone = w.refused(
        404,
        "DELETE",
        &format!("/api/spaces/{c}/members/{MISSING}"),
        "carol",
        None,
    );
    assert!(
        gone["message"].as_str().unwrap().contains("not a member"),
        "{gone}"
    );
}

/// README: "`Hide`: 404, the very answer a missing id gets". The test app's
/// `gate` hides `hidden-*` users from all but the admin when they are to be
/// changed or deleted: user 1 gets, for such a user, exactly what an
/// unknown id gives, and nothing is written.
#[test]
fn a_plugins_hide_on_a_user_is_the_404_of_a_missing_one() {
    let app = TestApp::start(Backend::Sqlite);
    assert_eq!(id(&app.create_user("one")), 1);
    let hidden = id(&app.create_user("hidden-hal"));
    let missing = hidden + 100;
    let patch = json!({"display_name": "Hal"});
    for (method, body) in [("PATCH", Some(patch.to_string())), ("DELETE", None)] {
        let answer = |user: i64| {
            let path = format!("/api/users/{user}");
            app.try_whole(method, &path, USER, body.as_deref()).unwrap()
        };
        let (hid, unknown) = (answer(hidden), answer(missing));
        assert_eq!(
            (hid.status, unknown.status),
            (404, 404),
            "{method}: {}",
            hid.text
        );
        let message = |w: &Whole| w.body["error"]["message"].as_str().unwrap().to_owned();
        assert_eq!(
            message(&hid).replace(&hidden.to_string(), "N"),
            message(&unknown).replace(&missing.to_string(), "N"),
            "{method}"
        );
    }
    let names = app.db.column(&format!(
        "SELECT COALESCE(display_name, '-') FROM users WHERE id = {hidden}"
    ));
    assert_eq!(names, ["-"], "the hidden user is unchanged and still there");
    // The admin, whom the gate does not hide it from, changes them.
    let changed = expect(
        200,
        app.patch(&format!("/api/users/{hidden}"), ADMIN, patch),
    );
    assert_eq!(changed["display_name"], "Hal");
}

/// README: "401 no recognised credential (with `WWW-Authenticate:
/// Bearer`)". A plugin route that asks for no credential and then calls a
/// service the policy refuses to a caller without one answers as a route
/// that asks for one would: 401, nothing written. With a credential that
/// may not, the refusal stays a 403 naming the action.
#[test]
fn a_refusal_for_want_of_a_credential_is_401_on_a_plugin_route_too() {
    let app = TestApp::start(Backend::Sqlite);
    assert_eq!(id(&app.create_user("one")), 1);
    let new = json!({"username": "eve", "email": "eve@example.org"});
    let anonymous = app
        .try_whole(
            "POST",
            "/plugins/recorder/users",
            None,
            Some(&new.to_string()),
        )
        .unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    assert_eq!(anonymous.body["error"]["code"], "unauthorized");
    let refused = expect_error(
        403,
        "forbidden",
        app.post("/plugins/recorder/users", USER, new),
    );
    assert_eq!(refused["action"], "user.create");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
}
