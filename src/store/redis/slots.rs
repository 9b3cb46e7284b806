//! The masters of a Redis Cluster, as a `CLUSTER SLOTS` reply names them:
//! where the invalidation fast path (`invalidation/fast_path.rs`)
//! subscribes. Kept apart from the connection so that every shape of
//! reply is tested without a cluster.
//!
//! `CLUSTER SLOTS` (Redis 3+, so every version ward supports; `CLUSTER
//! SHARDS` needs 7) answers one entry per slot range: start, end, then
//! the master as `[host, port, id, ...]`, then its replicas.

use redis::{ConnectionAddr, Value};

/// A node's address as the cluster announces it, or as a seed URL names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Endpoint {
    pub(super) host: String,
    pub(super) port: u16,
}

impl Endpoint {
    /// The endpoint of a TCP (or TLS) address; `None` for a Unix socket,
    /// which a cluster never announces.
    pub(super) fn of(addr: &ConnectionAddr) -> Option<Endpoint> {
        match addr {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                Some(Endpoint {
                    host: host.clone(),
                    port: *port,
                })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Every master serving a slot range, once each, in the reply's order. An
/// entry of another shape, or whose master is announced without a usable
/// endpoint (`?` or an empty host: Redis itself does not know how it is
/// reached), is skipped: the primary subscription still hears what is
/// published there, through the cluster bus.
pub(super) fn masters(reply: &Value) -> Vec<Endpoint> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let mut out: Vec<Endpoint> = Vec::new();
    for endpoint in ranges.iter().filter_map(master_of) {
        if !out.contains(&endpoint) {
            out.push(endpoint);
        }
    }
    out
}

/// The master of one slot range: its third element's host and port.
fn master_of(range: &Value) -> Option<Endpoint> {
    let Value::Array(fields) = range else {
        return None;
    };
    let Some(Value::Array(node)) = fields.get(2) else {
        return None;
    };
    let host = match node.first()? {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.to_string(),
        Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    let port = match node.get(1)? {
        Value::Int(port) => u16::try_from(*port).ok()?,
        _ => return None,
    };
    let usable = !host.is_empty() && host != "?" && port != 0;
    usable.then_some(Endpoint { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"0123456789abcdef".to_vec()),
        ])
    }

    fn range(start: i64, end: i64, nodes: Vec<Value>) -> Value {
        let mut fields = vec![Value::Int(start), Value::Int(end)];
        fields.extend(nodes);
        Value::Array(fields)
    }

    fn endpoint(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn each_master_once_in_reply_order_replicas_ignored() {
        let reply = Value::Array(vec![
            range(
                0,
                5460,
                vec![node("10.0.0.1", 7000), node("10.0.0.4", 7003)],
            ),
            range(5461, 10922, vec![node("10.0.0.2", 7001)]),
            range(10923, 12000, vec![node("10.0.0.3", 7002)]),
            // A master serving two ranges after a resharding.
            range(12001, 16383, vec![node("10.0.0.1", 7000)]),
        ]);
        assert_eq!(
            masters(&reply),
            [
                endpoint("10.0.0.1", 7000),
                endpoint("10.0.0.2", 7001),
                endpoint("10.0.0.3", 7002)
            ]
        );
    }

    #[test]
    fn unknown_endpoints_and_other_shapes_are_skipped() {
        let reply = Value::Array(vec![
            range(0, 1, vec![node("?", 7000)]),
            range(2, 3, vec![node("", 7001)]),
            range(4, 5, vec![node("h", 0)]),
            range(6, 7, vec![node("h", 70_000)]),
            range(8, 9, vec![]),
            Value::Int(3),
            range(
                10,
                11,
                vec![Value::Array(vec![Value::Int(1), Value::Int(7002)])],
            ),
            range(
                12,
                13,
                vec![Value::Array(vec![
                    Value::SimpleString("simple".into()),
                    Value::Int(7003),
                ])],
            ),
        ]);
        assert_eq!(masters(&reply), [endpoint("simple", 7003)]);
        assert_eq!(masters(&Value::Nil), []);
        assert_eq!(masters(&Value::Array(vec![])), []);
    }

    #[test]
    fn a_seed_url_names_the_endpoint_the_cluster_announces() {
        let tcp = ConnectionAddr::Tcp("127.0.0.1".into(), 7000);
        assert_eq!(Endpoint::of(&tcp), Some(endpoint("127.0.0.1", 7000)));
        let tls = ConnectionAddr::TcpTls {
            host: "redis-0".into(),
            port: 6380,
            insecure: false,
            tls_params: None,
        };
        assert_eq!(Endpoint::of(&tls), Some(endpoint("redis-0", 6380)));
        assert_eq!(endpoint("redis-0", 6380).to_string(), "redis-0:6380");
        let unix = ConnectionAddr::Unix("/tmp/redis.sock".into());
        assert_eq!(Endpoint::of(&unix), None);
    }
}
