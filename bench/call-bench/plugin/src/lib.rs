//! The plugin of the per-call benchmark (bench/call-bench): the same source
//! runs native and as a component, so that the two differ only by the
//! boundary.
//!
//! - `on_user_created` does nothing: the cost of the call alone.
//! - `on_user_modified` makes one service call, `authorize` of reading the
//!   user: with the hook's authority the app allows it without asking the
//!   policy hook or the database, so what it costs is the crossing, not
//!   the service.

use hookspecs::prelude::*;

#[derive(Default)]
pub struct CallBench;

#[hookimpl]
impl AppHooks for CallBench {
    async fn on_user_created(&self, _user: &User, _ctx: &HookContext) -> HookResult<()> {
        Ok(())
    }

    async fn on_user_modified(
        &self,
        _before: &User,
        after: &User,
        ctx: &HookContext,
    ) -> HookResult<()> {
        let read = Resource::User(after.clone());
        ctx.services()
            .authorize(ctx, Action::ReadUser, read)
            .await?;
        Ok(())
    }
}

hookspecs::export_plugin!(CallBench::default);
