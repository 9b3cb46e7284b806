//! A minimal HTTP/1.1 client (one request per connection) for talking to
//! Envoy, ward's admin endpoint and the echo upstream.
//!
//! It sends the request target exactly as given (`/a/../b`, `/a%2Fb`), which
//! is what path-normalization tests need; nothing is normalized client-side.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Errors from [`send`]: connection, protocol or timeout failures.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// The first value of header `name`, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body text if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request to `addr` and reads the whole response.
///
/// `headers` are appended in order, so a name given twice is sent twice.
/// A `host` header is added (`addr`) unless `headers` has one.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, Error> {
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        send_inner(addr, method, path, headers, body),
    )
    .await
    .map_err(|_| format!("{method} {path} to {addr}: no response within {REQUEST_TIMEOUT:?}"))?
}

async fn send_inner(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, Error> {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes())?)
        .uri(path)
        .body(Full::new(Bytes::copy_from_slice(body)))?;
    for (name, value) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    if !req.headers().contains_key(hyper::header::HOST) {
        req.headers_mut().insert(
            hyper::header::HOST,
            HeaderValue::from_str(&addr.to_string())?,
        );
    }

    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection future drives the socket; it ends when `sender` is dropped.
    tokio::spawn(conn);

    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// `GET path` on `addr`.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Response, Error> {
    send(addr, "GET", path, &[], b"").await
}
