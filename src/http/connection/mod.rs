//! Connections: how apikeyd serves them, and what one connection and one client address may
//! hold (`config::ConnectionLimits`). actix-web's `HttpServer` reads a connection as fast as
//! it can and times only the first request head, so a body that never comes, a second head
//! that never ends, a client that never reads its answers, or one address opening thousands
//! of connections can each hold a connection (and for the pipeliner, memory) without bound.
//! apikeyd therefore serves connections itself, with actix-server and actix-http's HTTP/1
//! service as `HttpServer` does, over a stream of its own ([`io::Paced`]):
//!
//! - **pipelining**: a connection is read only while fewer than `max_pipelined` of its
//!   requests are outstanding ([`framing`] finds where each request ends); a client that
//!   sends requests and never reads the answers stops being read;
//! - **request deadline**: a request's body is read through a clock (`ClockedBody`) that ends
//!   it at the cycle's start + `request_deadline`; the middleware then answers 408 in the
//!   route's envelope and closes the connection;
//! - **watchdog**: a request cycle (from the previous answer's end to this one's) lasting past
//!   `watchdog` shuts the connection, whatever it waits for (a read or a write: the timer is
//!   the stream's own, so it needs no second descriptor of the socket);
//! - **per-address cap**: a connection past `per_address` for its client address is answered
//!   503 to its first request and closed ([`AddressTable`]).
//!
//! Every answer's body is wrapped in a [`Hold`], which marks the request answered when the
//! answer is written (waking a reader held back), and until then keeps the request's original
//! payload alive (in the connection's state, whatever the handler did with its body): a
//! payload still alive then makes actix-http close a connection whose body was not read,
//! instead of draining it with no timer (as it does for a chunked body dropped early).

mod framing;
mod io;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_http::body::{BodySize, MessageBody};
use actix_http::error::PayloadError;
use actix_http::{HttpServiceBuilder, Payload, Request, Response};
use actix_service::{apply_fn_factory, fn_factory, map_config, IntoServiceFactory, Service, ServiceFactory};
use actix_tls::accept::rustls_0_23::{Acceptor, AcceptorService};
use actix_web::dev::{AppConfig, ServiceRequest, ServiceResponse};
use actix_web::rt::net::TcpStream;
use actix_web::web::Bytes;
use futures_core::future::LocalBoxFuture;
use futures_core::Stream;
use tokio::time::{sleep_until, Instant, Sleep};

use crate::config::{
    ConnectionLimits, DISCONNECT_TIMEOUT, KEEP_ALIVE, OVER_CAP_GRACE, REQUEST_HEAD_TIMEOUT, TLS_HANDSHAKE_TIMEOUT,
};
pub use io::{Paced, Transport};

// ---- One connection ----

/// What the stream, the requests and their answers share about one connection. actix-http
/// calls the app for one request of a connection at a time (the next only once the answer
/// before it is written), so the request being served has one set of fields here.
pub struct Conn {
    /// Requests whose first byte was handed to the dispatcher and whose answer is not done.
    outstanding: Cell<u32>,
    max_pipelined: u32,
    /// The dispatcher, while it waits for the connection to have room.
    reader: Cell<Option<Waker>>,
    /// Accept (after TLS), or the end of the previous answer.
    cycle_start: Cell<Instant>,
    request_deadline: Duration,
    watchdog: Option<Duration>,
    over_cap: bool,
    /// Which request is being served (the body stream of an earlier one reads nothing).
    serving: Cell<u64>,
    /// Its original payload, kept until its answer is written.
    body: RefCell<Option<Payload>>,
    /// When its body must have arrived; whether it did not.
    body_deadline: Cell<Instant>,
    body_late: Cell<bool>,
    body_alarm: RefCell<Alarm>,
    _slot: Option<AddressSlot>,
}

impl Conn {
    /// How many more requests may start now.
    fn room(&self) -> u32 {
        self.max_pipelined.saturating_sub(self.outstanding.get())
    }

    fn started(&self, requests: u32) {
        self.outstanding.set(self.outstanding.get() + requests);
    }

    /// Remembers the dispatcher's waker, to wake it when an answer is done.
    fn park(&self, waker: &Waker) {
        let parked = self.reader.take();
        self.reader.set(Some(match parked {
            Some(w) if w.will_wake(waker) => w,
            _ => waker.clone(),
        }));
    }

    /// A request goes to the app; `payload` is its body. Returns its number.
    fn serve(&self, payload: Option<Payload>) -> u64 {
        let serving = self.serving.get() + 1;
        self.serving.set(serving);
        self.body_late.set(false);
        self.body_deadline.set(self.cycle_start() + self.request_deadline);
        self.body.replace(payload);
        serving
    }

    /// An answer is done (or its request failed): its payload goes, the next cycle starts,
    /// and a held-back request may go in.
    fn answered(&self) {
        drop(self.body.take());
        self.outstanding.set(self.outstanding.get().saturating_sub(1));
        self.cycle_start.set(Instant::now());
        if let Some(reader) = self.reader.take() {
            reader.wake();
        }
    }

    fn cycle_start(&self) -> Instant {
        self.cycle_start.get()
    }

    /// The TLS handshake is over: the first request's time starts now.
    fn restart(&self) {
        self.cycle_start.set(Instant::now());
    }

    fn watchdog(&self) -> Option<Duration> {
        if self.over_cap {
            Some(OVER_CAP_GRACE)
        } else {
            self.watchdog
        }
    }
}

/// A connection's [`Conn`], in its on-connect extensions (where every request finds it).
struct ConnRef(Rc<Conn>);

/// What the middleware may ask about the connection of a request.
pub struct RequestConnection(Rc<Conn>);

impl RequestConnection {
    /// The connection of `req`, if it came through this layer (not in-process tests).
    pub fn of(req: &ServiceRequest) -> Option<RequestConnection> {
        req.conn_data::<ConnRef>().map(|c| RequestConnection(Rc::clone(&c.0)))
    }

    /// The connection is one past its address's cap: its request is answered 503.
    pub fn over_cap(&self) -> bool {
        self.0.over_cap
    }

    /// The request's body did not arrive in time (the app met a time-out error reading it).
    pub fn body_was_late(&self) -> bool {
        self.0.body_late.get()
    }
}

/// A timer for a deadline that only ever moves later (a connection's cycles follow each
/// other), polled by one task: made once, re-armed only when it fires for a deadline that
/// has since moved, and not polled again while armed. Per request it costs a comparison,
/// not a timer-wheel insertion and removal.
#[derive(Default)]
struct Alarm {
    sleep: Option<Pin<Box<Sleep>>>,
    /// Polled (with budget) since it was last set, so its wake-up goes to the task.
    armed: bool,
}

impl Alarm {
    /// Whether `deadline` has passed; if not, the task of `cx` will be woken when it may have.
    /// The same task must always ask (a connection's stream and the app on it are polled by
    /// the connection's task).
    fn passed(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        let sleep = match &mut self.sleep {
            Some(sleep) => sleep,
            None => {
                self.armed = false;
                self.sleep.insert(Box::pin(sleep_until(deadline)))
            }
        };
        loop {
            if sleep.deadline() > deadline {
                sleep.as_mut().reset(deadline);
                self.armed = false;
            }
            if self.armed && !sleep.is_elapsed() {
                return false;
            }
            // A poll without task budget returns Pending without registering the timer: only
            // a poll made with budget left has armed it.
            let budget = tokio::task::coop::has_budget_remaining();
            if sleep.as_mut().poll(cx).is_pending() {
                self.armed = budget;
                return false;
            }
            if Instant::now() >= deadline {
                return true;
            }
            sleep.as_mut().reset(deadline);
            self.armed = false;
        }
    }
}

// ---- Client addresses ----

/// Open connections per client address, over all workers.
#[derive(Clone, Default)]
pub struct AddressTable(Arc<Mutex<HashMap<IpAddr, u32>>>);

/// One counted connection; gives its place back when dropped (the connection is gone).
struct AddressSlot {
    table: AddressTable,
    address: IpAddr,
}

impl AddressTable {
    /// A place for one more connection from `address`, unless it holds `cap` already.
    fn acquire(&self, address: IpAddr, cap: u32) -> Option<AddressSlot> {
        let address = counted_as(address);
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(address).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot { table: self.clone(), address })
    }

    /// Connections counted for `address` now.
    pub fn open(&self, address: IpAddr) -> u32 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(&counted_as(address)).copied().unwrap_or(0)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// The address a client is counted as: IPv4 as is (also when it arrives IPv4-mapped on a
/// dual-stack socket), IPv6 by its /64, since one host is normally given a whole /64.
fn counted_as(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// Who may open how many connections, and what each is held to.
#[derive(Clone)]
pub struct Admission {
    limits: ConnectionLimits,
    table: AddressTable,
    /// Proxies, whose connections carry many clients: never capped.
    exempt: Vec<IpAddr>,
}

impl Admission {
    /// Connections held to `limits`; those from `proxies` are not counted per address.
    pub fn new(limits: ConnectionLimits, proxies: &[IpAddr]) -> Admission {
        Admission { limits, table: AddressTable::default(), exempt: proxies.iter().map(|p| p.to_canonical()).collect() }
    }

    /// The state of a connection from `peer`, just accepted.
    fn open(&self, peer: Option<SocketAddr>) -> Rc<Conn> {
        let address = peer.map(|p| p.ip()).filter(|ip| !self.exempt.contains(&ip.to_canonical()));
        let (slot, over_cap) = match (self.limits.per_address, address) {
            (Some(cap), Some(address)) => match self.table.acquire(address, cap) {
                Some(slot) => (Some(slot), false),
                None => (None, true),
            },
            _ => (None, false),
        };
        if over_cap {
            log::debug!("connection from {address:?} is past the per-address cap; answering 503");
        }
        Rc::new(Conn {
            outstanding: Cell::new(0),
            max_pipelined: self.limits.max_pipelined,
            reader: Cell::new(None),
            cycle_start: Cell::new(Instant::now()),
            request_deadline: self.limits.request_deadline,
            watchdog: self.limits.watchdog,
            over_cap,
            serving: Cell::new(0),
            body: RefCell::new(None),
            body_deadline: Cell::new(Instant::now()),
            body_late: Cell::new(false),
            body_alarm: RefCell::new(Alarm::default()),
            _slot: slot,
        })
    }
}

// ---- Requests and their answers ----

/// The request body as the app reads it: the connection's payload for the request being
/// served, ended with an I/O time-out error once the deadline passes while it waits for more.
struct ClockedBody {
    conn: Rc<Conn>,
    serving: u64,
}

impl Stream for ClockedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let conn = &self.conn;
        if conn.serving.get() != self.serving || conn.body_late.get() {
            return Poll::Ready(None);
        }
        let polled = match conn.body.borrow_mut().as_mut() {
            Some(payload) => Pin::new(payload).poll_next(cx),
            None => return Poll::Ready(None),
        };
        if polled.is_pending() && conn.body_alarm.borrow_mut().passed(conn.body_deadline.get(), cx) {
            conn.body_late.set(true);
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body not received in time");
            return Poll::Ready(Some(Err(PayloadError::Io(late))));
        }
        polled
    }
}

pin_project_lite::pin_project! {
    /// An answer's body, holding the request's place among the connection's outstanding
    /// ones (and so its original payload) until the answer is written.
    pub struct Hold<B> {
        #[pin]
        body: B,
        _answer: Option<Answer>,
    }
}

/// One request of a connection, until its answer is done.
struct Answer(Rc<Conn>);

impl Drop for Answer {
    fn drop(&mut self) {
        self.0.answered();
    }
}

impl<B: MessageBody> MessageBody for Hold<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }

    // `try_into_bytes` keeps its default (no): turning the body into bytes would drop the
    // hold before the answer is written.
}

/// The app, with each request's body clocked and each answer's body held. Requests that
/// came without the connection layer (the in-process tests) pass as they are.
pub fn guard_requests<SF, B>(
    app: SF,
) -> impl ServiceFactory<Request, Config = (), Response = Response<Hold<B>>, Error = SF::Error, InitError = SF::InitError>
where
    SF: ServiceFactory<Request, Config = (), Response = ServiceResponse<B>>,
    B: MessageBody + 'static,
{
    apply_fn_factory(app, |mut req: Request, app: &SF::Service| {
        let conn = req.conn_data::<ConnRef>().map(|c| Rc::clone(&c.0));
        if let Some(conn) = &conn {
            match req.take_payload() {
                Payload::None => {
                    conn.serve(None);
                }
                payload => {
                    let serving = conn.serve(Some(payload));
                    let body: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
                        Box::pin(ClockedBody { conn: Rc::clone(conn), serving });
                    *req.payload() = Payload::from(body);
                }
            }
        }
        // Made before the call: if the app fails instead of answering, dropping it still
        // frees the request's place.
        let answer = conn.map(Answer);
        let call = app.call(req);
        async move {
            let res = call.await?;
            Ok(Response::from(res).map_body(|_, body| Hold { body, _answer: answer }))
        }
    })
}

// ---- Serving ----

/// The actix-web config of an app served on `local` (`tls`: over HTTPS), as `HttpServer`
/// makes it. Built with `AppConfig::__priv_test_new`, the one public constructor, which is
/// `#[doc(hidden)]` and exempt from semver (it exists for actix-test); Cargo.lock pins the
/// version, and `the_app_config_says_what_it_was_given` fails if it stops doing this.
/// (`AppConfig::default()` is stable but always says plain HTTP on 127.0.0.1:8080.)
fn app_config(tls: bool, local: SocketAddr) -> AppConfig {
    AppConfig::__priv_test_new(tls, local.to_string(), local)
}

/// The service one worker runs on each TCP connection accepted at `local`: the TLS handshake
/// (with `tls`), then HTTP/1 through [`Paced`], with [`guard_requests`] around the app, held
/// to `admission`. `shutdown` resolves when the server starts a graceful shutdown.
pub fn service<A, SF, B>(
    app: A,
    local: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    admission: Admission,
    shutdown: actix_server::GracefulShutdownSignal,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = (), InitError = ()>
where
    A: IntoServiceFactory<SF, Request>,
    SF: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    SF::Future: 'static,
    SF::Service: 'static,
    <SF::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    let secure = tls.is_some();
    let app = map_config(app.into_factory(), move |()| app_config(secure, local));
    let h1 = HttpServiceBuilder::default()
        // As HttpServer does: idle keep-alive connections close at once on SIGTERM, others after
        // their current answer. (`graceful_shutdown_signal` is `#[doc(hidden)]` in actix-http;
        // actix-web's HttpServer is its one user, and tests/slow_clients.rs checks the effect.)
        .graceful_shutdown_signal(move || {
            let signal = shutdown.clone();
            async move { signal.notified().await }
        })
        .keep_alive(KEEP_ALIVE)
        .client_request_timeout(REQUEST_HEAD_TIMEOUT)
        .client_disconnect_timeout(DISCONNECT_TIMEOUT)
        .h1_allow_half_closed(true)
        .local_addr(local)
        .on_connect_ext(|io: &Paced, ext: &mut actix_web::dev::Extensions| {
            ext.insert(ConnRef(Rc::clone(io.conn())));
        })
        .h1(guard_requests(app));
    let tls = tls.map(|mut config| {
        // What HttpServer offers: HTTP/1.1 first, then any protocols the config names.
        config.alpn_protocols.insert(0, b"http/1.1".to_vec());
        let mut acceptor = Acceptor::new(config);
        acceptor.set_handshake_timeout(TLS_HANDSHAKE_TIMEOUT);
        acceptor
    });
    fn_factory(move || {
        let h1 = h1.new_service(());
        let tls = tls.as_ref().map(|acceptor| ServiceFactory::<TcpStream>::new_service(acceptor, ()));
        let admission = admission.clone();
        async move {
            let h1 = Rc::new(h1.await?);
            let tls = match tls {
                Some(tls) => Some(Rc::new(tls.await?)),
                None => None,
            };
            Ok::<_, ()>(Accept { h1, tls, admission })
        }
    })
}

/// One worker's service on accepted connections.
struct Accept<H> {
    h1: Rc<H>,
    tls: Option<Rc<AcceptorService>>,
    admission: Admission,
}

impl<H> Service<TcpStream> for Accept<H>
where
    H: Service<(Paced, Option<SocketAddr>), Response = ()> + 'static,
{
    type Response = ();
    type Error = ();
    type Future = LocalBoxFuture<'static, Result<(), ()>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        // The TLS acceptor limits handshakes in progress per worker (actix-tls: 256).
        if let Some(tls) = &self.tls {
            if Service::<TcpStream>::poll_ready(&**tls, cx).map_err(|_| ())?.is_pending() {
                return Poll::Pending;
            }
        }
        self.h1.poll_ready(cx).map_err(|_| ())
    }

    fn call(&self, tcp: TcpStream) -> Self::Future {
        let peer = tcp.peer_addr().ok();
        // Counted at accept, before any handshake, so TLS handshakes count against the cap too.
        let conn = self.admission.open(peer);
        let h1 = Rc::clone(&self.h1);
        match &self.tls {
            None => {
                Box::pin(async move { h1.call((Paced::new(Transport::Plain(tcp), conn), peer)).await.map_err(drop) })
            }
            Some(tls) => {
                let handshake = tls.call(tcp);
                Box::pin(async move {
                    let tls = handshake.await.map_err(|e| log::debug!("TLS handshake with {peer:?} failed: {e}"))?;
                    conn.restart();
                    h1.call((Paced::new(Transport::Tls(Box::new(tls)), conn), peer)).await.map_err(drop)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_config_says_what_it_was_given() {
        let local: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        let config = app_config(true, local);
        assert!(config.secure());
        assert_eq!(config.host(), "127.0.0.1:4321");
        assert_eq!(config.local_addr(), local);
        assert!(!app_config(false, local).secure());
    }

    #[test]
    fn an_alarm_wakes_its_task_at_the_deadline_and_follows_it_when_it_moves() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let mut alarm = Alarm::default();
            // Resolves only if the alarm wakes the task: nothing else does.
            let mut wait_for = async |deadline: Instant| {
                let waited =
                    std::future::poll_fn(|cx| if alarm.passed(deadline, cx) { Poll::Ready(()) } else { Poll::Pending });
                tokio::time::timeout(Duration::from_secs(5), waited).await.expect("the alarm never woke the task");
            };
            let start = Instant::now();
            wait_for(start + Duration::from_millis(30)).await;
            assert!(start.elapsed() >= Duration::from_millis(30));
            // A later deadline (the next cycle): the alarm, already fired, is set again.
            let next = Instant::now();
            wait_for(next + Duration::from_millis(40)).await;
            assert!(next.elapsed() >= Duration::from_millis(40));
        });
    }

    #[test]
    fn addresses_are_counted_per_host_and_slots_come_back() {
        let table = AddressTable::default();
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        let first = table.acquire(a, 2).unwrap();
        let _second = table.acquire(mapped, 2).expect("the mapped form is the same client");
        assert!(table.acquire(a, 2).is_none(), "past the cap");
        drop(first);
        assert_eq!(table.open(a), 1);
        assert!(table.acquire(a, 2).is_some(), "a slot came back");
        // One /64 is one client; the next /64 is another.
        let v6: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _x = table.acquire(v6, 1).unwrap();
        assert!(table.acquire(same, 1).is_none());
        assert!(table.acquire(other, 1).is_some());
    }

    #[test]
    fn proxies_are_never_capped() {
        let limits = ConnectionLimits { per_address: Some(1), ..ConnectionLimits::default() };
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let client: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        let admission = Admission::new(limits, &["127.0.0.1".parse().unwrap()]);
        let held: Vec<_> = (0..3).map(|_| admission.open(Some(proxy))).collect();
        assert!(held.iter().all(|c| !c.over_cap));
        let first = admission.open(Some(client));
        let second = admission.open(Some(client));
        assert!(!first.over_cap && second.over_cap);
        assert_eq!(second.watchdog(), Some(OVER_CAP_GRACE));
    }
}
