//! Call order: wrappers outermost (befores in order, afters in reverse),
//! then tryfirst / normal / trylast; higher priority first within a tier;
//! at equal priority the later-registered plugin first, except in the
//! trylast tier, where the earlier-registered one is (pluggy's rule, ported
//! from its own tests). `get_hookimpls` lists the same order.

mod common;

use std::cmp::Ordering;

use common::*;
use hookery::prelude::*;
use hookery::{ImplDecl, ImplInfo, Tier};

/// Plugin types declared with the real `#[hookimpl(...)]` options: a plain
/// implementation of `run`.
macro_rules! plain_plugin {
    ($ty:ident $(, $($opt:tt)+)?) => {
        struct $ty(Probe);
        #[hookimpl]
        impl Hooks for $ty {
            $(#[hookimpl($($opt)+)])?
            fn run(&self, x: u32) -> HookResult<u32> {
                self.0.answer(x)
            }
        }
    };
}

/// ... and a wrapper of `run`.
macro_rules! wrapper_plugin {
    ($ty:ident $(, $($opt:tt)+)?) => {
        struct $ty(Probe);
        #[hookimpl]
        impl Hooks for $ty {
            #[hookimpl(wrapper $(, $($opt)+)?)]
            fn run(&self, _x: u32, next: Next<'_, Results<u32>>) -> HookResult<Results<u32>> {
                self.0.wrap_sync(next)
            }
        }
    };
}

plain_plugin!(A);
plain_plugin!(B, tryfirst);
plain_plugin!(C, trylast, priority = 5);
wrapper_plugin!(D);
plain_plugin!(E, priority = 10);
plain_plugin!(F, priority = 0);
wrapper_plugin!(G, tryfirst);
plain_plugin!(H, tryfirst, priority = -3);
plain_plugin!(I, trylast);
wrapper_plugin!(J, priority = 7);
plain_plugin!(K, priority = -1);
plain_plugin!(L, tryfirst);

/// Registers the dozen plugins above, in alphabetical order.
fn dozen(log: &Log) -> PluginManager<dyn Hooks> {
    let pm = PluginManager::<dyn Hooks>::new();
    let p = |name| probe(name, log);
    pm.register("a", A(p("a"))).unwrap();
    pm.register("b", B(p("b"))).unwrap();
    pm.register("c", C(p("c"))).unwrap();
    pm.register("d", D(p("d"))).unwrap();
    pm.register("e", E(p("e"))).unwrap();
    pm.register("f", F(p("f"))).unwrap();
    pm.register("g", G(p("g"))).unwrap();
    pm.register("h", H(p("h"))).unwrap();
    pm.register("i", I(p("i"))).unwrap();
    pm.register("j", J(p("j"))).unwrap();
    pm.register("k", K(p("k"))).unwrap();
    pm.register("l", L(p("l"))).unwrap();
    pm
}

// Worked by hand from the rule:
// wrappers: g (tryfirst) | j (7), d (0)
// tryfirst: l, b (0; l registered later) | h (-3)
// normal:   e (10) | f, a (0; f later) | k (-1)
// trylast:  c (5) | i (0)
const DOZEN_PLAIN: [&str; 9] = ["l", "b", "h", "e", "f", "a", "k", "c", "i"];

#[test]
fn a_dozen_plugins_run_in_the_documented_order() {
    let log = Log::new();
    let pm = dozen(&log);
    let results = pm.hook().run(0).unwrap();

    let mut expected = strings(&["g:before", "j:before", "d:before"]);
    expected.extend(strings(&DOZEN_PLAIN));
    expected.extend(strings(&["d:after", "j:after", "g:after"]));
    assert_eq!(log.take(), expected);
    assert_eq!(results.plugins().collect::<Vec<_>>(), DOZEN_PLAIN);
}

#[test]
fn get_hookimpls_lists_the_dozen_in_call_order_with_their_options() {
    let pm = dozen(&Log::new());
    let info = |plugin, tier, priority, wrapper| (plugin, tier, priority, wrapper);
    use Tier::*;
    let expected = vec![
        info("g", TryFirst, 0, true),
        info("j", Normal, 7, true),
        info("d", Normal, 0, true),
        info("l", TryFirst, 0, false),
        info("b", TryFirst, 0, false),
        info("h", TryFirst, -3, false),
        info("e", Normal, 10, false),
        info("f", Normal, 0, false),
        info("a", Normal, 0, false),
        info("k", Normal, -1, false),
        info("c", TryLast, 5, false),
        info("i", TryLast, 0, false),
    ];
    let listed: Vec<_> = pm
        .get_hookimpls("run")
        .unwrap()
        .iter()
        .map(|i: &ImplInfo| (i.plugin, i.tier, i.priority, i.wrapper))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(pm.get_hookimpls("first").unwrap(), []);
    assert_eq!(pm.get_hookimpls("no_such_hook"), None);
}

/// Registers a probe per `(name, decl)` in the order given, calls `run`
/// and returns the log.
fn call_log(plugins: &[(&'static str, ImplDecl)]) -> Vec<String> {
    let (log, pm) = (Log::new(), PluginManager::<dyn Hooks>::new());
    for &(name, decl) in plugins {
        add(&pm, probe(name, &log), decl);
    }
    pm.hook().run(0).unwrap();
    log.take()
}

#[test]
fn equal_priority_runs_the_later_registered_plugin_first_in_the_tryfirst_and_normal_tiers() {
    let plugins = [("one", on("run")), ("two", on("run")), ("three", on("run"))];
    assert_eq!(call_log(&plugins), ["three", "two", "one"]);
}

#[test]
fn higher_priority_runs_first_within_a_tier() {
    let plugins = [
        ("high", on("run").priority(5)),
        ("low", on("run").priority(-5)),
        ("mid", on("run")),
    ];
    assert_eq!(call_log(&plugins), ["high", "mid", "low"]);
}

#[test]
fn tiers_beat_priorities() {
    let plugins = [
        ("first_low", on("run").tryfirst().priority(-100)),
        ("normal_high", on("run").priority(100)),
        ("last_high", on("run").trylast().priority(1000)),
    ];
    assert_eq!(
        call_log(&plugins),
        ["first_low", "normal_high", "last_high"]
    );
}

#[test]
fn every_wrapper_enters_before_any_plain_impl_and_leaves_in_reverse() {
    let plugins = [
        ("plain", on("run").tryfirst().priority(99)),
        ("outer", on("run").wrapper().tryfirst()),
        ("inner", on("run").wrapper().trylast().priority(-9)),
    ];
    let expected = [
        "outer:before",
        "inner:before",
        "plain",
        "inner:after",
        "outer:after",
    ];
    assert_eq!(call_log(&plugins), expected);
}

// ---------------------------------------------------------- exhaustive

/// One implementation of `run` as registered: its options and when.
#[derive(Clone, Copy, Debug)]
struct Entry {
    name: &'static str,
    tier: Tier,
    priority: i32,
    wrapper: bool,
    registered: usize,
}

fn tier_rank(tier: Tier) -> u8 {
    match tier {
        Tier::TryFirst => 0,
        Tier::Normal => 1,
        Tier::TryLast => 2,
    }
}

/// The rule, written independently of the engine's `OrderKey`.
fn runs_before(a: &Entry, b: &Entry) -> Ordering {
    // wrappers (true) before plain implementations
    b.wrapper
        .cmp(&a.wrapper)
        .then(tier_rank(a.tier).cmp(&tier_rank(b.tier)))
        // higher priority first
        .then(b.priority.cmp(&a.priority))
        // later registration first, but earlier first in the trylast tier
        .then(if a.tier == Tier::TryLast {
            a.registered.cmp(&b.registered)
        } else {
            b.registered.cmp(&a.registered)
        })
}

/// Every combination of tier x priority in {-1, 0, 1} x wrapper.
fn configurations() -> Vec<(Tier, i32, bool)> {
    let mut all = Vec::new();
    for tier in [Tier::TryFirst, Tier::Normal, Tier::TryLast] {
        for priority in [-1, 0, 1] {
            for wrapper in [false, true] {
                all.push((tier, priority, wrapper));
            }
        }
    }
    all
}

/// The name of the plugin registered `n`-th.
fn name_of(n: usize) -> &'static str {
    Box::leak(format!("p{n}").into_boxed_str())
}

/// Registers one plugin per configuration, in the given order, calls
/// `run` and checks the log, the results and `get_hookimpls` against the
/// order `runs_before` gives.
fn check_order(configs: &[(Tier, i32, bool)]) {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    let mut entries = Vec::new();
    for (registered, &(tier, priority, wrapper)) in configs.iter().enumerate() {
        let name = name_of(registered);
        let mut decl = on("run").tier(tier).priority(priority);
        if wrapper {
            decl = decl.wrapper();
        }
        add(&pm, probe(name, &log), decl);
        entries.push(Entry {
            name,
            tier,
            priority,
            wrapper,
            registered,
        });
    }
    entries.sort_by(runs_before);

    let (wrappers, plain): (Vec<Entry>, Vec<Entry>) = entries.iter().partition(|e| e.wrapper);
    let mut expected: Vec<String> = wrappers
        .iter()
        .map(|w| format!("{}:before", w.name))
        .collect();
    expected.extend(plain.iter().map(|p| p.name.to_string()));
    expected.extend(wrappers.iter().rev().map(|w| format!("{}:after", w.name)));

    let results = pm.hook().run(0).unwrap();
    assert_eq!(log.take(), expected, "call order for {configs:?}");
    let plain_names: Vec<_> = plain.iter().map(|p| p.name).collect();
    assert_eq!(results.plugins().collect::<Vec<_>>(), plain_names);
    let listed: Vec<_> = pm
        .get_hookimpls("run")
        .unwrap()
        .iter()
        .map(|i| (i.plugin, i.tier, i.priority, i.wrapper))
        .collect();
    let sorted: Vec<_> = entries
        .iter()
        .map(|e| (e.name, e.tier, e.priority, e.wrapper))
        .collect();
    assert_eq!(listed, sorted, "get_hookimpls for {configs:?}");
}

#[test]
fn order_rule_holds_for_every_ordered_triple_of_configurations() {
    let all = configurations();
    for &a in &all {
        for &b in &all {
            for &c in &all {
                check_order(&[a, b, c]);
            }
        }
    }
}

#[test]
fn order_rule_holds_for_all_configurations_twice_in_many_registration_orders() {
    // Each configuration twice, so that every registration order also
    // decides ties.
    let mut configs = configurations();
    configs.extend(configurations());
    check_order(&configs);
    configs.reverse();
    check_order(&configs);
    // Fisher-Yates with a fixed linear congruential generator.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..50 {
        for i in (1..configs.len()).rev() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let j = (seed >> 33) as usize % (i + 1);
            configs.swap(i, j);
        }
        check_order(&configs);
    }
}

#[test]
fn a_plugin_registered_again_counts_as_registered_last() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    for name in ["one", "two"] {
        add(&pm, probe(name, &log), on("run"));
    }
    let one = pm.unregister("one").unwrap();
    pm.register_plugin("one", one).unwrap();
    let results = pm.hook().run(0).unwrap();
    assert_eq!(results.plugins().collect::<Vec<_>>(), ["one", "two"]);
}

// ------------------------------------------------------ trylast (pluggy)

/// Names from `get_hookimpls("run")`, in call order.
fn listed(pm: &PluginManager<dyn Hooks>) -> Vec<&'static str> {
    pm.get_hookimpls("run")
        .unwrap()
        .iter()
        .map(|i| i.plugin)
        .collect()
}

#[test]
fn the_trylast_tier_runs_the_earlier_registered_plugin_first_plain_and_wrappers() {
    for wrapper in [false, true] {
        let decl = |trylast: bool| {
            let d = if trylast {
                on("run").trylast()
            } else {
                on("run")
            };
            if wrapper { d.wrapper() } else { d }
        };
        let plugins = [
            ("a", decl(false)),
            ("b", decl(true)),
            ("c", decl(false)),
            ("d", decl(true)),
        ];
        let log = call_log(&plugins);
        let expected: Vec<String> = if wrapper {
            let order = ["c", "a", "b", "d"];
            let mut e: Vec<_> = order.iter().map(|n| format!("{n}:before")).collect();
            e.extend(order.iter().rev().map(|n| format!("{n}:after")));
            e
        } else {
            strings(&["c", "a", "b", "d"])
        };
        assert_eq!(log, expected, "wrapper: {wrapper}");
    }
}

/// pluggy's `test_adding_nonwrappers_trylast3`: a, b (trylast), c, d
/// (trylast). pluggy lists implementations in reverse call order; this is
/// its expectation turned round.
#[test]
fn pluggy_adding_nonwrappers_trylast3() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    add(&pm, probe("a", &log), on("run"));
    add(&pm, probe("b", &log), on("run").trylast());
    add(&pm, probe("c", &log), on("run"));
    add(&pm, probe("d", &log), on("run").trylast());
    assert_eq!(listed(&pm), ["c", "a", "b", "d"]);
    pm.hook().run(0).unwrap();
    assert_eq!(log.take(), ["c", "a", "b", "d"]);
}

/// pluggy's `test_adding_wrappers_complex`: twelve implementations, plain
/// and wrappers of every tier, checked after each registration (pluggy's
/// `hookwrapper` and `wrapper` are both wrappers here).
#[test]
fn pluggy_adding_wrappers_complex() {
    let log = Log::new();
    let pm = PluginManager::<dyn Hooks>::new();
    assert_eq!(listed(&pm), Vec::<&str>::new());
    let steps: [(&'static str, ImplDecl, &[&str]); 12] = [
        ("m1", on("run").wrapper().trylast(), &["m1"]),
        ("m2", on("run"), &["m1", "m2"]),
        ("m3", on("run").trylast(), &["m1", "m2", "m3"]),
        ("m4", on("run").wrapper(), &["m4", "m1", "m2", "m3"]),
        (
            "m5",
            on("run").wrapper().tryfirst(),
            &["m5", "m4", "m1", "m2", "m3"],
        ),
        (
            "m6",
            on("run").tryfirst(),
            &["m5", "m4", "m1", "m6", "m2", "m3"],
        ),
        ("m7", on("run"), &["m5", "m4", "m1", "m6", "m7", "m2", "m3"]),
        (
            "m8",
            on("run").wrapper(),
            &["m5", "m8", "m4", "m1", "m6", "m7", "m2", "m3"],
        ),
        (
            "m9",
            on("run").trylast(),
            &["m5", "m8", "m4", "m1", "m6", "m7", "m2", "m3", "m9"],
        ),
        (
            "m10",
            on("run").tryfirst(),
            &["m5", "m8", "m4", "m1", "m10", "m6", "m7", "m2", "m3", "m9"],
        ),
        (
            "m11",
            on("run").wrapper().trylast(),
            &[
                "m5", "m8", "m4", "m1", "m11", "m10", "m6", "m7", "m2", "m3", "m9",
            ],
        ),
        (
            "m12",
            on("run").wrapper(),
            &[
                "m5", "m12", "m8", "m4", "m1", "m11", "m10", "m6", "m7", "m2", "m3", "m9",
            ],
        ),
    ];
    for (name, decl, expected) in steps {
        add(&pm, probe(name, &log), decl);
        assert_eq!(listed(&pm), expected, "after registering {name}");
    }
}
