//! Hash reads that arrive together go to Redis as one pipeline.
//!
//! A cache miss reads a session or API key with `HGETALL` + `PTTL`. Sent
//! one by one, each read pays for its own trip through the client (a
//! command deadline, the breaker, a channel to the connection task, a
//! reply channel, a boxed future), and those were a fifth of an all-miss
//! check. Here the first read of a scheduler tick queues itself and starts
//! a task that yields once, so that the other checks ready in that tick
//! queue theirs, then sends everything queued as one pipeline, under one
//! deadline and one breaker call, and hands each read its own reply.
//!
//! - The batch runs in its own task: a check that is cancelled (Envoy gave
//!   up) cannot take the other reads of its batch down with it.
//! - One bad key (`WRONGTYPE`) fails only its own read: the pipeline
//!   returns errors as values.
//! - A failed round trip (timeout, lost connection, open breaker) fails
//!   every read in it, as it would have failed each of them alone; to the
//!   breaker it is one failed call.
//! - Not in cluster mode, where keys of one pipeline may live on different
//!   nodes.

use super::{Shared, hash_of};
use crate::store::{Fields, Hash, StoreError};
use redis::{FromRedisValue, Value};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

type Reply = Result<Option<Hash>, StoreError>;

/// Reads waiting for the next pipeline.
#[derive(Default)]
pub(super) struct Queue {
    waiting: Mutex<Vec<(String, oneshot::Sender<Reply>)>>,
}

impl Queue {
    /// Reads `key` in the next pipeline.
    pub(super) async fn hash(self: &Arc<Self>, shared: &Arc<Shared>, key: &str) -> Reply {
        let (reply, answer) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            waiting.push((key.to_string(), reply));
            waiting.len() == 1
        };
        if first {
            let (queue, shared) = (self.clone(), shared.clone());
            tokio::spawn(async move {
                // Behind the tasks already ready: their reads join this one.
                tokio::task::yield_now().await;
                let reads = std::mem::take(
                    &mut *queue.waiting.lock().unwrap_or_else(PoisonError::into_inner),
                );
                send(&shared, reads).await;
            });
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("read abandoned".into())))
    }
}

/// Sends one pipeline for `reads` and answers each.
async fn send(shared: &Shared, reads: Vec<(String, oneshot::Sender<Reply>)>) {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (key, _) in &reads {
        pipe.cmd("HGETALL").arg(key).cmd("PTTL").arg(key);
    }
    let replies: Result<Vec<Value>, StoreError> = shared.query(super::Request::Pipe(&pipe)).await;
    match replies {
        Ok(values) if values.len() == 2 * reads.len() => {
            let mut values = values.into_iter();
            for (_, reply) in reads {
                let (fields, pttl) = (values.next(), values.next());
                let _ = reply.send(one(fields, pttl));
            }
        }
        Ok(values) => {
            let e = StoreError::Command(format!(
                "pipeline of {} commands answered {}",
                2 * reads.len(),
                values.len()
            ));
            for (_, reply) in reads {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for (_, reply) in reads {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// One read's `HGETALL` and `PTTL` replies.
fn one(fields: Option<Value>, pttl: Option<Value>) -> Reply {
    let convert = |e: redis::ParsingError| StoreError::Command(e.to_string());
    let (Some(fields), Some(pttl)) = (fields, pttl) else {
        return Err(StoreError::Command("missing reply".into()));
    };
    for v in [&fields, &pttl] {
        if let Value::ServerError(e) = v {
            return Err(StoreError::Command(e.to_string()));
        }
    }
    let fields = Fields::from_redis_value(fields).map_err(convert)?;
    let pttl = i64::from_redis_value(pttl).map_err(convert)?;
    Ok(hash_of(fields, pttl))
}
