//! The plugins shipped in `plugins/` (Tracim's), loaded by the real app
//! binary from the workspace, acting through the services inside each
//! operation's unit of work; on SQLite and PostgreSQL.

use e2e_tests::*;
use serde_json::{Value, json};

fn start(backend: Backend) -> TestApp {
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap());
    TestApp::start_with(backend, options)
}

fn space(app: &TestApp, name: &str, access: &str, parent: Option<i64>, role: &str) -> i64 {
    let body = json!({"name": name, "access": access, "parent_id": parent, "default_role": role});
    id(&expect(201, app.post("/api/spaces", ADMIN, body)))
}

/// `(space_id, role)` of every membership of `user`, by space.
fn memberships(app: &TestApp, user: i64) -> Vec<(i64, String)> {
    let spaces = expect(200, app.get("/api/spaces", ADMIN));
    let mut found = Vec::new();
    for s in spaces.as_array().unwrap() {
        let members = expect(
            200,
            app.get(&format!("/api/spaces/{}/members", id(s)), ADMIN),
        );
        for m in members
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["user_id"] == user)
        {
            found.push((id(s), m["role"].as_str().unwrap().to_owned()));
        }
    }
    found
}

fn put(app: &TestApp, space: i64, user: i64, role: &str) -> Value {
    app.put(
        &format!("/api/spaces/{space}/members/{user}"),
        ADMIN,
        json!({"role": role}),
    )
    .1
}

e2e! {
    fn autoinvite_puts_new_users_in_open_spaces_and_everyone_in_new_open_ones(backend) {
        let app = start(backend);
        let open = space(&app, "open", "open", None, "contributor");
        let _closed = space(&app, "closed", "confidential", None, "reader");
        let ada = id(&app.create_user("ada"));
        assert_eq!(memberships(&app, ada), [(open, "contributor".to_owned())]);
        let bob = id(&app.create_user("bob"));
        let later = space(&app, "later", "open", None, "content_manager");
        for user in [ada, bob] {
            assert!(memberships(&app, user).contains(&(later, "content_manager".to_owned())));
        }
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 4);
    }

    fn parent_access_makes_a_member_of_every_ancestor_and_stops(backend) {
        let app = start(backend);
        let root = space(&app, "root", "confidential", None, "reader");
        let mid = space(&app, "mid", "on_request", Some(root), "contributor");
        let leaf = space(&app, "leaf", "confidential", Some(mid), "space_manager");
        let ada = id(&app.create_user("ada"));
        // Already in root with a stronger role: parent_access must not touch it.
        put(&app, root, ada, "space_manager");
        put(&app, leaf, ada, "reader");
        let mut got = memberships(&app, ada);
        got.sort();
        assert_eq!(
            got,
            [(root, "space_manager".into()), (mid, "contributor".into()), (leaf, "reader".into())]
        );
    }

    fn child_removal_removes_from_every_descendant(backend) {
        let app = start(backend);
        let root = space(&app, "root", "confidential", None, "reader");
        let mid = space(&app, "mid", "confidential", Some(root), "reader");
        let leaf = space(&app, "leaf", "confidential", Some(mid), "reader");
        let other = space(&app, "other", "confidential", None, "reader");
        let ada = id(&app.create_user("ada"));
        put(&app, leaf, ada, "reader"); // parent_access adds mid and root
        put(&app, other, ada, "reader");
        assert_eq!(memberships(&app, ada).len(), 4);
        expect(204, app.delete(&format!("/api/spaces/{root}/members/{ada}"), ADMIN));
        assert_eq!(memberships(&app, ada), [(other, "reader".to_owned())]);
        // And deleting the user still works though removals cascade.
        expect(204, app.delete(&format!("/api/users/{ada}"), ADMIN));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 0);
    }
}

fn options() -> Options {
    Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap())
}

fn kinds(app: &TestApp, query: &str) -> Vec<String> {
    let page = expect(
        200,
        app.get(&format!("/plugins/audit_log/entries{query}"), ADMIN),
    );
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

e2e! {
    fn audit_log_keeps_every_entity_hook_in_its_own_table(backend) {
        let db = std::sync::Arc::new(TestDb::create(backend));
        let app = TestApp::start_on(db.clone(), &options());
        let ada = id(&app.create_user("ada"));
        let s = space(&app, "s", "confidential", None, "reader");
        put(&app, s, ada, "reader");
        expect(200, app.patch(&format!("/api/users/{ada}"), ADMIN, json!({"display_name": "Ada"})));
        expect(204, app.delete(&format!("/api/spaces/{s}/members/{ada}"), ADMIN));
        let newest_first = [
            "membership_deleted",
            "user_modified",
            "membership_created",
            "space_created",
            "user_created",
        ];
        assert_eq!(kinds(&app, ""), newest_first);
        assert_eq!(kinds(&app, "?limit=2&offset=1"), newest_first[1..3]);
        let page = expect(200, app.get("/plugins/audit_log/entries?limit=1", ADMIN));
        assert_eq!(page["entries"][0]["actor"], "admin");
        assert_eq!(page["entries"][0]["entity"], format!("space {s} user {ada}"));
        expect_error(422, "invalid", app.get("/plugins/audit_log/entries?limit=-1", ADMIN));
        expect_error(401, "unauthorized", app.get("/plugins/audit_log/entries", None));
        // An ordinary user's key does not read everyone's events.
        let key = expect(201, app.post("/plugins/api_keys/keys", ADMIN, json!({"user_id": ada})));
        let key = key["key"].as_str().unwrap().to_owned();
        expect_error(403, "forbidden", app.get("/plugins/audit_log/entries", Some(&key)));
        // A rolled-back operation leaves no entry.
        let dup = json!({"username": "ada", "email": "other@example.org"});
        expect_error(409, "conflict", app.post("/api/users", ADMIN, dup));
        assert_eq!(db.count("SELECT COUNT(*) FROM plugin_audit_log_entries"), 5);
        // Its migrations ran once, with their own history, and survive a restart.
        drop(app);
        let app = TestApp::start_on(db.clone(), &options());
        assert_eq!(db.count("SELECT COUNT(*) FROM plugin_audit_log_migrations"), 1);
        assert_eq!(kinds(&app, "").len(), 5);
    }

    fn api_keys_are_minted_once_stored_hashed_and_accepted_everywhere(backend) {
        let app = start(backend);
        let ada = id(&app.create_user("ada"));
        let bob = id(&app.create_user("bob"));
        let minted = expect(201, app.post("/plugins/api_keys/keys", ADMIN, json!({"user_id": ada})));
        let key = minted["key"].as_str().unwrap().to_owned();
        assert!(key.starts_with("ak_") && key.len() > 40, "{minted}");
        let stored = app.db.column("SELECT hash FROM plugin_api_keys_keys");
        assert_eq!(stored.len(), 1);
        assert!(stored[0] != key && stored[0].len() == 64, "only a hash is stored");
        // The key works on core and plugin endpoints, acting as its user.
        expect(200, app.get("/api/users", Some(&key)));
        let me = expect(200, app.get("/plugins/hello_world/user", Some(&key)));
        assert_eq!((me["name"].clone(), me["user_id"].clone(), me["admin"].clone()), (json!("ada"), json!(ada), json!(false)));
        expect_error(403, "forbidden", app.get("/api/admin/plugins", Some(&key)));
        expect_error(401, "unauthorized", app.get("/api/users", Some("ak_0000")));
        // Ada mints her own, not Bob's; the admin must say for whom.
        expect(201, app.post("/plugins/api_keys/keys", Some(&key), json!({})));
        expect_error(403, "forbidden", app.post("/plugins/api_keys/keys", Some(&key), json!({"user_id": bob})));
        expect_error(422, "invalid", app.post("/plugins/api_keys/keys", ADMIN, json!({})));
        expect_error(404, "not_found", app.post("/plugins/api_keys/keys", ADMIN, json!({"user_id": 999})));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM plugin_api_keys_keys"), 2);
    }
}
