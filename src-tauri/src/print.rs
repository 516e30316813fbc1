//! Saving what the window shows as a PDF on A4 or Letter paper: WebKitGTK's print operation
//! sent to GTK's print-to-file backend, with no dialog. The page's print styles decide the
//! layout, exactly as on a printer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aidmesh_hub::model::Timestamp;

use crate::state::{ApiError, ApiResult};

pub(crate) use crate::edge::Paper;

/// How long a print may take before the app gives up waiting for it.
const PRINT_TIMEOUT: Duration = Duration::from_secs(60);

/// The file a sheet is saved to: `dir/<sheet>-<YYYY-MM-DD-HHMMSS>-<paper>.pdf`, named only from
/// safe characters.
pub(crate) fn pdf_path(dir: &Path, sheet: &str, at: Timestamp, paper: Paper) -> ApiResult<PathBuf> {
    if sheet.is_empty() || !sheet.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::new("invalid", format!("sheet {sheet:?} is not a sheet name (letters, digits, -)")));
    }
    let paper = match paper {
        Paper::A4 => "a4",
        Paper::Letter => "letter",
    };
    Ok(dir.join(format!("{sheet}-{}-{paper}.pdf", at.file_stamp())))
}

/// Prints the window's page into `path` as a PDF and waits until the file is written.
#[cfg(target_os = "linux")]
pub(crate) async fn save_pdf(window: &tauri::WebviewWindow, path: &Path, paper: Paper) -> ApiResult<u64> {
    use gtk::glib;
    // The sheet names people: the file is made readable by this user only before GTK writes
    // into it (GTK keeps a file's mode and takes the umask for a new one).
    let private = |e: std::io::Error| ApiError::new("io", format!("{} cannot be written to: {e}", path.display()));
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(private)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(private)?;
    }
    let uri = glib::filename_to_uri(path, None)
        .map_err(|e| ApiError::new("invalid", format!("{} cannot be written to: {e}", path.display())))?
        .to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    window
        .with_webview(move |wv| {
            use webkit2gtk::PrintOperationExt;
            let op = webkit2gtk::PrintOperation::new(&wv.inner());
            let settings = gtk::PrintSettings::new();
            settings.set_printer("Print to File");
            settings.set(gtk::PRINT_SETTINGS_OUTPUT_FILE_FORMAT, Some("pdf"));
            settings.set(gtk::PRINT_SETTINGS_OUTPUT_URI, Some(&uri));
            let size = gtk::PaperSize::new(Some(match paper {
                Paper::A4 => gtk::PAPER_NAME_A4,
                Paper::Letter => gtk::PAPER_NAME_LETTER,
            }));
            settings.set_paper_size(&size);
            let setup = gtk::PageSetup::new();
            setup.set_paper_size_and_default_margins(&size);
            op.set_print_settings(&settings);
            op.set_page_setup(&setup);
            // Either signal answers once; the operation keeps itself alive while it prints.
            let tx = std::rc::Rc::new(std::cell::RefCell::new(Some(tx)));
            let on_fail = tx.clone();
            op.connect_failed(move |_, e| {
                if let Some(tx) = on_fail.borrow_mut().take() {
                    let _ = tx.send(Err(e.to_string()));
                }
            });
            op.connect_finished(move |_| {
                if let Some(tx) = tx.borrow_mut().take() {
                    let _ = tx.send(Ok(()));
                }
            });
            op.print();
        })
        .map_err(|e| ApiError::new("internal", format!("the window cannot print: {e}")))?;
    let answer = tokio::time::timeout(PRINT_TIMEOUT, rx).await;
    // A print that timed out may still write: its file stays.
    let may_come = answer.is_err();
    let printed = match answer {
        Ok(Ok(Ok(()))) => match std::fs::metadata(path) {
            Ok(m) if m.len() > 0 => Ok(m.len()),
            _ => Err(ApiError::new("print", format!("no PDF was written to {}", path.display()))),
        },
        Ok(Ok(Err(e))) => Err(ApiError::new("print", format!("printing failed: {e}"))),
        Ok(Err(_)) => Err(ApiError::new("print", "printing stopped without an answer")),
        Err(_) => Err(ApiError::new("print", "printing took longer than a minute: try again")),
    };
    if printed.is_err() && !may_come && std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        // The empty file made above, left by a print that failed.
        let _ = std::fs::remove_file(path);
    }
    printed
}

#[cfg(not(target_os = "linux"))]
pub(crate) async fn save_pdf(_: &tauri::WebviewWindow, _: &Path, _: Paper) -> ApiResult<u64> {
    Err(ApiError::new("unsupported", "saving a PDF is built for Linux only: use Print"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_papers() {
        assert_eq!(serde_json::from_str::<Paper>("\"letter\"").unwrap(), Paper::Letter);
        let e = serde_json::from_str::<Paper>("\"a5\"").unwrap_err().to_string();
        assert!(e.contains("a4") && e.contains("letter"), "the error names the papers there are: {e}");
        let at = Timestamp::parse("2026-11-26T08:30:05.250Z").unwrap();
        let p = pdf_path(Path::new("/tmp/x"), "ics-211", at, Paper::A4).unwrap();
        assert_eq!(p, Path::new("/tmp/x/ics-211-2026-11-26-083005-a4.pdf"));
        assert_eq!(pdf_path(Path::new("/tmp"), "../etc", at, Paper::Letter).unwrap_err().code, "invalid");
    }
}
