//! A reply as the handlers build it, and how it becomes an HTTP response (including the
//! bodies of the endless and cut-off faults). A leaf the server and every handler use.

use std::fmt;

use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// A reply before it becomes an HTTP response; handlers build these.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    /// Send an endless body instead of `body` (`Fault::EndlessBody`).
    pub endless: bool,
    /// Promise `body` but cut the connection after its first bytes (`Fault::CutMidReply`).
    pub cut: bool,
}

/// How much an endless body sends before it ends after all, so a client without a limit
/// cannot keep the emulator busy forever.
const ENDLESS_LIMIT: usize = 1 << 30;

/// A response body: the reply's text, or filler that goes on (almost) forever.
pub(crate) enum ReplyBody {
    Full(Option<Bytes>),
    Endless {
        sent: usize,
    },
    /// Sends the first part, then fails: hyper aborts the connection mid-body.
    Cut {
        first: Option<Bytes>,
        promised: u64,
    },
}

impl hyper::body::Body for ReplyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        static FILLER: [u8; 64 * 1024] = [b' '; 64 * 1024];
        let frame = match self.get_mut() {
            ReplyBody::Full(bytes) => bytes.take(),
            ReplyBody::Endless { sent } if *sent < ENDLESS_LIMIT => {
                *sent += FILLER.len();
                Some(Bytes::from_static(&FILLER))
            }
            ReplyBody::Endless { .. } => None,
            ReplyBody::Cut { first, .. } => match first.take() {
                Some(bytes) => Some(bytes),
                None => {
                    let cut = std::io::Error::other("connection cut by an injected fault");
                    return std::task::Poll::Ready(Some(Err(cut)));
                }
            },
        };
        std::task::Poll::Ready(frame.map(|data| Ok(hyper::body::Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ReplyBody::Full(None))
    }

    /// Exact for a full reply, so it is sent with `Content-Length` as before.
    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ReplyBody::Full(bytes) => {
                hyper::body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ReplyBody::Endless { .. } => hyper::body::SizeHint::default(),
            ReplyBody::Cut { promised, .. } => hyper::body::SizeHint::with_exact(*promised),
        }
    }
}

impl Reply {
    pub fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "application/json".into(),
            body,
            headers: Vec::new(),
            endless: false,
            cut: false,
        }
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain".into(),
            body: body.to_owned(),
            headers: Vec::new(),
            endless: false,
            cut: false,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    pub fn into_response(self) -> Response<ReplyBody> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = if self.endless {
            ReplyBody::Endless { sent: 0 }
        } else if self.cut {
            let promised = self.body.len() as u64;
            let first = Bytes::from(self.body).slice(..(promised as usize).min(10));
            ReplyBody::Cut {
                first: Some(first),
                promised,
            }
        } else {
            ReplyBody::Full(Some(Bytes::from(self.body)))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        // Empty: none (a reply forwarded from Keycloak without one, such as a 204).
        let content_type = Some(self.content_type.as_str()).filter(|t| !t.is_empty());
        if let Some(v) = content_type.and_then(|t| HeaderValue::from_str(t).ok()) {
            headers.insert(CONTENT_TYPE, v);
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        response
    }
}

/// Returned by the service to make hyper drop the connection without a reply.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}
