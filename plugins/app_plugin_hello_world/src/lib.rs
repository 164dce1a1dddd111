//! Tracim's sample plugin: logs a greeting when loaded (configurable with
//! `[plugins.hello_world] greeting = "..."`), logs `created user <name>` on
//! every new user, and serves `GET /plugins/hello_world/user`: the acting
//! user.

use hookspecs::prelude::*;

/// `[plugins.hello_world]`.
#[derive(serde::Deserialize)]
#[serde(crate = "hookspecs::serde", default)]
pub struct Config {
    /// Logged when the plugin is loaded.
    pub greeting: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            greeting: "Hello, world!".into(),
        }
    }
}

pub struct HelloWorld {
    config: Config,
}

impl HelloWorld {
    pub fn new(config: Config) -> Self {
        HelloWorld { config }
    }
}

#[hookimpl]
impl AppHooks for HelloWorld {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        tracing::info!(plugin = "hello_world", "{}", self.config.greeting);
        startup.routes().get("/user", |req: Request| async move {
            let who = req.require_identity()?;
            Ok(json!(who))
        })?;
        Ok(())
    }

    async fn on_user_created(&self, user: &User, _ctx: &HookContext) -> HookResult<()> {
        tracing::info!(plugin = "hello_world", "created user {}", user.username);
        Ok(())
    }
}

hookspecs::export_plugin!(HelloWorld::new, config = Config);

#[cfg(test)]
mod tests {
    use app_testkit::{ADMIN, expect, expect_error, plugin_app};

    #[test]
    fn greets_with_its_configuration_and_tells_the_caller_who_they_are() {
        let app = plugin_app(
            &["hello_world"],
            "[plugins.hello_world]\ngreeting = \"Hi there\"\n",
        );
        let me = expect(200, app.get("/plugins/hello_world/user", ADMIN));
        assert_eq!(
            (me["name"].as_str(), me["admin"].as_bool()),
            (Some("admin"), Some(true))
        );
        expect_error(
            401,
            "unauthorized",
            app.get("/plugins/hello_world/user", None),
        );
        assert!(
            app.proc.output.text().contains("Hi there"),
            "{}",
            app.proc.output.text()
        );
    }
}
