//! The UI's Backend contract (ui/src/lib/contract.ts) against the real hub: the UI's own
//! `tauriBackend` sends the app's own commands (`aidmesh_app::handler`) over a Unix socket to
//! this test, which runs them on Tauri's mock runtime, over a real store in a temporary folder,
//! with the hub's mesh listening on loopback. The same contract runs against the mock in the
//! UI's unit tests: a mock that drifts from the hub fails one of the two.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use aidmesh_app::{AppState, Settings};
use serde_json::{json, Value};
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::{Listener, Manager};

/// One app over an empty data folder.
struct Hub {
    app: tauri::App<MockRuntime>,
    window: tauri::WebviewWindow<MockRuntime>,
    _data: tempfile::TempDir,
}

impl Hub {
    fn new(out: Arc<Mutex<UnixStream>>) -> Hub {
        let data = tempfile::tempdir().unwrap();
        let settings = Settings {
            data_dir: data.path().join("app"),
            listen: "127.0.0.1:0".parse().unwrap(),
            discovery: None,
            pdf_dir: data.path().join("pdf"),
        };
        let app = mock_builder()
            .manage(AppState::new(settings))
            .invoke_handler(aidmesh_app::handler())
            .build(mock_context(noop_assets()))
            .unwrap();
        app.listen_any("hub-event", move |e| {
            let payload: Value = serde_json::from_str(e.payload()).unwrap_or(Value::Null);
            let mut line = json!({ "event": payload }).to_string();
            line.push('\n');
            let _ = out.lock().unwrap().write_all(line.as_bytes());
        });
        let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default()).build().unwrap();
        Hub { app, window, _data: data }
    }

    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let request = tauri::webview::InvokeRequest {
            cmd: cmd.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: tauri::ipc::InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: tauri::test::INVOKE_KEY.to_string(),
        };
        tauri::test::get_ipc_response(&self.window, request).map(|b| b.deserialize::<Value>().unwrap_or(Value::Null))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.app.state::<AppState>().stop();
    }
}

/// Answers the lines of one connection until it closes.
fn serve(conn: UnixStream) {
    let out = Arc::new(Mutex::new(conn.try_clone().unwrap()));
    let mut hub: Option<Hub> = None;
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { break };
        let m: Value = serde_json::from_str(&line).unwrap();
        let (id, cmd, args) = (m["id"].clone(), m["cmd"].as_str().unwrap_or_default(), m["args"].clone());
        let answer = if cmd == "__reset" {
            drop(hub.take());
            hub = Some(Hub::new(out.clone()));
            json!({ "id": id, "ok": null })
        } else {
            match hub.as_ref().expect("__reset first").invoke(cmd, args) {
                Ok(v) => json!({ "id": id, "ok": v }),
                Err(e) => json!({ "id": id, "err": e }),
            }
        };
        let mut text = answer.to_string();
        text.push('\n');
        if out.lock().unwrap().write_all(text.as_bytes()).is_err() {
            break;
        }
    }
}

fn ui() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui")
}

fn vitest(ui: &Path, socket: &Path) -> std::process::Output {
    Command::new("node")
        .current_dir(ui)
        .args(["node_modules/vitest/vitest.mjs", "run", "--reporter=verbose", "src/lib/contract.test.ts"])
        .env("AIDMESH_CONTRACT_SOCKET", socket)
        .env("AIDMESH_CONTRACT_ONLY", "hub")
        .output()
        .expect("node runs (cargo xtask test installs the UI's packages)")
}

#[test]
fn the_real_hub_keeps_the_backend_contract() {
    let ui = ui();
    assert!(
        ui.join("node_modules/vitest").is_dir(),
        "the UI's packages are missing: `cargo xtask test` installs them (npm ci in ui/)"
    );
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bridge.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        serve(conn);
    });
    let out = vitest(&ui, &socket);
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the contract failed against the real hub:\n{text}");
    let promises = std::fs::read_to_string(ui.join("src/lib/contract.ts")).unwrap().matches("\n    it(\"").count();
    let passed = text.lines().filter(|l| l.contains("✓") && l.contains("(real hub)")).count();
    assert!(promises > 0 && passed == promises, "all {promises} promises held for the real hub, {passed} did:\n{text}");
    assert!(!text.contains("skipped"), "no contract test is skipped:\n{text}");
    eprintln!("{text}");
    server.join().unwrap();
}
