//! README.md, "Use the engine" (hook and implementation options, call
//! order, errors and safety, the rest of pluggy's manager, finding plugins,
//! good to know), and the rustdoc of the engine's public items (their
//! claims and `# Errors` sections), taken to their edges. Each test names
//! the sentence it checks. The README's own code examples are compiled and
//! run here too, and the sync-only build (no `async` feature) is built as a
//! user's crate would build it.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::*;
use hookery::prelude::*;
use hookery::{HookErrorKind, ManagerError, Placement};

// ------------------------------------------------------------ helpers

/// Polls `future` to its end with a no-op waker, for futures that never
/// wait on anything outside themselves (every hook call here finishes in
/// one poll). Unlike `futures::executor::block_on` it may be nested: a
/// sync implementation may run an async hook call with it inside an outer
/// async call. Bounded: a future still pending after 1,000 polls fails.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("the future did not finish within 1,000 polls")
}

// ============================================ the README's own examples

/// README.md, "Use the engine": the example, verbatim but for `main`
/// being public (it is called by a test below).
mod readme_example {
    use hookery::prelude::*;

    /// The hooks of your program: a trait, one method per hook.
    #[hookspec]
    pub trait Events {
        /// Every plugin may return a tag for the new user.
        fn on_user_created(&self, name: &str) -> HookResult<String>;

        /// The first plugin that recognises the token answers.
        #[hookspec(firstresult)]
        fn authenticate(&self, token: &str) -> HookResult<Option<u32>>;
    }

    /// A plugin implements only the hooks it cares about.
    pub struct Audit;

    #[hookimpl]
    impl Events for Audit {
        #[hookimpl(priority = 10)]
        fn on_user_created(&self, name: &str) -> HookResult<String> {
            Ok(format!("audited {name}"))
        }
    }

    pub fn main() -> Result<(), Box<dyn std::error::Error>> {
        let pm = PluginManager::<dyn Events>::new();
        pm.register("audit", Audit)?; // a duplicate name is an error
        for answer in &pm.hook().on_user_created("ada")? {
            println!("{} said {}", answer.plugin, answer.value);
        }
        Ok(())
    }

    /// README.md, "Implementation options": the wrapper example, verbatim.
    pub struct Timing;

    #[hookimpl]
    impl Events for Timing {
        #[hookimpl(wrapper)]
        fn on_user_created(
            &self,
            name: &str,
            next: Next<'_, Results<String>>,
        ) -> HookResult<Results<String>> {
            let started = std::time::Instant::now();
            let outcome = next.call(); // async hooks: `next.await`
            tracing::info!(user = name, elapsed = ?started.elapsed(), "on_user_created");
            Ok(outcome?)
        }
    }

    /// A plugin that fails, to see what the wrapper passes on.
    pub struct Refuse;

    #[hookimpl]
    impl Events for Refuse {
        fn on_user_created(&self, name: &str) -> HookResult<String> {
            anyhow::bail!("no users named {name}")
        }

        fn authenticate(&self, token: &str) -> HookResult<Option<u32>> {
            Ok((token == "t").then_some(1))
        }
    }
}

/// README, "Use the engine": the example runs; `register` returns an
/// error for "a duplicate name", the `for` loop sees every answer with
/// its plugin, and the firstresult hook no plugin implements answers
/// `None`.
#[test]
fn the_readme_example_runs_and_answers_as_its_comments_say() {
    use readme_example::*;
    main().unwrap();

    let pm = PluginManager::<dyn Events>::new();
    pm.register("audit", Audit).unwrap();
    let duplicate = pm.register("audit", Audit).unwrap_err();
    assert!(matches!(duplicate, ManagerError::DuplicateName(ref name) if name == "audit"));
    let mut said = Vec::new();
    for answer in &pm.hook().on_user_created("ada").unwrap() {
        said.push(format!("{} said {}", answer.plugin, answer.value));
    }
    assert_eq!(said, ["audit said audited ada"]);
    assert_eq!(pm.hook().authenticate("t").unwrap(), None);
}

/// README, "Implementation options": the `Timing` wrapper "runs code
/// before and after" the rest of the call and passes its outcome on: the
/// answers unchanged, and an error unchanged too (still naming the plugin
/// that failed, not the wrapper).
#[test]
fn the_readme_timing_wrapper_passes_answers_and_errors_on_unchanged() {
    use readme_example::*;
    let pm = PluginManager::<dyn Events>::new();
    pm.register("audit", Audit).unwrap();
    pm.register("timing", Timing).unwrap();
    let results = pm.hook().on_user_created("ada").unwrap();
    assert_eq!(
        results.answers(),
        [Answer {
            plugin: "audit",
            value: "audited ada".to_owned()
        }]
    );

    pm.register("refuse", Refuse).unwrap();
    let error = pm.hook().on_user_created("bob").unwrap_err();
    assert_eq!(
        (error.hook(), error.plugin()),
        ("on_user_created", Some("refuse"))
    );
    assert_eq!(
        error.to_string(),
        "plugin `refuse` failed in hook `on_user_created`: no users named bob"
    );
}

/// README, "Finding plugins": `hookery::linked_plugin!(Greet, "shout",
/// Shout::default);` in the plugin crate, and in the host `let loaded =
/// pm.load_linked_plugins()?; // ["plain", "shout"]` ("in name order;
/// names registered or blocked already are skipped").
mod readme_discovery {
    use hookery::prelude::*;

    #[hookspec]
    pub trait Greet {
        fn greet(&self, who: &str) -> HookResult<String>;
    }

    #[derive(Default)]
    pub struct Shout;

    #[hookimpl]
    impl Greet for Shout {
        fn greet(&self, who: &str) -> HookResult<String> {
            Ok(format!("HELLO, {}!", who.to_uppercase()))
        }
    }

    #[derive(Default)]
    pub struct Plain;

    #[hookimpl]
    impl Greet for Plain {
        fn greet(&self, who: &str) -> HookResult<String> {
            Ok(format!("hello, {who}"))
        }
    }

    hookery::linked_plugin!(Greet, "shout", Shout::default); // in the plugin crate
    hookery::linked_plugin!(Greet, "plain", Plain::default);
}

#[test]
fn the_readme_discovery_snippet_loads_plain_and_shout_in_name_order() {
    use readme_discovery::*;
    fn host(pm: &PluginManager<dyn Greet>) -> Result<Vec<&'static str>, ManagerError> {
        let loaded = pm.load_linked_plugins()?; // in the host: ["plain", "shout"]
        Ok(loaded)
    }
    let pm = PluginManager::<dyn Greet>::new();
    assert_eq!(host(&pm).unwrap(), ["plain", "shout"]);
    assert_eq!(pm.plugin_names(), ["plain", "shout"]);
    // Registered in name order: `shout`, registered later, answers first,
    // as in the README's printed output.
    let greeted: Vec<_> = pm
        .hook()
        .greet("ada")
        .unwrap()
        .into_iter()
        .map(|a| format!("{}: {}", a.plugin, a.value))
        .collect();
    assert_eq!(greeted, ["shout: HELLO, ADA!", "plain: hello, ada"]);
    assert_eq!(host(&pm).unwrap(), Vec::<&str>::new(), "both skipped now");

    let blocked = PluginManager::<dyn Greet>::new();
    blocked.set_blocked("plain");
    assert_eq!(host(&blocked).unwrap(), ["shout"]);
}

// ================================================== the sync-only build

/// cargo, without the variables cargo sets for this test process (they
/// would make the scratch build differ from a user's).
fn cargo() -> std::process::Command {
    let mut cmd =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME") || key == "OUT_DIR" {
            cmd.env_remove(&*key);
        }
    }
    cmd.env("CARGO_TERM_COLOR", "never");
    cmd
}

/// README, "Use the engine": `hookery = "0.1"  # sync hooks only`, and
/// "Without features a program builds the engine with `anyhow`,
/// `arc-swap`, `tracing` and the macros alone: no Tokio, no futures, no
/// async-trait". A user's crate depending on the engine without features,
/// whose `main.rs` is the README's example: it builds, prints what the
/// example prints, and its dependency tree is what the README says.
#[test]
fn a_sync_only_program_is_the_readme_example_with_four_dependencies_and_no_runtime() {
    let scratch = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme_claims");
    let dir = scratch.join("sync_only");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let engine = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"sync_only\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [dependencies]\nhookery = {{ path = {engine:?} }}\n\n[workspace]\n"
        ),
    )
    .unwrap();
    let readme =
        std::fs::read_to_string(std::path::Path::new(engine).join("../README.md")).unwrap();
    let section = &readme[readme.find("## Use the engine").unwrap()..];
    let start = section.find("```rust\n").unwrap() + "```rust\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    assert!(
        example.contains("fn main()"),
        "the README's example:\n{example}"
    );
    let main = dir.join("src/main.rs");
    if std::fs::read_to_string(&main).ok().as_deref() != Some(example) {
        std::fs::write(&main, example).unwrap();
    }
    let manifest = dir.join("Cargo.toml");

    let run = cargo()
        .args(["run", "--offline", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .output()
        .expect("running cargo run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the README example, sync-only:\n{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "audit said audited ada\n"
    );

    let tree = |depth: &[&str]| {
        let out = cargo()
            .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
            .args(["--format", "{p}", "-p", "hookery"])
            .args(depth)
            .arg("--manifest-path")
            .arg(&manifest)
            .output()
            .expect("running cargo tree");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        names
    };
    assert_eq!(
        tree(&["--depth", "1"]),
        ["anyhow", "arc-swap", "hookery", "hookery-macros", "tracing"],
        "the engine's own dependencies without features"
    );
    let all = tree(&[]);
    for banned in [
        "tokio",
        "futures",
        "futures-util",
        "futures-core",
        "async-trait",
    ] {
        assert!(!all.iter().any(|n| n == banned), "{banned} in {all:?}");
    }
}

// ===================================================== register: errors

/// What a refused change must leave as it was: the names, the order of a
/// hook's implementations and what a call answers.
fn state_of(
    pm: &PluginManager<dyn Hooks>,
) -> (
    Vec<&'static str>,
    Vec<&'static str>,
    Vec<(&'static str, u32)>,
) {
    let order = pm
        .get_hookimpls("run")
        .unwrap()
        .iter()
        .map(|i| i.plugin)
        .collect();
    (pm.plugin_names(), order, pairs(&pm.hook().run(0).unwrap()))
}

/// `PluginManager::register`, "# Errors": "Refused, with the manager left
/// as it was, when the name is taken or blocked, when this very plugin
/// object is registered already (under another name), when the plugin
/// declares an implementation the spec cannot accept, when its
/// before/after constraints close a cycle, or when replaying a historic
/// call to it fails". Each refusal is the variant documented for it, with
/// the message that names plugin, hook and what was expected, and leaves
/// names, order and answers as they were.
#[test]
fn register_refuses_each_documented_case_with_its_variant_and_message_and_changes_nothing() {
    hookery::quiet_plugin_panics();
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    let shared: Arc<dyn Hooks> = Arc::new(probe("a", &log).value(1));
    pm.register_plugin("a", Plugin::from_parts(shared.clone(), vec![on("run")]))
        .unwrap();
    add(&pm, probe("c1", &log).value(10), on("run").before(&["c2"]));
    add(&pm, probe("c2", &log).value(20), on("run").before(&["c3"]));
    pm.set_blocked("banned");
    pm.hook().configure(5).unwrap();
    let before = state_of(&pm);
    assert_eq!(before.0, ["a", "c1", "c2"]);

    let refusals: Vec<(ManagerError, &str)> = vec![
        (
            pm.register_plugin("a", probe("a", &log).plugin(&[on("run")]))
                .unwrap_err(),
            "a plugin named `a` is already registered: register this one under another name, \
             or `replace` or `unregister` that one first",
        ),
        (
            pm.register_plugin("banned", probe("banned", &log).plugin(&[on("run")]))
                .unwrap_err(),
            "plugin name `banned` is blocked",
        ),
        (
            pm.register_plugin(
                "alias",
                Plugin::from_parts(shared.clone(), vec![on("notify")]),
            )
            .unwrap_err(),
            "plugin `alias` is the plugin object already registered as `a`",
        ),
        (
            pm.register_plugin("x", probe("x", &log).plugin(&[on("run"), on("nope")]))
                .unwrap_err(),
            "plugin `x` cannot implement hook `nope` of `Hooks`: the spec has no such hook",
        ),
        (
            pm.register_plugin("x", probe("x", &log).plugin(&[on("configure").wrapper()]))
                .unwrap_err(),
            "plugin `x` cannot implement hook `configure` of `Hooks`: a historic hook cannot be wrapped",
        ),
        (
            pm.register_plugin(
                "x",
                probe("x", &log).plugin(&[on("run"), on("run").priority(3)]),
            )
            .unwrap_err(),
            "plugin `x` cannot implement hook `run` of `Hooks`: the hook is declared twice",
        ),
        (
            pm.register_plugin("c3", probe("c3", &log).plugin(&[on("run").before(&["c1"])]))
                .unwrap_err(),
            "plugin `c3` was not registered: the before/after constraints of hook `run` form a cycle: \
             c1 runs before c2 runs before c3 runs before c1",
        ),
        (
            pm.register_plugin(
                "l",
                Plugin::new(Listener {
                    name: "l",
                    log: log.clone(),
                    fail_on: Some(5),
                }),
            )
            .unwrap_err(),
            "plugin `l` was not registered: replaying a historic call failed: \
             plugin `l` failed in hook `configure`: boom from l",
        ),
        (
            pm.register_plugin(
                "p",
                probe("p", &log).act(Act::Panic).plugin(&[on("configure")]),
            )
            .unwrap_err(),
            "plugin `p` was not registered: replaying a historic call failed: \
             plugin `p` panicked in hook `configure`: p panicked on purpose",
        ),
    ];
    let kinds: Vec<&str> = refusals
        .iter()
        .map(|(e, _)| match e {
            ManagerError::DuplicateName(_) => "duplicate",
            ManagerError::Blocked(_) => "blocked",
            ManagerError::AlreadyRegistered { .. } => "already",
            ManagerError::InvalidImpl { .. } => "invalid",
            ManagerError::OrderCycle { .. } => "cycle",
            ManagerError::HistoricReplay { .. } => "replay",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "duplicate",
            "blocked",
            "already",
            "invalid",
            "invalid",
            "invalid",
            "cycle",
            "replay",
            "replay"
        ]
    );
    for (error, text) in &refusals {
        assert_eq!(error.to_string(), *text);
    }
    match &refusals[6].0 {
        ManagerError::OrderCycle {
            plugin,
            hook,
            chain,
        } => {
            assert_eq!((plugin.as_str(), *hook), ("c3", "run"));
            assert_eq!(chain, &["c1", "c2", "c3", "c1"]);
        }
        other => panic!("{other:?}"),
    }
    match &refusals[7].0 {
        ManagerError::HistoricReplay { plugin, error } => {
            assert_eq!(plugin, "l");
            assert_eq!((error.hook(), error.plugin()), ("configure", Some("l")));
            assert_eq!(
                error.cause().unwrap().downcast_ref::<Boom>(),
                Some(&Boom("l"))
            );
            let source = std::error::Error::source(&refusals[7].0).unwrap();
            assert!(source.downcast_ref::<HookError>().is_some());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&refusals[8].0, ManagerError::HistoricReplay { error, .. } if error.is_panic())
    );

    assert_eq!(
        state_of(&pm),
        before,
        "every refusal left the manager as it was"
    );
    assert!(!pm.has_plugin("x") && !pm.has_plugin("l") && !pm.has_plugin("p"));
    // The names refused for their declarations are free again.
    add(&pm, probe("x", &log).value(100), on("run"));
    assert_eq!(pm.plugin_names(), ["a", "c1", "c2", "x"]);
}

/// `ManagerError`'s example: `println!("{refused}"); // says what to do
/// instead`, for a duplicate name. The message should then name a way
/// out (another name, `unregister` or `replace`), not only restate the
/// clash.
#[test]
fn a_duplicate_name_message_says_what_to_do_instead() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("store", &log), on("run"));
    let refused = pm
        .register_plugin("store", probe("store", &log).plugin(&[on("run")]))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("`store`"), "{refused}");
    assert!(
        ["replace", "unregister", "another name", "other name"]
            .iter()
            .any(|way| refused.contains(way)),
        "says what to do instead: {refused}"
    );
}

/// `PluginManager::replace`, "# Errors": "Refused, with the old plugin
/// left in place, when no plugin is registered as `name`
/// (UnknownPlugin), or for the reasons register gives; a failed historic
/// replay puts the old plugin back". Each refusal leaves the old plugin
/// answering, in its place.
#[test]
fn replace_refuses_each_documented_case_and_leaves_the_old_plugin_in_its_place() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    let b_object: Arc<dyn Hooks> = Arc::new(probe("b", &log).value(2));
    add(&pm, probe("a", &log).value(1), on("run").before(&["b"]));
    pm.register_plugin("b", Plugin::from_parts(b_object.clone(), vec![on("run")]))
        .unwrap();
    add(&pm, probe("c", &log).value(3), on("run"));
    pm.hook().configure(7).unwrap();
    let before = state_of(&pm);
    assert_eq!(before.2, [("c", 3), ("a", 1), ("b", 2)]);

    let ghost = pm
        .replace("ghost", probe("ghost", &log).plugin(&[on("run")]))
        .err()
        .unwrap();
    assert!(matches!(&ghost, ManagerError::UnknownPlugin(n) if n == "ghost"));
    assert_eq!(ghost.to_string(), "no plugin named `ghost` is registered");

    let alias = pm
        .replace("a", Plugin::from_parts(b_object.clone(), vec![on("run")]))
        .err()
        .unwrap();
    assert!(
        matches!(&alias, ManagerError::AlreadyRegistered { plugin, registered_as } if plugin == "a" && registered_as == "b"),
        "{alias:?}"
    );
    let invalid = pm
        .replace("a", probe("a", &log).plugin(&[on("nope")]))
        .err()
        .unwrap();
    assert!(matches!(&invalid, ManagerError::InvalidImpl { hook, .. } if hook == "nope"));
    let cycle = pm
        .replace("b", probe("b", &log).plugin(&[on("run").before(&["a"])]))
        .err()
        .unwrap();
    assert!(
        matches!(&cycle, ManagerError::OrderCycle { plugin, hook: "run", chain } if plugin == "b" && chain.len() == 3),
        "{cycle:?}"
    );
    let replay = pm
        .replace(
            "c",
            Plugin::new(Listener {
                name: "c",
                log: log.clone(),
                fail_on: Some(7),
            }),
        )
        .err()
        .unwrap();
    assert!(matches!(&replay, ManagerError::HistoricReplay { plugin, .. } if plugin == "c"));

    log.take();
    assert_eq!(
        state_of(&pm),
        before,
        "the old plugins answer, in their places"
    );
    assert_eq!(log.take(), ["c", "a", "b"]);
}

/// `subset_hook_caller`, "# Errors": "UnknownPlugin for a name no plugin
/// has", and no other: a blocked name and a name unregistered already are
/// names no plugin has. "It follows later registrations like hook does":
/// a plugin registered later under a name left out stays left out.
#[test]
fn subset_hook_caller_refuses_only_names_no_plugin_has_and_keeps_leaving_out_a_name() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("a", &log).value(1), on("run"));
    add(&pm, probe("b", &log).value(2), on("run"));
    add(&pm, probe("gone", &log).value(3), on("run"));
    pm.unregister("gone").unwrap();
    pm.set_blocked("banned");
    for name in ["banned", "gone", "nobody"] {
        let refused = pm.subset_hook_caller(&["a", name]).err().unwrap();
        assert!(
            matches!(&refused, ManagerError::UnknownPlugin(n) if n == name),
            "{refused:?}"
        );
    }
    let without_b = pm.subset_hook_caller(&["b", "b"]).unwrap();
    assert_eq!(pairs(&without_b.run(0).unwrap()), [("a", 1)]);
    pm.unregister("b").unwrap();
    add(&pm, probe("b", &log).value(20), on("run"));
    add(&pm, probe("c", &log).value(30), on("run"));
    assert_eq!(pairs(&without_b.run(0).unwrap()), [("c", 30), ("a", 1)]);
    let none_left_out = pm.subset_hook_caller(&[]).unwrap();
    assert_eq!(
        pairs(&none_left_out.run(0).unwrap()),
        [("c", 30), ("b", 20), ("a", 1)]
    );
}

/// `call_extra`, "# Errors": "As register for each extra plugin": extras
/// whose constraints close a cycle among themselves or with a registered
/// plugin, and an extra declaring a hook the spec lacks, are refused as
/// `register` refuses them; nothing is registered.
#[test]
fn call_extra_refuses_cycles_and_invalid_declarations_as_register_does() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("a", &log).value(1), on("run").before(&["x"]));
    let among = pm
        .call_extra([
            ("y", probe("y", &log).plugin(&[on("run").before(&["z"])])),
            ("z", probe("z", &log).plugin(&[on("run").before(&["y"])])),
        ])
        .err()
        .unwrap();
    assert!(
        matches!(&among, ManagerError::OrderCycle { plugin, chain, .. } if plugin == "z" && chain.len() == 3),
        "{among:?}"
    );
    let with_registered = pm
        .call_extra([("x", probe("x", &log).plugin(&[on("run").before(&["a"])]))])
        .err()
        .unwrap();
    assert_eq!(
        with_registered.to_string(),
        "plugin `x` was not registered: the before/after constraints of hook `run` form a cycle: \
         a runs before x runs before a"
    );
    let invalid = pm
        .call_extra([("w", probe("w", &log).plugin(&[on("configure").wrapper()]))])
        .err()
        .unwrap();
    assert!(
        matches!(&invalid, ManagerError::InvalidImpl { plugin, hook, .. } if plugin == "w" && hook == "configure")
    );
    assert_eq!(pm.plugin_names(), ["a"]);
    let ok = pm
        .call_extra([("x", probe("x", &log).value(9).plugin(&[on("run")]))])
        .unwrap();
    assert_eq!(
        pairs(&ok.run(0).unwrap()),
        [("a", 1), ("x", 9)],
        "a runs before x"
    );
}

// ================================================= historic: edge cases

/// A spec with a historic hook, a plain one and a deprecated one.
#[hookspec]
pub trait Hist {
    #[hookspec(historic)]
    fn configure(&self, x: u32) -> HookResult<u32>;
    fn run(&self, x: u32) -> HookResult<u32>;
    #[hookspec(warn_on_impl = "implement run instead")]
    fn old(&self, x: u32) -> HookResult<u32>;
}

/// Answers `run` with its value.
struct Store(u32);

#[hookimpl]
impl Hist for Store {
    fn run(&self, _x: u32) -> HookResult<u32> {
        Ok(self.0)
    }
}

/// On a replay of `configure`, writes what the manager shows while it
/// replays (whether it has the plugin, who answers `run`), does
/// `meanwhile` and fails.
struct Spy {
    pm: PluginManager<dyn Hist>,
    seen: Log,
    meanwhile: fn(&PluginManager<dyn Hist>),
}

#[hookimpl]
impl Hist for Spy {
    fn configure(&self, x: u32) -> HookResult<u32> {
        self.seen
            .push(format!("has spy: {}", self.pm.has_plugin("spy")));
        let run = self.pm.hook().run(0)?;
        self.seen
            .push(format!("run: {:?}", run.plugins().collect::<Vec<_>>()));
        (self.meanwhile)(&self.pm);
        anyhow::bail!("spy refuses {x}")
    }

    fn run(&self, _x: u32) -> HookResult<u32> {
        Ok(666)
    }
}

/// `PluginManager::register`: the new plugin "is registered while they
/// are [replayed] ...: calls made meanwhile run it, on this thread or
/// another, even if a replay then fails", and `ManagerError::HistoricReplay`:
/// "The first failure unregisters it again ... before this error is
/// returned". A call made while the replay runs (here from inside it, as
/// a call from another thread at that moment would) runs the plugin; once
/// `register` has returned the error, it is gone.
#[test]
fn a_plugin_whose_historic_replay_fails_is_seen_by_calls_only_while_it_replays() {
    let seen = Log::new();
    let pm = PluginManager::<dyn Hist>::new();
    pm.register("store", Store(1)).unwrap();
    pm.hook().configure(3).unwrap();
    let refused = pm
        .register(
            "spy",
            Spy {
                pm: pm.clone(),
                seen: seen.clone(),
                meanwhile: |_| {},
            },
        )
        .unwrap_err();
    assert!(matches!(refused, ManagerError::HistoricReplay { .. }));
    assert_eq!(pm.plugin_names(), ["store"]);
    assert_eq!(seen.take(), ["has spy: true", "run: [\"spy\", \"store\"]"]);
    assert_eq!(pairs_of(&pm), [("store", 1)], "gone once refused");
}

/// A plugin registered by `replace` while another registration's replay
/// runs (an app reloading a component while a new one is registered) is
/// replaced successfully; the failing replay's clean-up ("The first
/// failure unregisters it again") must remove the plugin it registered,
/// not the one `replace` put in its place since.
#[test]
fn the_clean_up_of_a_failed_replay_removes_only_the_plugin_it_registered() {
    let seen = Log::new();
    let pm = PluginManager::<dyn Hist>::new();
    pm.hook().configure(3).unwrap();
    static REPLACED: Mutex<Option<bool>> = Mutex::new(None);
    let refused = pm
        .register(
            "spy",
            Spy {
                pm: pm.clone(),
                seen: seen.clone(),
                meanwhile: |pm| {
                    let ok = pm.replace("spy", Plugin::new(Store(7))).is_ok();
                    *REPLACED.lock().unwrap() = Some(ok);
                },
            },
        )
        .unwrap_err();
    assert!(matches!(refused, ManagerError::HistoricReplay { .. }));
    assert_eq!(*REPLACED.lock().unwrap(), Some(true), "replace returned Ok");
    assert_eq!(
        pairs(&pm.hook().run(0).unwrap()),
        [("spy", 7)],
        "the plugin `replace` put in place is still there"
    );
}

/// `HookSpec::warn_on_impl`: "every registration of a plugin that
/// implements it logs this warning, naming plugin and hook". `replace`
/// puts a new plugin in ("Historic calls made so far are replayed to it",
/// "for the reasons register gives"): a new plugin implementing the
/// deprecated hook is registered by it and must be warned about as well.
#[test]
fn replacing_with_a_plugin_that_implements_a_deprecated_hook_warns_too() {
    struct Legacy;
    #[hookimpl]
    impl Hist for Legacy {
        fn old(&self, x: u32) -> HookResult<u32> {
            Ok(x)
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let pm = PluginManager::<dyn Hist>::new();
    tracing::subscriber::with_default(subscriber, || {
        pm.register("legacy", Legacy).unwrap();
        pm.replace("legacy", Plugin::new(Legacy)).unwrap();
    });
    let warnings: Vec<String> = capture
        .lines()
        .into_iter()
        .filter(|l| {
            l.contains("plugin `legacy` implements deprecated hook `old`: implement run instead")
        })
        .collect();
    assert_eq!(
        warnings.len(),
        2,
        "one per registration: {:?}",
        capture.lines()
    );
}

// ========================================= snapshots, threads, replace

/// `replace`: "a call sees either the one or the other, never neither",
/// while another thread replaces the plugin over and over. Bounded: 2,000
/// replacements, and each caller stops at 200,000 calls.
#[test]
fn calls_on_other_threads_see_one_plugin_or_the_other_never_neither_nor_both() {
    let pm = PluginManager::<dyn Hist>::new();
    pm.register("first", Store(1_000)).unwrap();
    pm.register("a", Store(0)).unwrap();
    pm.register("last", Store(2_000)).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let calls = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..200_000 {
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    let results = pm.hook().run(0).unwrap();
                    let got: Vec<_> = results.plugins().collect();
                    assert_eq!(got, ["last", "a", "first"], "{results:?}");
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for i in 1..=2_000 {
            pm.replace("a", Plugin::new(Store(i))).unwrap();
        }
        done.store(true, Ordering::Release);
    });
    assert!(calls.load(Ordering::Relaxed) > 0);
    assert_eq!(
        pairs_of(&pm),
        [("last", 2_000), ("a", 2_000), ("first", 1_000)]
    );
}

fn pairs_of(pm: &PluginManager<dyn Hist>) -> Vec<(&'static str, u32)> {
    pm.hook()
        .run(0)
        .unwrap()
        .into_iter()
        .map(|a| (a.plugin, a.value))
        .collect()
}

// ================================================== monitors, call_extra

/// `call_extra`: "The relay is a snapshot of the manager as it is now: its
/// plugins, and its monitors and depth limit too (a monitor added later
/// does not hear its calls, one undone later still does; make a new relay
/// to see a change)"; `MonitoringHandle::undo`: "from the next call on; a
/// `call_extra` relay made before keeps the monitors it was made with".
#[test]
fn a_call_extra_relay_keeps_the_monitors_it_was_made_with() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("a", &log), on("run"));
    let heard = Log::new();
    let (before, after) = (heard.clone(), heard.clone());
    let first = pm.add_hookcall_monitoring(
        move |call| before.push(format!("first {} {}", call.hook.name, call.impls.len())),
        move |_, _| after.push("first after".to_owned()),
    );
    let extra = pm
        .call_extra([("x", probe("x", &log).plugin(&[on("run")]))])
        .unwrap();
    first.undo();
    let late = heard.clone();
    let second = pm.add_hookcall_monitoring(
        move |call| late.push(format!("second {}", call.hook.name)),
        |_, _| {},
    );
    extra.run(0).unwrap();
    assert_eq!(heard.take(), ["first run 2", "first after"]);
    pm.hook().run(0).unwrap();
    assert_eq!(
        heard.take(),
        ["second run"],
        "the live calls: the monitors of now"
    );
    let fresh = pm
        .call_extra([("x", probe("x", &log).plugin(&[on("run")]))])
        .unwrap();
    fresh.run(0).unwrap();
    assert_eq!(
        heard.take(),
        ["second run"],
        "a new relay: the monitors of now"
    );
    second.undo();
}

/// `add_hookcall_monitoring`: "Calls `before` ahead of every hook call and
/// `after` once it ended", with `after` given the outcome
/// (`Result<(), &HookError>`), and "A call refused before it starts
/// (nested past the depth limit ...) runs nothing, monitors included:
/// nested in another call, it reaches the monitors as that call's failure".
/// A monitor counting failed calls hears the failure once, as the outcome
/// of the call that made the refused one.
#[test]
fn a_call_refused_at_the_depth_limit_reaches_monitors_as_its_callers_failure() {
    let pm = PluginManager::<dyn Dive>::new();
    pm.register("diver", Diver(pm.clone())).unwrap();
    pm.set_max_depth(1);
    let heard = Log::new();
    let (before, after) = (heard.clone(), heard.clone());
    let monitor = pm.add_hookcall_monitoring(
        move |call| before.push(format!("before {}", call.hook.name)),
        move |call, outcome| {
            let how = match outcome {
                Ok(()) => "ok".to_owned(),
                Err(e) if e.is_too_deep() => "too deep".to_owned(),
                Err(e) => format!("failed in {}", e.hook()),
            };
            after.push(format!("after {} {how}", call.hook.name))
        },
    );
    let error = pm.hook().dive(path(&[Kind::Async])).unwrap_err();
    monitor.undo();
    assert!(error.is_too_deep());
    assert_eq!(heard.take(), ["before dive", "after dive too deep"]);
}

// ====================================================== the depth limit

/// How the next nested call is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `dive`, a sync hook.
    Sync,
    /// `adive`, an async hook (from sync code: polled right there).
    Async,
    /// `leaf`, a sync hook nobody implements (the idle path).
    IdleSync,
    /// `aleaf`, an async hook nobody implements (the idle path).
    IdleAsync,
}

impl Kind {
    fn hook(self) -> &'static str {
        match self {
            Kind::Sync => "dive",
            Kind::Async => "adive",
            Kind::IdleSync => "leaf",
            Kind::IdleAsync => "aleaf",
        }
    }
}

/// The calls still to make, one per step.
#[derive(Clone, Copy, Debug)]
pub struct Path(&'static [Kind]);

fn path(kinds: &[Kind]) -> Path {
    Path(Box::leak(kinds.to_vec().into_boxed_slice()))
}

#[hookspec]
pub trait Dive {
    fn dive(&self, path: Path) -> HookResult<u32>;
    async fn adive(&self, path: Path) -> HookResult<u32>;
    fn leaf(&self, path: Path) -> HookResult<u32>;
    async fn aleaf(&self, path: Path) -> HookResult<u32>;
}

/// Makes the next call of its path, nested in this one; answers how many
/// calls it made, itself excluded.
pub struct Diver(PluginManager<dyn Dive>);

fn count(results: Results<u32>) -> u32 {
    results.into_values().into_iter().sum()
}

#[hookimpl]
impl Dive for Diver {
    fn dive(&self, path: Path) -> HookResult<u32> {
        let Some((first, rest)) = path.0.split_first() else {
            return Ok(0);
        };
        let (hook, rest) = (self.0.hook(), Path(rest));
        Ok(1 + match first {
            Kind::Sync => count(hook.dive(rest)?),
            Kind::Async => count(now(hook.adive(rest))?),
            Kind::IdleSync => count(hook.leaf(rest)?),
            Kind::IdleAsync => count(now(hook.aleaf(rest))?),
        })
    }

    async fn adive(&self, path: Path) -> HookResult<u32> {
        let Some((first, rest)) = path.0.split_first() else {
            return Ok(0);
        };
        let (hook, rest) = (self.0.hook(), Path(rest));
        Ok(1 + match first {
            Kind::Sync => count(hook.dive(rest)?),
            Kind::Async => count(hook.adive(rest).await?),
            Kind::IdleSync => count(hook.leaf(rest)?),
            Kind::IdleAsync => count(hook.aleaf(rest).await?),
        })
    }
}

/// The outermost call of `kind` with `path` nested in it.
fn dive(pm: &PluginManager<dyn Dive>, kind: Kind, rest: &[Kind]) -> Result<u32, HookError> {
    let rest = path(rest);
    match kind {
        Kind::Sync => pm.hook().dive(rest).map(count),
        Kind::Async => now(pm.hook().adive(rest)).map(count),
        Kind::IdleSync | Kind::IdleAsync => unreachable!("the outermost call dives"),
    }
}

/// Checks one nesting against the limit: `outer` then `rest`, each call
/// inside the one before; `1 + rest.len()` calls deep in all.
fn check_depth(pm: &PluginManager<dyn Dive>, limit: usize, outer: Kind, rest: &[Kind]) {
    let deep = 1 + rest.len();
    let case = format!("limit {limit}, {outer:?} then {rest:?}");
    let outcome = dive(pm, outer, rest);
    if deep <= limit {
        assert_eq!(
            outcome.unwrap(),
            rest.len() as u32,
            "{case}: within the limit"
        );
        return;
    }
    let error = outcome.expect_err(&case);
    let hooks: Vec<&str> = std::iter::once(outer)
        .chain(rest.iter().copied())
        .map(Kind::hook)
        .collect();
    match error.kind() {
        HookErrorKind::TooDeep { limit: l, chain } => {
            assert_eq!(*l, limit, "{case}");
            let expected: Vec<_> = hooks[..limit].iter().map(|h| (*h, "diver")).collect();
            assert_eq!(chain, &expected, "{case}: the chain, outermost first");
        }
        other => panic!("{case}: {other:?}"),
    }
    assert_eq!(
        (error.hook(), error.plugin()),
        (hooks[limit], None),
        "{case}"
    );
    let mut text = format!("hook calls nested deeper than the limit of {limit}: ");
    for hook in &hooks[..limit] {
        text.push_str(&format!("{hook} (in plugin `diver`) -> "));
    }
    text.push_str(hooks[limit]);
    assert_eq!(error.to_string(), text, "{case}");
}

/// README, "Errors and safety": "Nesting deeper than
/// `pm.set_max_depth(n)` fails with an error naming the chain of hooks and
/// plugins". Exactly at the limit: n nested calls work, n + 1 and n + 2
/// fail, naming the n calls that were made and the hook refused; for sync
/// calls, async calls, both mixed (a sync implementation polling an async
/// call, an async one making a sync call), and an innermost hook with no
/// implementation (the idle path, sync or async).
#[test]
fn the_depth_limit_allows_exactly_n_nested_calls_sync_async_and_mixed() {
    use Kind::*;
    let pm = PluginManager::<dyn Dive>::new();
    pm.register("diver", Diver(pm.clone())).unwrap();
    for limit in [1, 2, 3, 6] {
        pm.set_max_depth(limit);
        for outer in [Sync, Async] {
            for last in [None, Some(IdleSync), Some(IdleAsync)] {
                for pattern in [[Sync, Sync], [Async, Async], [Sync, Async], [Async, Sync]] {
                    for deep in limit.saturating_sub(1).max(1)..=limit + 2 {
                        // `deep` calls in all: the outermost and `rest`.
                        let mut rest: Vec<Kind> = (0..deep - 1).map(|i| pattern[i % 2]).collect();
                        if let (Some(last), Some(end)) = (last, rest.last_mut()) {
                            *end = last;
                        }
                        check_depth(&pm, limit, outer, &rest);
                    }
                }
            }
        }
    }
}

/// README: "(default 64)"; `DEFAULT_MAX_DEPTH`. 64 nested calls work, the
/// 65th fails, mixing sync and async calls. (On a thread with a large
/// stack: the claim is about the limit, not about the stack of a debug
/// build.)
#[test]
fn the_default_depth_limit_is_64_nested_calls() {
    use Kind::*;
    let deep = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let pm = PluginManager::<dyn Dive>::new();
            pm.register("diver", Diver(pm.clone())).unwrap();
            assert_eq!(pm.max_depth(), 64);
            assert_eq!(hookery::DEFAULT_MAX_DEPTH, 64);
            for deep in [63, 64, 65] {
                let mut rest: Vec<Kind> = (0..deep - 1).map(|i| [Async, Sync][i % 2]).collect();
                if let Some(end) = rest.last_mut() {
                    *end = IdleAsync;
                }
                check_depth(&pm, 64, Sync, &rest);
            }
        })
        .unwrap();
    deep.join().unwrap();
}

// ============================================================ panics

/// A panic payload whose own `Drop` panics.
struct Grenade;

impl Drop for Grenade {
    fn drop(&mut self) {
        panic!("the payload went off as it was dropped");
    }
}

#[hookspec]
pub trait Pan {
    fn run(&self, how: u8) -> HookResult<u32>;
    async fn arun(&self, how: u8) -> HookResult<u32>;
}

fn detonate(how: u8) -> HookResult<u32> {
    match how {
        0 => std::panic::panic_any(Grenade),
        1 => std::panic::panic_any(42_i32),
        2 => std::panic::panic_any(String::from("an owned message")),
        3 => std::panic::panic_any("a static message"),
        _ => Ok(u32::from(how)),
    }
}

struct Bomber;

#[hookimpl]
impl Pan for Bomber {
    fn run(&self, how: u8) -> HookResult<u32> {
        if how >= 20 {
            return Ok(u32::from(how));
        }
        detonate(how)
    }

    async fn arun(&self, how: u8) -> HookResult<u32> {
        tokio::task::yield_now().await;
        detonate(how)
    }
}

/// Wraps `run`; for `run(20 + n)`, panics after `next` with payload `n`.
struct AfterBomber;

#[hookimpl]
impl Pan for AfterBomber {
    #[hookimpl(wrapper)]
    fn run(&self, how: u8, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
        let outcome = next.call()?;
        if how >= 20 {
            detonate(how - 20)?;
        }
        Ok(outcome)
    }
}

/// README, "Errors and safety": "A panic in any implementation, wrapper
/// or async future is caught and becomes such an error. The process lives
/// on." With payloads that are no string, and one whose `Drop` panics too
/// (the engine drops a payload it cannot read): each call fails with
/// `Panicked`, naming plugin and hook, the message kept when the payload
/// is a string; the manager goes on answering.
#[test]
fn panics_with_any_payload_become_errors_naming_plugin_and_hook() {
    hookery::quiet_plugin_panics();
    let pm = PluginManager::<dyn Pan>::new();
    pm.register("bomber", Bomber).unwrap();
    let expected = [
        "(non-string panic payload)",
        "(non-string panic payload)",
        "an owned message",
        "a static message",
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (how, message) in expected.iter().enumerate() {
        let how = how as u8;
        let sync = pm.hook().run(how).unwrap_err();
        let asynchronous = runtime.block_on(pm.hook().arun(how)).unwrap_err();
        for (error, hook) in [(sync, "run"), (asynchronous, "arun")] {
            assert!(
                matches!(error.kind(), HookErrorKind::Panicked(m) if m == message),
                "{how}: {error:?}"
            );
            assert_eq!((error.hook(), error.plugin()), (hook, Some("bomber")));
            assert_eq!(
                error.to_string(),
                format!("plugin `bomber` panicked in hook `{hook}`: {message}")
            );
        }
    }
    assert_eq!(pm.hook().run(7).unwrap().into_values(), [7]);

    // A wrapper panicking after `next` with such a payload.
    pm.register("after", AfterBomber).unwrap();
    let error = pm.hook().run(20).unwrap_err();
    assert_eq!(
        error.to_string(),
        "plugin `after` panicked in hook `run`: (non-string panic payload)"
    );
    assert_eq!(pm.hook().run(15).unwrap().into_values(), [15]);
}

// ========================================================= time limits

#[hookspec]
pub trait Timed {
    /// 50 ms per implementation.
    #[hookspec(timeout_ms = 50)]
    async fn work(&self, block_ms: u64) -> HookResult<u32>;
}

/// Does its work without awaiting anything: it blocks its thread for
/// `block_ms`, then answers.
struct Blocker;

#[hookimpl]
impl Timed for Blocker {
    async fn work(&self, block_ms: u64) -> HookResult<u32> {
        std::thread::sleep(Duration::from_millis(block_ms));
        Ok(1)
    }
}

/// README, "Hook options": "`timeout_ms = N`: ... the limit is kept
/// between polls, so one that blocks its thread instead of awaiting cannot
/// be stopped, and its answer stands". An implementation that blocks for
/// 4 times its limit and answers in the same poll is not cut off: it
/// answers.
#[tokio::test]
async fn an_implementation_that_blocks_past_its_time_limit_is_not_cut_off() {
    let pm = PluginManager::<dyn Timed>::new();
    pm.register("blocker", Blocker).unwrap();
    let started = std::time::Instant::now();
    let outcome = pm.hook().work(200).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(outcome.unwrap().into_values(), [1]);
}

/// `HookErrorKind::NoRuntime`: "The hook has a time limit, which needs a
/// Tokio runtime, and the call ran outside one; no implementation ran",
/// whose message says "needs a Tokio runtime (with its time driver), and
/// none is running"; and README: a panic "cannot take the host down".
/// Called in a Tokio runtime built without its time driver, the call is
/// that error, not a panic out of the engine.
#[test]
fn a_time_limited_call_in_a_runtime_without_timers_is_an_error_not_a_panic() {
    let ran = Arc::new(AtomicUsize::new(0));
    struct Counter(Arc<AtomicUsize>);
    #[hookimpl]
    impl Timed for Counter {
        async fn work(&self, _block_ms: u64) -> HookResult<u32> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(1)
        }
    }
    let pm = PluginManager::<dyn Timed>::new();
    pm.register("counter", Counter(ran.clone())).unwrap();
    let no_timers = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        no_timers.block_on(pm.hook().work(0))
    }));
    let error = outcome
        .expect("the hook call panicked")
        .expect_err("no time driver: NoRuntime");
    assert!(
        matches!(error.kind(), HookErrorKind::NoRuntime(limit) if *limit == Duration::from_millis(50)),
        "{error:?}"
    );
    assert_eq!((error.hook(), error.plugin()), ("work", None));
    assert_eq!(
        error.to_string(),
        "hook `work` has a time limit of 50ms, which needs a Tokio runtime (with its time driver), \
         and none is running"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0, "no implementation ran");
}

// ===================================================== order: groups

/// docs/call-order.md, rule 5: "`before` / `after` then reorder
/// implementations of the same tier (and group: wrappers or plain)", and
/// "constraints that form a cycle refuse the registration that closes it".
/// A wrapper of `a` before `b`'s wrapper and a plain `a` after `b`'s plain
/// one are no cycle: each group is ordered on its own, and both
/// constraints hold. `info.why()` names the plugin whose constraint moved
/// an implementation (README, "Good to know").
#[test]
fn constraints_in_the_wrapper_and_plain_groups_are_ordered_apart_and_form_no_cycle() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    probe("a", &log)
        .register(
            &pm,
            &[on("run").wrapper().before(&["b"]), on("run").after(&["b"])],
        )
        .unwrap();
    probe("b", &log)
        .register(&pm, &[on("run").wrapper(), on("run")])
        .unwrap();
    pm.hook().run(0).unwrap();
    assert_eq!(
        log.take(),
        ["a:before", "b:before", "b", "a", "b:after", "a:after"]
    );
    let impls = pm.get_hookimpls("run").unwrap();
    let placed: Vec<_> = impls
        .iter()
        .map(|i| (i.plugin, i.wrapper, i.placement))
        .collect();
    assert_eq!(
        placed,
        [
            ("a", true, Placement::Constraint { by: "a" }),
            ("b", true, Placement::Constraint { by: "a" }),
            ("b", false, Placement::Rank),
            ("a", false, Placement::Rank),
        ]
    );
    assert_eq!(
        impls[0].why(),
        "wrapper, normal tier, priority 0, registration 0 (later runs first), before [\"b\"]: \
         moved by a constraint of a"
    );
}

// ============================================ drops that use the manager

/// Calls the manager when dropped.
struct Tattler(
    PluginManager<dyn Hooks>,
    std::sync::mpsc::Sender<Vec<&'static str>>,
);

impl Drop for Tattler {
    fn drop(&mut self) {
        let _ = self.1.send(self.0.plugin_names());
    }
}

/// README, "Errors and safety": "`register`, `unregister`, `set_blocked`
/// work while calls run" and the manager's "Every method takes `&self`";
/// a monitor's callbacks are the host's closures and may own anything,
/// the manager included. Undoing a monitor drops them; whatever their
/// `Drop` does with the manager must work, as it does for a plugin's
/// `Drop` (the registry drops plugins outside its lock "so its Drop may
/// use the manager"). Bounded: the drop must be over within 10 s.
#[test]
fn undoing_a_monitor_whose_closure_owns_something_that_uses_the_manager_does_not_deadlock() {
    let (sent, heard) = std::sync::mpsc::channel();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let log = Log::new();
        let pm = PluginManager::<dyn Hooks>::new();
        add(&pm, probe("a", &log), on("run"));
        let tattler = Tattler(pm.clone(), sent);
        let monitor = pm.add_hookcall_monitoring(
            move |_| {
                let _ = &tattler;
            },
            |_, _| {},
        );
        monitor.undo();
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("undo returned within 10 s");
    let names = heard
        .recv_timeout(Duration::from_secs(10))
        .expect("the monitor's closure was dropped and its Drop used the manager");
    assert_eq!(names, ["a"]);
}

// ================================== refusals: left exactly as they were

/// `ManagerError`: "A change to the PluginManager was refused; the manager
/// is exactly as it was before the call", and `register`: "Refused, with
/// the manager left as it was ... when replaying a historic call to it
/// fails". The registration numbers `get_hookimpls` reports (and `why()`
/// prints) are part of what the manager shows: a plugin registered after
/// a refused one is numbered as if the refusal never happened, as it is
/// after every other kind of refusal.
#[test]
fn a_refused_replay_leaves_the_registration_count_as_it_was() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("a", &log), on("run"));
    pm.hook().configure(1).unwrap();
    // Refusals of every other kind first: they use up no number.
    assert!(
        pm.register_plugin("a", probe("a", &log).plugin(&[on("run")]))
            .is_err()
    );
    assert!(
        pm.register_plugin("x", probe("x", &log).plugin(&[on("nope")]))
            .is_err()
    );
    let listener = Listener {
        name: "l",
        log: log.clone(),
        fail_on: Some(1),
    };
    assert!(matches!(
        pm.register("l", listener),
        Err(ManagerError::HistoricReplay { .. })
    ));
    add(&pm, probe("c", &log), on("run"));
    let numbers: Vec<_> = pm
        .get_hookimpls("run")
        .unwrap()
        .iter()
        .map(|i| (i.plugin, i.registration))
        .collect();
    assert_eq!(numbers, [("c", 1), ("a", 0)]);
}

/// "the same plugin object (one `Arc`) registered under a second name" is
/// refused: once unregistered from its first name, the object is no
/// longer registered and may be registered again under another.
#[test]
fn an_object_unregistered_from_its_first_name_may_be_registered_under_another() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    let shared: Arc<dyn Hooks> = Arc::new(probe("a", &log).value(4));
    let plugin = || Plugin::from_parts(shared.clone(), vec![on("run")]);
    pm.register_plugin("a", plugin()).unwrap();
    assert!(matches!(
        pm.register_plugin("b", plugin()),
        Err(ManagerError::AlreadyRegistered { .. })
    ));
    let gone = pm.unregister("a").unwrap();
    assert!(Arc::ptr_eq(gone.object(), &shared));
    pm.register_plugin("b", plugin()).unwrap();
    assert_eq!(pairs(&pm.hook().run(0).unwrap()), [("b", 4)]);
    pm.set_blocked("b");
    pm.register_plugin("c", plugin()).unwrap();
    assert_eq!(pairs(&pm.hook().run(0).unwrap()), [("c", 4)]);
}

/// An error whose `Display` and `Debug` panic.
#[derive(Clone, Copy)]
struct Hostile;

impl std::fmt::Display for Hostile {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("Display of a hostile error")
    }
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("Debug of a hostile error")
    }
}

impl std::error::Error for Hostile {}

/// Fails every replay of `configure` with [`Hostile`].
struct HostileListener;

#[hookimpl]
impl Hist for HostileListener {
    fn configure(&self, _x: u32) -> HookResult<u32> {
        Err(Hostile.into())
    }
}

/// README, "Errors and safety": "A plugin error whose `Display` or
/// `Debug` panics (or fails) cannot take the host down either: wherever
/// the engine formats it ... it is written as a note instead". A
/// `ManagerError::HistoricReplay` carrying such an error is one more place
/// the engine formats it, with `Display` and `Debug`.
#[test]
fn a_refused_replay_of_a_hostile_error_formats_with_a_note() {
    hookery::quiet_plugin_panics();
    let pm = PluginManager::<dyn Hist>::new();
    pm.hook().configure(1).unwrap();
    let refused = pm.register("hostile", HostileListener).unwrap_err();
    let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        (refused.to_string(), format!("{refused:?}"))
    }));
    let (display, debug) = shown.expect("formatting the refusal did not panic");
    assert_eq!(
        display,
        "plugin `hostile` was not registered: replaying a historic call failed: \
         plugin `hostile` failed in hook `configure`: \
         (the plugin's error panicked while being formatted)"
    );
    assert!(
        debug.contains("(the plugin's error panicked while being formatted)"),
        "{debug}"
    );
    assert!(!pm.has_plugin("hostile"));
}

/// Awaits Tokio's timer for `block_ms`, then answers.
struct Sleeper;

#[hookimpl]
impl Timed for Sleeper {
    async fn work(&self, block_ms: u64) -> HookResult<u32> {
        tokio::time::sleep(Duration::from_millis(block_ms)).await;
        Ok(2)
    }
}

/// The time-limit errors, as documented: `TimedOut` names the plugin and
/// the hook ("plugin ... did not finish hook ... within its time limit")
/// when the implementation awaits past its limit; `NoRuntime` blames no
/// plugin (`HookError::plugin`: "None when no plugin is to blame: ... a
/// time limit without a runtime") and runs no implementation.
#[test]
fn time_limit_errors_read_as_documented_and_blame_whom_they_say() {
    let pm = PluginManager::<dyn Timed>::new();
    pm.register("sleeper", Sleeper).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    assert_eq!(
        runtime.block_on(pm.hook().work(0)).unwrap().into_values(),
        [2]
    );
    let error = runtime.block_on(pm.hook().work(10_000)).unwrap_err();
    assert!(matches!(error.kind(), HookErrorKind::TimedOut(l) if *l == Duration::from_millis(50)));
    assert_eq!((error.hook(), error.plugin()), ("work", Some("sleeper")));
    assert!(error.cause().is_none());
    assert_eq!(
        error.to_string(),
        "plugin `sleeper` did not finish hook `work` within its time limit of 50ms"
    );

    let outside = now(pm.hook().work(0)).unwrap_err();
    assert!(
        matches!(outside.kind(), HookErrorKind::NoRuntime(l) if *l == Duration::from_millis(50))
    );
    assert_eq!((outside.hook(), outside.plugin()), ("work", None));
    assert_eq!(
        outside.to_string(),
        "hook `work` has a time limit of 50ms, which needs a Tokio runtime (with its time driver), \
         and none is running"
    );
}

// ======================================= firstresult, continue, wrappers

#[hookspec]
pub trait Lookup {
    #[hookspec(firstresult, on_error = "continue")]
    fn find(&self, key: u32) -> HookResult<Option<u32>>;
    #[hookspec(firstresult, on_error = "continue")]
    async fn afind(&self, key: u32) -> HookResult<Option<u32>>;
}

/// Knows its own key (answers `key * 10`), has nothing for 0, panics for
/// 98 and fails for every other key.
struct Finder(u32);

impl Finder {
    fn find_now(&self, key: u32) -> HookResult<Option<u32>> {
        match key {
            0 => Ok(None),
            98 => panic!("finder {} panicked", self.0),
            k if k == self.0 => Ok(Some(k * 10)),
            k => anyhow::bail!("finder {} cannot find {k}", self.0),
        }
    }
}

#[hookimpl]
impl Lookup for Finder {
    fn find(&self, key: u32) -> HookResult<Option<u32>> {
        self.find_now(key)
    }
    async fn afind(&self, key: u32) -> HookResult<Option<u32>> {
        tokio::task::yield_now().await;
        self.find_now(key)
    }
}

/// Writes what `next` gave, and passes it on.
struct Peek(Log);

impl Peek {
    fn note(&self, outcome: &Result<Option<Answer<u32>>, HookError>) {
        self.0.push(match outcome {
            Ok(Some(a)) => format!("{} {}", a.plugin, a.value),
            Ok(None) => "none".to_owned(),
            Err(e) => format!("error from {:?}", e.plugin()),
        });
    }
}

#[hookimpl]
impl Lookup for Peek {
    #[hookimpl(wrapper)]
    fn find(
        &self,
        _key: u32,
        next: Next<'_, Option<Answer<u32>>>,
    ) -> HookResult<Option<Answer<u32>>> {
        let outcome = next.call();
        self.note(&outcome);
        Ok(outcome?)
    }

    #[hookimpl(wrapper)]
    async fn afind(
        &self,
        _key: u32,
        next: AsyncNext<'_, Option<Answer<u32>>>,
    ) -> HookResult<Option<Answer<u32>>> {
        let outcome = next.await;
        self.note(&outcome);
        Ok(outcome?)
    }
}

/// README, "Hook options": `on_error = "continue"` "with `firstresult`,
/// logged only: a failing implementation is skipped, and the call answers
/// `None` if all fail", and `lib.rs`: "For a `firstresult` hook, `next`
/// yields `Option<Answer<T>>`". A wrapper around such a call sees the
/// first `Some` past the failures (errors and panics alike), and `None`,
/// not an error, when all fail; sync and async alike.
#[test]
fn a_wrapper_of_a_firstresult_continue_hook_sees_the_answer_past_failures_or_none() {
    hookery::quiet_plugin_panics();
    let log = Log::new();
    let pm = PluginManager::<dyn Lookup>::new();
    pm.register("k1", Finder(1)).unwrap();
    pm.register("k2", Finder(2)).unwrap();
    pm.register("k3", Finder(3)).unwrap();
    pm.register("peek", Peek(log.clone())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (key, expected, seen) in [
        (1, Some(("k1", 10)), "k1 10"),
        (3, Some(("k3", 30)), "k3 30"),
        (2, Some(("k2", 20)), "k2 20"),
        (0, None, "none"),
        (7, None, "none"),
        (98, None, "none"),
    ] {
        let sync = pm.hook().find(key).unwrap();
        let asynchronous = runtime.block_on(pm.hook().afind(key)).unwrap();
        for answer in [sync, asynchronous] {
            assert_eq!(answer.map(|a| (a.plugin, a.value)), expected, "key {key}");
        }
        assert_eq!(log.take(), [seen, seen], "key {key}");
    }
}

// ================================== a future cut off by its time limit

/// Panics when dropped.
struct DropBomb;

impl Drop for DropBomb {
    fn drop(&mut self) {
        panic!("an implementation's future panicked as it was dropped");
    }
}

/// Holds a [`DropBomb`] while it waits forever.
struct Bombed;

#[hookimpl]
impl Timed for Bombed {
    async fn work(&self, _block_ms: u64) -> HookResult<u32> {
        let _bomb = DropBomb;
        std::future::pending::<()>().await;
        Ok(3)
    }
}

/// README, "Errors and safety": "A panic in any implementation, wrapper or
/// async future is caught and becomes such an error. The process lives
/// on." An implementation's future that the engine itself drops, because
/// it overran its time limit, and that panics as it is dropped, is such a
/// future: the call fails with an error naming the plugin (a time-out or
/// a panic), and no panic leaves the call.
#[test]
fn a_future_that_panics_when_dropped_after_its_time_limit_is_caught() {
    hookery::quiet_plugin_panics();
    let pm = PluginManager::<dyn Timed>::new();
    pm.register("bombed", Bombed).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(pm.hook().work(0))
    }));
    let error = outcome
        .expect("no panic leaves the hook call")
        .expect_err("the implementation overran its limit");
    assert!(error.is_timeout() || error.is_panic(), "{error:?}");
    assert_eq!((error.hook(), error.plugin()), ("work", Some("bombed")));
}

// ========================= historic calls racing registrations (threads)

/// Counts the `configure` calls it hears.
struct Tally(Arc<AtomicUsize>);

#[hookimpl]
impl Hist for Tally {
    fn configure(&self, x: u32) -> HookResult<u32> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(x)
    }
}

/// README, "Hook options": "`historic`: ... the call is remembered and
/// replayed to every plugin registered later", and
/// `a_plugin_registered_during_a_historic_call_hears_it_exactly_once`
/// (claims.rs) from inside the call; here from another thread, released
/// at the same moment as the historic call: whether the plugin is there
/// for the call or registered after it, it hears the call exactly once.
/// The window is narrow (a few in 30,000 rounds here), so the test tries
/// up to 100,000 rounds, stops at the first plugin that hears the call
/// twice, and at 60 s.
#[test]
fn a_plugin_registered_on_another_thread_during_a_historic_call_hears_it_exactly_once() {
    let started = std::time::Instant::now();
    let mut rounds = 0;
    let mut wrong = None;
    while rounds < 100_000 && started.elapsed() < Duration::from_secs(60) {
        let pm = PluginManager::<dyn Hist>::new();
        let heard = Arc::new(AtomicUsize::new(0));
        let go = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                go.wait();
                pm.hook().configure(rounds).unwrap();
            });
            go.wait();
            pm.register("tally", Tally(heard.clone())).unwrap();
        });
        let times = heard.load(Ordering::SeqCst);
        if times != 1 {
            wrong = Some((rounds, times));
            break;
        }
        rounds += 1;
    }
    assert_eq!(wrong, None, "(round, times the plugin heard the call)");
    assert!(rounds > 0);
}
