//! Historic hooks: a call is remembered and replayed to plugins registered
//! later (the story: `src/historic.rs`).

use std::sync::{Arc, Mutex};

use hookery::ManagerError;
use hookery::anyhow;
use hookery::prelude::*;

#[hookspec]
pub trait Setup {
    #[hookspec(historic)]
    fn configure(&self, setting: String) -> HookResult<usize>;
}

/// Remembers every setting it hears.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<String>>>);
#[hookimpl]
impl Setup for Heard {
    fn configure(&self, setting: String) -> HookResult<usize> {
        let mut heard = self.0.lock().unwrap();
        heard.push(setting);
        Ok(heard.len())
    }
}

#[test]
fn a_later_plugin_hears_the_calls_made_before_it_in_order() {
    let pm = PluginManager::<dyn Setup>::new();
    let early = Heard::default();
    pm.register("early", early.clone()).unwrap();
    pm.hook().configure("verbose".into()).unwrap();
    pm.hook().configure("color".into()).unwrap();

    let late = Heard::default();
    pm.register("late", late.clone()).unwrap();
    assert_eq!(*late.0.lock().unwrap(), ["verbose", "color"]);
    // Nothing is replayed to the plugins that heard it already.
    assert_eq!(*early.0.lock().unwrap(), ["verbose", "color"]);
}

#[test]
fn the_result_callback_hears_the_call_and_each_replay() {
    let pm = PluginManager::<dyn Setup>::new();
    pm.register("a", Heard::default()).unwrap();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let record = answers.clone();
    pm.hook()
        .configure_with_results("verbose".into(), move |answer| {
            record.lock().unwrap().push((answer.plugin, answer.value));
        })
        .unwrap();
    pm.register("b", Heard::default()).unwrap();
    assert_eq!(*answers.lock().unwrap(), [("a", 1), ("b", 1)]);
}

#[test]
fn a_plugin_whose_replay_fails_is_not_registered() {
    struct Picky;
    #[hookimpl]
    impl Setup for Picky {
        fn configure(&self, setting: String) -> HookResult<usize> {
            anyhow::ensure!(setting != "color", "no colors here");
            Ok(0)
        }
    }
    let pm = PluginManager::<dyn Setup>::new();
    pm.hook().configure("color".into()).unwrap();
    let refused = pm.register("picky", Picky).unwrap_err();
    assert!(
        matches!(refused, ManagerError::HistoricReplay { ref plugin, .. } if plugin == "picky")
    );
    assert!(pm.plugin_names().is_empty());
}
