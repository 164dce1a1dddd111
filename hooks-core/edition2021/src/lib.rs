//! A spec and a plugin written in an edition 2021 crate. The async relay
//! returns `impl Future`, whose captured lifetimes follow the edition of
//! the `impl` token: the macro crate's (2024), so borrowed arguments with
//! elided lifetimes compile here too. This crate fails to build if that
//! ever stops being so.

use hooks_core::prelude::*;

/// A value a hook borrows, with a lifetime of its own.
pub struct Ctx<'a> {
    pub prefix: &'a str,
}

#[hookspec]
pub trait Events {
    /// Borrowed arguments, elided lifetimes.
    async fn saved(&self, id: &str, body: &[u8], ctx: &Ctx<'_>) -> HookResult<String>;
    /// The same, sync.
    fn checked(&self, id: &str, ctx: &Ctx<'_>) -> HookResult<usize>;
}

pub struct Store;

#[hookimpl]
impl Events for Store {
    async fn saved(&self, id: &str, body: &[u8], ctx: &Ctx<'_>) -> HookResult<String> {
        Ok(format!("{}{id}:{}", ctx.prefix, body.len()))
    }
    fn checked(&self, id: &str, ctx: &Ctx<'_>) -> HookResult<usize> {
        Ok(ctx.prefix.len() + id.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call's future can be sent to another thread (spawned).
    fn assert_send<T: Send>(_: &T) {}

    #[tokio::test]
    async fn borrowed_arguments_work_from_a_2021_crate() {
        let pm = PluginManager::<dyn Events>::new();
        let prefix = String::from("p-");
        let ctx = Ctx { prefix: &prefix };
        let id = String::from("abc");
        assert!(pm.hook().saved(&id, b"xy", &ctx).await.unwrap().is_empty());
        pm.register("store", Store).unwrap();
        let saved = pm.hook().saved(&id, b"xy", &ctx).await.unwrap();
        assert_eq!(saved.into_values(), ["p-abc:2"]);
        let relay = pm.hook();
        let call = relay.saved(&id, &[], &ctx);
        assert_send(&call);
        assert_eq!(call.await.unwrap().into_values(), ["p-abc:0"]);
        assert_eq!(pm.hook().checked("abc", &ctx).unwrap().into_values(), [5]);
    }
}
