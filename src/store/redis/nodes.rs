//! What every Redis mode shares, below both `connection` (standalone,
//! cluster) and `sentinel`: the nodes named in the config (URLs parsed
//! without echoing a password), the credentials that override the URLs',
//! and one request as sent on any connection. Kept apart so that
//! `connection` can use `sentinel` without `sentinel` using it back.

use crate::config::{ProcessEnv, RedisConfig};
use redis::aio::ConnectionLike;
use redis::{
    Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisResult, Value,
};

/// One command, or a pipeline (possibly `MULTI`/`EXEC`).
#[derive(Clone, Copy)]
pub(super) enum Request<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
}

impl Request<'_> {
    /// The raw reply (server errors already extracted); the store converts
    /// it, so that a value of the wrong shape is told apart from an outage.
    pub(super) async fn send(&self, conn: &mut impl ConnectionLike) -> RedisResult<Value> {
        match self {
            Request::Cmd(cmd) => cmd.query_async(conn).await,
            Request::Pipe(pipe) => pipe.query_async(conn).await,
        }
    }
}

/// Username and password from the config, which override the URLs'.
pub(super) struct Credentials {
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
}

impl Credentials {
    /// `store.redis.username` and `.password` (the secret resolved now);
    /// fails naming the field, never echoing the secret.
    pub(super) fn from_config(config: &RedisConfig) -> Result<Credentials, String> {
        Ok(Credentials {
            username: config.username.clone(),
            password: password(config)?,
        })
    }

    pub(super) fn apply(&self, info: RedisConnectionInfo) -> RedisConnectionInfo {
        let info = match &self.username {
            Some(user) => info.set_username(user),
            None => info,
        };
        match &self.password {
            Some(password) => info.set_password(password),
            None => info,
        }
    }

    pub(super) fn apply_to(&self, node: ConnectionInfo) -> ConnectionInfo {
        let settings = self.apply(node.redis_settings().clone());
        node.set_redis_settings(settings)
    }
}

fn password(config: &RedisConfig) -> Result<Option<String>, String> {
    let Some(source) = &config.password else {
        return Ok(None);
    };
    let secret = source
        .resolve(&ProcessEnv)
        .map_err(|e| format!("store.redis.password: {e}"))?;
    String::from_utf8(secret.expose().to_vec())
        .map(Some)
        .map_err(|_| "store.redis.password: not valid UTF-8".to_string())
}

pub(super) fn parse_nodes(config: &RedisConfig) -> Result<Vec<ConnectionInfo>, String> {
    if config.nodes.is_empty() {
        return Err("store.redis.nodes: at least one node is required in this mode".into());
    }
    config
        .nodes
        .iter()
        .enumerate()
        .map(|(i, url)| parse_url(url, &format!("store.redis.nodes[{i}]")))
        .collect()
}

/// Parses a URL without echoing it: it may hold a password.
pub(super) fn parse_url(url: &str, field: &str) -> Result<ConnectionInfo, String> {
    url.into_connection_info()
        .map_err(|e| format!("{field}: not a usable Redis URL ({})", e.category()))
}
