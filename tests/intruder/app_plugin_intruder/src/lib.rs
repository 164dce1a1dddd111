//! A user's plugin beside the shipped ones (see ../README.md): every hook,
//! each one refusing, so that a test that loads it cannot pass.

use hookspecs::prelude::*;

#[derive(Default)]
pub struct Intruder;

fn refuse<T>(hook: &str) -> HookResult<T> {
    Err(anyhow!("the intruder refuses {hook}"))
}

#[hookimpl]
impl AppHooks for Intruder {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        startup.routes().get("/hello", |_req: Request| async move {
            Ok(json!({"intruder": true}))
        })?;
        Ok(())
    }

    #[hookimpl(tryfirst)]
    async fn authenticate(&self, _token: &str, _ctx: &HookContext) -> HookResult<Option<Identity>> {
        refuse("authenticate")
    }

    #[hookimpl(tryfirst)]
    async fn authorize(
        &self,
        _check: &AccessCheck,
        _ctx: &HookContext,
    ) -> HookResult<Option<Decision>> {
        Ok(Some(Decision::Deny(
            "the intruder denies everything".into(),
        )))
    }

    async fn on_change(&self, _: &Change, _: &HookContext) -> HookResult<()> {
        refuse("on_change")
    }
    async fn after_change(&self, _: &Delivery, _: &HookContext) -> HookResult<()> {
        refuse("after_change")
    }

    async fn on_user_created(&self, _: &User, _: &HookContext) -> HookResult<()> {
        refuse("on_user_created")
    }
    async fn on_user_modified(&self, _: &User, _: &User, _: &HookContext) -> HookResult<()> {
        refuse("on_user_modified")
    }
    async fn on_user_deleted(&self, _: &User, _: &HookContext) -> HookResult<()> {
        refuse("on_user_deleted")
    }
    async fn on_space_created(&self, _: &Space, _: &HookContext) -> HookResult<()> {
        refuse("on_space_created")
    }
    async fn on_space_modified(&self, _: &Space, _: &Space, _: &HookContext) -> HookResult<()> {
        refuse("on_space_modified")
    }
    async fn on_space_deleted(&self, _: &Space, _: &HookContext) -> HookResult<()> {
        refuse("on_space_deleted")
    }
    async fn on_membership_created(&self, _: &Membership, _: &HookContext) -> HookResult<()> {
        refuse("on_membership_created")
    }
    async fn on_membership_modified(
        &self,
        _: &Membership,
        _: &Membership,
        _: &HookContext,
    ) -> HookResult<()> {
        refuse("on_membership_modified")
    }
    async fn on_membership_deleted(&self, _: &Membership, _: &HookContext) -> HookResult<()> {
        refuse("on_membership_deleted")
    }

    async fn after_user_created(&self, _: &User, _: &Delivery, _: &HookContext) -> HookResult<()> {
        refuse("after_user_created")
    }
    async fn after_user_modified(
        &self,
        _: &User,
        _: &User,
        _: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        refuse("after_user_modified")
    }
    async fn after_user_deleted(&self, _: &User, _: &Delivery, _: &HookContext) -> HookResult<()> {
        refuse("after_user_deleted")
    }
    async fn after_space_created(
        &self,
        _: &Space,
        _: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        refuse("after_space_created")
    }
    async fn after_space_modified(
        &self,
        _: &Space,
        _: &Space,
        _: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        refuse("after_space_modified")
    }
    async fn after_space_deleted(
        &self,
        _: &Space,
        _: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        refuse("after_space_deleted")
    }
    async fn after_membership_created(
        &self,
        _: &Membership,
        _: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        refuse("after_membership_created")
    }
    async fn after_membership_modified(
        &self,
        _: &Membership,
        _: &Membership,
        _: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        refuse("after_membership_modified")
    }
    async fn after_membership_deleted(
        &self,
        _: &Membership,
        _: &Delivery,
        _: &HookContext,
    ) -> HookResult<()> {
        refuse("after_membership_deleted")
    }
}

hookspecs::export_plugin!(Intruder::default);
