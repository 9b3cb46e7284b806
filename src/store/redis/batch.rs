//! Hash reads that arrive together go to Redis as one pipeline.
//!
//! A cache miss reads a session or API key with `HGETALL` + `PTTL`. Sent
//! one by one, each read pays for its own trip through the client (a
//! command deadline, the breaker, a channel to the connection task, a
//! reply channel, a boxed future), and those were a fifth of an all-miss
//! check. Here the first read of a scheduler tick adds its two commands to
//! the next pipeline and starts a task that yields once, so that the other
//! checks ready in that tick add theirs, then sends that pipeline, under
//! one deadline and one breaker call, and hands each read its own reply.
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

use super::{Shared, classify, hash_of};
use crate::fields::Fields;
use crate::store::breaker::Outcome;
use crate::store::{Hash, StoreError};
use redis::{FromRedisValue, RedisError, Value};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

type Reply = Result<Option<Hash>, StoreError>;

/// Reads waiting for the next pipeline.
#[derive(Default)]
pub(super) struct Queue {
    waiting: Mutex<Waiting>,
}

/// The next pipeline, built as reads arrive (each read's commands are
/// made outside the lock and moved in, so its key is copied once, into
/// them), and who waits for each read's reply, in order.
struct Waiting {
    pipe: redis::Pipeline,
    replies: Vec<oneshot::Sender<Reply>>,
}

impl Default for Waiting {
    fn default() -> Self {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        Waiting {
            pipe,
            replies: Vec::new(),
        }
    }
}

impl Queue {
    /// Reads `key` in the next pipeline.
    pub(super) async fn hash(self: &Arc<Self>, shared: &Arc<Shared>, key: &str) -> Reply {
        let (reply, answer) = oneshot::channel();
        let (fields, ttl) = (read_cmd("HGETALL", key), read_cmd("PTTL", key));
        let first = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            waiting.pipe.add_command(fields).add_command(ttl);
            waiting.replies.push(reply);
            waiting.replies.len() == 1
        };
        if first {
            let (mut sender, shared) = (Sender(Some(self.clone())), shared.clone());
            tokio::spawn(async move {
                // Behind the tasks already ready: their reads join this one.
                tokio::task::yield_now().await;
                let reads = sender.take();
                send(&shared, reads).await;
            });
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("read abandoned".into())))
    }
}

/// The task that sends the queue. If it is dropped before it took the
/// queue (the runtime is shutting down), the queued reads are answered
/// with an error rather than left waiting, and the queue is left empty for
/// the next read to start a new task.
struct Sender(Option<Arc<Queue>>);

impl Sender {
    /// The queued reads, once: later reads belong to the next task.
    fn take(&mut self) -> Waiting {
        match self.0.take() {
            Some(queue) => {
                std::mem::take(&mut *queue.waiting.lock().unwrap_or_else(PoisonError::into_inner))
            }
            None => Waiting::default(),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        for reply in self.take().replies {
            let _ = reply.send(Err(StoreError::Unavailable("read not sent".into())));
        }
    }
}

/// Sends one pipeline for `reads` and answers each.
async fn send(shared: &Shared, reads: Waiting) {
    let Waiting {
        pipe,
        replies: reads,
    } = reads;
    let count = reads.len();
    let replies = shared
        .call(super::Request::Pipe(&pipe), |value| {
            let values = match Vec::<Value>::from_redis_value(value) {
                Ok(v) if v.len() == 2 * count => v,
                _ => {
                    let e = StoreError::Unavailable("pipeline reply of the wrong shape".into());
                    return (Err(e), Outcome::Failed);
                }
            };
            let mut values = values.into_iter();
            let replies: Vec<Reply> = (0..count)
                .map(|_| one(values.next(), values.next()))
                .collect();
            // An error reply that means "not now" (LOADING, MASTERDOWN, ...)
            // counts against Redis, as it would for a read sent alone.
            let failing = replies
                .iter()
                .any(|r| matches!(r, Err(StoreError::Unavailable(_))));
            let outcome = if failing {
                Outcome::Failed
            } else {
                Outcome::Answered
            };
            (Ok(replies), outcome)
        })
        .await;
    match replies {
        Ok(replies) => {
            for (reply, answer) in reads.into_iter().zip(replies) {
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            for reply in reads {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// `name key`, its two buffers sized once: `redis::cmd(name).arg(key)`
/// grows them from empty, three allocations per command where two do,
/// and the growth checks with them (callgrind on the all-miss bench: a
/// fifth of the batch task's work per read).
fn read_cmd(name: &str, key: &str) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(2, name.len() + key.len());
    cmd.arg(name).arg(key);
    cmd
}

/// One read's `HGETALL` and `PTTL` replies.
fn one(fields: Option<Value>, pttl: Option<Value>) -> Reply {
    let convert = |e: redis::ParsingError| StoreError::BadRecord(e.to_string());
    let (Some(fields), Some(pttl)) = (fields, pttl) else {
        return Err(StoreError::Unavailable("missing reply".into()));
    };
    for v in [&fields, &pttl] {
        if let Value::ServerError(e) = v {
            // As a read sent alone would be told: "not now" errors are
            // outages, others (WRONGTYPE) a bad record.
            return Err(classify(&RedisError::from(e.clone())));
        }
    }
    let fields = Fields::from_redis_value(fields).map_err(convert)?;
    let pttl = i64::from_redis_value(pttl).map_err(convert)?;
    Ok(hash_of(fields, pttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(resp: &[u8]) -> Option<Value> {
        Some(redis::parse_redis_value(resp).unwrap())
    }

    #[test]
    fn each_read_is_answered_from_its_own_replies() {
        let hash = one(reply(b"*2\r\n$1\r\nn\r\n$1\r\n7\r\n"), reply(b":1500\r\n")).unwrap();
        let hash = hash.unwrap();
        assert_eq!(hash.fields.get("n").map(String::as_str), Some("7"));
        assert_eq!(hash.ttl, Some(std::time::Duration::from_millis(1500)));
        assert_eq!(one(reply(b"*0\r\n"), reply(b":-2\r\n")), Ok(None));
        assert!(one(reply(b"*0\r\n"), None).is_err());
    }

    #[test]
    fn a_not_now_error_is_an_outage_and_wrongtype_a_bad_record() {
        let loading = one(reply(b"-LOADING Redis is loading\r\n"), reply(b":-2\r\n"));
        assert!(
            matches!(loading, Err(StoreError::Unavailable(_))),
            "{loading:?}"
        );
        let wrong = one(
            reply(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            reply(b":-1\r\n"),
        );
        assert!(matches!(wrong, Err(StoreError::BadRecord(_))), "{wrong:?}");
    }
}
