//! Entity hooks: the right entity and acting user, priority order across
//! plugins, before/after for modifications, and the unit of work (a failing
//! or panicking plugin leaves nothing behind; a plugin acting through the
//! services fires hooks inside the same transaction).

use e2e_tests::*;
use serde_json::Value;

/// The recorder's and second's rows for one operation: recorder (priority
/// 10) first, then second (priority 0), with the same entity.
#[track_caller]
fn assert_both_in_order(events: &[Value], hook: &str, entity_id: i64) {
    let keys: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["plugin"].clone(),
                e["hook"].clone(),
                e["entity_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (json!("recorder"), json!(hook), json!(entity_id)),
            (json!("second"), json!(hook), json!(entity_id)),
        ],
        "{events:?}"
    );
    assert_eq!(
        events[0]["detail"], events[1]["detail"],
        "both saw the same entity"
    );
}

e2e! {
    fn hooks_fire_with_the_entity_and_acting_user_in_priority_order(backend) {
        let app = TestApp::start(backend);
        let ada = app.create_user("ada");
        let events = app.events();
        assert_both_in_order(&events, "on_user_created", id(&ada));
        assert_eq!(events[0]["detail"], ada, "the hook got the created user");
        assert_eq!(events[0]["actor"], "admin");

        // As a non-admin identity (recognised by the `tokens` plugin).
        let space = expect(201, app.post("/api/spaces", USER, json!({"name": "s", "access": "open"})));
        let events = app.events()[2..].to_vec();
        assert_both_in_order(&events[..2], "on_space_created", id(&space));
        assert_eq!(events[0]["detail"], space);
        assert_eq!(events[1]["actor"], "user-1");
        // Its creator became its space manager, after the space's own hooks.
        assert_both_in_order(&events[2..], "on_membership_created", id(&space));
        assert_eq!(events[2]["detail"]["role"], "space_manager");

        // ada is user-1: the creator. Another user joins, and user-1, who
        // manages the space it created, removes them.
        let bob = app.create_user("bob");
        let path = format!("/api/spaces/{}/members/{}", id(&space), id(&bob));
        let membership = expect(201, app.put(&path, ADMIN, json!({"role": "reader"})));
        let events = app.events()[8..].to_vec();
        assert_both_in_order(&events, "on_membership_created", id(&space));
        assert_eq!(events[0]["detail"], membership);

        expect(204, app.delete(&path, USER));
        let events = app.events()[10..].to_vec();
        assert_both_in_order(&events, "on_membership_deleted", id(&space));
        assert_eq!(events[0]["detail"], membership);
        assert_eq!(events[0]["actor"], "user-1");
        // The rows are in the plugin's own table, committed.
        assert_eq!(app.db.count("SELECT COUNT(*) FROM plugin_recorder_events"), 12);
    }

    fn modified_hooks_get_before_and_after(backend) {
        let app = TestApp::start(backend);
        let ada = app.create_user("ada");
        let space = app.create_space("s", None);
        let member = format!("/api/spaces/{}/members/{}", id(&space), id(&ada));
        let reader = expect(201, app.put(&member, ADMIN, json!({"role": "reader"})));
        let from = app.events().len();

        let ada2 = expect(200, app.patch(&format!("/api/users/{}", id(&ada)), ADMIN, json!({"display_name": "Ada L."})));
        let space2 = expect(200, app.patch(&format!("/api/spaces/{}", id(&space)), ADMIN, json!({"name": "s2"})));
        let manager = expect(200, app.put(&member, ADMIN, json!({"role": "space_manager"})));
        // Same role again: nothing changes, no hook.
        expect(200, app.put(&member, ADMIN, json!({"role": "space_manager"})));

        let events = app.events()[from..].to_vec();
        assert_eq!(events.len(), 6, "{events:?}");
        let expected = [
            ("on_user_modified", id(&ada), &ada, &ada2),
            ("on_space_modified", id(&space), &space, &space2),
            ("on_membership_modified", id(&space), &reader, &manager),
        ];
        for (pair, (hook, entity, before, after)) in events.chunks(2).zip(expected) {
            assert_both_in_order(pair, hook, entity);
            assert_eq!(pair[0]["detail"], json!({"before": before, "after": after}));
        }
    }

    fn a_failing_hook_rolls_everything_back(backend) {
        let app = TestApp::start(backend);
        app.create_user("ada");
        let before = app.events();
        let body = json!({"username": "fail-bob", "email": "bob@example.org"});
        let error = expect_error(500, "hook_failed", app.post("/api/users", ADMIN, body));
        assert_eq!(error["plugin"], "failing");
        assert_eq!(error["hook"], "on_user_created");
        let logged = logged_500(&app, &error);
        assert!(logged.contains("failing") && logged.contains("refusing fail-bob"), "{logged}");
        // Neither the user nor the recorder's row (written before `failing` ran).
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users WHERE username = 'fail-bob'"), 0);
        assert_eq!(app.events(), before);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM plugin_recorder_events"), 2);
        // The e-mail is free again.
        app.create_user("bob");
    }

    fn a_failing_hook_can_choose_its_status(backend) {
        let app = TestApp::start(backend);
        let body = json!({"username": "conflict-carl", "email": "carl@example.org"});
        let error = expect_error(409, "conflict", app.post("/api/users", ADMIN, body));
        assert_eq!(error["message"], "conflict-carl conflicts");
        assert_eq!(error["plugin"], "failing");
        assert_eq!(error["hook"], "on_user_created");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
        assert!(app.events().is_empty(), "the recorder's table creation rolled back too");
    }

    fn a_panicking_hook_is_a_500_and_the_server_keeps_serving(backend) {
        let app = TestApp::start(backend);
        let body = json!({"username": "panic-pat", "email": "pat@example.org"});
        let error = expect_error(500, "hook_failed", app.post("/api/users", ADMIN, body));
        assert_eq!(error["plugin"], "failing");
        assert_eq!(error["hook"], "on_user_created");
        assert!(logged_500(&app, &error).contains("panicked"), "{error}");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
        assert!(app.events().is_empty());
        // Still serving, and the next operation commits.
        expect(200, app.get("/health", None));
        let pat = app.create_user("pat");
        assert_both_in_order(&app.events(), "on_user_created", id(&pat));
    }

    fn plugins_act_through_the_services_inside_the_transaction(backend) {
        let app = TestApp::start(backend);
        let ann = app.create_user("auto-ann");
        let spaces = expect(200, app.get("/api/spaces", ADMIN));
        let home = spaces.as_array().and_then(|s| s.first()).cloned().expect("a space");
        assert_eq!(home["name"], "home of auto-ann");
        assert_eq!(app.db.column("SELECT name FROM spaces"), ["home of auto-ann"]);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
        // recorder (10) first; then, at priority 0, `cascade` (whose nested
        // create_space fires on_space_created for both recorders) before
        // `second` (registered earlier, so called later).
        assert_eq!(
            app.event_keys(0),
            [
                key("recorder", "on_user_created", id(&ann)),
                key("recorder", "on_space_created", id(&home)),
                key("second", "on_space_created", id(&home)),
                key("second", "on_user_created", id(&ann)),
            ]
        );
        assert!(app.events().iter().all(|e| e["actor"] == "admin"), "the nested call acts as the caller");
    }
}

/// Creates `username` as the admin and expects a 500 that left nothing.
#[track_caller]
fn expect_rolled_back_500(app: &TestApp, username: &str) -> Value {
    let body = json!({"username": username, "email": format!("{username}@example.org")});
    let (status, body) = app.post("/api/users", ADMIN, body);
    assert_eq!(status, 500, "{body}");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM spaces"), 0);
    assert!(app.events().is_empty());
    expect(200, app.get("/health", None));
    body["error"].clone()
}

e2e! {
    fn a_nested_hook_failure_rolls_back_the_whole_operation(backend) {
        let app = TestApp::start(backend);
        // cascade's create_space fires on_space_created, where `failing` fails.
        let error = expect_rolled_back_500(&app, "auto-fail-ann");
        let logged = logged_500(&app, &error);
        assert!(logged.contains("failing") && logged.contains("on_space_created"), "{logged}");
    }
    fn a_nested_hook_failure_names_the_plugin_that_failed(backend) {
        let app = TestApp::start(backend);
        let error = expect_rolled_back_500(&app, "auto-fail-ann");
        assert_eq!(error["plugin"], "failing", "{error}");
        assert_eq!(error["hook"], "on_space_created", "{error}");
    }

    fn endless_plugin_recursion_is_stopped_and_rolled_back(backend) {
        let app = TestApp::start(backend);
        let error = expect_rolled_back_500(&app, "loop-0");
        assert!(logged_500(&app, &error).contains("deeper than the limit"), "{error}");
    }
    fn endless_plugin_recursion_answers_hook_recursion(backend) {
        let app = TestApp::start(backend);
        let error = expect_rolled_back_500(&app, "loop-0");
        assert_eq!(error["code"], "hook_recursion", "{error}");
        let logged = logged_500(&app, &error);
        assert!(logged.matches("failed in hook").count() <= 1, "{logged}");
    }
}
