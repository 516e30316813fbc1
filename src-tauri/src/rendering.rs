//! How WebKitGTK draws the window. Its default is GPU compositing, which without a GPU (no DRM
//! render node: an old laptop with a missing driver, a virtual machine, a display server
//! without GL) runs through Mesa's software rasteriser on the CPU. There the inventory list
//! repaints at about half the speed of WebKit's plain, non-composited drawing
//! (docs/benchmarks.md has both, measured side by side), so the app turns compositing off
//! where no render node exists. `AIDMESH_GPU_COMPOSITING=1` or `=0` decides instead, and a
//! `WEBKIT_DISABLE_COMPOSITING_MODE` set by the user is left as it is.

use std::path::Path;

/// Whether to turn compositing off, from the override (`AIDMESH_GPU_COMPOSITING`), whether
/// WebKit's own variable is already set, and whether the machine has a GPU render node.
pub(crate) fn compositing_off(over: Option<&str>, webkit_var_set: bool, render_node: bool) -> bool {
    if webkit_var_set {
        return false;
    }
    match over {
        Some("1") => false,
        Some("0") => true,
        _ => !render_node,
    }
}

/// Whether `/dev/dri` holds a render node (`renderD128`, ...) this user may open: a GPU the
/// window can draw with. A node without the permission (the user is not in the `render`
/// group) leaves WebKit in software as surely as no node at all.
pub(crate) fn has_render_node(dri: &Path) -> bool {
    std::fs::read_dir(dri)
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("renderD")
                    && std::fs::OpenOptions::new().read(true).write(true).open(e.path()).is_ok()
            })
        })
        .unwrap_or(false)
}

/// Applies the decision for this process and says how the window will draw, for the log. Call
/// first thing in `main`, before GTK starts and before any other thread exists (it sets an
/// environment variable WebKit reads).
pub(crate) fn configure() -> &'static str {
    let over = std::env::var("AIDMESH_GPU_COMPOSITING").ok();
    let webkit_var = std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE");
    if compositing_off(over.as_deref(), webkit_var.is_some(), has_render_node(Path::new("/dev/dri"))) {
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
        "without compositing"
    } else if webkit_var.is_some_and(|v| v != "0") {
        "without compositing (WEBKIT_DISABLE_COMPOSITING_MODE)"
    } else {
        "with WebKit's GPU compositing"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compositing_is_off_only_without_a_gpu_unless_told() {
        assert!(compositing_off(None, false, false), "no render node: software GL, so off");
        assert!(!compositing_off(None, false, true), "a GPU: WebKit's default");
        assert!(!compositing_off(Some("1"), false, false), "forced on");
        assert!(compositing_off(Some("0"), false, true), "forced off");
        assert!(!compositing_off(Some("0"), true, false), "the user's own WebKit setting stands");
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_render_node(dir.path()) && !has_render_node(&dir.path().join("absent")));
        std::fs::write(dir.path().join("card0"), "").unwrap();
        assert!(!has_render_node(dir.path()), "a card without a render node");
        std::fs::create_dir(dir.path().join("renderD129")).unwrap();
        assert!(!has_render_node(dir.path()), "a render node that cannot be opened");
        std::fs::write(dir.path().join("renderD128"), "").unwrap();
        assert!(has_render_node(dir.path()));
    }
}
