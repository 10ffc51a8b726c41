//! `HeadGuard`: a socket wrapper that keeps an over-long request line from hyper, which would
//! answer it (past 64 KiB) with a bare 414 of its own. A request line longer than
//! [`MAX_REQUEST_LINE`] is replaced by a short one naming [`TOO_LONG_PATH`], so that the local
//! API answers it like any other error: JSON.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longer than any request line API Gateway accepts (10 KiB), shorter than hyper's limit.
pub const MAX_REQUEST_LINE: usize = 16 * 1024;

/// The path the replaced request line names.
pub const TOO_LONG_PATH: &str = "/.local-api/request-line-too-long";

enum State {
    /// At the start of a request: the line is held back until its end is seen.
    Line(Vec<u8>),
    /// The line was too long and replaced: its rest is dropped up to its end.
    Skipping,
    /// Past the request line: bytes pass through.
    Through,
}

pub struct HeadGuard<S> {
    inner: S,
    state: State,
    /// Bytes ready for hyper (a released line, or the replacement).
    ready: Vec<u8>,
}

impl<S> HeadGuard<S> {
    pub fn new(inner: S) -> Self {
        HeadGuard {
            inner,
            state: State::Line(Vec::new()),
            ready: Vec::new(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if matches!(this.state, State::Through) {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let bytes = read.filled();
            if bytes.is_empty() {
                // End of stream: hand over what was held back; hyper sees the truncation.
                if let State::Line(line) = &mut this.state {
                    this.ready = std::mem::take(line);
                    this.state = State::Through;
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            let end = bytes.iter().position(|&b| b == b'\n');
            match &mut this.state {
                State::Line(line) => {
                    let upto = end.map_or(bytes.len(), |i| i + 1);
                    line.extend_from_slice(&bytes[..upto]);
                    if line.len() > MAX_REQUEST_LINE {
                        let method = line.split(|&b| b == b' ').next().unwrap_or(b"GET").to_vec();
                        this.ready = method;
                        this.ready
                            .extend_from_slice(format!(" {TOO_LONG_PATH} HTTP/1.1\r\n").as_bytes());
                        this.state = State::Skipping;
                    } else if end.is_some() {
                        this.ready = std::mem::take(line);
                        this.state = State::Through;
                    } else {
                        continue;
                    }
                    if end.is_some() && matches!(this.state, State::Skipping) {
                        this.state = State::Through;
                    }
                    this.ready.extend_from_slice(&bytes[upto..]);
                }
                State::Skipping => {
                    if let Some(i) = end {
                        this.ready.extend_from_slice(&bytes[i + 1..]);
                        this.state = State::Through;
                    }
                }
                State::Through => unreachable!("handled above"),
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        // A response is being written, so the request was read whole (the local API reads
        // every body before it answers): the next bytes start a request line.
        if matches!(self.state, State::Through) && self.ready.is_empty() {
            self.state = State::Line(Vec::new());
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn through_guard(input: Vec<u8>) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(&input).await.unwrap();
        drop(client);
        let mut guard = HeadGuard::new(server);
        let mut out = Vec::new();
        guard.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_normal_request_passes_unchanged() {
        let request = b"GET /auth/status/abc HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
        assert_eq!(through_guard(request.clone()).await, request);
    }

    #[tokio::test]
    async fn an_over_long_request_line_is_replaced_and_the_headers_kept() {
        let mut request = b"GET /".to_vec();
        request.extend(std::iter::repeat_n(b'a', 100_000));
        request.extend_from_slice(b" HTTP/1.1\r\nhost: x\r\n\r\n");
        let out = String::from_utf8(through_guard(request).await).unwrap();
        assert_eq!(
            out,
            format!("GET {TOO_LONG_PATH} HTTP/1.1\r\nhost: x\r\n\r\n")
        );
    }
}
