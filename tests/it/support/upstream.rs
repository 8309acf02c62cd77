//! The application behind a gateway in the gateway tests: answers 200 "upstream ok" to
//! anything and records each request (head and body) before answering, so a test sees a
//! request once it has the reply.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A running upstream, stopped when dropped.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    /// The accept loop polls a stop flag and gives up on its own after `LIFETIME` at the latest.
    pub fn start() -> Upstream {
        const LIFETIME: Duration = Duration::from_secs(300);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + LIFETIME;
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream, &seen2),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(10)),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Upstream { addr, stop, seen, thread: Some(thread) }
    }

    /// Every request it was sent, head then body, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request (head + Content-Length body, bounded by timeouts and size), records it in
/// `seen` (head followed by body) *before* answering, so the test sees it once it has the reply.
fn answer(stream: TcpStream, seen: &Mutex<Vec<String>>) {
    if let Some(request) = read_request(&stream) {
        seen.lock().unwrap().push(request);
        let reply =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nupstream ok";
        let _ = (&stream).write_all(reply.as_bytes());
    }
}

fn read_request(mut stream: &TcpStream) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(64 * 1024);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    Some(format!("{head}{body}"))
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A gateway (nginx, Caddy) run in the foreground by a test: stopped by its PID when dropped,
/// SIGTERM first (nginx's master stops its workers, which a SIGKILL would orphan), a bounded
/// wait, then SIGKILL as a last resort.
pub struct Gateway {
    /// The gateway's process.
    pub child: std::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its temp dir (config, logs).
    pub dir: std::path::PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).stderr(std::process::Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces `from` in the example `example`, where it must occur exactly once, so a change to
/// the example that its test no longer understands fails loudly instead of silently testing
/// something else.
pub fn replace_once(example: &str, text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{example} should contain `{from}` exactly once");
    text.replacen(from, to, 1)
}
