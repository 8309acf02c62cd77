//! The admin page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver (plain JSON over HTTP, `support::binary`'s client),
//! against the real binary. Logs in by keyboard alone, creates a key by keyboard and reads its
//! plaintext off the page, verifies it over the API, revokes it from the page (accepting the
//! confirm dialog), sees it refused, logs out and finds the session ended. On every page it
//! runs axe-core (no serious or critical violation allowed), walks the tab order (every
//! control must be reached), and writes a screenshot under `target/admin-screenshots/`.
//!
//! Needs `chromium` and `chromedriver`, and axe-core, which the test installs with npm into
//! `target/axe-core/` when it is missing. Without them it prints `SKIPPED admin_browser: …`;
//! with `APIKEYD_REQUIRE_CHROMIUM=1` (CI) it fails instead. chromedriver listens on a free
//! 127.0.0.1 port and is stopped by its PID; Chromium gets a fresh profile directory.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::support::binary::{http_within, run_bounded, Server};
use crate::support::prerequisite::{say, skip_unless_required};

const REQUIRE: &str = "APIKEYD_REQUIRE_CHROMIUM";
/// The axe-core release the check runs (installed with npm into `target/axe-core/`).
const AXE_VERSION: &str = "4.14.1";
/// W3C WebDriver's element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Bounds on waiting: for chromedriver to listen, for a page to show what is awaited.
const START_LIMIT: Duration = Duration::from_secs(30);
const WAIT_LIMIT: Duration = Duration::from_secs(15);
/// One WebDriver command (starting the browser included).
const COMMAND_LIMIT: Duration = Duration::from_secs(90);

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|d| names.iter().map(move |n| d.join(n))).find(|p| p.is_file())
}

/// axe.min.js, installed with npm into `target/axe-core/` if it is not there yet.
fn axe_script() -> Result<String, String> {
    let prefix = target_dir().join("axe-core");
    let script = prefix.join("node_modules/axe-core/axe.min.js");
    if !script.is_file() {
        let npm = find(&["npm"]).ok_or("axe-core is not installed and npm is missing")?;
        std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(npm);
        cmd.args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .arg(format!("axe-core@{AXE_VERSION}"));
        let out = run_bounded(cmd, Duration::from_secs(180));
        if !out.status.success() {
            return Err(format!("npm install axe-core failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    std::fs::read_to_string(&script).map_err(|e| format!("{}: {e}", script.display()))
}

/// chromedriver on a free loopback port, killed by PID when dropped.
struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Driver {
    fn start(bin: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if std::net::TcpStream::connect(driver.addr).is_ok() {
                let (status, _, body) = http_within(driver.addr, ("GET", "/status"), &[], None, COMMAND_LIMIT);
                if status == 200 && body.contains("\"ready\":true") {
                    return driver;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready on {}", driver.addr);
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One browser session.
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = http_within(self.driver.addr, ("DELETE", &path), &[], None, COMMAND_LIMIT);
    }
}

fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let text = body.map(|b| b.to_string());
    let (status, _, reply) = http_within(addr, (method, path), &[], text.as_deref(), COMMAND_LIMIT);
    let value: Value = serde_json::from_str(&reply).unwrap_or_else(|_| panic!("{method} {path}: {status} {reply}"));
    assert_eq!(status, 200, "{method} {path}: {value}");
    value["value"].clone()
}

impl<'a> Browser<'a> {
    fn open(driver: &'a Driver, chromium: &Path) -> Browser<'a> {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1100,760",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": chromium.to_string_lossy(), "args": args}
        }}});
        let value = call(driver.addr, "POST", "/session", Some(caps));
        let session = value["sessionId"].as_str().expect("a session id").to_owned();
        Browser { driver, session, _profile: profile }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(self.driver.addr, method, &format!("/session/{}{path}", self.session), body)
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    fn run(&self, script: &str, args: Value) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    fn path(&self) -> String {
        self.run("return location.pathname;", json!([])).as_str().unwrap_or_default().to_owned()
    }

    fn find(&self, css: &str) -> String {
        let found = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no {css}")).to_owned()
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.cmd("GET", &format!("/element/{id}/text"), None).as_str().unwrap_or_default().to_owned()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Presses keys (WebDriver key codes allowed) into whatever has the focus.
    fn keys(&self, text: &str) {
        let mut actions = Vec::new();
        for c in text.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        self.cmd("POST", "/actions", Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})));
    }

    /// Waits (bounded) until the page's path is `path`.
    fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + WAIT_LIMIT;
        while self.path() != path {
            if Instant::now() >= deadline {
                self.screenshot("failed");
                let text = self.run("return document.body.innerText;", json!([]));
                panic!("still on {} waiting for {path}: {text}", self.path());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) until a confirm dialog is open, then accepts it.
    fn accept_dialog(&self) {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let (status, _, _) = http_within(
                self.driver.addr,
                ("GET", &format!("/session/{}/alert/text", self.session)),
                &[],
                None,
                COMMAND_LIMIT,
            );
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "no confirm dialog opened");
            thread::sleep(Duration::from_millis(50));
        }
        self.cmd("POST", "/alert/accept", Some(json!({})));
    }

    fn screenshot(&self, name: &str) {
        let png = self.cmd("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = target_dir().join("admin-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Runs axe-core in the page: no serious or critical violation.
    fn check_accessibility(&self, axe: &str, page: &str) {
        self.run(axe, json!([]));
        let script = "const done = arguments[arguments.length - 1];\
                      axe.run(document).then(r => done({passes: r.passes.length, violations: r.violations.map(v => \
                      ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))}),\
                      e => done({passes: 0, violations: [{id: 'axe-error', impact: 'critical', help: String(e)}]}));";
        let result = self.cmd("POST", "/execute/async", Some(json!({"script": script, "args": []})));
        let violations = &result["violations"];
        let passes = result["passes"].as_u64().unwrap_or(0);
        assert!(passes > 0, "{page}: axe-core checked nothing: {result}");
        let bad: Vec<&Value> = violations
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(bad.is_empty(), "{page}: axe-core found serious or critical violations: {bad:#?}");
        let minor = violations.as_array().map_or(0, Vec::len);
        say(&format!("admin_browser: {page}: axe-core: {passes} rules passed, 0 serious/critical, {minor} minor"));
    }

    /// Presses Tab until the focus comes round again: every control on the page (link,
    /// button, input, select, textarea) must have been reached. Returns how many were.
    fn walk_tab_order(&self, page: &str) -> usize {
        let controls = self
            .run(
                "const all = document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea');\
                 all.forEach((e, i) => e.setAttribute('data-tab', i));\
                 document.activeElement.blur(); return all.length;",
                json!([]),
            )
            .as_u64()
            .unwrap() as usize;
        let mut reached = std::collections::BTreeSet::new();
        for _ in 0..controls * 2 + 4 {
            self.keys("\u{E004}");
            let at =
                self.run("const a = document.activeElement; return a ? a.getAttribute('data-tab') : null;", json!([]));
            if let Some(i) = at.as_str() {
                if !reached.insert(i.to_owned()) {
                    break;
                }
            }
        }
        assert_eq!(reached.len(), controls, "{page}: Tab reached {} of {controls} controls", reached.len());
        controls
    }

    /// Presses Tab until the element `css` has the focus (bounded).
    fn tab_to(&self, css: &str) {
        for _ in 0..60 {
            let here = self.run("return document.activeElement.matches(arguments[0]);", json!([css]));
            if here == json!(true) {
                return;
            }
            self.keys("\u{E004}");
        }
        panic!("Tab never reached {css}");
    }
}

#[test]
fn the_admin_page_works_in_a_real_browser_by_keyboard_and_passes_axe() {
    let (Some(chromium), Some(chromedriver)) = (
        find(&["chromium", "chromium-browser"]),
        find(&["chromedriver"])
            .or_else(|| Some(PathBuf::from("/usr/lib/chromium/chromedriver")).filter(|p| p.is_file())),
    ) else {
        skip_unless_required(REQUIRE, "admin_browser", "chromium or chromedriver is not installed");
        return;
    };
    let axe = match axe_script() {
        Ok(script) => script,
        Err(why) => {
            skip_unless_required(REQUIRE, "admin_browser", &why);
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("apikeyd.db"), &[]);
    let root = server.printed_root_key().expect("the root key is printed at first start");
    let base = format!("http://{}", server.addr);
    let driver = Driver::start(&chromedriver);
    let browser = Browser::open(&driver, &chromium);

    // Not logged in: the page sends the browser to the login form.
    browser.go(&format!("{base}/admin"));
    browser.wait_for_path("/admin/login");
    browser.screenshot("login");
    browser.check_accessibility(&axe, "login");
    browser.walk_tab_order("login");

    // Log in by keyboard alone: Tab to the key field, type it, Enter.
    browser.go(&format!("{base}/admin/login"));
    browser.tab_to("#api_key");
    browser.keys(&format!("{root}\u{E007}"));
    browser.wait_for_path("/admin");

    // Create a key by keyboard: Tab to the title, type, Enter submits the form.
    browser.go(&format!("{base}/admin/keys/new"));
    browser.screenshot("create");
    browser.check_accessibility(&axe, "create");
    browser.walk_tab_order("create");
    browser.tab_to("#title");
    browser.keys("Made in a browser\u{E007}");
    browser.wait_for_path("/admin/keys");
    let plaintext = browser.text("#plaintext");
    assert!(plaintext.starts_with("sk-") && plaintext.len() == 52, "plaintext read off the page: {plaintext:?}");
    assert!(browser.text(".warning").contains("will not be shown again"));
    browser.click("#copy");
    let said = browser.text("#copy-status");
    assert!(said.starts_with("Copied") || said.starts_with("Selected"), "copy button: {said:?}");
    browser.check_accessibility(&axe, "created");
    browser.walk_tab_order("created");
    // No screenshot holds a plaintext: the page's copy is cut to its display prefix first.
    browser.run(
        "const p = document.getElementById('plaintext'); p.textContent = p.textContent.slice(0, 11) + '…';",
        json!([]),
    );
    browser.screenshot("created");

    // The key works over the API.
    assert_eq!(server.verify_code(&plaintext), "VALID");
    for _ in 0..4 {
        server.verify_code(&plaintext);
    }

    // Every other page: axe, the tab order, a screenshot.
    for (path, name) in [
        ("/admin", "overview"),
        ("/admin/keys", "keys"),
        ("/admin/applications", "applications"),
        ("/admin/audit", "audit"),
    ] {
        browser.go(&format!("{base}{path}"));
        browser.wait_for_path(path);
        browser.screenshot(name);
        browser.check_accessibility(&axe, name);
        browser.walk_tab_order(name);
    }

    // Revoke it from its page: the confirm dialog is accepted, then the key is refused.
    browser.go(&format!("{base}/admin/keys"));
    browser.click("tbody tr:first-child a");
    let key_path = browser.path();
    assert!(key_path.starts_with("/admin/keys/"), "{key_path}");
    browser.screenshot("key");
    browser.check_accessibility(&axe, "key");
    browser.walk_tab_order("key");
    browser.click("#action-revoke");
    browser.accept_dialog();
    let deadline = Instant::now() + WAIT_LIMIT;
    while !browser.text(".badge").contains("revoked") {
        assert!(Instant::now() < deadline, "the page never showed the key revoked");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.verify_code(&plaintext), "REVOKED");
    browser.screenshot("key-revoked");

    // Log out: back at the login form, and the page is closed to the old session.
    browser.click("header form button");
    browser.wait_for_path("/admin/login");
    browser.go(&format!("{base}/admin/keys"));
    browser.wait_for_path("/admin/login");
    let cookies = browser.cmd("GET", "/cookie", None);
    assert_eq!(cookies.as_array().map(Vec::len), Some(0), "the session cookie is gone: {cookies}");
    say(&format!("admin_browser: screenshots in {}", target_dir().join("admin-screenshots").display()));
}
