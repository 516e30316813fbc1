//! The aidmesh desktop app: a thin Tauri shell over `aidmesh-hub`. Commands live in
//! `commands.rs`, one line each over the hub; hub events become the `hub-event` UI event.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod print;
mod state;

/// The UI build embedded in this binary (see build.rs): also what makes a new UI build rebuild it.
const UI_FINGERPRINT: &str = env!("AIDMESH_UI_FINGERPRINT");

fn main() {
    // WebKitGTK draws without GPU compositing unless AIDMESH_GPU_COMPOSITING=1: field laptops are
    // often old or have awkward graphics drivers, and where compositing falls back to software
    // the lists repaint at about half speed (docs/benchmarks.md has both, side by side). Set
    // before GTK starts and before any thread exists.
    #[cfg(target_os = "linux")]
    if std::env::var_os("AIDMESH_GPU_COMPOSITING").is_none_or(|v| v != "1")
        && std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none()
    {
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let settings = state::Settings::from_env();
    tracing::info!(ui = UI_FINGERPRINT, store = %settings.store_path().display(), "starting");
    tauri::Builder::default()
        .manage(state::AppState::new(settings))
        .invoke_handler(commands::handler())
        .build(tauri::generate_context!())
        .expect("the app window could not be created")
        .run(|app, event| {
            if let tauri::RunEvent::Exit = event {
                use tauri::Manager;
                app.state::<state::AppState>().stop();
            }
        });
}
