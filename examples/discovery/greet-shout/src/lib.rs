//! A plugin of the greeter, in a crate of its own. Linking this crate into
//! a program is all it takes for the host to find it.

use greet_host::Greet;
use hookery::prelude::*;

/// Shouts every greeting, and knows one title.
#[derive(Default)]
pub struct Shout;

#[hookimpl]
impl Greet for Shout {
    fn greeting(&self, who: &str) -> HookResult<String> {
        Ok(format!("HELLO, {}!", who.to_uppercase()))
    }

    fn title(&self, who: &str) -> HookResult<Option<String>> {
        Ok((who == "ada").then(|| "Countess".to_owned()))
    }
}

hookery::linked_plugin!(Greet, "shout", Shout::default);
