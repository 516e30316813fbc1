//! The system's file chooser, for where a USB bundle goes or comes from. It only answers a
//! path: the bundle commands then check and use it as they do a typed one.

use crate::state::{ApiError, ApiResult};

/// Asks for a file to write (`save`) or to read; `None` if the coordinator cancelled.
#[cfg(target_os = "linux")]
pub(crate) async fn choose(
    window: tauri::WebviewWindow,
    save: bool,
    title: String,
    suggested: Option<String>,
) -> ApiResult<Option<String>> {
    use gtk::prelude::{FileChooserExt, NativeDialogExt};
    let (tx, rx) = tokio::sync::oneshot::channel();
    let parent = window.clone();
    window
        .run_on_main_thread(move || {
            let action = if save { gtk::FileChooserAction::Save } else { gtk::FileChooserAction::Open };
            let parent = parent.gtk_window().ok();
            let dialog = gtk::FileChooserNative::new(Some(&title), parent.as_ref(), action, None, None);
            dialog.set_modal(true);
            if save {
                dialog.set_do_overwrite_confirmation(true);
                if let Some(name) = suggested.as_deref() {
                    dialog.set_current_name(name);
                }
            }
            let path = match dialog.run() {
                gtk::ResponseType::Accept => dialog.filename(),
                _ => None,
            };
            let _ = tx.send(path);
        })
        .map_err(|e| ApiError::new("internal", format!("the file chooser cannot open: {e}")))?;
    let path = rx.await.map_err(|_| ApiError::new("internal", "the file chooser closed without an answer"))?;
    Ok(path.map(|p| p.display().to_string()))
}

#[cfg(not(target_os = "linux"))]
pub(crate) async fn choose(
    _: tauri::WebviewWindow,
    _: bool,
    _: String,
    _: Option<String>,
) -> ApiResult<Option<String>> {
    Err(ApiError::new("unsupported", "the file chooser is built for Linux only: type the path"))
}
