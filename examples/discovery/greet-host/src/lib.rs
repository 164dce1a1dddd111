//! The host: its hook specs ([`Greet`]), its default plugin ([`Plain`]),
//! and [`greet_all`], which loads every plugin linked into the program.
//! Plugin crates depend on this library; the binary depends on it and on
//! the plugins (see the README beside this workspace for why the binary is
//! a crate of its own).

use hookery::prelude::*;

/// The hooks of the greeter.
#[hookspec]
pub trait Greet {
    /// Every plugin may contribute a greeting for `who`.
    fn greeting(&self, who: &str) -> HookResult<String>;

    /// The first plugin that knows `who` answers with their title.
    #[hookspec(firstresult)]
    fn title(&self, who: &str) -> HookResult<Option<String>>;
}

/// The default plugin, shipped with the host and declared like any other.
#[derive(Default)]
pub struct Plain;

#[hookimpl]
impl Greet for Plain {
    #[hookimpl(trylast)]
    fn greeting(&self, who: &str) -> HookResult<String> {
        Ok(format!("hello, {who}"))
    }
}

hookery::linked_plugin!(Greet, "plain", Plain::default);

/// A manager holding every plugin linked into the program.
///
/// # Errors
///
/// A plugin refused at registration (two linked plugins of one name, ...).
pub fn manager() -> Result<PluginManager<dyn Greet>, hookery::ManagerError> {
    let pm = PluginManager::<dyn Greet>::new();
    pm.load_linked_plugins()?;
    Ok(pm)
}

/// Greets each of `names` through every plugin, one line per greeting.
///
/// # Errors
///
/// A plugin refused at registration, or a hook call that failed.
pub fn greet_all(names: &[&str]) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let pm = manager()?;
    let mut lines = vec![format!("plugins: {}", pm.plugin_names().join(", "))];
    for who in names {
        let who = match pm.hook().title(who)? {
            Some(title) => format!("{} {who}", title.value),
            None => (*who).to_owned(),
        };
        for greeting in pm.hook().greeting(&who)?.answers() {
            lines.push(format!("{}: {}", greeting.plugin, greeting.value));
        }
    }
    Ok(lines)
}
