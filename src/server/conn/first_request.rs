//! What "the first request has arrived" means, byte by byte: the HTTP/2
//! client preface and frames up to the end of the first header block, or
//! an HTTP/1 request line and headers up to the empty line (or either,
//! told apart by the first two bytes, on the management port). The
//! handshake deadline of [`super::Conn`] runs until this says done.

/// What a listener's clients speak first: decides what "the first request
/// has arrived" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC: the client preface, then frames.
    Http2,
    /// The HTTP ext_authz mode and the admin port.
    Http1,
    /// Either, told apart by the first bytes (`PR`, as in the HTTP/2
    /// preface `PRI * HTTP/2.0`, or anything else): the management port.
    Sniff,
    /// Bytes this layer cannot read (TLS records): only the connection
    /// cap applies here, the TLS layer has its own handshake deadline.
    Opaque,
}

/// The HTTP/2 client connection preface (RFC 9113 §3.4): 24 bytes.
const PREFACE_LEN: usize = 24;
/// An HTTP/2 frame header: length (3), type, flags, stream id (4).
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Reads a client's first bytes until its first request's headers have
/// fully arrived. It only counts and frames bytes: whether they are valid
/// is hyper's business (a bad preface fails there, at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstRequest {
    /// HTTP/2: bytes of the preface seen so far.
    Preface(usize),
    /// HTTP/2: a frame header, `seen` of its 9 bytes read.
    FrameHeader {
        buf: [u8; FRAME_HEADER_LEN],
        seen: usize,
    },
    /// HTTP/2: a frame's payload, `left` bytes to go; `last` when it ends
    /// a header block (HEADERS or CONTINUATION with END_HEADERS).
    Payload { left: usize, last: bool },
    /// HTTP/1: `line_start` after a line feed (carriage returns ignored),
    /// `content` once any other byte was seen (empty lines before the
    /// request line are skipped by the parser, so they do not count).
    Http1 { line_start: bool, content: bool },
    /// Either protocol: nothing seen yet (`p`: false), or a `P` (true),
    /// which a second `R` makes the HTTP/2 preface.
    Sniff { p: bool },
    /// The first request's headers are in.
    Done,
}

impl FirstRequest {
    pub fn new(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Http2 => FirstRequest::Preface(0),
            Protocol::Http1 => FirstRequest::Http1 {
                line_start: false,
                content: false,
            },
            Protocol::Sniff => FirstRequest::Sniff { p: false },
            Protocol::Opaque => FirstRequest::Done,
        }
    }

    /// Takes the next bytes the client sent; true once the first request's
    /// headers are complete.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let taken = match self {
                FirstRequest::Done => return true,
                // Decides the protocol, then the chosen state reads the
                // bytes (a `P` already taken counts as HTTP/1 content).
                FirstRequest::Sniff { p: false } if bytes[0] == b'P' => {
                    *self = FirstRequest::Sniff { p: true };
                    1
                }
                FirstRequest::Sniff { p: true } if bytes[0] == b'R' => {
                    *self = FirstRequest::Preface(2);
                    1
                }
                FirstRequest::Sniff { p } => {
                    *self = FirstRequest::Http1 {
                        line_start: false,
                        content: *p,
                    };
                    0
                }
                FirstRequest::Preface(seen) => {
                    let take = (PREFACE_LEN - *seen).min(bytes.len());
                    *seen += take;
                    if *seen == PREFACE_LEN {
                        *self = FirstRequest::FrameHeader {
                            buf: [0; FRAME_HEADER_LEN],
                            seen: 0,
                        };
                    }
                    take
                }
                FirstRequest::FrameHeader { buf, seen } => {
                    let take = (FRAME_HEADER_LEN - *seen).min(bytes.len());
                    buf[*seen..*seen + take].copy_from_slice(&bytes[..take]);
                    *seen += take;
                    if *seen == FRAME_HEADER_LEN {
                        let left = usize::from(buf[0]) << 16
                            | usize::from(buf[1]) << 8
                            | usize::from(buf[2]);
                        let last =
                            matches!(buf[3], HEADERS | CONTINUATION) && buf[4] & END_HEADERS != 0;
                        *self = FirstRequest::Payload { left, last };
                    }
                    take
                }
                FirstRequest::Payload { left, .. } => {
                    let take = (*left).min(bytes.len());
                    *left -= take;
                    take
                }
                FirstRequest::Http1 {
                    line_start,
                    content,
                } => {
                    let mut done = false;
                    let mut take = 0;
                    for &b in bytes {
                        take += 1;
                        match b {
                            b'\n' if *line_start && *content => {
                                done = true;
                                break;
                            }
                            b'\n' => *line_start = true,
                            b'\r' => {}
                            _ => {
                                *line_start = false;
                                *content = true;
                            }
                        }
                    }
                    if done {
                        *self = FirstRequest::Done;
                    }
                    take
                }
            };
            bytes = &bytes[taken..];
            // A frame whose payload is all in (an empty one at once).
            if let FirstRequest::Payload { left: 0, last } = *self {
                *self = if last {
                    FirstRequest::Done
                } else {
                    FirstRequest::FrameHeader {
                        buf: [0; FRAME_HEADER_LEN],
                        seen: 0,
                    }
                };
            }
        }
        *self == FirstRequest::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&[0, 0, 0, 1]);
        f.extend_from_slice(payload);
        f
    }

    /// Feeds `bytes` in chunks of `chunk`; at which byte count it was done.
    fn done_after(protocol: Protocol, bytes: &[u8], chunk: usize) -> Option<usize> {
        let mut first = FirstRequest::new(protocol);
        let mut fed = 0;
        for part in bytes.chunks(chunk) {
            fed += part.len();
            if first.feed(part) {
                return Some(fed);
            }
        }
        None
    }

    #[test]
    fn http2_is_done_when_the_first_header_block_ends() {
        let settings = frame(0x4, 0, &[0, 3, 0, 0, 0, 100]);
        let ack = frame(0x4, 0x1, &[]);
        let window = frame(0x8, 0, &[0, 0, 1, 0]);
        let headers = frame(HEADERS, END_HEADERS, &[0x82; 40]);
        let mut wire = [PREFACE, &settings, &ack, &window].concat();
        let before_headers = wire.len();
        wire.extend_from_slice(&headers);
        let whole = wire.len();
        wire.extend_from_slice(&frame(0x0, 0x1, b"body"));
        for chunk in [1, 2, 7, 9, 24, 1000] {
            assert_eq!(
                done_after(Protocol::Http2, &wire, chunk).map(|n| n >= whole),
                Some(true),
                "chunk {chunk}"
            );
            assert_eq!(
                done_after(Protocol::Http2, &wire[..whole - 1], chunk),
                None,
                "chunk {chunk}"
            );
            assert_eq!(
                done_after(Protocol::Http2, &wire[..before_headers], chunk),
                None
            );
        }
    }

    #[test]
    fn http2_header_blocks_end_only_with_end_headers() {
        // HEADERS without END_HEADERS (END_STREAM only), then CONTINUATION.
        let mut wire = [PREFACE, &frame(HEADERS, 0x1, &[1; 10])].concat();
        assert_eq!(done_after(Protocol::Http2, &wire, 5), None);
        wire.extend_from_slice(&frame(CONTINUATION, 0, &[2; 3]));
        assert_eq!(done_after(Protocol::Http2, &wire, 5), None);
        wire.extend_from_slice(&frame(CONTINUATION, END_HEADERS, &[]));
        assert_eq!(done_after(Protocol::Http2, &wire, 5), Some(wire.len()));
        // The same flag bit on another frame type (SETTINGS) means nothing.
        let wire = [PREFACE, &frame(0x4, END_HEADERS, &[0; 6])].concat();
        assert_eq!(done_after(Protocol::Http2, &wire, 1), None);
        // A silent or preface-only client is never done.
        assert_eq!(done_after(Protocol::Http2, PREFACE, 3), None);
        assert_eq!(done_after(Protocol::Http2, b"", 1), None);
    }

    #[test]
    fn http1_is_done_at_the_empty_line_after_the_headers() {
        let req = b"GET /x HTTP/1.1\r\nhost: a\r\nx-y: z\r\n\r\n";
        for chunk in [1, 2, 5, 100] {
            assert_eq!(
                done_after(Protocol::Http1, req, chunk).map(|n| n >= req.len()),
                Some(true)
            );
            assert_eq!(
                done_after(Protocol::Http1, &req[..req.len() - 1], chunk),
                None
            );
        }
        // Bare line feeds count as line ends, as httparse takes them.
        assert!(done_after(Protocol::Http1, b"GET / HTTP/1.1\nhost: a\n\n", 3).is_some());
        // Empty lines before the request line are not its end.
        assert_eq!(
            done_after(Protocol::Http1, b"\r\n\r\n\n\nGET / HTTP/1.1\r\n", 1),
            None
        );
        // A header line dribbled out never ends the request.
        assert_eq!(
            done_after(Protocol::Http1, b"GET / HTTP/1.1\r\nx: aaaaaaa", 1),
            None
        );
    }

    #[test]
    fn sniffing_tells_http2_from_http1_by_the_first_bytes() {
        let h2 = [PREFACE, &frame(HEADERS, END_HEADERS, &[0x82; 5])].concat();
        let posts: &[&[u8]] = &[
            b"POST /logout HTTP/1.1\r\nhost: a\r\n\r\n",
            b"PUT / HTTP/1.1\r\n\r\n",
            b"\r\nGET / HTTP/1.1\r\n\r\n",
        ];
        for chunk in [1, 2, 3, 100] {
            assert_eq!(
                done_after(Protocol::Sniff, &h2, chunk),
                done_after(Protocol::Http2, &h2, chunk)
            );
            assert_eq!(
                done_after(Protocol::Sniff, PREFACE, chunk),
                None,
                "preface only"
            );
            for req in posts {
                assert_eq!(
                    done_after(Protocol::Sniff, req, chunk),
                    done_after(Protocol::Http1, req, chunk),
                    "{chunk}: {}",
                    String::from_utf8_lossy(req)
                );
                assert_eq!(
                    done_after(Protocol::Sniff, &req[..req.len() - 1], chunk),
                    None
                );
            }
        }
        // A lone `P` then silence: never done.
        assert_eq!(done_after(Protocol::Sniff, b"P", 1), None);
        // Encrypted bytes are not read at all.
        assert!(FirstRequest::new(Protocol::Opaque).feed(b""));
    }
}
