//! An adversarial pass over README's HTTP API: each test takes one documented
//! claim to an edge the other tests leave alone, and checks the exact rows
//! and lists afterwards. SQLite only.

use std::io::Write;

use e2e_tests::*;
use serde_json::Value;

/// The `Allow` header as a sorted list of methods.
fn allow(answer: &Whole) -> Vec<String> {
    let mut methods: Vec<String> = answer
        .header("allow")
        .unwrap_or_else(|| panic!("no Allow header: {answer:?}"))
        .split(',')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    methods.sort();
    methods
}

fn sorted(methods: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = methods.iter().map(|m| (*m).to_owned()).collect();
    all.sort();
    all
}

/// One request, keeping the headers.
#[track_caller]
fn send(app: &TestApp, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Whole {
    app.try_whole(method, path, token, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// A raw HTTP/1.1 exchange on a fresh connection (the request should ask
/// for `Connection: close`), parsed.
fn exchange(app: &TestApp, request: &str) -> Whole {
    let mut stream = connect(app);
    stream.write_all(request.as_bytes()).unwrap();
    Whole::parse(&read_to_close(&mut stream))
}

/// Follows `Link: <...>; rel="next"` from `first` until a page has none:
/// each page's `key`s.
#[track_caller]
fn follow(app: &TestApp, first: &str, token: Option<&str>, key: &str) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut path = first.to_owned();
    for _ in 0..100 {
        let page = send(app, "GET", &path, token, None);
        assert_eq!(page.status, 200, "GET {path}: {}", page.text);
        pages.push(keys(&page.body, key));
        match page.header("link") {
            Some(link) => {
                assert!(link.ends_with("rel=\"next\""), "{link}");
                let start = link.find('<').expect("<") + 1;
                let end = link.find('>').expect(">");
                path = link[start..end].to_owned();
            }
            None => return pages,
        }
    }
    panic!("more than 100 pages from {first}: {pages:?}");
}

fn tree(app: &TestApp) -> Vec<String> {
    app.db.column(
        "SELECT CAST(id AS TEXT) || ':' || COALESCE(CAST(parent_id AS TEXT), '-') || ':' || name \
         FROM spaces ORDER BY id",
    )
}

fn members(app: &TestApp) -> Vec<String> {
    app.db.column(
        "SELECT CAST(space_id AS TEXT) || '|' || CAST(user_id AS TEXT) || '|' || role \
         FROM memberships ORDER BY space_id, user_id",
    )
}

fn users(app: &TestApp) -> Vec<String> {
    app.db.column(
        "SELECT CAST(id AS TEXT) || '|' || username || '|' || email || '|' || \
         COALESCE(display_name, '-') FROM users ORDER BY id",
    )
}

/// Inserts `n` users straight into the database (names `bulk1`...): for the
/// page-size limits, without hundreds of requests.
fn bulk_users(app: &TestApp, n: usize) {
    let rows = app.db.column(&format!(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) \
         INSERT INTO users (username, email, created_at) \
         SELECT 'bulk' || i, 'bulk' || i || '@example.org', '2026-01-01T00:00:00.000000Z' FROM k \
         RETURNING id"
    ));
    assert_eq!(rows.len(), n);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), n as i64);
}

// --- Pagination -----------------------------------------------------------

/// README: lists are "paginated by id: `?limit=N` ... and
/// `?after=<last id seen>`; a full page carries `Link: ...; rel="next"`".
/// Following the pages must reach every space the caller may see, even when
/// spaces they may not see come first.
#[test]
fn paging_through_spaces_reaches_every_space_the_caller_may_see() {
    let app = TestApp::start(Backend::Sqlite);
    assert_eq!(id(&app.create_user("one")), 1);
    let secret = |name: &str| {
        let body = json!({"name": name, "access": "confidential"});
        id(&expect(201, app.post("/api/spaces", ADMIN, body)))
    };
    let (c1, c2) = (secret("c1"), secret("c2"));
    let (o3, o4) = (
        id(&app.create_space("o3", None)),
        id(&app.create_space("o4", None)),
    );
    // Unpaged, user 1 (no member anywhere) sees the two open spaces.
    assert_eq!(
        keys(&expect(200, app.get("/api/spaces", USER)), "id"),
        [o3, o4]
    );
    // The admin's pages: everything, two by two.
    let admin = follow(&app, "/api/spaces?limit=2", ADMIN, "id");
    assert_eq!(admin.concat(), [c1, c2, o3, o4], "{admin:?}");
    // User 1's pages must reach the same two open spaces.
    let pages = follow(&app, "/api/spaces?limit=2", USER, "id");
    assert_eq!(pages, [vec![o3, o4], vec![]], "user 1's pages");
}

/// README: "`?limit=N` (default 50, at most 500)", and a full page
/// carries `Link: </api/users?limit=N&after=ID>; rel="next"`.
#[test]
fn the_default_page_is_fifty_and_links_to_the_rest() {
    let app = TestApp::start(Backend::Sqlite);
    bulk_users(&app, 51);
    let first = send(&app, "GET", "/api/users", ADMIN, None);
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(keys(&first.body, "id"), (1..=50).collect::<Vec<i64>>());
    assert_eq!(
        first.header("link"),
        Some("</api/users?limit=50&after=50>; rel=\"next\"")
    );
    let pages = follow(&app, "/api/users", ADMIN, "id");
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(pages[1], [51]);
}

/// README: "`?limit=N` (default 50, at most 500)": 500 is served in
/// full, more is never answered with more than 500 items.
#[test]
fn a_page_is_at_most_five_hundred() {
    let app = TestApp::start(Backend::Sqlite);
    bulk_users(&app, 501);
    let full = send(&app, "GET", "/api/users?limit=500", ADMIN, None);
    assert_eq!(full.status, 200, "{}", full.text);
    assert_eq!(keys(&full.body, "id"), (1..=500).collect::<Vec<i64>>());
    assert_eq!(
        full.header("link"),
        Some("</api/users?limit=500&after=500>; rel=\"next\"")
    );
    for limit in ["501", "1000", "4294967296", "99999999999999999999"] {
        let (status, body) = app.get(&format!("/api/users?limit={limit}"), ADMIN);
        match status {
            200 => assert!(body.as_array().unwrap().len() <= 500, "limit={limit}"),
            _ => {
                let error = expect_error(422, "invalid", (status, body));
                assert_eq!(error["field"], "limit", "limit={limit}: {error}");
            }
        }
    }
}

/// README (pages by id, `?after=<last id seen>`), with the SDK's
/// `Request::page` contract (hookspecs/src/http.rs: "422 naming `after` or
/// `limit` when either is not a number, or `limit` is 0 or above
/// MAX_LIMIT"): exact pages at the edges of `after`, 422 for nonsense.
#[test]
fn page_parameters_at_their_edges() {
    let app = TestApp::start(Backend::Sqlite);
    let ids: Vec<i64> = ["a", "b", "c"]
        .iter()
        .map(|n| id(&app.create_user(n)))
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    let page = |query: &str| send(&app, "GET", &format!("/api/users?{query}"), ADMIN, None);
    for (query, expected) in [
        ("after=-1", vec![1, 2, 3]),
        ("after=0", vec![1, 2, 3]),
        ("after=-9223372036854775808", vec![1, 2, 3]),
        ("after=3", vec![]),
        ("after=9223372036854775807", vec![]),
        ("after=1&limit=5", vec![2, 3]),
        ("limit=3", vec![1, 2, 3]),
    ] {
        let answer = page(query);
        assert_eq!(answer.status, 200, "{query}: {}", answer.text);
        assert_eq!(keys(&answer.body, "id"), expected, "{query}");
    }
    // Exactly full: a Link, to an empty last page without one.
    let full = page("after=1&limit=2");
    assert_eq!(keys(&full.body, "id"), [2, 3]);
    assert_eq!(
        full.header("link"),
        Some("</api/users?limit=2&after=3>; rel=\"next\"")
    );
    let last = page("limit=2&after=3");
    assert_eq!(keys(&last.body, "id"), Vec::<i64>::new());
    assert_eq!(last.header("link"), None);
    // Nonsense: 422 naming the parameter.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("limit=1.5", "limit"),
        ("after=abc", "after"),
        ("after=", "after"),
        ("after=1.5", "after"),
        ("after=9223372036854775808", "after"),
    ] {
        let error = expect_error(
            422,
            "invalid",
            app.get(&format!("/api/users?{query}"), ADMIN),
        );
        assert_eq!(error["field"], field, "{query}: {error}");
    }
    // The same rules on the other lists.
    let space = id(&app.create_space("s", None));
    for path in [
        "/api/spaces?limit=0",
        &format!("/api/spaces/{space}/members?after=x"),
    ] {
        let error = expect_error(422, "invalid", app.get(path, ADMIN));
        assert!(error["field"].is_string(), "{path}: {error}");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 3);
}

/// README: `/api/spaces/:id/members` is paginated too, by id (the
/// member's user id), with the Link to the same path.
#[test]
fn members_are_paged_by_user_id_whatever_order_they_joined_in() {
    let app = TestApp::start(Backend::Sqlite);
    let users: Vec<i64> = ["a", "b", "c"]
        .iter()
        .map(|n| id(&app.create_user(n)))
        .collect();
    let space = id(&app.create_space("s", None));
    for user in [users[2], users[0], users[1]] {
        let path = format!("/api/spaces/{space}/members/{user}");
        expect(201, app.put(&path, ADMIN, json!({"role": "reader"})));
    }
    let first = send(
        &app,
        "GET",
        &format!("/api/spaces/{space}/members?limit=2"),
        ADMIN,
        None,
    );
    assert_eq!(keys(&first.body, "user_id"), [users[0], users[1]]);
    assert_eq!(
        first.header("link").map(str::to_owned),
        Some(format!(
            "</api/spaces/{space}/members?limit=2&after={}>; rel=\"next\"",
            users[1]
        ))
    );
    let pages = follow(
        &app,
        &format!("/api/spaces/{space}/members?limit=2"),
        ADMIN,
        "user_id",
    );
    assert_eq!(pages, [vec![users[0], users[1]], vec![users[2]]]);
}

// --- Unknown ids ------------------------------------------------------------

/// README: "404 unknown id or route"; README: "deleting what is already gone
/// is 404 and fires nothing". Every kind of id, every method, nothing
/// written, no hook fired.
#[test]
fn unknown_ids_of_every_kind_are_404_and_change_nothing() {
    let app = TestApp::start(Backend::Sqlite);
    let ada = id(&app.create_user("ada"));
    let space = id(&app.create_space("s", None));
    expect(
        201,
        app.put(
            &format!("/api/spaces/{space}/members/{ada}"),
            ADMIN,
            json!({"role": "reader"}),
        ),
    );
    let before = (users(&app), tree(&app), members(&app), app.events().len());
    let role = json!({"role": "contributor"});
    let user_patch = json!({"display_name": "x"});
    let space_patch = json!({"name": "x"});
    for bad in [
        "999",
        "0",
        "-1",
        "99999999999999999999",
        "abc",
        "1.0",
        "%20",
    ] {
        let numeric = bad.parse::<i64>().is_ok();
        let user = format!("/api/users/{bad}");
        let spaced = format!("/api/spaces/{bad}");
        let cases = [
            ("GET", user.clone(), None, "user"),
            ("PATCH", user.clone(), Some(user_patch.clone()), "user"),
            ("DELETE", user.clone(), None, "user"),
            ("GET", spaced.clone(), None, "space"),
            ("PATCH", spaced.clone(), Some(space_patch.clone()), "space"),
            ("DELETE", spaced.clone(), None, "space"),
            ("GET", format!("{spaced}/members"), None, "space"),
            (
                "PUT",
                format!("{spaced}/members/{ada}"),
                Some(role.clone()),
                "space",
            ),
            ("DELETE", format!("{spaced}/members/{ada}"), None, "space"),
            (
                "PUT",
                format!("/api/spaces/{space}/members/{bad}"),
                Some(role.clone()),
                "user",
            ),
        ];
        for (method, path, body, resource) in cases {
            let answer = app.request(method, &path, ADMIN, body.as_ref());
            let error = expect_error(404, "not_found", answer);
            if numeric {
                assert_eq!(error["resource"], resource, "{method} {path}: {error}");
            }
        }
        // Not a member (or no such user): 404 as well.
        let path = format!("/api/spaces/{space}/members/{bad}");
        expect_error(404, "not_found", app.delete(&path, ADMIN));
    }
    let after = (users(&app), tree(&app), members(&app), app.events().len());
    assert_eq!(after, before);
}

// --- PATCH ------------------------------------------------------------------

/// README: "`PATCH /api/users/:id` | change any of `username, email,
/// display_name`"; README: "422 missing field, wrong type or invalid value
/// (with `field`)". Anything else is refused whole: nothing changes, no hook.
#[test]
fn a_user_patch_with_unknown_fields_or_wrong_types_changes_nothing() {
    let app = TestApp::start(Backend::Sqlite);
    let body = json!({"username": "ada", "email": "ada@example.org", "display_name": "Ada"});
    let ada = expect(201, app.post("/api/users", ADMIN, body));
    let path = format!("/api/users/{}", id(&ada));
    let events = app.events().len();
    let cases = [
        (json!({"display_name": "New", "id": 99}), None),
        (
            json!({"display_name": "New", "created_at": "1970-01-01T00:00:00Z"}),
            None,
        ),
        (json!({"display_name": "New", "password": "x"}), None),
        (json!({"username": 5}), Some("username")),
        (json!({"username": ""}), Some("username")),
        (
            json!({"display_name": "New", "username": ["ada2"]}),
            Some("username"),
        ),
        (json!({"email": "nope"}), Some("email")),
        (
            json!({"display_name": "New", "email": {"a": 1}}),
            Some("email"),
        ),
        (json!({"display_name": 5}), Some("display_name")),
        (json!({"display_name": true}), Some("display_name")),
        (json!([]), Some("body")),
        (json!("ada"), Some("body")),
        (json!(null), Some("body")),
        (json!(42), Some("body")),
    ];
    for (patch, field) in cases {
        let error = expect_error(422, "invalid", app.patch(&path, ADMIN, patch.clone()));
        assert!(error["field"].is_string(), "{patch}: {error}");
        if let Some(field) = field {
            assert_eq!(error["field"], field, "{patch}: {error}");
        }
    }
    assert_eq!(expect(200, app.get(&path, ADMIN)), ada);
    assert_eq!(users(&app), ["1|ada|ada@example.org|Ada"]);
    assert_eq!(app.events().len(), events, "a refused patch fired a hook");
}

/// README: "409 duplicate username or email (with `field`)", and a failed
/// handler is "rolled back" (README): a patch whose email is taken keeps
/// the username it also asked for unchanged.
#[test]
fn a_patch_that_conflicts_on_one_field_writes_no_other_field() {
    let app = TestApp::start(Backend::Sqlite);
    app.create_user("ada");
    let bob = id(&app.create_user("bob"));
    let path = format!("/api/users/{bob}");
    let events = app.events().len();
    let both = json!({"username": "bobby", "display_name": "Bob", "email": "ada@example.org"});
    let error = expect_error(409, "conflict", app.patch(&path, ADMIN, both));
    assert_eq!(error["field"], "email");
    let both = json!({"username": "ada", "email": "bobby@example.org"});
    let error = expect_error(409, "conflict", app.patch(&path, ADMIN, both));
    assert_eq!(error["field"], "username");
    assert_eq!(
        users(&app),
        ["1|ada|ada@example.org|-", "2|bob|bob@example.org|-"]
    );
    assert_eq!(app.events().len(), events);
    // Its own current values are no conflict.
    let same = json!({"username": "bob", "email": "bob@example.org"});
    expect(200, app.patch(&path, ADMIN, same));
    assert_eq!(
        users(&app),
        ["1|ada|ada@example.org|-", "2|bob|bob@example.org|-"]
    );
}

/// README: "at most 64 characters for `username`, 254 for `email`,
/// 200 for `display_name` and for a space's `name` (422 naming the field
/// beyond it)": characters, not bytes, and on PATCH as on POST.
#[test]
fn text_limits_are_characters_on_patch_as_on_post() {
    let app = TestApp::start(Backend::Sqlite);
    let long_name = "é".repeat(64);
    let body = json!({"username": long_name, "email": "e@example.org"});
    expect(201, app.post("/api/users", ADMIN, body));
    let body = json!({"username": "é".repeat(65), "email": "f@example.org"});
    let error = expect_error(422, "invalid", app.post("/api/users", ADMIN, body));
    assert_eq!(error["field"], "username");
    let email = |n: usize| format!("{}@example.org", "a".repeat(n - 12));
    let body = json!({"username": "g", "email": email(255)});
    let error = expect_error(422, "invalid", app.post("/api/users", ADMIN, body));
    assert_eq!(error["field"], "email");

    let ada = id(&app.create_user("ada"));
    let path = format!("/api/users/{ada}");
    for (field, fits, beyond) in [
        ("username", json!("ü".repeat(64)), json!("ü".repeat(65))),
        ("email", json!(email(254)), json!(email(255))),
        (
            "display_name",
            json!("ß".repeat(200)),
            json!("ß".repeat(201)),
        ),
    ] {
        let error = expect_error(
            422,
            "invalid",
            app.patch(&path, ADMIN, json!({field: beyond})),
        );
        assert_eq!(error["field"], field);
        let patched = expect(200, app.patch(&path, ADMIN, json!({field: fits.clone()})));
        assert_eq!(patched[field], fits);
    }
    let stored = app.db.column(&format!(
        "SELECT username || '|' || email || '|' || display_name FROM users WHERE id = {ada}"
    ));
    assert_eq!(
        stored,
        [format!(
            "{}|{}|{}",
            "ü".repeat(64),
            email(254),
            "ß".repeat(200)
        )]
    );

    let space = id(&app.create_space("s", None));
    let path = format!("/api/spaces/{space}");
    for beyond in [
        json!("ø".repeat(201)),
        json!("a\u{0}b"),
        json!(""),
        json!("   "),
    ] {
        let error = expect_error(
            422,
            "invalid",
            app.patch(&path, ADMIN, json!({"name": beyond})),
        );
        assert_eq!(error["field"], "name", "{beyond}");
    }
    expect(
        200,
        app.patch(&path, ADMIN, json!({"name": "ø".repeat(200)})),
    );
    assert_eq!(tree(&app), [format!("{space}:-:{}", "ø".repeat(200))]);
}

/// README (`PATCH /api/spaces/:id` changes a space; `parent_id` moves it)
/// and 270 (422 "invalid value (with `field`)"): a space cannot be moved
/// under itself or any of its descendants, nor under a space that does not
/// exist; a refused move changes no other field; a legal move does.
#[test]
fn a_space_cannot_be_moved_into_its_own_subtree() {
    let app = TestApp::start(Backend::Sqlite);
    let root = id(&app.create_space("root", None));
    let child = id(&app.create_space("child", Some(root)));
    let grand = id(&app.create_space("grand", Some(child)));
    let other = id(&app.create_space("other", None));
    let before = tree(&app);
    let events = app.events().len();
    for (space, patch) in [
        (root, json!({"parent_id": grand})),
        (root, json!({"parent_id": child})),
        (root, json!({"parent_id": root})),
        (child, json!({"parent_id": grand, "name": "renamed"})),
        (grand, json!({"parent_id": 999, "name": "renamed"})),
        (grand, json!({"parent_id": -1})),
        (grand, json!({"parent_id": "1"})),
        (grand, json!({"parent_id": 1.5})),
        (grand, json!({"parent_id": 9223372036854775807_i64})),
    ] {
        let path = format!("/api/spaces/{space}");
        let error = expect_error(422, "invalid", app.patch(&path, ADMIN, patch.clone()));
        assert_eq!(error["field"], "parent_id", "{patch}: {error}");
    }
    assert_eq!(tree(&app), before);
    assert_eq!(app.events().len(), events, "a refused move fired a hook");
    // Legal moves: grand out from under root, then root under grand.
    let moved = expect(
        200,
        app.patch(
            &format!("/api/spaces/{grand}"),
            ADMIN,
            json!({"parent_id": other}),
        ),
    );
    assert_eq!(moved["parent_id"], other);
    let moved = expect(
        200,
        app.patch(
            &format!("/api/spaces/{root}"),
            ADMIN,
            json!({"parent_id": grand}),
        ),
    );
    assert_eq!(moved["parent_id"], grand);
    assert_eq!(
        tree(&app),
        [
            format!("{root}:{grand}:root"),
            format!("{child}:{root}:child"),
            format!("{grand}:{other}:grand"),
            format!("{other}:-:other"),
        ]
    );
    // Now other -> grand -> root -> child: other cannot go under child.
    let path = format!("/api/spaces/{other}");
    let error = expect_error(
        422,
        "invalid",
        app.patch(&path, ADMIN, json!({"parent_id": child})),
    );
    assert_eq!(error["field"], "parent_id");
    assert_eq!(tree(&app)[3], format!("{other}:-:other"));
}

// --- Deletions ----------------------------------------------------------------

/// README: "`DELETE /api/users/:id` | 204; removes their memberships first
/// (each fires its hook)"; README: whoever creates a space "becomes its
/// `space_manager`". Deleting a manager leaves their spaces and the other
/// members exactly as they were; deleting again is 404 and fires nothing.
#[test]
fn deleting_a_user_who_manages_spaces_removes_only_their_memberships() {
    let app = TestApp::start(Backend::Sqlite);
    assert_eq!(id(&app.create_user("one")), 1);
    let bob = id(&app.create_user("bob"));
    let top = id(&expect(
        201,
        app.post(
            "/api/spaces",
            USER,
            json!({"name": "top", "access": "open"}),
        ),
    ));
    let body = json!({"name": "sub", "access": "confidential", "parent_id": top});
    let sub = id(&expect(201, app.post("/api/spaces", USER, body)));
    expect(
        201,
        app.put(
            &format!("/api/spaces/{top}/members/{bob}"),
            ADMIN,
            json!({"role": "reader"}),
        ),
    );
    assert_eq!(
        members(&app),
        [
            format!("{top}|1|space_manager"),
            format!("{top}|{bob}|reader"),
            format!("{sub}|1|space_manager"),
        ]
    );
    let before = app.events().len();
    assert_eq!(expect(204, app.delete("/api/users/1", ADMIN)), Value::Null);
    assert_eq!(members(&app), [format!("{top}|{bob}|reader")]);
    assert_eq!(
        tree(&app),
        [format!("{top}:-:top"), format!("{sub}:{top}:sub")]
    );
    assert_eq!(
        keys(&expect(200, app.get("/api/users", ADMIN)), "id"),
        [bob]
    );
    assert_eq!(
        app.recorder_keys(before),
        [
            key("recorder", "on_membership_deleted", top),
            key("recorder", "on_membership_deleted", sub),
            key("recorder", "on_user_deleted", 1),
        ]
    );
    let after = app.events().len();
    let error = expect_error(404, "not_found", app.delete("/api/users/1", ADMIN));
    assert_eq!(error["resource"], "user");
    assert_eq!(
        app.events().len(),
        after,
        "deleting what is gone fired a hook"
    );
}

/// README: "delete (with its sub-spaces and memberships, each firing its
/// hook)"; README: "deleting what is already gone is 404 and fires
/// nothing". Deleting a middle space leaves its parent, its sibling and their
/// members exactly.
#[test]
fn deleting_a_middle_space_leaves_parent_and_sibling_intact() {
    let app = TestApp::start(Backend::Sqlite);
    let root = id(&app.create_space("root", None));
    let left = id(&app.create_space("left", Some(root)));
    let right = id(&app.create_space("right", Some(root)));
    let leaf = id(&app.create_space("leaf", Some(left)));
    let (ada, bob) = (id(&app.create_user("ada")), id(&app.create_user("bob")));
    for (space, user) in [
        (root, ada),
        (left, ada),
        (leaf, ada),
        (left, bob),
        (right, bob),
    ] {
        let path = format!("/api/spaces/{space}/members/{user}");
        expect(201, app.put(&path, ADMIN, json!({"role": "reader"})));
    }
    let before = app.events().len();
    expect(204, app.delete(&format!("/api/spaces/{left}"), ADMIN));
    assert_eq!(
        tree(&app),
        [format!("{root}:-:root"), format!("{right}:{root}:right")]
    );
    assert_eq!(
        members(&app),
        [
            format!("{root}|{ada}|reader"),
            format!("{right}|{bob}|reader")
        ]
    );
    assert_eq!(
        keys(&expect(200, app.get("/api/spaces", ADMIN)), "id"),
        [root, right]
    );
    assert_eq!(
        app.recorder_keys(before),
        [
            key("recorder", "on_membership_deleted", leaf),
            key("recorder", "on_space_deleted", leaf),
            key("recorder", "on_membership_deleted", left),
            key("recorder", "on_membership_deleted", left),
            key("recorder", "on_space_deleted", left),
        ]
    );
    let after = app.events().len();
    for gone in [left, leaf] {
        let error = expect_error(
            404,
            "not_found",
            app.delete(&format!("/api/spaces/{gone}"), ADMIN),
        );
        assert_eq!(error["resource"], "space");
        let path = format!("/api/spaces/{gone}/members/{ada}");
        expect_error(404, "not_found", app.delete(&path, ADMIN));
        expect_error(
            404,
            "not_found",
            app.put(&path, ADMIN, json!({"role": "reader"})),
        );
    }
    assert_eq!(app.events().len(), after);
    assert_eq!(members(&app).len(), 2);
}

// --- HTTP conventions -------------------------------------------------------------

/// README: "route (404, 405 with `Allow`)"; README: "405 wrong method
/// (with `allowed` and `Allow`)". The header lists exactly the path's
/// methods, and a 405 comes before the credential is looked at.
#[test]
fn a_wrong_method_is_405_with_an_allow_header_listing_the_paths_methods() {
    let app = TestApp::start(Backend::Sqlite);
    let ada = id(&app.create_user("ada"));
    let space = id(&app.create_space("s", None));
    let cases = [
        (
            "DELETE",
            "/api/users".to_owned(),
            vec!["GET", "POST", "HEAD", "OPTIONS"],
        ),
        (
            "PUT",
            format!("/api/users/{ada}"),
            vec!["GET", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        ),
        (
            "POST",
            format!("/api/spaces/{space}"),
            vec!["GET", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        ),
        (
            "POST",
            format!("/api/spaces/{space}/members"),
            vec!["GET", "HEAD", "OPTIONS"],
        ),
        (
            "GET",
            format!("/api/spaces/{space}/members/{ada}"),
            vec!["PUT", "DELETE", "OPTIONS"],
        ),
        (
            "PATCH",
            "/health".to_owned(),
            vec!["GET", "HEAD", "OPTIONS"],
        ),
        (
            "GET",
            "/api/admin/deliveries/1/retry".to_owned(),
            vec!["POST", "OPTIONS"],
        ),
    ];
    for (method, path, allowed) in cases {
        for token in [ADMIN, None] {
            let body = (method != "GET").then_some("{}");
            let answer = send(&app, method, &path, token, body);
            assert_eq!(answer.status, 405, "{method} {path}: {}", answer.text);
            assert_eq!(answer.body["error"]["code"], "method_not_allowed");
            assert_eq!(allow(&answer), sorted(&allowed), "{method} {path}");
            // The body's `allowed` names the same methods (HEAD and OPTIONS aside).
            let listed: Vec<&str> = answer.body["error"]["allowed"]
                .as_array()
                .expect("allowed")
                .iter()
                .map(|m| m.as_str().unwrap())
                .collect();
            let mut expected: Vec<&str> = allowed
                .iter()
                .copied()
                .filter(|m| *m != "HEAD" && *m != "OPTIONS")
                .collect();
            let mut listed_sorted = listed.clone();
            listed_sorted.sort();
            expected.sort();
            assert_eq!(listed_sorted, expected, "{method} {path}");
        }
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM spaces"), 1);
}

/// README: "`HEAD` is answered on every `GET` route, `OPTIONS` lists a
/// path's methods." HEAD gives the GET's status and headers (its Link
/// included) and no body; OPTIONS needs no credential (the route comes
/// first) and lists exactly the methods.
#[test]
fn head_mirrors_get_and_options_lists_the_methods() {
    let app = TestApp::start(Backend::Sqlite);
    let ada = id(&app.create_user("ada"));
    app.create_user("bob");
    let space = id(&app.create_space("s", None));
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let head = |path: &str, auth: &str| {
        exchange(
            &app,
            &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        )
    };
    for path in [
        "/health".to_owned(),
        "/api/users".to_owned(),
        format!("/api/users/{ada}"),
        "/api/spaces".to_owned(),
        format!("/api/spaces/{space}"),
        format!("/api/spaces/{space}/members"),
        "/api/admin/plugins".to_owned(),
        "/api/admin/deliveries".to_owned(),
    ] {
        let answer = head(&path, &auth);
        assert_eq!(answer.status, 200, "HEAD {path}: {answer:?}");
        assert_eq!(answer.text, "", "HEAD {path} has a body");
        assert!(answer.header("x-request-id").is_some(), "{answer:?}");
    }
    let paged = head("/api/users?limit=1", &auth);
    assert_eq!(
        paged.header("link"),
        Some("</api/users?limit=1&after=1>; rel=\"next\""),
        "{paged:?}"
    );
    let missing = head("/api/users/999", &auth);
    assert_eq!((missing.status, missing.text.as_str()), (404, ""));
    let anonymous = head("/api/users", "");
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    assert_eq!(anonymous.text, "");

    for (path, allowed) in [
        (
            "/api/users".to_owned(),
            vec!["GET", "POST", "HEAD", "OPTIONS"],
        ),
        (
            format!("/api/users/{ada}"),
            vec!["GET", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        ),
        (
            format!("/api/spaces/{space}/members/{ada}"),
            vec!["PUT", "DELETE", "OPTIONS"],
        ),
        ("/health".to_owned(), vec!["GET", "HEAD", "OPTIONS"]),
    ] {
        for token in [None, ADMIN] {
            let answer = send(&app, "OPTIONS", &path, token, None);
            assert!(
                (200..300).contains(&answer.status),
                "OPTIONS {path}: {answer:?}"
            );
            assert_eq!(allow(&answer), sorted(&allowed), "OPTIONS {path}");
        }
    }
    let nowhere = send(&app, "OPTIONS", "/api/nowhere", None, None);
    assert_eq!(nowhere.status, 404, "{nowhere:?}");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 2);
}

/// README: "Every response carries an `X-Request-Id` (the client's
/// own, if it sent a short printable one)"; README: "Errors are always
/// `{"error": {"code": ..., "message": ..., "request_id": ...}}`" (the same
/// id).
#[test]
fn request_ids_are_echoed_only_when_short_and_printable_and_every_error_carries_one() {
    let app = TestApp::start(Backend::Sqlite);
    app.create_user("ada");
    let get = |id_header: &str| {
        exchange(
            &app,
            &format!(
                "GET /api/users/999 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
                 {id_header}Connection: close\r\n\r\n"
            ),
        )
    };
    let longest = "a".repeat(128);
    let answer = get(&format!("X-Request-Id: {longest}\r\n"));
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("x-request-id"), Some(longest.as_str()));
    assert_eq!(answer.body["error"]["request_id"], longest.as_str());
    let symbols = "t-1_2.3:4/5+6=7~!@#$%^&*()[]{}<>?";
    let answer = get(&format!("X-Request-Id: {symbols}\r\n"));
    assert_eq!(answer.header("x-request-id"), Some(symbols));
    let mut fresh = Vec::new();
    for refused in [
        "a".repeat(129),
        "with space".to_owned(),
        "tab\there".to_owned(),
        String::new(),
    ] {
        let answer = get(&format!("X-Request-Id: {refused}\r\n"));
        let echoed = answer.header("x-request-id").expect("an id").to_owned();
        assert_ne!(echoed, refused.trim(), "echoed {refused:?}");
        assert!(!echoed.is_empty());
        assert_eq!(answer.body["error"]["request_id"], echoed.as_str());
        fresh.push(echoed);
    }
    fresh.push(get("").header("x-request-id").unwrap().to_owned());
    let mut unique = fresh.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), fresh.len(), "ids repeat: {fresh:?}");

    // Every error status the API gives, with its id in the body.
    // (method, path, token, body, status)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, u16);
    let cases: Vec<Case> = vec![
        ("POST", "/api/users", ADMIN, Some("{not json"), 400),
        ("GET", "/api/users", None, None, 401),
        ("GET", "/api/users", Some("bogus"), None, 401),
        (
            "POST",
            "/api/users",
            USER,
            Some(r#"{"username":"x","email":"x@example.org"}"#),
            403,
        ),
        ("GET", "/api/admin/plugins", USER, None, 403),
        ("GET", "/api/users/999", ADMIN, None, 404),
        ("GET", "/nowhere", None, None, 404),
        ("DELETE", "/api/users", ADMIN, None, 405),
        (
            "POST",
            "/api/users",
            ADMIN,
            Some(r#"{"username":"ada","email":"a2@example.org"}"#),
            409,
        ),
        ("POST", "/api/users", ADMIN, Some("{}"), 422),
    ];
    for (method, path, token, body, status) in cases {
        let answer = send(&app, method, path, token, body);
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.text);
        let error = &answer.body["error"];
        assert!(
            error["code"].is_string(),
            "{method} {path}: {}",
            answer.text
        );
        assert!(
            error["message"].is_string(),
            "{method} {path}: {}",
            answer.text
        );
        let header = answer.header("x-request-id").expect("an id");
        assert_eq!(
            error["request_id"], header,
            "{method} {path}: {}",
            answer.text
        );
    }
    let ok = send(&app, "GET", "/health", None, None);
    assert!(ok.header("x-request-id").is_some_and(|id| !id.is_empty()));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
}

/// README: one pipeline, in order: route (404, 405), declared body size
/// (413), identity (401), the route's guard (403), then the body (400); an
/// answer given before the body was read "carries `Connection: close`".
#[test]
fn the_pipeline_answers_in_its_documented_order() {
    let app = TestApp::start_with(
        Backend::Sqlite,
        Options::default().config("[http]\nbody_limit = 100\n"),
    );
    assert_eq!(id(&app.create_user("one")), 1, "the user of USER's token");
    let big = format!(
        r#"{{"username":"big","email":"big@example.org","display_name":"{}"}}"#,
        "x".repeat(150)
    );
    let closes = |answer: &Whole| {
        assert_eq!(
            answer
                .header("connection")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("close"),
            "{answer:?}"
        );
    };
    // Unknown route beats the size and the missing credential.
    let answer = send(&app, "POST", "/api/nowhere", None, Some(&big));
    assert_eq!(
        (answer.status, &answer.body["error"]["code"]),
        (404, &json!("not_found"))
    );
    closes(&answer);
    // Wrong method beats them too.
    let answer = send(&app, "PUT", "/api/users", None, Some(&big));
    assert_eq!(answer.status, 405, "{}", answer.text);
    closes(&answer);
    // The declared size beats the missing credential.
    let answer = send(&app, "POST", "/api/users", None, Some(&big));
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert_eq!(answer.body["error"]["limit"], 100);
    closes(&answer);
    // The missing credential beats the broken body.
    let answer = send(&app, "POST", "/api/users", None, Some("{not json"));
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    closes(&answer);
    // The guard beats the broken body.
    let answer = send(
        &app,
        "POST",
        "/api/admin/deliveries/1/retry",
        USER,
        Some("{not json"),
    );
    assert_eq!(answer.status, 403, "{}", answer.text);
    closes(&answer);
    // Only then the body: 400, read to its end (the connection is kept).
    let answer = send(&app, "POST", "/api/users", ADMIN, Some("{not json"));
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.body["error"]["code"], "bad_request");
    assert_ne!(answer.header("connection"), Some("close"));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
}

/// README: "a 500 says only that something failed, with
/// that id" ("with `plugin` and `hook`, and nothing more"); no error body
/// carries SQL, constraint names or library internals.
#[test]
fn error_bodies_carry_no_sql_constraints_or_internals() {
    let app = TestApp::start(Backend::Sqlite);
    let ada = id(&app.create_user("ada"));
    let space = id(&app.create_space("s", None));
    let member = format!("/api/spaces/{space}/members/{ada}");
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("POST", "/api/users".into(), Some(r#"{"username":"ada","email":"x@example.org"}"#.into())),
        ("POST", "/api/users".into(), Some(r#"{"username":"x","email":"ada@example.org"}"#.into())),
        ("PATCH", format!("/api/users/{ada}"), Some(r#"{"username":"ada","email":"ada@example.org","extra":1}"#.into())),
        ("POST", "/api/users".into(), Some(r#"{"username":"x\u0000y","email":"x@example.org"}"#.into())),
        ("POST", "/api/users".into(), Some("{\"username\": \"x\", ".into())),
        ("POST", "/api/users".into(), Some(r#"{"username":"x","email":"x@example.org","display_name":12345678901234567890123}"#.into())),
        ("POST", "/api/spaces".into(), Some(r#"{"name":"x","access":"open","parent_id":9223372036854775807}"#.into())),
        ("POST", "/api/spaces".into(), Some(r#"{"name":"x","access":"open","parent_id":99999999999999999999}"#.into())),
        ("PUT", format!("/api/spaces/{space}/members/9223372036854775807"), Some(r#"{"role":"reader"}"#.into())),
        ("PUT", member.clone(), Some(r#"{"role":"reader","space_id":5}"#.into())),
        ("PUT", member.clone(), Some(r#"{"role":"owner"}"#.into())),
        ("PATCH", format!("/api/spaces/{space}"), Some(r#"{"access":"secret"}"#.into())),
        ("GET", "/api/users/%FF".into(), None),
        ("GET", "/api/users?limit=%FF".into(), None),
        ("POST", "/api/users".into(), Some(r#"{"username":"panic-pat","email":"pat@example.org"}"#.into())),
        ("POST", "/api/users".into(), Some(r#"{"username":"fail-fay","email":"fay@example.org"}"#.into())),
    ];
    let forbidden = [
        "sqlite",
        "sqlx",
        "postgres",
        " sql",
        "unique",
        "constraint",
        "foreign key",
        "select ",
        "insert ",
        "update ",
        "panicked",
        "hyper",
        "routerify",
        "serde",
        ".rs:",
        "backtrace",
        "database error",
        "users.",
        "memberships.",
    ];
    for (method, path, body) in cases {
        let answer = send(&app, method, &path, ADMIN, body.as_deref());
        assert!(answer.status >= 400, "{method} {path}: {}", answer.text);
        let lower = answer.text.to_ascii_lowercase();
        for word in forbidden {
            assert!(
                !lower.contains(word),
                "{method} {path} tells {word:?}: {}",
                answer.text
            );
        }
        let error = answer.body["error"].as_object().expect("an error object");
        if answer.status == 500 {
            for key in error.keys() {
                assert!(
                    ["code", "message", "request_id", "plugin", "hook"].contains(&key.as_str()),
                    "a 500 tells {key}: {}",
                    answer.text
                );
            }
        }
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 0);
}

/// README: `/api/admin/...` is "admin only"; the deliveries
/// list pages "oldest first ... with `total`" by `limit=&offset=`; a retry of a
/// delivery that does not exist is 404.
#[test]
fn admin_endpoints_refuse_users_and_page_deliveries_exactly() {
    let app = TestApp::start_with(
        Backend::Sqlite,
        Options::default().env("TEST_AFTER_COMMIT", "1"),
    );
    for name in ["one", "two", "three", "four"] {
        app.create_user(name);
    }
    let snapshot = users(&app);
    for (method, path) in [
        ("GET", "/api/admin/plugins"),
        ("GET", "/api/admin/deliveries"),
        ("GET", "/api/admin/deliveries?status=dead"),
        ("POST", "/api/admin/deliveries/1/retry"),
        ("POST", "/api/admin/plugins/recorder/reload"),
        ("POST", "/api/admin/plugins/nothing/reload"),
    ] {
        let body = (method == "POST").then(|| json!({}));
        let error = expect_error(
            403,
            "forbidden",
            app.request(method, path, USER, body.as_ref()),
        );
        assert!(error["action"].is_string(), "{path}: {error}");
        expect_error(
            401,
            "unauthorized",
            app.request(method, path, None, body.as_ref()),
        );
    }
    // Every user created so far is listed (each POST answered 201 first).
    let listed = expect(200, app.get("/api/users", ADMIN));
    assert_eq!(keys(&listed, "id"), [1, 2, 3, 4]);
    // README: the list holds what the workers recorded ("events
    // still ahead of a plugin's cursor are not listed yet"): wait until the
    // worker has delivered all four, then page exactly.
    wait_until("four delivered deliveries", || {
        let all = expect(
            200,
            app.get("/api/admin/deliveries?status=delivered", ADMIN),
        );
        all["total"] == 4
    });
    let all = expect(200, app.get("/api/admin/deliveries?limit=500", ADMIN));
    assert_eq!(all["total"], 4, "{all}");
    let ids = keys(&all["deliveries"], "id");
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    let page = expect(
        200,
        app.get("/api/admin/deliveries?limit=2&offset=1", ADMIN),
    );
    assert_eq!(keys(&page["deliveries"], "id"), ids[1..3]);
    assert_eq!(page["total"], 4);
    let past = expect(200, app.get("/api/admin/deliveries?offset=4", ADMIN));
    assert_eq!(past["deliveries"], json!([]));
    assert_eq!(past["total"], 4);
    let dead = expect(200, app.get("/api/admin/deliveries?status=dead", ADMIN));
    assert_eq!(
        (dead["deliveries"].clone(), dead["total"].clone()),
        (json!([]), json!(0))
    );
    for query in [
        "status=gone",
        "limit=-1",
        "limit=501",
        "limit=x",
        "offset=-1",
    ] {
        let error = expect_error(
            422,
            "invalid",
            app.get(&format!("/api/admin/deliveries?{query}"), ADMIN),
        );
        assert!(error["field"].is_string(), "{query}: {error}");
    }
    let error = expect_error(
        404,
        "not_found",
        app.post("/api/admin/deliveries/999/retry", ADMIN, json!({})),
    );
    assert_eq!(error["resource"], "delivery");
    expect_error(
        404,
        "not_found",
        app.post("/api/admin/deliveries/abc/retry", ADMIN, json!({})),
    );
    expect_error(
        404,
        "not_found",
        app.post("/api/admin/plugins/nothing/reload", ADMIN, json!({})),
    );
    expect_error(
        409,
        "not_reloadable",
        app.post("/api/admin/plugins/recorder/reload", ADMIN, json!({})),
    );
    assert_eq!(users(&app), snapshot);
}

/// README: "audit_log's entries, newest first, page with `?limit=N`
/// (default 50, at most 500) and `?offset=M`."
#[test]
fn audit_log_entries_page_newest_first_with_limit_and_offset() {
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap());
    let app = TestApp::start_with(Backend::Sqlite, options);
    let ids: Vec<i64> = (0..52)
        .map(|n| id(&app.create_user(&format!("u{n}"))))
        .collect();
    let entities = |body: &Value| -> Vec<String> {
        body["entries"]
            .as_array()
            .unwrap_or_else(|| panic!("no entries in {body}"))
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["kind"].as_str().unwrap(),
                    e["entity"].as_str().unwrap()
                )
            })
            .collect()
    };
    let label = |i: usize| format!("user_created user {}", ids[i]);
    let default = expect(200, app.get("/plugins/audit_log/entries", ADMIN));
    let expected: Vec<String> = (2..52).rev().map(label).collect();
    assert_eq!(entities(&default), expected);
    let page = expect(
        200,
        app.get("/plugins/audit_log/entries?limit=2&offset=1", ADMIN),
    );
    assert_eq!(entities(&page), [label(50), label(49)]);
    let tail = expect(
        200,
        app.get("/plugins/audit_log/entries?limit=5&offset=50", ADMIN),
    );
    assert_eq!(entities(&tail), [label(1), label(0)]);
    let past = expect(200, app.get("/plugins/audit_log/entries?offset=52", ADMIN));
    assert_eq!(entities(&past), Vec::<String>::new());
    let many = expect(
        200,
        app.get("/plugins/audit_log/entries?limit=100000", ADMIN),
    );
    assert_eq!(entities(&many).len(), 52);
    assert!(many["limit"].as_i64().unwrap() <= 500, "{}", many["limit"]);
    for query in ["limit=-1", "offset=-1", "limit=x", "offset=1.5"] {
        let error = expect_error(
            422,
            "invalid",
            app.get(&format!("/plugins/audit_log/entries?{query}"), ADMIN),
        );
        assert!(error["field"].is_string(), "{query}: {error}");
    }
}

/// README: "Everything under `/api/` needs `Authorization: Bearer
/// <token>` (the scheme in any case)"; README: "401 no recognised
/// credential (with `WWW-Authenticate: Bearer`)".
#[test]
fn the_bearer_scheme_is_matched_in_any_case_and_nothing_else_passes() {
    let app = TestApp::start(Backend::Sqlite);
    app.create_user("ada");
    let get = |authorization: &str| {
        exchange(
            &app,
            &format!(
                "GET /api/users HTTP/1.1\r\nHost: x\r\n{authorization}Connection: close\r\n\r\n"
            ),
        )
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let answer = get(&format!("Authorization: {scheme} {ADMIN_TOKEN}\r\n"));
        assert_eq!(answer.status, 200, "{scheme}: {answer:?}");
        assert_eq!(keys(&answer.body, "id"), [1]);
    }
    for refused in [
        String::new(),
        format!("Authorization: {ADMIN_TOKEN}\r\n"),
        format!("Authorization: Basic {ADMIN_TOKEN}\r\n"),
        format!("Authorization: Token {ADMIN_TOKEN}\r\n"),
        format!("Authorization: Bearer{ADMIN_TOKEN}\r\n"),
        "Authorization: Bearer\r\n".to_owned(),
        "Authorization: Bearer \r\n".to_owned(),
        format!("Authorization: Bearer {}\r\n", ADMIN_TOKEN.to_uppercase()),
        format!("Authorization: Bearer {ADMIN_TOKEN}x\r\n"),
    ] {
        let answer = get(&refused);
        assert_eq!(answer.status, 401, "{refused:?}: {answer:?}");
        assert_eq!(answer.body["error"]["code"], "unauthorized");
        assert_eq!(
            answer.header("www-authenticate"),
            Some("Bearer"),
            "{refused:?}"
        );
    }
}

/// README: creating a space "inside a parent (or moving a space there): a
/// `space_manager` of the parent or above it"; README: confidential spaces
/// are seen by "their members and the `space_manager`s above them (others get
/// 404)"; a refusal changes nothing.
#[test]
fn moving_a_space_needs_a_manager_of_the_new_parent() {
    let app = TestApp::start(Backend::Sqlite);
    assert_eq!(id(&app.create_user("one")), 1);
    let mine = id(&expect(
        201,
        app.post(
            "/api/spaces",
            USER,
            json!({"name": "mine", "access": "open"}),
        ),
    ));
    let open = id(&app.create_space("open", None));
    let body = json!({"name": "secret", "access": "confidential"});
    let secret = id(&expect(201, app.post("/api/spaces", ADMIN, body)));
    let before = (tree(&app), members(&app), app.events().len());
    let path = format!("/api/spaces/{mine}");
    // Seen but not managed: 403 naming the action.
    let error = expect_error(
        403,
        "forbidden",
        app.patch(&path, USER, json!({"parent_id": open})),
    );
    assert!(error["action"].is_string(), "{error}");
    // Not even seen: answered as a parent that does not exist.
    let hidden = expect_error(
        422,
        "invalid",
        app.patch(&path, USER, json!({"parent_id": secret})),
    );
    let missing = expect_error(
        422,
        "invalid",
        app.patch(&path, USER, json!({"parent_id": 999})),
    );
    assert_eq!(hidden["field"], "parent_id");
    assert_eq!(missing["field"], "parent_id");
    assert_eq!((tree(&app), members(&app), app.events().len()), before);
    // A manager of the new parent may move it there, and out again.
    let manager = format!("/api/spaces/{open}/members/1");
    expect(
        201,
        app.put(&manager, ADMIN, json!({"role": "space_manager"})),
    );
    let moved = expect(200, app.patch(&path, USER, json!({"parent_id": open})));
    assert_eq!(moved["parent_id"], open);
    let out = expect(200, app.patch(&path, USER, json!({"parent_id": null})));
    assert_eq!(out["parent_id"], Value::Null);
    assert_eq!(
        tree(&app),
        [
            format!("{mine}:-:mine"),
            format!("{open}:-:open"),
            format!("{secret}:-:secret"),
        ]
    );
}

/// README, as `paging_through_spaces_reaches_every_space_the_caller_may_see`,
/// with the hidden space in the middle: the first page reads on past it to
/// be full (without that it would be short, carry no Link, and the client
/// would stop before o3 and o4).
#[test]
fn a_hidden_space_mid_list_does_not_end_the_pages_early() {
    let app = TestApp::start(Backend::Sqlite);
    assert_eq!(id(&app.create_user("one")), 1);
    let o1 = id(&app.create_space("o1", None));
    let body = json!({"name": "c2", "access": "confidential"});
    let c2 = id(&expect(201, app.post("/api/spaces", ADMIN, body)));
    let o3 = id(&app.create_space("o3", None));
    let o4 = id(&app.create_space("o4", None));
    let admin = follow(&app, "/api/spaces?limit=2", ADMIN, "id");
    assert_eq!(admin.concat(), [o1, c2, o3, o4], "{admin:?}");
    assert_eq!(
        keys(&expect(200, app.get("/api/spaces", USER)), "id"),
        [o1, o3, o4]
    );
    let pages = follow(&app, "/api/spaces?limit=2", USER, "id");
    assert_eq!(pages, [vec![o1, o3], vec![o4]], "user 1's pages");
}
