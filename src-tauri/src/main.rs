//! The aidmesh desktop app: a thin Tauri shell over `aidmesh-hub`. Commands live in
//! `commands.rs`, one line each over the hub; hub events become the `hub-event` UI event.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod dialog;
mod print;
mod rendering;
mod state;

/// The UI build embedded in this binary (see build.rs): also what makes a new UI build rebuild it.
const UI_FINGERPRINT: &str = env!("AIDMESH_UI_FINGERPRINT");

fn main() {
    let drawing = rendering::configure();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let settings = state::Settings::from_env();
    tracing::info!(ui = UI_FINGERPRINT, store = %settings.store_path().display(), drawing, "starting");
    // The window's own storage (language, theme, paper; WebKit's caches) lives with the hub's
    // data, not in a per-user folder shared by every hub run on this account.
    let webview_data = settings.data_dir.join("webview");
    tauri::Builder::default()
        .setup(move |app| {
            tauri::WebviewWindowBuilder::new(app, "main", tauri::WebviewUrl::default())
                .title("aidmesh")
                .inner_size(1366.0, 768.0)
                .min_inner_size(1024.0, 600.0)
                .data_directory(webview_data)
                .build()?;
            Ok(())
        })
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
