//! A real HTTP/1.1 upstream that answers every request with 200 and a JSON
//! description of what it received, so a test can see exactly which headers
//! Envoy forwarded after ward's decision:
//!
//! ```json
//! {"method": "GET", "path": "/x", "query": "a=1",
//!  "headers": {"x-user-id": ["alice"], "accept": ["a", "b"]}, "body": ""}
//! ```
//!
//! Repeated headers show up as several values, in arrival order. Every
//! request is also recorded, so a test can assert that a denied request
//! never reached the upstream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A running echo upstream; stops when dropped.
pub struct Echo {
    /// Where it listens (127.0.0.1, ephemeral port).
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Value>>>,
    task: JoinHandle<()>,
}

impl Echo {
    /// Binds 127.0.0.1:0 and starts serving on the current tokio runtime.
    pub async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("echo: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("echo: local_addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(listener, Arc::clone(&seen)));
        Echo { addr, seen, task }
    }

    /// Every request received so far, as the JSON documents that were echoed.
    pub fn requests(&self) -> Vec<Value> {
        self.seen.lock().expect("echo: log poisoned").clone()
    }

    /// How many requests reached the upstream.
    pub fn hits(&self) -> usize {
        self.seen.lock().expect("echo: log poisoned").len()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task too.
        self.task.abort();
    }
}

/// The values of header `name` in an echoed document (empty if absent).
pub fn header_values(echoed: &Value, name: &str) -> Vec<String> {
    echoed["headers"][name.to_ascii_lowercase()]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn serve(listener: TcpListener, seen: Arc<Mutex<Vec<Value>>>) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let seen = Arc::clone(&seen);
        conns.spawn(async move {
            let svc = service_fn(move |req| echo(req, Arc::clone(&seen)));
            // A client hanging up mid-request is not the upstream's problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn echo(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Value>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            Some(Value::Array(values)) => values.push(value),
            _ => {
                headers.insert(name.as_str().to_owned(), Value::Array(vec![value]));
            }
        }
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let doc = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    seen.lock().expect("echo: log poisoned").push(doc.clone());

    let mut resp = Response::new(Full::new(Bytes::from(doc.to_string())));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
