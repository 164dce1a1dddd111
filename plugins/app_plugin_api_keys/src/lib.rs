//! API keys. `POST /plugins/api_keys/keys` mints a key for the acting user
//! (an admin names the user: `{"user_id": N}`); the key is shown once and
//! only its SHA-256 is stored. The plugin's `authenticate` recognises keys
//! on every endpoint, acting as their user.

use hookspecs::prelude::*;
use hookspecs::{Migration, sqlx::Row};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "keys",
        sqlite: include_str!("../migrations/0001_keys.sqlite.sql"),
        postgres: include_str!("../migrations/0001_keys.postgres.sql"),
    },
    Migration {
        version: 2,
        name: "keys_by_user",
        sqlite: include_str!("../migrations/0002_keys_by_user.sql"),
        postgres: include_str!("../migrations/0002_keys_by_user.sql"),
    },
];

/// What every key starts with.
const PREFIX: &str = "ak_";

#[derive(Default)]
pub struct ApiKeys;

#[derive(serde::Deserialize, Default)]
#[serde(crate = "hookspecs::serde", default, deny_unknown_fields)]
struct Mint {
    user_id: Option<i64>,
}

#[hookimpl]
impl AppHooks for ApiKeys {
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        startup.routes().post("/keys", |req: Request| async move {
            let who = req.require_identity()?.clone();
            let asked: Mint = match req.body() {
                Some(_) => req.json()?,
                None => Mint::default(),
            };
            let user_id = match (asked.user_id, who.user_id) {
                (Some(id), _) if who.admin => id,
                (Some(id), Some(own)) if id == own => own,
                (Some(_), _) => {
                    return Err(ApiError::forbidden("only an admin mints keys for another user"));
                }
                (None, Some(own)) => own,
                (None, None) => {
                    return Err(ApiError::invalid("user_id", "name the user the key is for"));
                }
            };
            let ctx = req.ctx();
            let user = ctx.services().get_user(ctx, user_id).await?;
            let key = hookspecs::new_secret(PREFIX)?;
            let row = sqlx::query(
                "INSERT INTO plugin_api_keys_keys (user_id, hash, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(user.id)
            .bind(hookspecs::sha256_hex(&key))
            .bind(hookspecs::now())
            .fetch_one(&mut *ctx.db().await?)
            .await?;
            let id: i64 = row.try_get("id")?;
            Ok(Reply::created(json!({"id": id, "user_id": user.id, "key": key})))
        })?;
        Ok(())
    }

    async fn authenticate(&self, token: &str, ctx: &HookContext) -> HookResult<Option<Identity>> {
        if !token.starts_with(PREFIX) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT user_id FROM plugin_api_keys_keys WHERE hash = $1")
            .bind(hookspecs::sha256_hex(token))
            .fetch_optional(&mut *ctx.db().await?)
            .await?;
        let Some(row) = row else { return Ok(None) };
        // A key whose user is gone recognises nobody (401), like no key.
        let user = match ctx.services().get_user(ctx, row.try_get("user_id")?).await {
            Ok(user) => user,
            Err(error) if error.status == 404 => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        Ok(Some(Identity {
            user_id: Some(user.id),
            name: user.username,
            admin: false,
            via: "api_keys".into(),
        }))
    }

    /// A deleted user's keys go with them, in the same transaction.
    async fn on_user_deleted(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
        sqlx::query("DELETE FROM plugin_api_keys_keys WHERE user_id = $1")
            .bind(user.id)
            .execute(&mut *ctx.db().await?)
            .await?;
        Ok(())
    }
}

hookspecs::export_plugin!(ApiKeys::default, migrations = MIGRATIONS);
