//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`, which
//! `scripts/test.sh` installs), with everything it starts killed when the [`Browser`] is dropped,
//! a failing test included.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions, MouseActions, PointerAction};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::servers::free_port;

/// `chromedriver`: `LOGJET_TEST_CHROMEDRIVER`, else Debian's.
pub fn chromedriver_bin() -> PathBuf {
    std::env::var_os("LOGJET_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

/// `chromium`: `LOGJET_TEST_CHROMIUM`, else Debian's.
pub fn chromium_bin() -> PathBuf {
    std::env::var_os("LOGJET_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The workspace's `target/` (or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("tests/ has a parent")
                .join("target")
        })
}

/// Kills chromedriver's process group and any Chromium process using our profile directory.
struct Reaper {
    driver: Option<Child>,
    profile: PathBuf,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(child) = &mut self.driver {
            if let Some(pid) = child.id() {
                // chromedriver leads its own process group (see `spawn`): the whole group goes.
                // A test harness: std has no safe call for this (signals, sysconf, clock_gettime).
                #[allow(unsafe_code)]
                // SAFETY: kill(2) with a negative pid signals that process group only.
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL)
                };
            }
            let _ = child.start_kill();
        }
        // Chromium helpers that left the group: found by our unique --user-data-dir.
        kill_by_cmdline(&self.profile.to_string_lossy());
    }
}

fn kill_by_cmdline(needle: &str) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            // A test harness: std has no safe call for this (signals, sysconf, clock_gettime).
            #[allow(unsafe_code)]
            // SAFETY: kill(2) on a pid whose command line names our private profile directory.
            unsafe {
                libc::kill(pid, libc::SIGKILL)
            };
        }
    }
}

/// A Chromium session.
pub struct Browser {
    pub client: Client,
    _profile: TempDir,
    _reaper: Reaper,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, window `w`×`h`.
    pub async fn start(w: u32, h: u32) -> Browser {
        Browser::start_with(w, h, &[]).await
    }

    /// [`Browser::start`] with extra Chromium arguments (`--force-dark-mode`, say).
    pub async fn start_with(w: u32, h: u32, extra_args: &[&str]) -> Browser {
        let driver_bin = chromedriver_bin();
        assert!(
            driver_bin.exists(),
            "{} not found: install Debian's chromium and chromium-driver (scripts/test.sh does)",
            driver_bin.display()
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let reaper = Reaper {
            driver: Some(driver),
            profile: profile.path().to_path_buf(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_bin(),
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    format!("--window-size={w},{h}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let mut caps = caps;
        if let Some(args) = caps["goog:chromeOptions"]["args"].as_array_mut() {
            args.extend(extra_args.iter().map(|a| json!(a)));
        }
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let start = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if start.elapsed() < Duration::from_secs(20) => {
                    tracing::debug!(error = %e, "waiting for chromedriver");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no Chromium session via chromedriver after 20 s: {e}"),
            }
        };
        let b = Browser {
            client,
            _profile: profile,
            _reaper: reaper,
        };
        b.resize(w, h).await;
        b
    }

    /// Sets the viewport to `w`×`h` CSS pixels.
    pub async fn resize(&self, w: u32, h: u32) {
        self.client
            .set_window_size(w, h)
            .await
            .expect("set window size");
        // The window includes no browser UI in headless mode, but check and correct.
        let inner = self
            .eval("return [window.innerWidth, window.innerHeight];")
            .await;
        let iw = inner[0].as_u64().unwrap_or(w as u64) as i64;
        let ih = inner[1].as_u64().unwrap_or(h as u64) as i64;
        if iw != w as i64 || ih != h as i64 {
            let _ = self
                .client
                .set_window_size(
                    (2 * w as i64 - iw).max(100) as u32,
                    (2 * h as i64 - ih).max(100) as u32,
                )
                .await;
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Runs JavaScript (a function body; `return` a value).
    pub async fn eval(&self, js: &str) -> Value {
        self.client
            .execute(js, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{js}"))
    }

    /// Polls `js` (a function body) until it returns something other than null/false/"".
    pub async fn wait_js(&self, what: &str, js: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let v = self
                .client
                .execute(js, Vec::new())
                .await
                .unwrap_or(Value::Null);
            let done = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if done {
                return v;
            }
            if start.elapsed() > timeout {
                let body = self
                    .client
                    .execute(
                        "return document.body ? document.body.innerText : '';",
                        Vec::new(),
                    )
                    .await
                    .unwrap_or(Value::Null);
                panic!(
                    "timed out after {timeout:?} waiting for {what}\npage text:\n{}",
                    body.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Text of the element matching `css`, or None.
    pub async fn text(&self, css: &str) -> Option<String> {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await
            .ok()?;
        v.as_str().map(str::to_string)
    }

    /// Attribute of the element matching `css`, or None.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
                vec![json!(css), json!(name)],
            )
            .await
            .ok()?;
        v.as_str().map(str::to_string)
    }

    /// Waits until the element matching `css` has attribute `name` equal to `value`.
    pub async fn wait_attr(&self, css: &str, name: &str, value: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let got = self.attr(css, name).await;
            if got.as_deref() == Some(value) {
                return;
            }
            if start.elapsed() > timeout {
                panic!("{css}[{name}] is {got:?}, expected {value:?} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Presses one key (a WebDriver key code, such as `'\u{e007}'` for Enter) on whatever has
    /// the focus.
    pub async fn press(&self, key: char) {
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.expect("key press");
    }

    /// Moves the mouse pointer over the centre of the element matching `css`.
    pub async fn hover(&self, css: &str) {
        let element = self.find(css).await;
        let mouse = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
            element,
            duration: None,
            x: 0.0,
            y: 0.0,
        });
        self.client
            .perform_actions(mouse)
            .await
            .expect("mouse move");
    }

    /// Saves a PNG of the viewport to `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        let png = self.client.screenshot().await.expect("screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the session (the processes go with the [`Browser`] when it is dropped).
    pub async fn close(self) {
        let Browser {
            client,
            _profile,
            _reaper,
        } = self;
        let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    }
}
