//! The [`Services`] as data: each method by name, its arguments and its
//! answer as JSON. What crosses the boundary between a component and the
//! app (the WIT import `call-service`): the component's context holds a
//! [`Remote`] whose methods send their call through a [`Transport`], and
//! the app answers it with [`serve`], on the real services, in the calling
//! hook's unit of work.
//!
//! One table below names every method once; [`Remote`]'s `Services` impl
//! is generated from it, so the compiler refuses a table that misses a
//! method of the trait or gets an argument wrong, on either target, and a
//! test in the app keeps the WIT `service` enum equal to [`NAMES`].
//!
//! ```
//! use hookspecs::services::{NAMES, wire_name};
//!
//! assert!(NAMES.contains(&"put_member"));
//! assert_eq!(wire_name("put_member"), "put-member");
//! ```

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::authz::{Action, Resource};
use crate::context::{HookContext, Services};
use crate::error::ApiError;
use crate::model::{Membership, NewSpace, NewUser, Role, Space, SpacePatch, User, UserPatch};
use crate::page::Page;

/// How a [`Remote`] reaches the real services (a component's, through the
/// WIT import). Arguments and answers cross as JSON text, written from and
/// read into the SDK's types directly (no `serde_json::Value` between).
/// Implement it with a plain `async fn`; it is used through [`Remote`]'s
/// type, not as `dyn`, so that its future is not boxed (an allocation per
/// service call in a component).
pub trait Transport: Send + Sync {
    /// Calls the service `name` (a [`NAMES`] entry) with `args` (the JSON
    /// array of its arguments after the context) for `ctx`; its answer as
    /// JSON text.
    ///
    /// # Errors
    ///
    /// The service's error, as the app reports it.
    fn call(
        &self,
        ctx: &HookContext,
        name: &'static str,
        args: String,
    ) -> impl Future<Output = Result<String, ApiError>> + Send;
}

/// [`Services`] over a [`Transport`]: each method sends its name and
/// arguments, and reads the answer back into its type.
pub struct Remote<T>(pub T);

/// The WIT case of a service (or hook) name: kebab case.
pub fn wire_name(name: &str) -> String {
    name.replace('_', "-")
}

fn arguments<'a, T: Deserialize<'a>>(name: &str, args: &'a str) -> Result<T, ApiError> {
    serde_json::from_str(args)
        .map_err(|e| ApiError::new(400, "bad_request", format!("service `{name}`: {e}")))
}

fn answer<T: Serialize + ?Sized>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value)
        .map_err(|e| ApiError::internal(format!("a service's answer as JSON: {e}")))
}

fn read_answer<T: DeserializeOwned>(name: &str, text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| {
        ApiError::internal(format!(
            "service `{name}` answered an unexpected value: {e}"
        ))
    })
}

/// The table: `method(argument: Type, ...) -> Answer;`, in the WIT
/// `service` enum's order (a new method is a new case at its end).
macro_rules! services {
    ($( $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty; )*) => {
        /// Every method of [`Services`], in the WIT `service` enum's order.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];

        /// Calls the service `name` on `services` with `args` (the JSON
        /// array of its arguments after the context): its answer as JSON
        /// text.
        ///
        /// # Errors
        ///
        /// 400 for an unknown name or arguments of the wrong shape; else
        /// the service's own error.
        pub async fn serve(
            services: &dyn Services,
            ctx: &HookContext,
            name: &str,
            args: &str,
        ) -> Result<String, ApiError> {
            match name {
                $(stringify!($name) => {
                    let ($($arg,)*): ($($ty,)*) = arguments(name, args)?;
                    answer(&services.$name(ctx, $($arg),*).await?)
                })*
                other => Err(ApiError::new(400, "bad_request", format!("no service `{other}`"))),
            }
        }

        #[async_trait]
        impl<T: Transport> Services for Remote<T> {
            $(
                async fn $name(&self, ctx: &HookContext, $($arg: $ty),*) -> Result<$ret, ApiError> {
                    let args = answer(&($(&$arg,)*))?;
                    let text = self.0.call(ctx, stringify!($name), args).await?;
                    read_answer(stringify!($name), &text)
                }
            )*
        }
    };
}

services! {
    authorize(action: Action, resource: Resource) -> ();
    create_user(new: NewUser) -> User;
    get_user(id: i64) -> User;
    list_users(page: Page) -> Vec<User>;
    update_user(id: i64, patch: UserPatch) -> User;
    delete_user(id: i64) -> ();
    create_space(new: NewSpace) -> Space;
    get_space(id: i64) -> Space;
    list_spaces(page: Page) -> Vec<Space>;
    sub_spaces(parent_id: i64) -> Vec<Space>;
    update_space(id: i64, patch: SpacePatch) -> Space;
    delete_space(id: i64) -> ();
    put_member(space_id: i64, user_id: i64, role: Role) -> (Membership, bool);
    list_members(space_id: i64, page: Page) -> Vec<Membership>;
    memberships_of(user_id: i64) -> Vec<Membership>;
    get_member(space_id: i64, user_id: i64) -> Option<Membership>;
    delete_member(space_id: i64, user_id: i64) -> ();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Access, Space};

    /// Arguments as [`Remote`] sends them and [`serve`] reads them.
    fn across<T: Serialize + DeserializeOwned>(args: T) -> T {
        arguments("test", &answer(&args).unwrap()).unwrap()
    }

    #[test]
    fn a_patch_keeps_clear_apart_from_leave_as_is() {
        let clear = UserPatch {
            display_name: Some(None),
            ..UserPatch::default()
        };
        let (id, patch) = across((7_i64, clear));
        assert_eq!((id, patch.display_name), (7, Some(None)));
        let (_, keep) = across((7_i64, UserPatch::default()));
        assert_eq!(keep.display_name, None);
        let (_, moved) = across((
            3_i64,
            SpacePatch {
                parent_id: Some(None),
                ..SpacePatch::default()
            },
        ));
        assert_eq!(moved.parent_id, Some(None));
    }

    #[test]
    fn actions_and_resources_cross_by_name() {
        let space = Space {
            id: 3,
            name: "lab".into(),
            parent_id: None,
            access: Access::Open,
            default_role: Role::Reader,
            created_at: String::new(),
        };
        let resource = Resource::Membership { space, user_id: 5 };
        for action in [Action::DeleteSpace, Action::Plugin("notes.read")] {
            let (a, r) = across((action, resource.clone()));
            assert_eq!((a, &r), (action, &resource));
        }
        assert_eq!(answer(&Action::PutMember).unwrap(), r#""member.put""#);
    }

    #[test]
    fn arguments_of_the_wrong_shape_are_a_400() {
        assert_eq!(
            arguments::<(i64,)>("get_user", r#"["x"]"#)
                .unwrap_err()
                .status,
            400
        );
        assert!(NAMES.contains(&"delete_member") && NAMES.len() == 17);
    }
}
