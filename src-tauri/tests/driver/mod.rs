//! The real app under Xvfb, driven over WebDriver through tauri-driver (WebKitWebDriver), and
//! `aidmesh` CLI hubs beside it. Everything listens on loopback only; no discovery.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Kills a child process when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn find_tool(name: &str, hint: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".cargo"));
    let candidates = [cargo_home.join("bin").join(name), PathBuf::from("/usr/bin").join(name)];
    for c in candidates {
        if c.exists() {
            return c;
        }
    }
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join(name).exists() {
                return d.join(name);
            }
        }
    }
    panic!("{name} is missing: {hint} (cargo xtask test installs it)");
}

/// A target directory binary of this workspace (built by `cargo test --workspace`).
pub fn workspace_bin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let app = PathBuf::from(env!("CARGO_BIN_EXE_aidmesh-app"));
    let dir = app.parent().unwrap().to_path_buf();
    // The `aidmesh` command of this same source tree and profile (cargo rebuilds only what
    // changed): a stale one would refuse a store of a newer schema.
    BUILT.get_or_init(|| {
        let mut c = Command::new(env!("CARGO"));
        c.args(["build", "--quiet", "-p", "aidmesh-cli"]);
        if dir.ends_with("release") {
            c.arg("--release");
        }
        assert!(c.status().expect("cargo runs").success(), "cannot build the aidmesh command");
    });
    dir.join(name)
}

/// HTTP to the driver, with a time limit: a stuck WebDriver call fails the test instead of
/// hanging it.
fn agent() -> &'static ureq::Agent {
    static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build())
}

/// An X display of our own.
pub struct Display {
    pub name: String,
    _xvfb: Proc,
}

impl Display {
    pub fn start() -> Display {
        let xvfb = find_tool("Xvfb", "apt-get install xvfb");
        for n in 0..50 {
            let num = 90 + (std::process::id() as usize + n) % 400;
            if Path::new(&format!("/tmp/.X11-unix/X{num}")).exists()
                || Path::new(&format!("/tmp/.X{num}-lock")).exists()
            {
                continue;
            }
            let child = Command::new(&xvfb)
                .args([format!(":{num}").as_str(), "-screen", "0", "1366x768x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb starts");
            let p = Proc(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if Path::new(&format!("/tmp/.X11-unix/X{num}")).exists() {
                    return Display { name: format!(":{num}"), _xvfb: p };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("no X display could be started");
    }
}

/// A WebDriver session on the real app binary.
pub struct App {
    base: String,
    pub session: String,
    display: String,
    log: PathBuf,
    _driver: Proc,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl App {
    /// Starts tauri-driver with `env` (which the app inherits) and opens the app.
    pub fn launch(display: &Display, env: &[(&str, &str)]) -> App {
        let driver = find_tool("tauri-driver", "cargo install tauri-driver --version ^2 --locked");
        find_tool("WebKitWebDriver", "apt-get install webkit2gtk-driver");
        let port = free_port();
        let native = free_port();
        // The driver's and the app's messages, for when a test fails.
        static LAUNCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log_path = std::env::temp_dir().join(format!("aidmesh-e2e-app-{}-{n}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).expect("a log file");
        let mut cmd = Command::new(driver);
        cmd.args(["--port", &port.to_string(), "--native-port", &native.to_string()])
            .env("DISPLAY", &display.name)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = Proc(cmd.spawn().expect("tauri-driver starts"));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "tauri-driver did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        let app = std::fs::canonicalize(env!("CARGO_BIN_EXE_aidmesh-app")).unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": app}}}});
        let v: Value =
            agent().post(&format!("{base}/session")).send_json(caps).expect("a session").into_json().unwrap();
        let session = v["value"]["sessionId"].as_str().expect("session id").to_string();
        App { base, session, display: display.name.clone(), log: log_path, _driver: child }
    }

    /// What the driver and the app have printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The app's process: the one running the app's binary below this session's tauri-driver
    /// (tauri-driver starts WebKitWebDriver, which starts the app).
    pub fn pid(&self) -> u32 {
        let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_aidmesh-app")).unwrap();
        let parent_of = |pid: u32| -> Option<u32> {
            // /proc/PID/stat: "pid (name) state ppid ...", the name possibly holding spaces.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
        };
        let driver = self._driver.0.id();
        let below_driver = |mut pid: u32| loop {
            match parent_of(pid) {
                Some(p) if p == driver => return true,
                Some(p) if p > 1 => pid = p,
                _ => return false,
            }
        };
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == binary) && below_driver(*pid)
            })
            .expect("the app's process")
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{}", self.base, self.session, path)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        match agent().post(&self.url(path)).send_json(body) {
            Ok(r) => Ok(r.into_json::<Value>().map_err(|e| e.to_string())?["value"].clone()),
            Err(ureq::Error::Status(_, r)) => Err(r.into_string().unwrap_or_default()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        match agent().get(&self.url(path)).call() {
            Ok(r) => Ok(r.into_json::<Value>().map_err(|e| e.to_string())?["value"].clone()),
            Err(ureq::Error::Status(_, r)) => Err(r.into_string().unwrap_or_default()),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn js(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Runs `script` in the page with `args`; it answers by calling its last argument.
    pub fn js_async(&self, script: &str, args: Value) -> Value {
        self.post("/execute/async", json!({"script": script, "args": args}))
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// The element matching `css`, waiting up to 10 s for it.
    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(v) = self.post("/element", json!({"using": "css selector", "value": css})) {
                if let Some(id) = v[ELEMENT].as_str() {
                    return id.to_string();
                }
            }
            assert!(Instant::now() < deadline, "no element matches {css}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn exists(&self, css: &str) -> bool {
        self.js("return document.querySelector(arguments[0]) !== null", json!([css])).as_bool().unwrap_or(false)
    }

    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.post(&format!("/element/{id}/click"), json!({})).unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types into a field, as a person would (after clearing it).
    /// Empties a field, as deleting its text would (WebDriver's own clear fires no `input`
    /// event, which the screens listen to).
    pub fn clear(&self, css: &str) {
        let id = self.find(css);
        self.post(&format!("/element/{id}/clear"), json!({})).unwrap_or_else(|e| panic!("clear {css}: {e}"));
        self.js(
            "const e = document.querySelector(arguments[0]); e.dispatchEvent(new Event('input', {bubbles: true}));",
            json!([css]),
        );
    }

    pub fn fill(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.post(&format!("/element/{id}/clear"), json!({})).unwrap_or_else(|e| panic!("clear {css}: {e}"));
        self.post(&format!("/element/{id}/value"), json!({"text": text})).unwrap_or_else(|e| panic!("type {css}: {e}"));
    }

    /// Sends keys to whatever has the focus, as a keyboard would (WebDriver key codes: "\u{E004}"
    /// is Tab, "\u{E007}" Enter).
    /// Sent as WebDriver key actions, so they go where the focus is (inside a date field's parts
    /// too), as a keyboard's would.
    pub fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [json!({"type": "keyDown", "value": c.to_string()}), json!({"type": "keyUp", "value": c.to_string()})]
            })
            .collect();
        self.post("/actions", json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}))
            .unwrap_or_else(|e| panic!("keys: {e}"));
    }

    /// Presses Tab until `matches` (a script's expression over `e`, the focused element) holds;
    /// panics after `most` presses.
    pub fn tab_to(&self, matches: &str, most: usize) {
        let mut seen = Vec::new();
        for _ in 0..most {
            self.keys("\u{E004}");
            let v = self.js(
                &format!("const e = document.activeElement; return [!!(e && ({matches})), e ? e.outerHTML.slice(0, 60) : '']"),
                json!([]),
            );
            if v[0] == json!(true) {
                return;
            }
            seen.push(v[1].as_str().unwrap_or_default().to_string());
        }
        panic!("Tab never reached an element where {matches}; it went through {seen:#?}");
    }

    /// Chooses an option of a select by its value.
    pub fn choose(&self, css: &str, value: &str) {
        self.find(&format!("{css} option[value=\"{value}\"]"));
        self.js(
            "const s = document.querySelector(arguments[0]); s.value = arguments[1]; s.dispatchEvent(new Event('change', {bubbles: true})); return s.value",
            json!([css, value]),
        );
    }

    /// The value of the first option of a select that is not empty.
    pub fn first_option(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.js(
                "const o = [...document.querySelectorAll(arguments[0] + ' option')].find(o => o.value); return o ? o.value : null",
                json!([css]),
            );
            if let Some(s) = v.as_str() {
                return s.to_string();
            }
            assert!(Instant::now() < deadline, "{css} offers no choice");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.get(&format!("/element/{id}/text")).map(|v| v.as_str().unwrap_or_default().to_string()).unwrap_or_default()
    }

    /// Waits until `cond(text of css)` holds, up to `secs`; returns the text.
    pub fn wait_text(&self, css: &str, secs: u64, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            // A script can fail while the page redraws: try again until the deadline.
            let t = self
                .post("/execute/sync", json!({"script": "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", "args": [css]}))
                .unwrap_or_else(|e| json!(format!("(script failed: {e})")));
            let t = t.as_str().unwrap_or_default().to_string();
            if cond(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "{css} never matched; it reads: {t:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Resizes the window (WebDriver's window rect).
    pub fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height})).unwrap_or_else(|e| panic!("resize: {e}"));
        std::thread::sleep(Duration::from_millis(300));
    }

    /// A screenshot of the window as the X display shows it, as a PNG.
    ///
    /// Read from the display (X's GetImage), not through WebDriver: WebKitWebDriver's own
    /// screenshot never answers on some pages when WebKit draws without compositing (which the
    /// app chooses on a machine without a GPU, as here), although the window paints them.
    pub fn screenshot(&self, path: &Path) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder};
        std::thread::sleep(Duration::from_millis(600));
        let rect = self.get("/window/rect").unwrap_or_else(|e| panic!("the window's position: {e}"));
        let at = |k: &str| rect[k].as_f64().unwrap_or(0.0).max(0.0) as u16;
        let (conn, n) = x11rb::connect(Some(&self.display)).expect("the X display");
        let setup = conn.setup();
        let screen = &setup.roots[n];
        let (x, y) = (at("x"), at("y"));
        let w = at("width").min(screen.width_in_pixels - x);
        let h = at("height").min(screen.height_in_pixels - y);
        let img = conn
            .get_image(ImageFormat::Z_PIXMAP, screen.root, x as i16, y as i16, w, h, !0)
            .expect("GetImage sent")
            .reply()
            .expect("the window's pixels");
        let bpp = setup.pixmap_formats.iter().find(|f| f.depth == img.depth).map(|f| f.bits_per_pixel);
        assert!(
            bpp == Some(32) && setup.image_byte_order == ImageOrder::LSB_FIRST,
            "a {bpp:?}-bit {:?} display: only 32-bit little-endian pixels are read",
            setup.image_byte_order
        );
        // Little-endian 32-bit pixels are B, G, R, unused.
        let rgb: Vec<u8> = img.data.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0]]).collect();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut enc = png::Encoder::new(file, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().and_then(|mut wr| wr.write_image_data(&rgb)).expect("a PNG written");
    }

    /// axe-core's WCAG 2 A/AA violations on the page as it is now.
    pub fn axe(&self) -> Vec<Value> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/node_modules/axe-core/axe.min.js");
        let src = std::fs::read_to_string(&src).expect("axe-core is installed in ui/node_modules (npm ci)");
        self.js(&format!("{src}\nreturn true;"), json!([]));
        let out = self.js_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}})
               .then(r => done(JSON.stringify(r.violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))))
               .catch(e => done('axe failed: ' + e));",
            json!([]),
        );
        let s = out.as_str().unwrap_or_default();
        serde_json::from_str::<Vec<Value>>(s).unwrap_or_else(|_| panic!("{s}"))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = agent().delete(&self.url("")).call();
    }
}

/// The `aidmesh` command on a store, as a coordinator would run it.
pub struct Cli {
    pub store: PathBuf,
    pub handle: String,
}

pub const PASS: &str = "field hub passphrase";

impl Cli {
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(workspace_bin("aidmesh"));
        c.arg("--store").arg(&self.store).env("AIDMESH_PASSPHRASE", PASS).env("AIDMESH_HANDLE", &self.handle);
        c
    }

    pub fn run(&self, args: &[&str]) -> Value {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        assert!(out.status.success(), "aidmesh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// `aidmesh serve` on loopback without discovery; returns the process and its address.
    pub fn serve(&self) -> (Proc, String) {
        let mut child = self
            .cmd()
            .args(["serve", "--listen", "127.0.0.1:0", "--no-discovery"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
        assert!(addr.contains(':'), "serve printed {line:?}");
        (Proc(child), addr)
    }
}
