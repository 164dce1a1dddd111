//! Every core endpoint: health, users, spaces, memberships, and the cascade
//! of a space deletion.

use e2e_tests::*;

e2e! {
    fn health_and_request_log(backend) {
        let app = TestApp::start(backend);
        assert_eq!(expect(200, app.get("/health", None))["status"], "ok");
        // One log line per request: METHOD PATH STATUS LATENCYms REQUEST-ID.
        app.proc.output.wait_for("the request log line", |out| {
            out.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().rev().take(3).collect();
                l.contains("GET /health 200 ") && words[1].ends_with("ms") && words[0].contains('-')
            })
        });
    }

    fn sqlite_file_is_created_in_the_data_dir(backend) {
        let app = TestApp::start(backend);
        let file = app.path("app.db");
        assert_eq!(file.exists(), backend == Backend::Sqlite, "{}", file.display());
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
    }

    fn users_crud(backend) {
        let app = TestApp::start(backend);
        let body = json!({"username": "ada", "email": "ada@example.org", "display_name": "Ada"});
        let ada = expect(201, app.post("/api/users", ADMIN, body));
        assert_eq!(ada["username"], "ada");
        assert_eq!(ada["email"], "ada@example.org");
        assert_eq!(ada["display_name"], "Ada");
        assert!(ada["created_at"].as_str().is_some_and(|t| t.contains('T')), "{ada}");
        let ada_id = id(&ada);
        let bob = app.create_user("bob");
        assert_eq!(bob["display_name"], serde_json::Value::Null);

        let path = format!("/api/users/{ada_id}");
        assert_eq!(expect(200, app.get(&path, ADMIN)), ada);
        let listed = expect(200, app.get("/api/users", ADMIN));
        assert_eq!(listed, json!([ada, bob]));

        let patched = expect(200, app.patch(&path, ADMIN, json!({"email": "ada@lovelace.org"})));
        assert_eq!(patched["email"], "ada@lovelace.org");
        assert_eq!(patched["display_name"], "Ada", "untouched fields stay");
        let cleared = expect(200, app.patch(&path, ADMIN, json!({"display_name": null})));
        assert_eq!(cleared["display_name"], serde_json::Value::Null);
        assert_eq!(expect(200, app.get(&path, ADMIN)), cleared);
        let emails = app.db.column(&format!("SELECT email FROM users WHERE id = {ada_id}"));
        assert_eq!(emails, ["ada@lovelace.org"]);

        assert_eq!(expect(204, app.delete(&path, ADMIN)), serde_json::Value::Null);
        expect_error(404, "not_found", app.get(&path, ADMIN));
        assert_eq!(expect(200, app.get("/api/users", ADMIN)), json!([bob]));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
    }

    fn spaces_crud(backend) {
        let app = TestApp::start(backend);
        let body = json!({"name": "Team", "access": "on_request", "default_role": "contributor"});
        let team = expect(201, app.post("/api/spaces", ADMIN, body));
        assert_eq!(team["name"], "Team");
        assert_eq!(team["access"], "on_request");
        assert_eq!(team["default_role"], "contributor");
        assert_eq!(team["parent_id"], serde_json::Value::Null);
        let team_id = id(&team);
        let sub = app.create_space("Sub", Some(team_id));
        assert_eq!(sub["parent_id"], team_id);
        assert_eq!(sub["default_role"], "reader", "default role");

        let path = format!("/api/spaces/{team_id}");
        assert_eq!(expect(200, app.get(&path, ADMIN)), team);
        assert_eq!(expect(200, app.get("/api/spaces", ADMIN)), json!([team, sub]));

        let patch = json!({"name": "Team A", "access": "confidential"});
        let patched = expect(200, app.patch(&path, ADMIN, patch));
        assert_eq!(patched["name"], "Team A");
        assert_eq!(patched["access"], "confidential");
        assert_eq!(patched["default_role"], "contributor");
        let sub_path = format!("/api/spaces/{}", id(&sub));
        let moved = expect(200, app.patch(&sub_path, ADMIN, json!({"parent_id": null})));
        assert_eq!(moved["parent_id"], serde_json::Value::Null);

        expect(204, app.delete(&path, ADMIN));
        expect_error(404, "not_found", app.get(&path, ADMIN));
        assert_eq!(expect(200, app.get(&sub_path, ADMIN)), moved, "no longer a sub-space");
    }

    fn memberships(backend) {
        let app = TestApp::start(backend);
        let space = id(&app.create_space("Team", None));
        let (ada, bob) = (id(&app.create_user("ada")), id(&app.create_user("bob")));
        let member = |user: i64| format!("/api/spaces/{space}/members/{user}");

        let created = expect(201, app.put(&member(ada), ADMIN, json!({"role": "reader"})));
        assert_eq!(created["space_id"], space);
        assert_eq!(created["user_id"], ada);
        assert_eq!(created["role"], "reader");
        let changed = expect(200, app.put(&member(ada), ADMIN, json!({"role": "space_manager"})));
        assert_eq!(changed["role"], "space_manager");
        let same = expect(200, app.put(&member(ada), ADMIN, json!({"role": "space_manager"})));
        assert_eq!(same, changed);
        expect(201, app.put(&member(bob), ADMIN, json!({"role": "contributor"})));

        let listed = expect(200, app.get(&format!("/api/spaces/{space}/members"), ADMIN));
        let roles: Vec<_> = listed
            .as_array()
            .expect("a list")
            .iter()
            .map(|m| (m["user_id"].as_i64().unwrap_or(0), m["role"].as_str().unwrap_or("").to_owned()))
            .collect();
        assert_eq!(roles, [(ada, "space_manager".to_owned()), (bob, "contributor".to_owned())]);

        expect(204, app.delete(&member(ada), ADMIN));
        expect_error(404, "not_found", app.delete(&member(ada), ADMIN));
        let left = expect(200, app.get(&format!("/api/spaces/{space}/members"), ADMIN));
        assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 1);
    }

    fn space_delete_cascades_with_hooks(backend) {
        let app = TestApp::start(backend);
        let root = id(&app.create_space("root", None));
        let child = id(&app.create_space("child", Some(root)));
        let grandchild = id(&app.create_space("grandchild", Some(child)));
        let other = id(&app.create_space("other", None));
        let ada = id(&app.create_user("ada"));
        for space in [root, child, other] {
            let path = format!("/api/spaces/{space}/members/{ada}");
            expect(201, app.put(&path, ADMIN, json!({"role": "reader"})));
        }
        let before = app.events().len();

        expect(204, app.delete(&format!("/api/spaces/{root}"), ADMIN));
        for gone in [root, child, grandchild] {
            expect_error(404, "not_found", app.get(&format!("/api/spaces/{gone}"), ADMIN));
        }
        assert_eq!(app.db.column("SELECT id FROM spaces"), [other.to_string()]);
        assert_eq!(
            app.db.column("SELECT space_id FROM memberships"),
            [other.to_string()]
        );
        // Deepest first; each space's memberships before the space.
        let recorder = app.recorder_keys(before);
        assert_eq!(
            recorder,
            [
                key("recorder", "on_space_deleted", grandchild),
                key("recorder", "on_membership_deleted", child),
                key("recorder", "on_space_deleted", child),
                key("recorder", "on_membership_deleted", root),
                key("recorder", "on_space_deleted", root),
            ]
        );
    }

    fn user_delete_removes_memberships_with_hooks(backend) {
        let app = TestApp::start(backend);
        let (s1, s2) = (id(&app.create_space("s1", None)), id(&app.create_space("s2", None)));
        let ada = id(&app.create_user("ada"));
        for space in [s1, s2] {
            let path = format!("/api/spaces/{space}/members/{ada}");
            expect(201, app.put(&path, ADMIN, json!({"role": "reader"})));
        }
        let before = app.events().len();
        expect(204, app.delete(&format!("/api/users/{ada}"), ADMIN));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 0);
        let recorder = app.recorder_keys(before);
        assert_eq!(
            recorder,
            [
                key("recorder", "on_membership_deleted", s1),
                key("recorder", "on_membership_deleted", s2),
                key("recorder", "on_user_deleted", ada),
            ]
        );
    }
}

e2e! {
    fn concurrent_writes_all_succeed(backend) {
        let app = TestApp::start(backend);
        let users: Vec<i64> = (0..8).map(|i| id(&app.create_user(&format!("u{i}")))).collect();
        let space = id(&app.create_space("busy", None));
        let threads: Vec<_> = users
            .iter()
            .map(|&user| {
                let client = app.client.clone();
                std::thread::spawn(move || {
                    let mut answers = Vec::new();
                    for round in 0..5 {
                        let name = json!({"display_name": format!("round {round}")});
                        answers.push(client.patch(&format!("/api/users/{user}"), ADMIN, name));
                        let member = format!("/api/spaces/{space}/members/{user}");
                        let role = if round % 2 == 0 { "reader" } else { "contributor" };
                        answers.push(client.put(&member, ADMIN, json!({"role": role})));
                    }
                    answers
                })
            })
            .collect();
        for thread in threads {
            for (status, body) in thread.join().expect("a client thread") {
                assert!(status == 200 || status == 201, "{status} {body}");
            }
        }
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 8);
        let patched = app.db.count("SELECT COUNT(*) FROM users WHERE display_name = 'round 4'");
        assert_eq!(patched, 8);
    }
}
