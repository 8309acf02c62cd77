//! Driving the real `apikeyd` binary: start it on a free loopback port, wait (bounded) until it
//! says where it listens, talk HTTP/1.1 to it over a plain socket (with typed helpers for the
//! calls tests make over and over), and kill it by PID.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

/// How long a server may take to start before the test fails.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// A running server. Killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Everything the server wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `apikeyd serve --db <db> --bind 127.0.0.1:0` with extra env vars.
    pub fn start(db: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_with_args(db, &[], env)
    }

    /// The root key the server printed at first start, if it printed one.
    pub fn printed_root_key(&self) -> Option<String> {
        let text = self.stderr.lock().unwrap().clone();
        text.lines().find_map(|l| l.strip_prefix("root key: ").map(str::to_owned))
    }

    /// SIGKILL, no shutdown of any kind, and wait for the process to be gone.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Asks the server to stop gracefully (SIGTERM, by PID); does not wait for it to exit.
    pub fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM {}: {status:?}", self.child.id());
    }

    /// One request; returns (status, body).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, String) {
        http(self.addr, method, path, headers, body)
    }

    /// `GET path` with `credential` as a bearer token: the status.
    pub fn get(&self, path: &str, credential: &str) -> u16 {
        let auth = format!("Bearer {credential}");
        self.request("GET", path, &[("Authorization", &auth)], None).0
    }

    /// Creates a key over HTTP (native family) as `by`, with these (path, access) grants (none:
    /// the creator's); returns its id and plaintext.
    pub fn create_key(&self, by: &str, title: &str, grants: &[(&str, &str)]) -> (i64, String) {
        let mut body = json!({"title": title});
        if !grants.is_empty() {
            body["grants"] = grants.iter().map(|(path, access)| json!({"path": path, "access": access})).collect();
        }
        let auth = format!("Bearer {by}");
        let (status, text) = self.request("POST", "/api/v1/keys", &[("Authorization", &auth)], Some(&body.to_string()));
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (v["data"]["id"].as_i64().expect("id"), v["data"]["api_key"].as_str().expect("api_key").to_owned())
    }

    /// Logs `key` in through the clients family; returns the whole answer.
    pub fn login_reply(&self, key: &str) -> Value {
        let (status, text) =
            self.request("POST", "/api/clients/login", &[], Some(&json!({"api_key": key}).to_string()));
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Logs `key` in through the clients family; returns the session token.
    pub fn login(&self, key: &str) -> String {
        self.login_reply(key)["data"]["token"].as_str().unwrap().to_owned()
    }

    /// The verify API's code for `key`.
    pub fn verify_code(&self, key: &str) -> String {
        let (status, body) = self.request("POST", "/api/v1/keys/verify", &[], Some(&json!({"key": key}).to_string()));
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["data"]["code"].as_str().unwrap().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client: one request per connection, `Connection: close`, bounded timeouts.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, String) {
    let (status, _, body) = http_full(addr, method, path, headers, body);
    (status, body)
}

/// [`http`], with the response's headers (names lowercased, in order).
pub fn http_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    http_within(addr, (method, path), headers, body, READ_LIMIT)
}

/// How long [`http`] waits for each read.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// [`http_full`], waiting up to `read_limit` for each read (a WebDriver command that starts a
/// browser or runs a page's script may take longer than a server's answer).
pub fn http_within(
    addr: SocketAddr,
    (method, path): (&str, &str),
    headers: &[(&str, &str)],
    body: Option<&str>,
    read_limit: Duration,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = connect(addr);
    stream.set_read_timeout(Some(read_limit)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    stream.write_all(req.as_bytes()).unwrap();
    let raw = read_response(&mut stream);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (status, headers) = parse_head(head);
    (status, headers, body.to_owned())
}

/// One response's bytes: up to the end of its `Content-Length` body (a peer such as
/// chromedriver may keep the connection open despite `Connection: close`), else to the end of
/// the stream.
fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        if n == 0 {
            return raw;
        }
        raw.extend_from_slice(&chunk[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let (_, headers) = parse_head(&String::from_utf8_lossy(&raw[..end]));
        let length = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse::<usize>().ok());
        if length.is_some_and(|len| raw.len() >= end + 4 + len) {
            return raw;
        }
    }
}

/// A connection to `addr`, with the bounded timeouts every helper here uses (5 s to connect,
/// 10 s per read).
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// A response head (status line and header lines, with or without its blank line): the
/// status (0 if unreadable) and the headers, names lowercased, in order.
pub fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

/// Runs the binary's CLI to completion; returns (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_apikeyd"))
        .args(args)
        .env_remove("APIKEYD_ROOT_KEY")
        .env_remove("APIKEYD_DB")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `cmd` (the binary with whatever arguments, environment and working directory the
/// test chose) and waits, bounded, for it to say where it listens; stderr is collected as
/// [`Server::start`] does. For start-ups `Server::start`'s fixed arguments cannot express.
pub fn start_command(mut cmd: Command) -> Server {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    let sink = Arc::clone(&stderr);
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            // Appended before the address is announced, so every earlier line is visible by then.
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = match rx.recv_timeout(STARTUP_LIMIT) {
        Ok(addr) => addr,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not start: {}", stderr.lock().unwrap());
        }
    };
    Server { child, addr, stderr }
}

/// Runs `cmd` to completion, which must come within `limit`: past it the process is killed
/// by its PID and the test fails (a command expected to refuse to start must not hang the
/// suite by serving instead).
pub fn run_bounded(mut cmd: Command, limit: Duration) -> std::process::Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // Not reaped yet (its waiter is still blocked), so the PID is still this child's.
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            let out = rx.recv().unwrap().unwrap();
            panic!("still running after {limit:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

impl Server {
    /// Like [`Server::start`], with extra command-line arguments after `serve --db <db> --bind
    /// 127.0.0.1:0` (e.g. `--jwt-ttl 5`). `APIKEYD_JWT_TTL` is cleared unless `env` sets it.
    pub fn start_with_args(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_apikeyd"));
        cmd.args(["serve", "--db"]).arg(db).args(["--bind", "127.0.0.1:0"]).args(args);
        cmd.env_remove("APIKEYD_ROOT_KEY").env_remove("APIKEYD_DB").env_remove("APIKEYD_BIND");
        cmd.env_remove("APIKEYD_JWT_TTL");
        cmd.env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        start_command(cmd)
    }

    /// SIGKILLs the server and returns everything it wrote to stderr: waits (bounded) until
    /// the reader thread has seen end of file, so nothing written before the kill is missed.
    pub fn stop_and_collect_stderr(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        // The reader thread holds the other reference to the buffer until the pipe closes.
        let deadline = std::time::Instant::now() + STARTUP_LIMIT;
        while Arc::strong_count(&self.stderr) > 1 {
            assert!(std::time::Instant::now() < deadline, "stderr reader did not finish");
            thread::sleep(Duration::from_millis(10));
        }
        let text = self.stderr.lock().unwrap().clone();
        text
    }
}
