//! Ordering relative to named plugins: `before` / `after` refine the order
//! within a tier (rank decides what they leave open), a name with no
//! implementation in that tier constrains nothing, a cycle refuses the
//! registration and leaves the manager as it was, and `get_hookimpls`
//! says why each implementation sits where it does.

mod common;

use common::*;
use hookery::prelude::*;
use hookery::{ImplDecl, ManagerError, Placement, Tier};

/// Registers `(name, decl)` in order; returns the manager and the log.
fn registered(plugins: &[(&'static str, ImplDecl)]) -> (PluginManager<dyn Hooks>, Log) {
    let (log, pm) = (Log::new(), PluginManager::<dyn Hooks>::new());
    for &(name, decl) in plugins {
        add(&pm, probe(name, &log), decl);
    }
    (pm, log)
}

fn call_order(pm: &PluginManager<dyn Hooks>) -> Vec<&'static str> {
    pm.hook().run(0).unwrap().plugins().collect()
}

struct Audit(Probe);
#[hookimpl]
impl Hooks for Audit {
    fn run(&self, x: u32) -> HookResult<u32> {
        self.0.answer(x)
    }
}

struct Early(Probe);
#[hookimpl]
impl Hooks for Early {
    #[hookimpl(before = "audit_log")]
    fn run(&self, x: u32) -> HookResult<u32> {
        self.0.answer(x)
    }
}

struct Late(Probe);
#[hookimpl]
impl Hooks for Late {
    #[hookimpl(after = ["audit_log", "early"], priority = 100)]
    fn run(&self, x: u32) -> HookResult<u32> {
        self.0.answer(x)
    }
}

#[test]
fn before_and_after_declared_with_the_macro_override_registration_order_and_priority() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    // By rank alone: late (priority 100), then LIFO: early, audit_log.
    pm.register("late", Late(probe("late", &log))).unwrap();
    pm.register("audit_log", Audit(probe("audit_log", &log)))
        .unwrap();
    pm.register("early", Early(probe("early", &log))).unwrap();
    assert_eq!(call_order(&pm), ["early", "audit_log", "late"]);
    let infos = pm.get_hookimpls("run").unwrap();
    assert_eq!(infos[2].after, ["audit_log", "early"]);
    assert_eq!(infos[0].before, ["audit_log"]);
}

#[test]
fn rank_decides_whatever_the_constraints_leave_open() {
    // Rank: x (9), y (5), z (1), w (0). Constraint: x after z.
    let (pm, _) = registered(&[
        ("w", on("run")),
        ("x", on("run").priority(9).after(&["z"])),
        ("y", on("run").priority(5)),
        ("z", on("run").priority(1)),
    ]);
    // y is first by rank among those free to go; then z; then x; then w.
    assert_eq!(call_order(&pm), ["y", "z", "x", "w"]);
}

#[test]
fn a_constraint_naming_an_unregistered_plugin_constrains_nothing() {
    let (pm, _) = registered(&[
        ("a", on("run").before(&["nobody"]).after(&["ghost"])),
        ("b", on("run")),
    ]);
    assert_eq!(call_order(&pm), ["b", "a"]);
    let infos = pm.get_hookimpls("run").unwrap();
    assert!(infos.iter().all(|i| i.placement == Placement::Rank));
}

#[test]
fn a_constraint_never_moves_an_implementation_out_of_its_tier() {
    // `first` asks to run after `last`, which is in another tier: nothing.
    let (pm, _) = registered(&[
        ("last", on("run").trylast()),
        ("first", on("run").tryfirst().after(&["last"])),
        ("wrap", on("run").wrapper().before(&["first"])),
    ]);
    assert_eq!(call_order(&pm), ["first", "last"]);
    let names: Vec<_> = pm
        .get_hookimpls("run")
        .unwrap()
        .iter()
        .map(|i| i.plugin)
        .collect();
    assert_eq!(names, ["wrap", "first", "last"]);
}

#[test]
fn a_constraint_registered_before_the_plugin_it_names_applies_once_that_plugin_arrives() {
    let (pm, log) = registered(&[("a", on("run").after(&["b"]))]);
    assert_eq!(call_order(&pm), ["a"]);
    add(&pm, probe("b", &log), on("run"));
    assert_eq!(call_order(&pm), ["b", "a"]);
    pm.unregister("b").unwrap();
    add(&pm, probe("c", &log), on("run"));
    assert_eq!(call_order(&pm), ["c", "a"], "b gone: a is free again");
}

#[test]
fn get_hookimpls_says_which_implementations_a_constraint_moved() {
    let (pm, _) = registered(&[
        ("a", on("run")),
        ("b", on("run")),
        ("c", on("run").after(&["a"])),
    ]);
    // Rank: c, b, a. `c after a` overrides c-before-a: both moved; b not.
    let infos = pm.get_hookimpls("run").unwrap();
    let placed: Vec<_> = infos.iter().map(|i| (i.plugin, i.placement)).collect();
    assert_eq!(
        placed,
        [
            ("b", Placement::Rank),
            ("a", Placement::Constraint { by: "c" }),
            ("c", Placement::Constraint { by: "c" })
        ]
    );
    // Whose constraint: the plugin that declared it, also for the plugin it
    // moved without declaring anything.
    assert_eq!(
        infos[2].why(),
        "plain, normal tier, priority 0, registration 2 (later runs first), \
         after [\"a\"]: moved by a constraint of c"
    );
    assert!(infos[1].why().ends_with(": moved by a constraint of c"));
    assert!(infos[0].why().ends_with(": placed by rank"));
}

#[test]
fn a_cycle_refuses_the_registration_naming_the_chain_and_leaves_the_manager_as_it_was() {
    let (pm, log) = registered(&[
        ("a", on("run").before(&["b"])),
        ("b", on("run").before(&["c"])),
        ("x", on("run")),
    ]);
    let before = pm.get_hookimpls("run").unwrap();
    let err = probe("c", &log)
        .register(&pm, &[on("run").before(&["a"])])
        .unwrap_err();
    match &err {
        ManagerError::OrderCycle {
            plugin,
            hook,
            chain,
        } => {
            assert_eq!((plugin.as_str(), *hook), ("c", "run"));
            // Each runs before the next, the first repeated last.
            let rotations = [
                ["a", "b", "c", "a"],
                ["b", "c", "a", "b"],
                ["c", "a", "b", "c"],
            ];
            assert!(rotations.iter().any(|r| chain == r), "chain {chain:?}");
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
    assert!(err.to_string().contains(" runs before "), "{err}");
    assert_eq!(pm.plugin_names(), ["a", "b", "x"]);
    assert_eq!(pm.get_hookimpls("run").unwrap(), before);
    assert_eq!(call_order(&pm), ["x", "a", "b"]);
    // The name is free, and the same plugin without the constraint fits.
    add(&pm, probe("c", &log), on("run"));
    assert_eq!(pm.get_hookimpls("run").unwrap()[3].registration, 3);
    assert_eq!(call_order(&pm), ["x", "a", "b", "c"]);
}

#[test]
fn a_plugin_constrained_against_itself_is_not_a_cycle() {
    let (pm, _) = registered(&[("a", on("run").before(&["a"])), ("b", on("run"))]);
    assert_eq!(call_order(&pm), ["b", "a"]);
}

// ------------------------------------------------------------ property

/// xorshift64*: a small seeded generator, so that every failure replays.
/// (proptest would pull in crates whose features the SDK shares.)
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const NAMES: [&str; 8] = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];

/// A random plugin: tier, priority, wrapper or not, and `before`
/// constraints that only ever name plugins of a larger index (so the set
/// can hold no cycle), sometimes a name nobody has.
fn random_decl(rng: &mut Rng, index: usize) -> ImplDecl {
    let tiers = [Tier::TryFirst, Tier::Normal, Tier::TryLast];
    let mut before: Vec<&'static str> = (index + 1..NAMES.len())
        .filter(|_| rng.below(3) == 0)
        .map(|i| NAMES[i])
        .collect();
    if rng.below(4) == 0 {
        before.push("unregistered");
    }
    let mut decl = on("run")
        .tier(tiers[rng.below(3)])
        .priority(rng.below(3) as i32 - 1)
        .before(Box::leak(before.into_boxed_slice()));
    if rng.below(3) == 0 {
        decl = decl.wrapper();
    }
    decl
}

/// Half of the `before` edges expressed the other way round: `i before j`
/// becomes `j after i`.
fn mirror(decls: &mut [ImplDecl], rng: &mut Rng) {
    for i in 0..decls.len() {
        let (keep, moved): (Vec<&'static str>, Vec<&'static str>) =
            decls[i].before.iter().partition(|_| rng.below(2) == 0);
        for name in moved {
            match NAMES.iter().position(|n| *n == name) {
                Some(j) if j < decls.len() => {
                    let mut after = decls[j].after.to_vec();
                    after.push(NAMES[i]);
                    decls[j] = decls[j].after(Box::leak(after.into_boxed_slice()));
                }
                _ => {
                    let mut after = decls[i].after.to_vec();
                    after.push(name);
                    decls[i] = decls[i].after(Box::leak(after.into_boxed_slice()));
                }
            }
        }
        decls[i] = decls[i].before(Box::leak(keep.into_boxed_slice()));
    }
}

#[test]
fn random_plugin_sets_in_random_registration_orders_satisfy_every_constraint_deterministically() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let count = 2 + rng.below(NAMES.len() - 1);
        let mut decls: Vec<ImplDecl> = (0..count).map(|i| random_decl(&mut rng, i)).collect();
        mirror(&mut decls, &mut rng);
        let mut registration: Vec<usize> = (0..count).collect();
        for i in (1..count).rev() {
            registration.swap(i, rng.below(i + 1));
        }
        let plugins: Vec<_> = registration.iter().map(|&i| (NAMES[i], decls[i])).collect();
        let (pm, _) = registered(&plugins);
        let infos = pm.get_hookimpls("run").unwrap();
        let position = |name: &str| infos.iter().position(|i| i.plugin == name);
        for info in &infos {
            let me = position(info.plugin).unwrap();
            let same_tier = |other: usize| {
                (infos[other].wrapper, infos[other].tier) == (info.wrapper, info.tier)
            };
            for other in info.before.iter().filter_map(|n| position(n)) {
                if same_tier(other) {
                    assert!(
                        me < other,
                        "round {round}: {} before {}",
                        info.plugin,
                        infos[other].plugin
                    );
                }
            }
            for other in info.after.iter().filter_map(|n| position(n)) {
                if same_tier(other) {
                    assert!(
                        me > other,
                        "round {round}: {} after {}",
                        info.plugin,
                        infos[other].plugin
                    );
                }
            }
        }
        // Groups and tiers stay in rank order whatever the constraints.
        let groups: Vec<_> = infos.iter().map(|i| (!i.wrapper, i.tier)).collect();
        assert!(groups.is_sorted(), "round {round}: {groups:?}");
        // Deterministic: the same registrations give the same order.
        let (again, _) = registered(&plugins);
        assert_eq!(again.get_hookimpls("run").unwrap(), infos, "round {round}");
    }
}
