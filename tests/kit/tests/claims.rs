//! The test kit as a plugin's tests use it (README "Test a plugin"):
//! `HookTest`'s `run`, `deliver`, `config`, `register`, `admin` and `user`,
//! with after-commit hooks, rollbacks, typed settings and migrations.

use std::panic::AssertUnwindSafe;

use app_testkit::{Delivered, HookTest, admin, new_user, user};
use hookspecs::prelude::*;
use hookspecs::serde_json::Value;
use hookspecs::{Migration, NewSpace, PluginExport};

// ---------------------------------------------------------------------------
// Plugins for the kit
// ---------------------------------------------------------------------------

fn table(name: &'static str, sql: &'static str) -> Migration {
    Migration {
        version: 1,
        name,
        sqlite: sql,
        postgres: sql,
    }
}

static SEEN_TABLE: [Migration; 1] = [Migration {
    version: 1,
    name: "rows",
    sqlite: "CREATE TABLE plugin_seen_rows (event_key TEXT NOT NULL, attempt BIGINT NOT NULL, \
             recorded_at TEXT NOT NULL, what TEXT NOT NULL)",
    postgres: "CREATE TABLE plugin_seen_rows (event_key TEXT NOT NULL, attempt BIGINT NOT NULL, \
               recorded_at TEXT NOT NULL, what TEXT NOT NULL)",
}];

/// Writes what a delivery brought into `plugin_<plugin>_rows`.
async fn note(ctx: &HookContext, plugin: &str, delivery: &Delivery, what: &str) -> HookResult<()> {
    let sql = format!(
        "INSERT INTO plugin_{plugin}_rows (event_key, attempt, recorded_at, what) \
         VALUES ($1, $2, $3, $4)"
    );
    sqlx::query(&sql)
        .bind(&delivery.event_id)
        .bind(i64::from(delivery.attempt))
        .bind(&delivery.recorded_at)
        .bind(what)
        .execute(&mut *ctx.db().await?)
        .await?;
    Ok(())
}

/// `seen`: records every after-commit delivery in its own table; after
/// writing, fails for users named `err-*` and panics for `panic-*`; vetoes
/// users named `veto-*` in the transaction.
struct Seen;

#[hookimpl]
impl AppHooks for Seen {
    async fn on_user_created(&self, user: &User, _: &HookContext) -> HookResult<()> {
        if user.username.starts_with("veto-") {
            return Err(ApiError::conflict(format!("seen vetoes {}", user.username)).into());
        }
        Ok(())
    }

    async fn after_user_created(
        &self,
        user: &User,
        delivery: &Delivery,
        ctx: &HookContext,
    ) -> HookResult<()> {
        note(ctx, "seen", delivery, &format!("user {}", user.username)).await?;
        if user.username.starts_with("err-") {
            let why = format!("mail relay down for {}", user.username);
            return Err(ApiError::new(503, "unavailable", why).into());
        }
        if user.username.starts_with("panic-") {
            panic!("seen panics for {}", user.username);
        }
        Ok(())
    }

    async fn after_change(&self, delivery: &Delivery, ctx: &HookContext) -> HookResult<()> {
        note(ctx, "seen", delivery, delivery.change.name()).await
    }
}

fn register_seen(_: &Value) -> Result<PluginExport, String> {
    Ok(PluginExport::new(Seen).migrating(&SEEN_TABLE))
}

/// `other`: every change after commit, always `Ok`.
struct Other;

#[hookimpl]
impl AppHooks for Other {
    async fn after_change(&self, delivery: &Delivery, ctx: &HookContext) -> HookResult<()> {
        note(ctx, "other", delivery, delivery.change.name()).await
    }
}

fn register_other(_: &Value) -> Result<PluginExport, String> {
    static OTHER: std::sync::LazyLock<[Migration; 1]> = std::sync::LazyLock::new(|| {
        [table(
            "rows",
            "CREATE TABLE plugin_other_rows (event_key TEXT NOT NULL, attempt BIGINT NOT NULL, \
             recorded_at TEXT NOT NULL, what TEXT NOT NULL)",
        )]
    });
    Ok(PluginExport::new(Other).migrating(&*OTHER))
}

/// `maker`: gives each new user a space of her own, through the services,
/// from its after-commit hook.
struct Maker;

#[hookimpl]
impl AppHooks for Maker {
    async fn after_user_created(
        &self,
        user: &User,
        _: &Delivery,
        ctx: &HookContext,
    ) -> HookResult<()> {
        let home = NewSpace {
            name: format!("home-{}", user.username),
            parent_id: None,
            access: Access::Confidential,
            default_role: None,
        };
        ctx.services().create_space(ctx, home).await?;
        Ok(())
    }
}

fn register_maker(_: &Value) -> Result<PluginExport, String> {
    Ok(PluginExport::new(Maker))
}

/// `sleepy`: idle until configured; it would record every change.
fn register_sleepy(_: &Value) -> Result<PluginExport, String> {
    Ok(PluginExport::idle("set `x` in [plugins.sleepy]"))
}

/// `greeter`, exported as a plugin library is (`export_plugin!`, with a
/// typed configuration and migrations): writes `<greeting> <username>`
/// for each new user, after commit.
#[derive(hookspecs::serde::Deserialize)]
#[serde(crate = "hookspecs::serde", default)]
struct GreeterConfig {
    greeting: String,
}

impl Default for GreeterConfig {
    fn default() -> Self {
        GreeterConfig {
            greeting: "hello".into(),
        }
    }
}

struct Greeter(String);

impl Greeter {
    fn new(config: GreeterConfig) -> Greeter {
        Greeter(config.greeting)
    }
}

static GREETER_TABLE: [Migration; 1] = [Migration {
    version: 1,
    name: "lines",
    sqlite: "CREATE TABLE plugin_greeter_lines (line TEXT NOT NULL)",
    postgres: "CREATE TABLE plugin_greeter_lines (line TEXT NOT NULL)",
}];

#[hookimpl]
impl AppHooks for Greeter {
    async fn after_user_created(
        &self,
        user: &User,
        _: &Delivery,
        ctx: &HookContext,
    ) -> HookResult<()> {
        sqlx::query("INSERT INTO plugin_greeter_lines (line) VALUES ($1)")
            .bind(format!("{} {}", self.0, user.username))
            .execute(&mut *ctx.db().await?)
            .await?;
        Ok(())
    }
}

hookspecs::export_plugin!(
    Greeter::new,
    config = GreeterConfig,
    migrations = &GREETER_TABLE
);

/// `(plugin, event, outcome)` of each delivery, the outcome `ok` or the
/// error's text.
fn outcomes(delivered: &[Delivered]) -> Vec<(String, &'static str, String)> {
    delivered
        .iter()
        .map(|d| {
            let outcome = match &d.outcome {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.clone(),
            };
            (d.plugin.clone(), d.event, outcome)
        })
        .collect()
}

/// The deliveries to `plugin`, as `event:outcome`.
fn to(delivered: &[Delivered], plugin: &str) -> Vec<String> {
    outcomes(delivered)
        .into_iter()
        .filter(|(p, _, _)| p == plugin)
        .map(|(_, event, outcome)| format!("{event}:{outcome}"))
        .collect()
}

async fn create(kit: &HookTest, name: &str) -> Result<User, ApiError> {
    let name = name.to_owned();
    kit.run(admin(), |ctx| async move {
        ctx.services().create_user(&ctx, new_user(&name)).await
    })
    .await
}

// ---------------------------------------------------------------------------
// The kit
// ---------------------------------------------------------------------------

/// README "Test a plugin": `kit.run(admin(), ...)` is "one unit of work,
/// as admin": "committed (rolled back on Err)"; `kit.deliver()` "hands what
/// it committed to the registered plugins' `after_*` hooks". An operation
/// that answers `Err` after writing, and one an `on_*` hook vetoes, leave
/// no row and no event: only the committed user is delivered.
#[test]
fn kit_run_commits_on_ok_and_a_rolled_back_run_leaves_nothing_to_deliver() {
    app_testkit::run(async {
        let kit = HookTest::new().await.register("seen", register_seen).await;
        let ada = create(&kit, "ada").await.unwrap();
        let undone = kit
            .run(admin(), |ctx| async move {
                ctx.services().create_user(&ctx, new_user("bob")).await?;
                Err::<(), _>(ApiError::conflict("changed my mind"))
            })
            .await
            .unwrap_err();
        assert_eq!(
            (undone.status, undone.message.as_str()),
            (409, "changed my mind")
        );
        let vetoed = create(&kit, "veto-carl").await.unwrap_err();
        assert_eq!(
            (vetoed.status, vetoed.code.as_str()),
            (409, "conflict"),
            "{}",
            vetoed.message
        );
        assert!(
            vetoed.message.contains("seen vetoes veto-carl"),
            "{}",
            vetoed.message
        );
        assert_eq!(
            kit.column("SELECT username FROM users ORDER BY id").await,
            ["ada"]
        );
        assert_eq!(kit.count("SELECT COUNT(*) FROM outbox_events").await, 1);

        let delivered = kit.deliver().await;
        assert_eq!(to(&delivered, "seen"), ["user.created:ok"]);
        assert_eq!(delivered.len(), 1, "{delivered:?}");
        assert_eq!(
            kit.column("SELECT what FROM plugin_seen_rows").await,
            [format!("user {}", ada.username)]
        );
    });
}

/// README: `kit.deliver()` delivers "as the app's delivery worker does
/// (commit order, one unit of work per hook, committed on `Ok`), each event
/// once"; the rustdoc: "each plugin's hook on its own (attempt 1)";
/// `Delivery::event_id`: "the same on every attempt and for every plugin".
/// Each plugin gets each event once, in commit order, with the event id
/// and time the outbox recorded (`recorded_at`: "RFC 3339, UTC") and
/// attempt 1; a second call delivers only what was committed since.
/// `seen` implements `after_user_created` and `after_change`: README "A
/// specific hook the plugin also implements takes its change from the
/// catch-all: one call, one delivery per change either way".
#[test]
fn kit_deliver_gives_each_plugin_each_event_once_in_commit_order() {
    app_testkit::run(async {
        let kit = HookTest::new()
            .await
            .register("seen", register_seen)
            .await
            .register("other", register_other)
            .await;
        let ada = create(&kit, "ada").await.unwrap();
        kit.run(admin(), |ctx| async move {
            let lab = NewSpace {
                name: "lab".into(),
                parent_id: None,
                access: Access::Open,
                default_role: None,
            };
            ctx.services().create_space(&ctx, lab).await
        })
        .await
        .unwrap();
        let id = ada.id;
        kit.run(admin(), |ctx| async move {
            let patch = hookspecs::UserPatch {
                display_name: Some(Some("Ada".into())),
                ..Default::default()
            };
            ctx.services().update_user(&ctx, id, patch).await
        })
        .await
        .unwrap();
        let events = kit
            .column("SELECT event_name FROM outbox_events ORDER BY id")
            .await;
        assert_eq!(events, ["user.created", "space.created", "user.modified"]);

        let delivered = kit.deliver().await;
        let ok = |e: &str| format!("{e}:ok");
        let all: Vec<String> = events.iter().map(|e| ok(e)).collect();
        assert_eq!(to(&delivered, "seen"), all);
        assert_eq!(to(&delivered, "other"), all);
        assert_eq!(delivered.len(), 6, "{delivered:?}");

        let recorded = kit
            .column("SELECT event_key || ' ' || recorded_at FROM outbox_events ORDER BY id")
            .await;
        for plugin in ["seen", "other"] {
            let rows = kit
                .column(&format!(
                    "SELECT event_key || ' ' || recorded_at FROM plugin_{plugin}_rows ORDER BY rowid"
                ))
                .await;
            assert_eq!(rows, recorded, "{plugin}");
            let attempts = kit
                .column(&format!(
                    "SELECT DISTINCT attempt FROM plugin_{plugin}_rows"
                ))
                .await;
            assert_eq!(attempts, ["1"], "{plugin}");
        }
        for row in &recorded {
            let at = row.split(' ').nth(1).unwrap();
            let b = at.as_bytes();
            assert!(
                at.len() >= 20 && b[4] == b'-' && b[10] == b'T' && at.ends_with('Z'),
                "{at}"
            );
        }
        assert!(kit.deliver().await.is_empty(), "each event once");

        create(&kit, "bob").await.unwrap();
        let next = kit.deliver().await;
        assert_eq!(to(&next, "seen"), ["user.created:ok"]);
        assert_eq!(to(&next, "other"), ["user.created:ok"]);
        assert_eq!(next.len(), 2);
    });
}

/// README: `kit.deliver()` "says what each hook answered (`plugin`,
/// `event`, `outcome`)", "one unit of work per hook, committed on `Ok`";
/// after-commit table: "an error or a panic: the delivery is retried ...;
/// the operation stays committed"; `last_error` "names the plugin and the
/// hook". A hook that fails and one that panics are each reported with
/// their reason, their writes rolled back; the other plugin's delivery of
/// the same event, and the later events, go on; the users stay.
#[test]
fn kit_deliver_reports_a_failing_or_panicking_hook_and_keeps_only_ok_writes() {
    app_testkit::run(async {
        let kit = HookTest::new()
            .await
            .register("seen", register_seen)
            .await
            .register("other", register_other)
            .await;
        for name in ["err-ann", "panic-pat", "zed"] {
            create(&kit, name).await.unwrap();
        }
        let delivered = kit.deliver().await;
        let seen = to(&delivered, "seen");
        assert_eq!(seen.len(), 3, "{delivered:?}");
        assert_eq!(
            seen,
            [
                "user.created:plugin `seen` failed in hook `after_user_created`: mail relay down for err-ann",
                "user.created:plugin `seen` panicked in hook `after_user_created`: seen panics for panic-pat",
                "user.created:ok",
            ]
        );

        assert_eq!(to(&delivered, "other"), ["user.created:ok"; 3]);

        assert_eq!(
            kit.column("SELECT what FROM plugin_seen_rows").await,
            ["user zed"]
        );
        assert_eq!(kit.count("SELECT COUNT(*) FROM plugin_other_rows").await, 3);
        assert_eq!(kit.count("SELECT COUNT(*) FROM users").await, 3);
        assert!(kit.deliver().await.is_empty());
    });
}

/// README: an after-commit hook's `ctx` is "a unit of work of its own,
/// committed if the hook returns `Ok`"; "Inside a hook, a plugin acts with
/// the application's authority"; `kit.deliver()` delivers "as the app's
/// delivery worker does". What a hook changes through the services is
/// committed, and is itself an event, delivered by the next call.
#[test]
fn kit_changes_an_after_hook_makes_are_committed_and_delivered_next() {
    app_testkit::run(async {
        let kit = HookTest::new()
            .await
            .register("maker", register_maker)
            .await
            .register("seen", register_seen)
            .await;
        create(&kit, "ada").await.unwrap();
        let first = kit.deliver().await;
        assert_eq!(to(&first, "maker"), ["user.created:ok"]);
        assert_eq!(to(&first, "seen"), ["user.created:ok"]);
        assert_eq!(kit.column("SELECT name FROM spaces").await, ["home-ada"]);
        let second = kit.deliver().await;
        assert_eq!(outcomes(&second).len(), 1, "{second:?}");
        assert_eq!(to(&second, "seen"), ["space.created:ok"]);
        assert!(kit.deliver().await.is_empty());
    });
}

/// README: "with the plugin registered through its real registration
/// function (its typed configuration and its migrations included)";
/// `.config("audit_log", json!({}))`: "its [plugins.<name>] table". The
/// table reaches the plugin's typed configuration (its default without
/// one), its migration is applied, and a key the configuration does not
/// know fails the registration naming it, as at the app's load.
#[test]
fn kit_register_applies_the_typed_configuration_and_the_migrations() {
    for (config, line) in [
        (Some(json!({"greeting": "welcome"})), "welcome ada"),
        (None, "hello ada"),
    ] {
        app_testkit::run(async {
            let mut kit = HookTest::new().await;
            if let Some(table) = config {
                kit = kit.config("greeter", table);
            }
            let kit = kit.register("greeter", app_plugin_register).await;
            assert_eq!(
                kit.count("SELECT COUNT(*) FROM plugin_greeter_lines").await,
                0
            );
            create(&kit, "ada").await.unwrap();
            assert_eq!(to(&kit.deliver().await, "greeter"), ["user.created:ok"]);
            assert_eq!(
                kit.column("SELECT line FROM plugin_greeter_lines").await,
                [line]
            );
        });
    }
    let refused = std::panic::catch_unwind(AssertUnwindSafe(|| {
        app_testkit::run(async {
            HookTest::new()
                .await
                .config("greeter", json!({"greting": "hi"}))
                .register("greeter", app_plugin_register)
                .await;
        })
    }))
    .expect_err("an unknown key is refused");
    let text = refused
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| refused.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert_eq!(
        text,
        "plugin greeter: invalid configuration: unknown key `greting`"
    );
}

/// README: ``PluginExport::idle(...)``: "it is reported `loaded, idle:
/// ...` and none of its hooks is called"; the kit registers "as the app
/// does". An idle plugin next to a working one is given nothing.
#[test]
fn kit_an_idle_plugin_is_given_nothing() {
    app_testkit::run(async {
        let kit = HookTest::new()
            .await
            .register("sleepy", register_sleepy)
            .await
            .register("other", register_other)
            .await;
        create(&kit, "ada").await.unwrap();
        let delivered = kit.deliver().await;
        assert_eq!(outcomes(&delivered).len(), 1, "{delivered:?}");
        assert_eq!(to(&delivered, "other"), ["user.created:ok"]);
        assert!(to(&delivered, "sleepy").is_empty());
    });
}

/// README: "`app_testkit::user(id, name)` acts as a non-admin user";
/// "create a user: the admin only". As a user, creating a user is refused
/// (403) and commits nothing; as `admin()` it is allowed.
#[test]
fn kit_user_acts_as_a_non_admin() {
    app_testkit::run(async {
        let kit = HookTest::new().await.register("seen", register_seen).await;
        let refused = kit
            .run(user(1, "eve"), |ctx| async move {
                ctx.services().create_user(&ctx, new_user("mallory")).await
            })
            .await
            .unwrap_err();
        assert_eq!(refused.status, 403, "{}", refused.message);
        assert_eq!(kit.count("SELECT COUNT(*) FROM users").await, 0);
        assert!(kit.deliver().await.is_empty());
        create(&kit, "ada").await.unwrap();
        assert_eq!(kit.count("SELECT COUNT(*) FROM users").await, 1);
    });
}

/// README: "on a fresh SQLite database in a temporary folder that is
/// removed afterwards"; "`kit.count(sql)` and `kit.column(sql)` read the
/// database" (the rustdoc: `"NULL"` for NULL). The database is a file,
/// empty of users at first, and its folder is gone once the kit is.
#[test]
fn kit_database_is_a_fresh_file_in_a_folder_removed_with_the_kit() {
    let file = app_testkit::run(async {
        let kit = HookTest::new().await;
        let file = kit
            .column("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .await;
        assert_eq!(file.len(), 1);
        let file = std::path::PathBuf::from(&file[0]);
        assert!(file.is_file(), "{}", file.display());
        assert_eq!(kit.count("SELECT COUNT(*) FROM users").await, 0);
        assert_eq!(kit.count("SELECT COUNT(*) FROM outbox_events").await, 0);
        assert_eq!(
            kit.column("SELECT NULL UNION ALL SELECT 'x'").await,
            ["NULL", "x"]
        );
        file
    });
    let folder = file.parent().unwrap();
    assert!(!folder.exists(), "{} is left", folder.display());
}
