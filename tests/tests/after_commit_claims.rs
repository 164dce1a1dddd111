//! After-commit deliveries at their edges, as a plugin author relies on
//! them (README "After-commit hooks: talking to the world"): HTTPS through
//! the SDK's client with a CA file, and the running app's deliveries (a
//! hand retry, the admin endpoints).

use std::sync::Arc;

use e2e_tests::after_commit::AFTER_COMMIT_ENV;
use e2e_tests::receiver::Receiver;
use e2e_tests::*;
use hookspecs::client::{self, Outgoing};
use serde_json::Value;

// ---------------------------------------------------------------------------
// HTTPS through the SDK's client
// ---------------------------------------------------------------------------

/// A CA (its certificate and issuer) with `names`' server certificate
/// signed by it: (CA PEM, server PEM, server key PEM).
fn signed_by_a_new_ca(names: &[&str]) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "after-commit claims' private CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let server = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), server.pem(), key.serialize_pem())
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    hookspecs::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// README: "`hookspecs::client::http_client(ca_file)` builds the same
/// `http://` and `https://` client the native webhooks plugin uses"; "The
/// receiver's certificate must chain to one of the platform's root
/// certificates ..., or ... to a certificate in `ca_file` (PEM, one or more
/// certificates)"; otherwise "`invalid peer certificate: UnknownIssuer (the
/// server's certificate is not signed by a trusted root: ...)`". A CA file
/// whose second certificate is the issuer is trusted; without it the
/// attempt fails saying so; a certificate for another name fails even with
/// its CA trusted; nothing reaches the receiver but the trusted request.
#[test]
fn https_trusts_any_certificate_of_the_ca_file_and_checks_the_name() {
    let (ca, server, key) = signed_by_a_new_ca(&["127.0.0.1"]);
    let (unrelated, _, _) = signed_by_a_new_ca(&["127.0.0.1"]);
    let receiver = Receiver::tls(&server, &key);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("cas.pem");
    std::fs::write(&ca_file, format!("{unrelated}{ca}")).unwrap();

    let trusting = client::http_client(Some(&ca_file)).unwrap();
    let request = || Outgoing::post(&receiver.url, "{\"n\":1}").header("Idempotency-Key", "k1");
    let sent = block_on(client::send_with(&trusting, request())).unwrap();
    assert_eq!(sent.status, 200);
    let got = receiver.wait_for(1);
    assert_eq!(
        (got[0].key.as_str(), got[0].json.clone()),
        ("k1", json!({"n": 1}))
    );

    let host = receiver
        .url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let untrusted = block_on(client::send(request())).unwrap_err();
    assert_eq!(
        (untrusted.status, untrusted.code.as_str()),
        (502, "bad_gateway")
    );
    let prefix = format!("the request to {host} failed: client error (Connect): ");
    assert!(
        untrusted.message.starts_with(&prefix),
        "{}",
        untrusted.message
    );
    assert!(
        untrusted.message.contains(
            "invalid peer certificate: UnknownIssuer (the server's certificate is not signed by a trusted root"
        ),
        "{}",
        untrusted.message
    );

    let (ca2, other_name, key2) = signed_by_a_new_ca(&["hooks.example.org"]);
    let misnamed = Receiver::tls(&other_name, &key2);
    let ca2_file = dir.path().join("ca2.pem");
    std::fs::write(&ca2_file, ca2).unwrap();
    let trusting2 = client::http_client(Some(&ca2_file)).unwrap();
    let wrong = block_on(client::send_with(
        &trusting2,
        Outgoing::post(&misnamed.url, "{}"),
    ))
    .unwrap_err();
    assert_eq!(wrong.status, 502, "{}", wrong.message);
    assert!(
        wrong.message.contains("invalid peer certificate"),
        "{}",
        wrong.message
    );
    assert!(
        !wrong.message.contains("UnknownIssuer"),
        "{}",
        wrong.message
    );

    assert_eq!(receiver.received().len(), 1);
    assert!(misnamed.received().is_empty());
}

/// README (webhooks): "`ca_file` (PEM, one or more certificates; a
/// relative path is relative to the app's working directory)". A relative
/// `ca_file` next to where the app runs is found, and the event is
/// delivered over HTTPS to the receiver behind that CA.
#[test]
fn webhooks_reads_a_relative_ca_file_from_the_apps_working_directory() {
    let (ca, server, key) = signed_by_a_new_ca(&["127.0.0.1"]);
    let receiver = Receiver::tls(&server, &key);
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    std::fs::create_dir(db.dir.path().join("certs")).unwrap();
    std::fs::write(db.dir.path().join("certs/receiver-ca.pem"), ca).unwrap();
    let config = format!(
        "[plugins.webhooks]\nurl = \"{}\"\nca_file = \"certs/receiver-ca.pem\"\n\n\
         [deliveries]\nbackoff_ms = 50\npoll_ms = 100\n",
        receiver.url
    );
    let options = Options::default()
        .config(&config)
        .env("APP_PLUGINS_DIR", webhooks_folder(&db).to_str().unwrap());
    let app = TestApp::start_on(db, &options);
    assert_eq!(plugin_status(&app, "webhooks"), "loaded");
    let ada = app.create_user("ada");
    wait_until("the delivery", || delivered(&app.db, "webhooks") == 1);
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].json["data"], ada);
    assert_eq!(deliveries(&app.db, "webhooks"), ["delivered:1"]);
}

// ---------------------------------------------------------------------------
// The running app
// ---------------------------------------------------------------------------

/// test-app with the `after` test plugin (it panics on the first two
/// attempts for users named `after-panic-*`); `deliveries` goes into
/// `[deliveries]`.
fn with_after(deliveries: &str) -> Options {
    Options::default()
        .env(AFTER_COMMIT_ENV, "1")
        .config(&format!(
            "[deliveries]\nbackoff_ms = 50\npoll_ms = 100\n{deliveries}\n"
        ))
}

/// The `after` plugin's one delivery, as the admin API lists it.
fn after_delivery(app: &TestApp) -> Value {
    let page = expect(200, app.get("/api/admin/deliveries", ADMIN));
    let rows: Vec<Value> = page["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["plugin"] == "after")
        .cloned()
        .collect();
    assert_eq!(rows.len(), 1, "{page}");
    rows[0].clone()
}

e2e! {
    /// README: a failed attempt "is retried after `backoff_ms` ... up to
    /// `max_attempts`, then it is dead until an admin retries it", and "a
    /// retry by hand gives it a fresh round of `max_attempts`: its attempts
    /// count from 1 again"; the after-commit table: "the operation stays
    /// committed". A delivery dead after its two attempts (the plugin
    /// panics on attempts 1 and 2), retried by hand, is tried as attempt 1
    /// and 2 again, with the same event id, and is dead again; the user was
    /// there all along.
    fn a_hand_retried_delivery_counts_its_attempts_afresh(backend) {
        let app = TestApp::start_with(backend, with_after("[deliveries.after]\nmax_attempts = 2"));
        let pat = app.create_user("after-panic-pat");
        wait_until("dead after two attempts", || {
            app.db.count("SELECT COUNT(*) FROM outbox_deliveries WHERE plugin = 'after' AND status = 'dead'") == 1
        });
        let dead = after_delivery(&app);
        assert_eq!(dead["attempts"], 2, "{dead}");
        let error = dead["last_error"].as_str().unwrap();
        assert!(
            error == "plugin `after` panicked in hook `after_user_created`: after panics on attempt 2",
            "{dead}"
        );
        assert_eq!(expect(200, app.get(&format!("/api/users/{}", id(&pat)), ADMIN))["username"], "after-panic-pat");

        let again = expect(200, app.post(&format!("/api/admin/deliveries/{}/retry", dead["id"]), ADMIN, json!({})));
        assert_eq!(again["status"], "pending");
        wait_until("the retry settled", || {
            app.db.count(
                "SELECT COUNT(*) FROM outbox_deliveries WHERE plugin = 'after' AND status IN ('dead', 'delivered')",
            ) == 1
        });
        let done = after_delivery(&app);
        assert_eq!(done["event_id"], dead["event_id"]);
        assert_eq!((&done["status"], &done["attempts"]), (&json!("dead"), &json!(2)), "{done}");
        assert_eq!(done["last_error"], dead["last_error"], "{done}");
    }

    /// README: "`POST /api/admin/deliveries/:id/retry` | admin only: a dead
    /// delivery is pending again, due now (409 if it is not dead)"; "`GET
    /// /api/admin/...` ... the admin only"; the services' `retry`: "404 if
    /// there is no such delivery". No credential is a 401, a user's a 403,
    /// an id that names no delivery a 404; none of them touches the dead
    /// delivery, which the admin's retry makes pending, due now.
    fn the_retry_endpoint_is_admin_only_and_404_for_no_such_delivery(backend) {
        let app = TestApp::start_with(backend, with_after("[deliveries.after]\nmax_attempts = 1"));
        app.create_user("after-panic-1");
        wait_until("dead", || {
            app.db.count("SELECT COUNT(*) FROM outbox_deliveries WHERE plugin = 'after' AND status = 'dead'") == 1
        });
        let dead = after_delivery(&app);
        let path = format!("/api/admin/deliveries/{}/retry", dead["id"]);
        expect_error(401, "unauthorized", app.post(&path, None, json!({})));
        expect_error(403, "forbidden", app.post(&path, USER, json!({})));
        expect_error(403, "forbidden", app.get("/api/admin/deliveries", USER));
        let missing = dead["id"].as_i64().unwrap() + 1000;
        let none = expect_error(404, "not_found", app.post(&format!("/api/admin/deliveries/{missing}/retry"), ADMIN, json!({})));
        assert!(none["message"].as_str().unwrap().contains(&missing.to_string()), "{none}");
        let (status, body) = app.post("/api/admin/deliveries/first/retry", ADMIN, json!({}));
        assert_eq!(status, 404, "{body}");
        assert_eq!(after_delivery(&app), dead, "untouched");

        let again = expect(200, app.post(&path, ADMIN, json!({})));
        assert_eq!((&again["id"], &again["status"]), (&dead["id"], &json!("pending")), "{again}");
        // Tried again at once: dead again or delivered (see the test
        // above), the same event either way.
        wait_until("the retry settled", || after_delivery(&app)["status"] != "pending");
        assert_eq!(after_delivery(&app)["event_id"], dead["event_id"]);
    }
}
