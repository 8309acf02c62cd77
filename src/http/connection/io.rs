//! The byte stream of one connection as actix-http's HTTP/1 dispatcher sees it: the socket
//! (or the TLS stream over it), read only while the connection has room for another request,
//! and shut by a watchdog when a request cycle lasts too long. The dispatcher decodes every
//! complete request in its 128 KiB read buffer at once and queues them, whether or not their
//! answers are being read; holding back the bytes of request K+1 until one of the K before it
//! has been answered keeps that queue at K. The bytes wait in the kernel's socket buffer, and
//! then in the client's: TCP flow control does the rest.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::framing::Framer;
use super::{Alarm, Conn};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A plain or TLS connection.
pub enum Transport {
    /// HTTP over TCP.
    Plain(TcpStream),
    /// HTTPS (boxed: a TLS session is large, and most connections in tests and behind a
    /// proxy are plain).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(tls) => tls.get_ref().0,
        }
    }
}

/// The connection as the dispatcher reads and writes it.
pub struct Paced {
    io: Transport,
    conn: Rc<Conn>,
    framer: Framer,
    /// Bytes read from the socket but not yet handed on: the start of a request the
    /// connection had no room for, and whatever followed it in the same read.
    held: Vec<u8>,
    /// How much of `held` has been handed on.
    held_from: usize,
    /// Set at the first wait, for the cycle's end; fires for the cycle it was set in, which
    /// may since have moved on (it is re-armed then: a busy connection costs one timer reset
    /// per watchdog period, not one per request).
    watchdog: Alarm,
    /// The watchdog fired: every later call fails.
    shut: bool,
}

impl Paced {
    /// The connection `io`, accounted in `conn`.
    pub fn new(io: Transport, conn: Rc<Conn>) -> Paced {
        Paced {
            io,
            conn,
            framer: Framer::default(),
            held: Vec::new(),
            held_from: 0,
            watchdog: Alarm::default(),
            shut: false,
        }
    }

    /// Its state, shared with the requests on it.
    pub fn conn(&self) -> &Rc<Conn> {
        &self.conn
    }

    /// Called where the connection would wait: `Pending`, having armed the watchdog, or the
    /// error that ends the connection once the cycle has lasted too long.
    fn wait<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let Some(limit) = self.conn.watchdog() else { return Poll::Pending };
        if self.watchdog.passed(self.conn.cycle_start() + limit, cx) {
            return Poll::Ready(Err(self.shut_down(limit)));
        }
        Poll::Pending
    }

    fn shut_down(&mut self, limit: std::time::Duration) -> io::Error {
        self.shut = true;
        self.watchdog = Alarm::default();
        // Closed with a reset, not a FIN: the kernel drops what the client never read at once
        // instead of keeping the socket (and its buffers) behind a zero window.
        let _ = self.io.tcp().set_zero_linger();
        log::debug!("connection from {:?} shut: a request cycle outlasted {limit:?}", self.io.tcp().peer_addr().ok());
        shut_error()
    }

    /// Hands on what `held` may give now; `Pending` (parked) when the connection has no room.
    fn read_held(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let held = &self.held[self.held_from..];
        let offered = &held[..held.len().min(buf.remaining())];
        let (taken, started) = self.framer.advance(offered, self.conn.room());
        self.conn.started(started);
        if taken == 0 {
            self.conn.park(cx.waker());
            return self.wait(cx);
        }
        buf.put_slice(&offered[..taken]);
        self.held_from += taken;
        if self.held_from == self.held.len() {
            // Freed rather than kept: only a pipelining connection ever holds bytes back.
            self.held = Vec::new();
            self.held_from = 0;
        }
        Poll::Ready(Ok(()))
    }
}

fn shut_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection watchdog: request cycle too long")
}

impl AsyncRead for Paced {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.shut {
            return Poll::Ready(Err(shut_error()));
        }
        if buf.remaining() == 0 {
            // Nothing can be handed on (the dispatcher always leaves room; this is not waiting).
            return Poll::Ready(Ok(()));
        }
        if this.held_from < this.held.len() {
            return this.read_held(cx, buf);
        }
        if this.framer.between_requests() && this.conn.room() == 0 {
            this.conn.park(cx.waker());
            return this.wait(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                let (taken, started) = this.framer.advance(read, this.conn.room());
                this.conn.started(started);
                if taken < read.len() {
                    this.held.extend_from_slice(&read[taken..]);
                    this.held_from = 0;
                    buf.set_filled(before + taken);
                    if taken == 0 {
                        // Not reached (room was checked above), but an empty read would mean
                        // end of stream to the dispatcher: wait instead.
                        this.conn.park(cx.waker());
                        return this.wait(cx);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.wait(cx),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Paced {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.shut {
            return Poll::Ready(Err(shut_error()));
        }
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Pending => this.wait(cx),
            done => done,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.shut {
            return Poll::Ready(Err(shut_error()));
        }
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.wait(cx),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.shut {
            return Poll::Ready(Err(shut_error()));
        }
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.wait(cx),
            done => done,
        }
    }

    /// The dispatcher bounds its own shutdown (`DISCONNECT_TIMEOUT`).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Transport::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Transport::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Transport::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(tcp) => tcp.is_write_vectored(),
            Transport::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Transport::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Transport::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}
