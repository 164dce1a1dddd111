//! The app's own plugin, registered before any other: the admin token's
//! `authenticate` and the default authorization policy
//! ([`crate::policy`]), both `trylast` so that every plugin with an opinion
//! answers first.

use hookspecs::prelude::*;
use subtle::ConstantTimeEq;

/// The name of the app's own plugin.
pub const APP_PLUGIN: &str = "app";

/// The app's own hook implementations: the admin token, and the default
/// authorization policy ([`crate::policy`]), both answering last.
pub struct BuiltIn {
    token: String,
}

impl BuiltIn {
    /// Accepts `token` as the admin credential.
    pub fn new(token: String) -> Self {
        BuiltIn { token }
    }
}

#[hookimpl]
impl AppHooks for BuiltIn {
    /// Last, so that plugins recognising their own credentials go first.
    #[hookimpl(trylast)]
    async fn authenticate(&self, token: &str, _ctx: &HookContext) -> HookResult<Option<Identity>> {
        let matches: bool = token.as_bytes().ct_eq(self.token.as_bytes()).into();
        Ok(matches.then(|| Identity {
            user_id: None,
            name: "admin".into(),
            admin: true,
            via: APP_PLUGIN.into(),
        }))
    }

    /// Last, so that any plugin with an opinion decides first.
    #[hookimpl(trylast)]
    async fn authorize(
        &self,
        check: &AccessCheck,
        ctx: &HookContext,
    ) -> HookResult<Option<Decision>> {
        Ok(Some(crate::policy::decide(check, ctx).await?))
    }
}
