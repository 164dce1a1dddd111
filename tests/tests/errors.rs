//! Every error the API answers, as JSON `{"error": {code, message, ...}}`.

use e2e_tests::*;

e2e! {
    fn malformed_json_is_400(backend) {
        let app = TestApp::start(backend);
        expect_error(400, "bad_request", app.raw("POST", "/api/users", ADMIN, Some("{not json")));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
    }

    fn unauthorized_without_or_with_a_wrong_token(backend) {
        let app = TestApp::start(backend);
        for token in [None, Some("wrong-token")] {
            expect_error(401, "unauthorized", app.get("/api/users", token));
            expect_error(401, "unauthorized", app.get("/api/spaces", token));
            let body = json!({"username": "eve", "email": "eve@example.org"});
            expect_error(401, "unauthorized", app.post("/api/users", token, body));
            expect_error(401, "unauthorized", app.get("/api/admin/plugins", token));
        }
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
        // /health is public.
        expect(200, app.get("/health", None));
    }

    fn unknown_id_and_unknown_route_are_404(backend) {
        let app = TestApp::start(backend);
        for path in ["/api/users/999", "/api/spaces/999", "/api/spaces/999/members", "/api/users/abc"] {
            expect_error(404, "not_found", app.get(path, ADMIN));
        }
        let error = expect_error(404, "not_found", app.get("/api/users/999", ADMIN));
        assert_eq!(error["resource"], "user");
        expect_error(404, "not_found", app.patch("/api/users/999", ADMIN, json!({})));
        expect_error(404, "not_found", app.delete("/api/spaces/999", ADMIN));
        expect_error(404, "not_found", app.get("/nowhere", None));
        expect_error(404, "not_found", app.get("/api/nowhere", ADMIN));
        expect_error(404, "not_found", app.get("/plugins/nobody/events", None));
    }

    fn wrong_method_is_405_with_allowed(backend) {
        let app = TestApp::start(backend);
        let error = expect_error(405, "method_not_allowed", app.delete("/api/users", ADMIN));
        let allowed = error["allowed"].as_array().expect("allowed").clone();
        for method in ["GET", "POST"] {
            assert!(allowed.contains(&json!(method)), "{error}");
        }
        assert!(!allowed.contains(&json!("DELETE")), "{error}");
        let error = expect_error(405, "method_not_allowed", app.post("/health", None, json!({})));
        assert_eq!(error["allowed"], json!(["GET"]));
        let error = expect_error(405, "method_not_allowed", app.delete("/plugins/recorder/events", None));
        assert_eq!(error["allowed"], json!(["GET"]));
    }

    fn duplicate_username_or_email_is_409(backend) {
        let app = TestApp::start(backend);
        let ada = app.create_user("ada");
        let same_name = json!({"username": "ada", "email": "other@example.org"});
        let error = expect_error(409, "conflict", app.post("/api/users", ADMIN, same_name));
        assert_eq!(error["field"], "username");
        let same_email = json!({"username": "ada2", "email": "ada@example.org"});
        let error = expect_error(409, "conflict", app.post("/api/users", ADMIN, same_email));
        assert_eq!(error["field"], "email");
        // PATCH into a taken name as well.
        let bob = id(&app.create_user("bob"));
        let taken = json!({"username": "ada"});
        let error = expect_error(409, "conflict", app.patch(&format!("/api/users/{bob}"), ADMIN, taken));
        assert_eq!(error["field"], "username");
        assert_eq!(expect(200, app.get("/api/users", ADMIN))[0], ada);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 2);
    }

    fn body_over_the_limit_is_413(backend) {
        let app = TestApp::start_with(backend, Options::default().config("[http]\nbody_limit = 100\n"));
        let big = json!({"username": "x".repeat(200), "email": "big@example.org"});
        let error = expect_error(413, "payload_too_large", app.post("/api/users", ADMIN, big));
        assert_eq!(error["limit"], 100);
        // A plugin route is behind the same limit.
        let error = expect_error(413, "payload_too_large", app.post("/plugins/recorder/echo/x", None, json!({"pad": "y".repeat(200)})));
        assert_eq!(error["limit"], 100);
        // Under the limit is fine.
        app.create_user("small");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
    }

    fn missing_field_or_wrong_type_is_422_naming_the_field(backend) {
        let app = TestApp::start(backend);
        let cases = [
            ("/api/users", json!({"username": "ada"}), "email"),
            ("/api/users", json!({"username": 5, "email": "ada@example.org"}), "username"),
            ("/api/users", json!({"username": "ada", "email": "not-an-email"}), "email"),
            ("/api/spaces", json!({"access": "open"}), "name"),
            ("/api/spaces", json!({"name": "s", "access": "everyone"}), "access"),
            ("/api/spaces", json!({"name": "s", "access": "open", "parent_id": "one"}), "parent_id"),
            ("/api/spaces", json!({"name": "s", "access": "open", "parent_id": 999}), "parent_id"),
            // No object at all: the body itself is what is wrong.
            ("/api/users", json!(null), "body"),
            ("/api/spaces", json!([1, 2]), "body"),
        ];
        for (path, body, field) in cases {
            let error = expect_error(422, "invalid", app.post(path, ADMIN, body.clone()));
            assert_eq!(error["field"], field, "{path} {body}: {error}");
        }
        let space = id(&app.create_space("s", None));
        let user = id(&app.create_user("ada"));
        let member = format!("/api/spaces/{space}/members/{user}");
        let error = expect_error(422, "invalid", app.put(&member, ADMIN, json!({"role": "king"})));
        assert_eq!(error["field"], "role");
        let error = expect_error(422, "invalid", app.put(&member, ADMIN, json!({})));
        assert_eq!(error["field"], "role");
        let error = expect_error(422, "invalid", app.patch(&format!("/api/spaces/{space}"), ADMIN, json!({"parent_id": space})));
        assert_eq!(error["field"], "parent_id");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM spaces"), 1);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 0);
    }

    fn membership_for_a_missing_user_or_space_is_404(backend) {
        let app = TestApp::start(backend);
        let space = id(&app.create_space("s", None));
        let user = id(&app.create_user("ada"));
        let role = json!({"role": "reader"});
        let error = expect_error(404, "not_found", app.put(&format!("/api/spaces/999/members/{user}"), ADMIN, role.clone()));
        assert_eq!(error["resource"], "space");
        let error = expect_error(404, "not_found", app.put(&format!("/api/spaces/{space}/members/999"), ADMIN, role));
        assert_eq!(error["resource"], "user");
        expect_error(404, "not_found", app.delete(&format!("/api/spaces/{space}/members/{user}"), ADMIN));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM memberships"), 0);
    }
}
