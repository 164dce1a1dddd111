//! Who may do what, end to end through the real app and the shipped
//! plugins: every identity (admin, the user themselves, another user, a
//! member, a space manager of the space, of its ancestor, nobody) against
//! every endpoint and the resources it touches; a refusal changes nothing.

use e2e_tests::*;
use serde_json::{Value, json};

/// The cast, with an API key each (minted by the shipped api_keys plugin).
struct World {
    app: TestApp,
    keys: Vec<(&'static str, i64, String)>,
    parent: i64,
    child: i64,
    open: i64,
}

impl World {
    fn new(backend: Backend) -> World {
        let options = Options::default()
            .real_app()
            .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap());
        let app = TestApp::start_with(backend, options);
        let mut keys = Vec::new();
        for name in ["alice", "bob", "carol", "dave"] {
            let user = id(&app.create_user(name));
            let minted = expect(
                201,
                app.post("/plugins/api_keys/keys", ADMIN, json!({"user_id": user})),
            );
            keys.push((name, user, minted["key"].as_str().unwrap().to_owned()));
        }
        let secret = |name: &str, parent: Option<i64>| {
            let body = json!({"name": name, "access": "confidential", "parent_id": parent});
            id(&expect(201, app.post("/api/spaces", ADMIN, body)))
        };
        let parent = secret("parent", None);
        let child = secret("child", Some(parent));
        let open = id(&app.create_space("lobby", None));
        let world = World {
            app,
            keys,
            parent,
            child,
            open,
        };
        world.member(parent, "alice", "space_manager");
        world.member(child, "carol", "space_manager");
        world.member(child, "bob", "reader");
        world
    }

    fn user(&self, name: &str) -> i64 {
        self.keys.iter().find(|k| k.0 == name).unwrap().1
    }

    fn token(&self, who: &str) -> Option<&str> {
        match who {
            "admin" => ADMIN,
            "none" => None,
            name => Some(self.keys.iter().find(|k| k.0 == name).unwrap().2.as_str()),
        }
    }

    fn member(&self, space: i64, name: &str, role: &str) {
        let path = format!("/api/spaces/{space}/members/{}", self.user(name));
        let (status, body) = self.app.put(&path, ADMIN, json!({"role": role}));
        assert!(status == 200 || status == 201, "{body}");
    }

    /// Everything the core tables hold, to compare before and after a refusal.
    fn snapshot(&self) -> Vec<String> {
        let db = &self.app.db;
        let mut all = db.column("SELECT username || '|' || email || '|' || COALESCE(display_name, '') FROM users ORDER BY id");
        all.extend(db.column("SELECT name || '|' || access || '|' || COALESCE(CAST(parent_id AS TEXT), '') FROM spaces ORDER BY id"));
        all.extend(db.column("SELECT CAST(space_id AS TEXT) || '|' || CAST(user_id AS TEXT) || '|' || role FROM memberships ORDER BY space_id, user_id"));
        all
    }

    /// `method path` as each of `cases` (identity, expected status); a
    /// refused one (4xx) must leave the database as it was.
    #[track_caller]
    fn check(&self, method: &str, path: &str, body: Option<Value>, cases: &[(&str, u16)]) {
        for (who, expected) in cases {
            let before = self.snapshot();
            let (status, answer) = self
                .app
                .request(method, path, self.token(who), body.as_ref());
            assert_eq!(status, *expected, "{method} {path} as {who}: {answer}");
            if status >= 400 {
                assert_eq!(
                    self.snapshot(),
                    before,
                    "{method} {path} as {who} was refused but changed something"
                );
                let error = &answer["error"];
                assert!(error["message"].is_string(), "{answer}");
                if status == 403 {
                    assert!(
                        error["action"].is_string()
                            || path.contains("admin")
                            || path.contains("plugins/"),
                        "403 names the action: {answer}"
                    );
                }
                if status == 404 {
                    // As if it did not exist: the very answer an unknown id gets.
                    assert_eq!(error["code"], "not_found", "{answer}");
                    assert!(!answer.to_string().contains("forbidden"), "{answer}");
                }
            }
        }
    }
}

e2e! {
    fn spaces_follow_the_roles(backend) {
        let w = World::new(backend);
        let (child, parent) = (w.child, w.parent);
        let reads = [("admin", 200), ("alice", 200), ("carol", 200), ("bob", 200), ("dave", 404), ("none", 401)];
        w.check("GET", &format!("/api/spaces/{child}"), None, &reads);
        w.check("GET", &format!("/api/spaces/{child}/members"), None, &reads);
        // A hidden space answers exactly like a missing one.
        let (_, hidden) = w.app.get(&format!("/api/spaces/{child}"), w.token("dave"));
        let (_, missing) = w.app.get("/api/spaces/999999", w.token("dave"));
        assert_eq!(hidden["error"]["message"].as_str().unwrap().replace(&child.to_string(), "N"),
                   missing["error"]["message"].as_str().unwrap().replace("999999", "N"));
        let rename = |n: &str| Some(json!({"name": n}));
        w.check("PATCH", &format!("/api/spaces/{child}"), rename("by bob"), &[("bob", 403), ("dave", 404), ("none", 401)]);
        for who in ["admin", "alice", "carol"] {
            w.check("PATCH", &format!("/api/spaces/{child}"), rename(&format!("by {who}")), &[(who, 200)]);
        }
        // Sub-spaces: a manager above may create them; a member may not; an
        // outsider is told the parent does not exist.
        let sub = |n: &str| Some(json!({"name": n, "access": "confidential", "parent_id": child}));
        w.check("POST", "/api/spaces", sub("x"), &[("bob", 403), ("none", 401)]);
        w.check("POST", "/api/spaces", sub("by carol"), &[("carol", 201)]);
        let dave = w.user("dave");
        let join = format!("/api/spaces/{child}/members/{dave}");
        let role = Some(json!({"role": "reader"}));
        w.check("PUT", &join, role.clone(), &[("bob", 403), ("dave", 404), ("none", 401)]);
        w.check("PUT", &join, role.clone(), &[("carol", 201)]);
        w.check("PUT", &join, Some(json!({"role": "contributor"})), &[("alice", 200)]);
        w.check("PUT", &join, Some(json!({"role": "reader"})), &[("admin", 200)]);
        // Deleting: the managers only.
        w.check("DELETE", &format!("/api/spaces/{child}"), None, &[("bob", 403), ("none", 401)]);
        w.check("DELETE", &format!("/api/spaces/{parent}"), None, &[("carol", 403)]);
        // A member removes only themselves (leaving); a manager anyone.
        let bob = w.user("bob");
        w.check("DELETE", &format!("/api/spaces/{child}/members/{bob}"), None, &[("dave", 403), ("none", 401)]);
        w.check("DELETE", &format!("/api/spaces/{child}/members/{bob}"), None, &[("bob", 204)]);
        w.check("DELETE", &join, None, &[("carol", 204)]);
        // Listing: only the spaces one may see.
        let names = |who: &str| -> Vec<String> {
            let (_, list) = w.app.get("/api/spaces", w.token(who));
            list.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(names("dave"), ["parent", "lobby"], "dave is in parent now (parent_access), never in child");
        assert_eq!(names("admin").len(), 4, "parent, child, lobby and carol's sub-space");
        w.check("DELETE", &format!("/api/spaces/{child}"), None, &[("alice", 204)]);
        w.check("DELETE", &format!("/api/spaces/{}", w.open), None, &[("dave", 403), ("admin", 204)]);
    }

    fn anyone_signed_in_creates_a_space_and_manages_it(backend) {
        let w = World::new(backend);
        let created = expect(201, w.app.post("/api/spaces", w.token("dave"), json!({"name": "mine", "access": "confidential"})));
        let mine = id(&created);
        let dave = w.user("dave");
        let role = w.app.db.column(&format!("SELECT role FROM memberships WHERE space_id = {mine} AND user_id = {dave}"));
        assert_eq!(role, ["space_manager"]);
        w.check("GET", &format!("/api/spaces/{mine}"), None, &[("dave", 200), ("bob", 404), ("admin", 200)]);
        w.check("PATCH", &format!("/api/spaces/{mine}"), Some(json!({"access": "open"})), &[("dave", 200)]);
        w.check("GET", &format!("/api/spaces/{mine}"), None, &[("bob", 200)]);
        w.check("PATCH", &format!("/api/spaces/{mine}"), Some(json!({"name": "bob's"})), &[("bob", 403)]);
        // A parent one cannot see is answered like one that does not exist.
        let hidden = expect_error(422, "invalid", w.app.post("/api/spaces", w.token("dave"), json!({"name": "x", "access": "open", "parent_id": w.child})));
        let missing = expect_error(422, "invalid", w.app.post("/api/spaces", w.token("dave"), json!({"name": "x", "access": "open", "parent_id": 999999})));
        assert_eq!(hidden["field"], missing["field"]);
    }

    fn users_follow_the_roles(backend) {
        let w = World::new(backend);
        let bob = w.user("bob");
        let everyone = [("admin", 200), ("alice", 200), ("bob", 200), ("carol", 200), ("dave", 200), ("none", 401)];
        w.check("GET", &format!("/api/users/{bob}"), None, &everyone);
        // The e-mail address: the user and the admin only.
        for (who, sees) in [("admin", true), ("bob", true), ("alice", false), ("dave", false)] {
            let (_, user) = w.app.get(&format!("/api/users/{bob}"), w.token(who));
            assert_eq!(user.get("email").is_some(), sees, "{who}: {user}");
            let (_, list) = w.app.get("/api/users", w.token(who));
            let me = list.as_array().unwrap().iter().find(|u| u["id"] == bob).unwrap();
            assert_eq!(me.get("email").is_some(), sees, "{who} in the list: {me}");
        }
        let patch = Some(json!({"email": "hijacked@example.org"}));
        w.check("PATCH", &format!("/api/users/{bob}"), patch.clone(), &[("alice", 403), ("carol", 403), ("dave", 403), ("none", 401)]);
        w.check("PATCH", &format!("/api/users/{bob}"), Some(json!({"display_name": "Bob"})), &[("bob", 200), ("admin", 200)]);
        w.check("POST", "/api/users", Some(json!({"username": "eve", "email": "eve@example.org"})), &[("bob", 403), ("none", 401)]);
        w.check("GET", "/api/admin/plugins", None, &[("bob", 403), ("none", 401), ("admin", 200)]);
        w.check("GET", "/plugins/audit_log/entries", None, &[("bob", 403), ("none", 401), ("admin", 200)]);
        let dave = w.user("dave");
        w.check("DELETE", &format!("/api/users/{dave}"), None, &[("alice", 403), ("bob", 403), ("none", 401)]);
        // A user deletes their own account; their key goes with them.
        w.check("DELETE", &format!("/api/users/{dave}"), None, &[("dave", 204)]);
        let gone = expect_error(401, "unauthorized", w.app.get("/api/users", w.token("dave")));
        let nobody = expect_error(401, "unauthorized", w.app.get("/api/users", None));
        assert_eq!(gone["message"], nobody["message"], "a stale key tells nothing more than no key");
        assert_eq!(w.app.db.count(&format!("SELECT COUNT(*) FROM plugin_api_keys_keys WHERE user_id = {dave}")), 0);
    }

    fn the_shipped_plugins_work_for_ordinary_users(backend) {
        let w = World::new(backend);
        // carol (no admin) adds dave to the child: parent_access adds him to
        // the parent, although carol does not manage it.
        let dave = w.user("dave");
        expect(201, w.app.put(&format!("/api/spaces/{}/members/{dave}", w.child), w.token("carol"), json!({"role": "reader"})));
        let parent_member = w.app.db.count(&format!("SELECT COUNT(*) FROM memberships WHERE space_id = {} AND user_id = {dave}", w.parent));
        assert_eq!(parent_member, 1);
        // bob creates an open space: autoinvite puts everyone in it.
        let open = id(&expect(201, w.app.post("/api/spaces", w.token("bob"), json!({"name": "bob's open", "access": "open"}))));
        assert_eq!(w.app.db.count(&format!("SELECT COUNT(*) FROM memberships WHERE space_id = {open}")), 4);
        // carol removes dave from the child... child_removal has nothing below it;
        // alice removes dave from the parent: child_removal removes him from the child too.
        expect(204, w.app.delete(&format!("/api/spaces/{}/members/{dave}", w.parent), w.token("alice")));
        assert_eq!(w.app.db.count(&format!("SELECT COUNT(*) FROM memberships WHERE user_id = {dave} AND space_id IN ({}, {})", w.parent, w.child)), 0);
    }
}

/// A plugin implementing `authorize` decides before the default policy: the
/// test app's `gate` forbids spaces named `forbidden-*` (the default allows
/// them) and lets user 1 delete `deletable-*` users (the default does not).
#[test]
fn a_plugin_can_forbid_what_the_default_allows_and_allow_what_it_forbids() {
    let app = TestApp::start(Backend::Sqlite);
    assert_eq!(id(&app.create_user("one")), 1);
    let error = expect_error(
        403,
        "forbidden",
        app.post(
            "/api/spaces",
            USER,
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
    expect(
        201,
        app.post(
            "/api/spaces",
            USER,
            json!({"name": "fine", "access": "open"}),
        ),
    );
    let victim = id(&app.create_user("deletable-vic"));
    let other = id(&app.create_user("kept-kim"));
    expect(204, app.delete(&format!("/api/users/{victim}"), USER));
    expect_error(
        403,
        "forbidden",
        app.delete(&format!("/api/users/{other}"), USER),
    );
    assert_eq!(
        app.db.column("SELECT username FROM users ORDER BY id"),
        ["one", "kept-kim"]
    );
}
