//! One unary gRPC call on the wire, read and answered by ward itself.
//!
//! ward's first invariant is that every request on the Check method gets
//! a `CheckResponse`: a gRPC error counts as an authorization *failure* in
//! Envoy, and with `failure_mode_allow: true` a failure lets the request
//! through. tonic's unary handling answers errors of its own before a
//! service sees the message: `OUT_OF_RANGE` for a message over its 4 MiB
//! decode limit, `INTERNAL` for a truncated or compressed frame,
//! `UNIMPLEMENTED` for a compression it does not accept. So ward reads
//! the request body itself ([`read_message`]) and tells the caller what
//! it found ([`Incoming`]): the message, one too large, or one that is not
//! a single uncompressed gRPC message. The caller turns each into an
//! answer, and [`respond`] frames it: one message, then `grpc-status: 0`.
//!
//! Memory stays bounded by the limit: the 5-byte prefix (compressed flag,
//! big-endian length) is judged before the message is read, a length over
//! the limit is answered without reading on, and no more than the declared
//! length is ever buffered.

use http_body::{Body, Frame};
use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codegen::http;

/// A gRPC message's prefix: compressed flag (1 byte), length (4 bytes).
const PREFIX: usize = 5;

/// What a Check call's request body held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// The one message's bytes, prefix removed.
    Message(Bytes),
    /// The prefix declares more than the limit (the rest is not read).
    TooLarge { declared: usize, limit: usize },
    /// Not one whole, uncompressed message.
    Malformed(FrameError),
    /// The body failed before it ended: the client reset the call, or the
    /// connection went. Nothing was asked, and nobody reads an answer.
    Gone,
}

/// Why a request body is not one whole, uncompressed gRPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no message")]
    Empty,
    #[error("the body ended inside a message")]
    Truncated,
    #[error("compressed message (ward accepts no compression)")]
    Compressed,
    #[error("invalid compressed flag")]
    Flag,
    #[error("more than one message")]
    Trailing,
}

/// Reads a unary call's request body: one message of at most `limit`
/// bytes. Buffers at most the message; stops at the first byte that
/// decides the outcome otherwise.
pub async fn read_message<B>(body: B, limit: usize) -> Incoming
where
    B: Body,
{
    let mut body = std::pin::pin!(body);
    let mut reader = Reader::new(limit);
    loop {
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        match frame {
            None => return reader.finish(),
            Some(Err(_)) => return Incoming::Gone,
            Some(Ok(frame)) => {
                // Request trailers carry nothing ward reads.
                if let Ok(data) = frame.into_data()
                    && let Err(done) = reader.push(data)
                {
                    return done;
                }
            }
        }
    }
}

/// The body read so far.
struct Reader {
    limit: usize,
    buf: BytesMut,
    /// The message length, once the prefix is read.
    declared: Option<usize>,
}

impl Reader {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            buf: BytesMut::with_capacity(PREFIX),
            declared: None,
        }
    }

    /// Takes the bytes of one data frame; `Err` once the outcome is known
    /// before the end of the body.
    fn push(&mut self, mut data: impl Buf) -> Result<(), Incoming> {
        while data.has_remaining() {
            let wanted = PREFIX + self.declared.unwrap_or(0) - self.buf.len();
            if wanted == 0 {
                return Err(Incoming::Malformed(FrameError::Trailing));
            }
            let chunk = data.chunk();
            let take = wanted.min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            data.advance(take);
            if self.declared.is_none() && self.buf.len() == PREFIX {
                let declared = self.prefix()?;
                self.declared = Some(declared);
                self.buf.reserve(declared);
            }
        }
        Ok(())
    }

    /// The declared length, if the prefix is acceptable.
    fn prefix(&self) -> Result<usize, Incoming> {
        match self.buf[0] {
            0 => {}
            1 => return Err(Incoming::Malformed(FrameError::Compressed)),
            _ => return Err(Incoming::Malformed(FrameError::Flag)),
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        // A length that does not fit usize is over any limit.
        let declared = usize::try_from(len).unwrap_or(usize::MAX);
        if declared > self.limit {
            return Err(Incoming::TooLarge {
                declared,
                limit: self.limit,
            });
        }
        Ok(declared)
    }

    /// The outcome at the end of the body.
    fn finish(self) -> Incoming {
        match self.declared {
            None if self.buf.is_empty() => Incoming::Malformed(FrameError::Empty),
            Some(n) if self.buf.len() == PREFIX + n => {
                Incoming::Message(self.buf.freeze().slice(PREFIX..))
            }
            _ => Incoming::Malformed(FrameError::Truncated),
        }
    }
}

/// A unary call's successful answer: `message` in one uncompressed gRPC
/// frame, then the trailer `grpc-status: 0`.
pub fn respond(message: &impl prost::Message) -> http::Response<tonic::body::Body> {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    // Answers are bounded by the header limits (`headers.max_value_bytes`),
    // far below 4 GiB.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message.encode_raw(&mut buf);
    let mut trailers = http::HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body = Answer {
        message: Some(buf.freeze()),
        trailers: Some(trailers),
    };
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The response body: the message frame, then the trailers.
struct Answer {
    message: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

/// The largest DATA frame an answer is sent in. h2 writes a DATA frame at
/// or above its chain threshold on its own (it chains the payload instead
/// of copying it into its write buffer, and buffers nothing behind it
/// until written), so such an answer costs a `writev` per check where
/// smaller ones go out many per write. The threshold is 1 KB because ward's
/// connections say they cannot write vectored (`conn.rs`); at h2's other
/// threshold (256 B) an allow with an identity token (about 800 B) had to
/// be cut into four frames, each a trip through h2's flow control. A
/// larger answer (a gRPC message may span DATA frames) is cut under it.
const DATA_FRAME_MAX: usize = 1023;

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(message) = &mut this.message {
            let chunk = match message.len() > DATA_FRAME_MAX {
                true => message.split_to(DATA_FRAME_MAX),
                false => std::mem::take(message),
            };
            if message.is_empty() {
                this.message = None;
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.message.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body delivered in these chunks.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|c| Ok(Frame::data(c))))
        }
    }

    fn frame(flag: u8, declared: u32, bytes: &[u8]) -> Vec<u8> {
        let mut f = vec![flag];
        f.extend_from_slice(&declared.to_be_bytes());
        f.extend_from_slice(bytes);
        f
    }

    /// Reads `bytes` split into chunks of `size` bytes.
    fn read(bytes: &[u8], size: usize, limit: usize) -> Incoming {
        let chunks = bytes.chunks(size.max(1)).map(Bytes::copy_from_slice);
        let body = Chunks(chunks.collect());
        let rt = tokio::runtime::Builder::new_current_thread().build();
        rt.map(|rt| rt.block_on(read_message(body, limit)))
            .unwrap_or(Incoming::Gone)
    }

    #[test]
    fn one_message_in_any_chunking() {
        let msg = b"0123456789";
        let f = frame(0, 10, msg);
        for size in [1, 2, 4, 5, 6, 15, 100] {
            assert_eq!(
                read(&f, size, 10),
                Incoming::Message(Bytes::from_static(msg)),
                "{size}"
            );
        }
        assert_eq!(
            read(&frame(0, 0, b""), 5, 10),
            Incoming::Message(Bytes::new())
        );
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_from_the_prefix() {
        let too_large = Incoming::TooLarge {
            declared: 11,
            limit: 10,
        };
        // Even when the body would be short or endless: only 5 bytes count.
        assert_eq!(read(&frame(0, 11, b""), 1, 10), too_large);
        assert_eq!(read(&frame(0, 11, &[7; 64]), 3, 10), too_large);
    }

    #[test]
    fn anything_but_one_whole_uncompressed_message_is_malformed() {
        let bad = |e| Incoming::Malformed(e);
        let f = frame(0, 3, b"abc");
        let cases = [
            (Vec::new(), FrameError::Empty),
            (vec![0, 0, 0], FrameError::Truncated),
            (frame(0, 4, b"abc"), FrameError::Truncated),
            (frame(1, 3, b"abc"), FrameError::Compressed),
            (frame(2, 3, b"abc"), FrameError::Flag),
            ([f.clone(), f.clone()].concat(), FrameError::Trailing),
            ([f.clone(), vec![0]].concat(), FrameError::Trailing),
        ];
        for (bytes, err) in cases {
            for size in [1, 3, 64] {
                assert_eq!(read(&bytes, size, 10), bad(err), "{bytes:?} by {size}");
            }
        }
    }

    #[test]
    fn an_answer_goes_out_in_data_frames_h2_batches_then_its_trailers() {
        let message = prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue("t".repeat(3000))),
        };
        let (_, body) = respond(&message).into_parts();
        let mut body = std::pin::pin!(body);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let (mut data, mut trailers) = (Vec::new(), None);
        while let Poll::Ready(Some(Ok(frame))) = body.as_mut().poll_frame(&mut cx) {
            match frame.into_data() {
                Ok(chunk) => {
                    assert!(chunk.len() <= DATA_FRAME_MAX, "{}", chunk.len());
                    data.extend_from_slice(&chunk);
                }
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        let mut expected = vec![0];
        expected.extend_from_slice(&(prost::Message::encoded_len(&message) as u32).to_be_bytes());
        expected.extend_from_slice(&prost::Message::encode_to_vec(&message));
        assert_eq!(data, expected);
        assert_eq!(trailers.unwrap()["grpc-status"], "0");
        assert!(body.is_end_stream());
    }

    #[test]
    fn never_buffers_more_than_the_message() {
        let mut reader = Reader::new(8);
        let f = frame(0, 8, &[1; 8]);
        assert!(reader.push(Bytes::from(f)).is_ok());
        assert_eq!(reader.buf.len(), PREFIX + 8);
        assert_eq!(
            reader.push(Bytes::from_static(&[0; 4096])),
            Err(Incoming::Malformed(FrameError::Trailing))
        );
        assert_eq!(reader.buf.len(), PREFIX + 8);
    }

    #[test]
    fn the_answer_is_one_frame_then_status_ok() {
        use http_body::Body as _;
        let message = prost_types::Duration {
            seconds: 300,
            nanos: 1,
        };
        let sent = Answer {
            message: None,
            trailers: None,
        };
        assert!(sent.is_end_stream());
        let response = respond(&message);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        let encoded = prost::Message::encode_to_vec(&message);
        let expected = frame(0, encoded.len() as u32, &encoded);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut body = response.into_body();
        let mut pinned = Pin::new(&mut body);
        let first = pinned.as_mut().poll_frame(&mut cx);
        let Poll::Ready(Some(Ok(data))) = first else {
            panic!("a data frame first")
        };
        assert_eq!(data.into_data().ok().as_deref(), Some(&expected[..]));
        let Poll::Ready(Some(Ok(trailers))) = pinned.as_mut().poll_frame(&mut cx) else {
            panic!("trailers next")
        };
        let trailers = trailers.into_trailers().ok().unwrap_or_default();
        assert_eq!(trailers["grpc-status"], "0");
        assert!(matches!(pinned.poll_frame(&mut cx), Poll::Ready(None)));
    }
}
