//! Plugins and the app: routes added at startup under `/plugins/<name>/`,
//! identity in plugin handlers, no registration after startup, a route clash
//! stops startup, the admin endpoint, and `plugins list`.

use e2e_tests::*;

const PLUGINS: [&str; 6] = ["app", "tokens", "second", "failing", "cascade", "recorder"];

e2e! {
    fn plugin_routes_live_under_the_plugin_prefix(backend) {
        let app = TestApp::start(backend);
        let echoed = expect(200, app.post("/plugins/recorder/echo/hello?q=42", None, json!({"a": [1, 2]})));
        assert_eq!(
            echoed,
            json!({"word": "hello", "q": "42", "body": {"a": [1, 2]}, "path": "/plugins/recorder/echo/hello"})
        );
        assert_eq!(expect(200, app.get("/plugins/recorder/events", None)), json!([]));
        // Not at the root, not under another plugin's name.
        expect_error(404, "not_found", app.get("/events", None));
        expect_error(404, "not_found", app.get("/plugins/second/events", None));
    }

    fn whoami_needs_a_recognised_token(backend) {
        let app = TestApp::start(backend);
        assert_eq!(id(&app.create_user("user-1")), 1, "the user of USER's token");
        expect_error(401, "unauthorized", app.get("/plugins/recorder/whoami", None));
        expect_error(401, "unauthorized", app.get("/plugins/recorder/whoami", Some("wrong")));
        let admin = expect(200, app.get("/plugins/recorder/whoami", ADMIN));
        assert_eq!(admin, json!({"user_id": null, "name": "admin", "admin": true, "via": "app"}));
        let user = expect(200, app.get("/plugins/recorder/whoami", USER));
        assert_eq!(user, json!({"user_id": 1, "name": "user-1", "admin": false, "via": "tokens"}));
    }

    fn late_route_registration_is_refused(backend) {
        let app = TestApp::start(backend);
        let answer = expect(200, app.get("/plugins/recorder/late", None));
        let refused = answer["refused"].as_str().unwrap_or_else(|| panic!("not refused: {answer}"));
        assert!(refused.contains("/plugins/recorder/late-added") && refused.contains("after startup"), "{refused}");
        expect_error(404, "not_found", app.get("/plugins/recorder/late-added", None));
        let routes = expect(200, app.get("/api/admin/plugins", ADMIN))["routes"].clone();
        assert!(!routes.to_string().contains("late-added"), "{routes}");
    }

    fn a_route_clash_stops_startup_naming_both(backend) {
        let db = TestDb::create(backend);
        let (status, output) = run_to_exit(&db, &Options::default().env("TEST_ROUTE_CLASH", "1"));
        assert!(!status.success(), "started anyway: {output}");
        assert!(!output.contains("listening on"), "{output}");
        for named in ["GET /plugins/recorder/clash/:first", "GET /plugins/recorder/clash/:second", "recorder"] {
            assert!(output.contains(named), "{named:?} not in:\n{output}");
        }
    }

    fn admin_endpoint_lists_plugins_hooks_in_order_and_routes(backend) {
        let app = TestApp::start(backend);
        let report = expect(200, app.get("/api/admin/plugins", ADMIN));
        let names: Vec<&str> = report["plugins"].as_array().expect("plugins").iter().filter_map(|p| p["name"].as_str()).collect();
        for plugin in PLUGINS {
            assert!(names.contains(&plugin), "{plugin} missing in {names:?}");
        }
        assert!(report["plugins"].as_array().into_iter().flatten().all(|p| p["status"] == "loaded"), "{report}");

        let calls = |hook: &str| -> Vec<(String, i64, String, bool)> {
            report["hooks"][hook]
                .as_array()
                .unwrap_or_else(|| panic!("no {hook} in {report}"))
                .iter()
                .map(|i| (
                    i["plugin"].as_str().unwrap_or_default().to_owned(),
                    i["priority"].as_i64().unwrap_or(-99),
                    i["tier"].as_str().unwrap_or_default().to_owned(),
                    i["wrapper"].as_bool().unwrap_or(true),
                ))
                .collect()
        };
        let normal = |plugin: &str, priority| (plugin.to_owned(), priority, "normal".to_owned(), false);
        assert_eq!(
            calls("on_user_created"),
            [normal("recorder", 10), normal("cascade", 0), normal("failing", 0), normal("second", 0)]
        );
        assert_eq!(calls("on_space_deleted"), [normal("recorder", 10), normal("second", 0)]);
        assert_eq!(
            calls("authenticate"),
            [normal("tokens", 0), ("app".to_owned(), 0, "trylast".to_owned(), false)]
        );

        let routes = report["routes"].as_array().expect("routes");
        for (method, path) in [
            ("GET", "/plugins/recorder/events"),
            ("GET", "/plugins/recorder/whoami"),
            ("POST", "/plugins/recorder/echo/:word"),
            ("GET", "/plugins/recorder/late"),
            ("GET", "/plugins/recorder/slow"),
        ] {
            let route = json!({"method": method, "path": path, "plugin": "recorder"});
            assert!(routes.contains(&route), "{route} not in {routes:?}");
        }
        assert!(routes.iter().all(|r| r["plugin"] != "app"), "core routes are not plugin routes");
    }

    fn admin_endpoint_needs_an_admin(backend) {
        let app = TestApp::start(backend);
        assert_eq!(id(&app.create_user("user-1")), 1, "the user of USER's token");
        expect_error(401, "unauthorized", app.get("/api/admin/plugins", None));
        expect_error(403, "forbidden", app.get("/api/admin/plugins", USER));
        // The same identity may use the ordinary API.
        expect(200, app.get("/api/users", USER));
    }
}

#[test]
fn plugins_list_prints_the_plugins_without_serving() {
    let db = TestDb::create(Backend::Sqlite);
    let options = Options {
        args: vec!["plugins".into(), "list".into()],
        ..Options::default()
    };
    let (status, output) = run_to_exit(&db, &options);
    assert!(status.success(), "{output}");
    assert!(!output.contains("listening on"), "{output}");
    assert!(!db.dir.path().join("app.db").exists(), "no database opened");
    let line = |plugin: &str| -> String {
        output
            .lines()
            .find(|l| l.split_whitespace().next() == Some(plugin))
            .unwrap_or_else(|| panic!("no line for {plugin} in:\n{output}"))
            .to_owned()
    };
    for plugin in PLUGINS {
        assert!(line(plugin).contains("loaded"), "{}", line(plugin));
    }
    assert!(
        line("recorder").contains("on_plugins_loaded")
            && line("recorder").contains("on_membership_deleted")
    );
    assert!(line("tokens").contains("authenticate"));
    assert!(line("app").contains("authenticate"));
}

e2e! {
    fn a_plugin_handler_acts_through_the_services_in_its_unit_of_work(backend) {
        let app = TestApp::start(backend);
        let one = id(&app.create_user("user-1"));
        assert_eq!(one, 1, "the user of USER's token");
        let events = app.events().len();
        let body = json!({"username": "via-plugin", "email": "vp@example.org"});
        // The handler acts as its caller, with the caller's rights: user-1
        // may not create users, so it may not through the route either.
        let refused = expect_error(403, "forbidden", app.post("/plugins/recorder/users", USER, body.clone()));
        assert_eq!(refused["action"], "user.create");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
        let created = expect(201, app.post("/plugins/recorder/users", ADMIN, body.clone()));
        assert_eq!(created["username"], "via-plugin");
        assert_eq!(app.event_keys(events), [key("recorder", "on_user_created", id(&created)), key("second", "on_user_created", id(&created))]);
        assert!(app.events().iter().all(|e| e["actor"] == "admin"));

        // A handler that fails after writing leaves nothing.
        let other = json!({"username": "rolled-back", "email": "rb@example.org"});
        let error = expect_error(409, "conflict", app.post("/plugins/recorder/users?fail=1", ADMIN, other));
        assert!(error["created"].is_i64(), "{error}");
        assert_eq!(app.db.column("SELECT username FROM users ORDER BY id"), ["user-1", "via-plugin"]);
        assert_eq!(app.events().len(), events + 2);
        // Errors from the services come through as they are.
        let error = expect_error(409, "conflict", app.post(
            "/plugins/recorder/users",
            ADMIN,
            json!({"username": "via-plugin", "email": "other@example.org"}),
        ));
        assert_eq!(error["field"], "username");
        let error = expect_error(422, "invalid", app.post("/plugins/recorder/users", ADMIN, json!({"username": "x"})));
        assert_eq!(error["field"], "email");
    }

    fn a_panicking_plugin_handler_is_a_500_naming_the_plugin(backend) {
        let app = TestApp::start(backend);
        let error = expect_error(500, "internal", app.get("/plugins/recorder/panic", None));
        assert_eq!(error["plugin"], "recorder");
        expect(200, app.get("/plugins/recorder/events", None));
    }
}
