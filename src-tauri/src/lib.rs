//! The aidmesh desktop app: a thin Tauri shell over `aidmesh-hub`. Commands live in
//! `commands.rs`, one line each over the hub; the types they send are in `edge.rs`, generated
//! for the UI as TypeScript; hub events become the `hub-event` UI event.

mod commands;
mod dialog;
pub mod edge;
mod print;
mod rendering;
mod state;

pub use commands::handler;
pub use state::{AppState, Settings};

/// The UI build embedded in this binary (see build.rs): also what makes a new UI build rebuild it.
const UI_FINGERPRINT: &str = env!("AIDMESH_UI_FINGERPRINT");

/// Runs the app: one window over the hub in the data folder the environment names.
pub fn run() {
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
    let core = commands::handler::<tauri::Wry>();
    let desktop = commands::desktop_handler();
    tauri::Builder::default()
        .setup(move |app| {
            tauri::WebviewWindowBuilder::new(app, "main", tauri::WebviewUrl::default())
                .title("aidmesh")
                .inner_size(1366.0, 768.0)
                .min_inner_size(1024.0, 600.0)
                .data_directory(webview_data)
                .build()?;
            // A stop asked of the process (a shutdown's SIGTERM, Ctrl-C in a terminal) quits as
            // closing the window does: the hub commits what peers sent last and stops.
            let app = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                let stop = match aidmesh_node::stop_requested() {
                    Ok(stop) => stop,
                    Err(e) => return tracing::warn!(error = %e, "a stop asked of the process will not be heard"),
                };
                stop.await;
                tracing::info!("asked to stop");
                app.exit(0);
                // The quit waits for the hub (a bundle import holds it for a minute): asked
                // again, the app stops at once, as it would have without this handler.
                if let Ok(again) = aidmesh_node::stop_requested() {
                    again.await;
                    tracing::warn!("asked to stop again: stopping at once");
                    std::process::exit(1);
                }
            });
            Ok(())
        })
        .manage(state::AppState::new(settings))
        // What needs the real window (printing, the file chooser) apart; every other command is
        // the same for any runtime, which is how the contract tests run them.
        .invoke_handler(move |invoke| match invoke.message.command() {
            "save_pdf" | "choose_file" => desktop(invoke),
            _ => core(invoke),
        })
        .build(tauri::generate_context!())
        .expect("the app window could not be created")
        .run(|app, event| {
            if let tauri::RunEvent::Exit = event {
                use tauri::Manager;
                app.state::<state::AppState>().stop();
            }
        });
}
