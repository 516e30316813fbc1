//! The app's commands: each is one call into the hub, with DTOs at the edge. Errors reach the
//! UI as `{code, message}` (see `state::ApiError`). Commands are async: they run on the async
//! runtime, off the window's thread, so a slow query never freezes the window.

use std::path::PathBuf;

use aidmesh_hub::model::{Kind, Timestamp};
use aidmesh_hub::{Config, Hub, InitOptions};
use serde::Serialize;
use serde_json::{Map, Value};
use tauri::{AppHandle, Emitter, State};

use crate::state::{ApiError, ApiResult, AppState};

pub(crate) fn handler() -> impl Fn(tauri::ipc::Invoke) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        status,
        create_hub,
        join_hub,
        unlock,
        invite_create,
        invite_answer,
        overview,
        list,
        count,
        search,
        show,
        template,
        add,
        update,
        amend,
        stock,
        levels,
        suggestions,
        roster,
        ledger,
        peers,
        identity,
        add_peer,
        revoke,
        export_bundle,
        import_bundle,
        export_json,
        change_passphrase,
        save_pdf,
        choose_file,
    ]
}

fn kind(name: &str) -> ApiResult<Kind> {
    Kind::parse(name).map_err(|e| ApiError::new("invalid", e))
}

fn emitter(app: AppHandle) -> impl Fn(Value) + Send + 'static {
    move |v| {
        if let Err(e) = app.emit("hub-event", v) {
            tracing::warn!(error = %e, "cannot send an event to the window");
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Status {
    store_exists: bool,
    unlocked: bool,
    store_path: String,
}

#[tauri::command]
async fn status(state: State<'_, AppState>) -> ApiResult<Status> {
    let path = state.settings.store_path();
    let unlocked = state.running.lock().map(|g| g.is_some()).unwrap_or(false);
    Ok(Status { store_exists: path.exists(), unlocked, store_path: path.display().to_string() })
}

fn check_new_passphrase(p: &str) -> ApiResult<()> {
    if p.chars().count() < 8 {
        return Err(ApiError::new("invalid", "the passphrase needs at least 8 characters"));
    }
    Ok(())
}

fn check_handle(handle: &str) -> ApiResult<()> {
    if handle.trim().is_empty() {
        return Err(ApiError::new("invalid", "your handle (a nickname, not your legal name) is required"));
    }
    Ok(())
}

/// First start: a new store and a new coalition, founded by this hub.
#[tauri::command]
async fn create_hub(
    app: AppHandle,
    state: State<'_, AppState>,
    hub_name: String,
    location: String,
    handle: String,
    passphrase: String,
) -> ApiResult<()> {
    let hub = new_store(&state, &hub_name, location, &handle, &passphrase)?;
    state.start(hub, emitter(app)).await
}

/// A new store for a first start, after checking what the coordinator typed.
fn new_store(state: &AppState, hub_name: &str, location: String, handle: &str, passphrase: &str) -> ApiResult<Hub> {
    if hub_name.trim().is_empty() {
        return Err(ApiError::new("invalid", "the hub name is required"));
    }
    check_handle(handle)?;
    check_new_passphrase(passphrase)?;
    std::fs::create_dir_all(&state.settings.data_dir)
        .map_err(|e| ApiError::new("io", format!("cannot create {}: {e}", state.settings.data_dir.display())))?;
    let opts = InitOptions { hub_name: hub_name.trim().into(), location };
    Ok(Hub::init(&state.settings.store_path(), passphrase, &opts, Config::system(handle.trim()))?)
}

/// First start by invite: checks the code, creates the store, shows the confirmation code (the
/// `hub-event` {type: "join", confirmation}), and once the inviting coordinator confirms, adopts
/// the coalition and dials the inviting hub. If joining fails, the new store is removed again.
#[tauri::command]
async fn join_hub(
    app: AppHandle,
    state: State<'_, AppState>,
    code: String,
    hub_name: String,
    location: String,
    handle: String,
    passphrase: String,
) -> ApiResult<()> {
    let invite =
        aidmesh_node::invite::parse_invite(&code).map_err(|e| ApiError::new("invalid", format!("invite code: {e}")))?;
    let path = state.settings.store_path();
    let mut hub = new_store(&state, &hub_name, location, &handle, &passphrase)?;
    let identity = hub.identity();
    let show = emitter(app.clone());
    let joined = aidmesh_node::invite::join(&identity, &invite, hub_name.trim(), |c| {
        show(serde_json::json!({"type": "join", "confirmation": c}))
    })
    .await
    .map_err(|e| ApiError::new("join", e))
    .and_then(|w| {
        aidmesh_node::invite::adopt(&mut hub, &w).map(|_| w).map_err(|e| ApiError::new("join", e.to_string()))
    });
    let welcome = match joined {
        Ok(w) => w,
        Err(e) => {
            drop(hub);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            return Err(e);
        }
    };
    state.start(hub, emitter(app)).await?;
    if let Some(peer) = welcome.peer.and_then(|p| p.parse().ok()) {
        state.with_running(|r| r.dialer.dial(peer))?;
    }
    Ok(())
}

/// An invite step that failed (not an admin, no address to advertise, admission refused).
fn invite_error(e: anyhow::Error) -> ApiError {
    ApiError::new("invite", e.to_string())
}

#[derive(Serialize)]
pub(crate) struct InviteDto {
    code: String,
    qr_svg: String,
    expires_min: u32,
}

/// Opens a one-time invite. When a hub answers, `hub-event` {type: "invite", state: "pending",
/// name, joiner, confirmation} asks the coordinator to compare codes ([`invite_answer`]).
#[tauri::command]
async fn invite_create(
    app: AppHandle,
    state: State<'_, AppState>,
    minutes: u32,
    advertise: Option<String>,
) -> ApiResult<InviteDto> {
    let identity = state.with_hub(|h| Ok(aidmesh_node::invite::inviter(h)))?.map_err(invite_error)?;
    let advertise = match advertise.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => Some(a.parse().map_err(|_| ApiError::new("invalid", format!("\"{a}\" is not an IPv4 address")))?),
        None => None,
    };
    let listen = std::net::SocketAddr::new(state.settings.listen.ip(), 0);
    let open = aidmesh_node::invite::open_invite(identity, listen, advertise, minutes.clamp(1, 24 * 60))
        .await
        .map_err(|e| ApiError::new("invalid", e.to_string()))?;
    let dto =
        InviteDto { code: open.invite.code(), qr_svg: open.invite.qr_svg(), expires_min: open.invite.expires_min };
    let emit = emitter(app.clone());
    let reach = *open.invite.addr.ip();
    tauri::async_runtime::spawn(async move {
        use tauri::Manager;
        match open.wait().await {
            Ok(p) => {
                emit(
                    serde_json::json!({"type": "invite", "state": "pending", "name": p.name, "joiner": p.joiner.to_string(), "confirmation": p.confirmation}),
                );
                if let Ok(mut g) = app.state::<AppState>().pending_invite.lock() {
                    *g = Some((p, reach));
                }
            }
            Err(e) => emit(serde_json::json!({"type": "invite", "state": "failed", "message": e.to_string()})),
        }
    });
    Ok(dto)
}

/// The coordinator's decision on a waiting joiner: admit it (and send it the coalition) or not.
#[tauri::command]
async fn invite_answer(state: State<'_, AppState>, accept: bool) -> ApiResult<()> {
    let (pending, reach) = state
        .pending_invite
        .lock()
        .map_err(|_| ApiError::new("internal", "the invite lock is poisoned"))?
        .take()
        .ok_or_else(|| ApiError::new("not_found", "no hub is waiting to join"))?;
    if !accept {
        return pending.answer(None).await.map_err(|e| ApiError::new("network", e));
    }
    // Where the joiner dials this hub's mesh: the invite's address, with the mesh's port.
    let peer = state.with_running(|r| std::net::SocketAddr::new(reach.into(), r.addr.port()).to_string())?;
    let welcome =
        state.with_hub(|h| Ok(aidmesh_node::invite::admit(h, &pending, Some(peer))))?.map_err(invite_error)?;
    pending.answer(Some(welcome)).await.map_err(|e| ApiError::new("network", e))?;
    state.with_running(|r| r.mesh.refresh_members())
}

#[tauri::command]
async fn unlock(app: AppHandle, state: State<'_, AppState>, passphrase: String, handle: String) -> ApiResult<()> {
    check_handle(&handle)?;
    if state.running.lock().map(|g| g.is_some()).unwrap_or(false) {
        return Ok(());
    }
    let t = std::time::Instant::now();
    let hub = Hub::open(&state.settings.store_path(), &passphrase, Config::system(handle.trim()))?;
    let opened = t.elapsed();
    state.start(hub, emitter(app)).await?;
    tracing::info!(open_ms = opened.as_millis() as u64, started_ms = t.elapsed().as_millis() as u64, "unlocked");
    Ok(())
}

#[tauri::command]
async fn overview(state: State<'_, AppState>) -> ApiResult<aidmesh_hub::Overview> {
    let t = std::time::Instant::now();
    let o = state.with_hub(|h| h.overview());
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "overview");
    o
}

#[tauri::command]
async fn list(state: State<'_, AppState>, kind_name: String, limit: usize, offset: usize) -> ApiResult<Vec<Value>> {
    let k = kind(&kind_name)?;
    state.with_hub(|h| {
        let me = h.handle().to_string();
        Ok(h.list(k, limit.min(500), offset)?
            .into_iter()
            .map(|r| Value::Object(r.redacted_for(&me).unwrap_or(r).to_json()))
            .collect())
    })
}

#[tauri::command]
async fn count(state: State<'_, AppState>, kind_name: String) -> ApiResult<i64> {
    let k = kind(&kind_name)?;
    state.with_hub(|h| h.count(k))
}

#[derive(Serialize)]
pub(crate) struct HitDto {
    id: String,
    kind: String,
    label: String,
}

#[tauri::command]
async fn search(
    state: State<'_, AppState>,
    query: String,
    kind_name: Option<String>,
    limit: usize,
) -> ApiResult<Vec<HitDto>> {
    let k = kind_name.as_deref().map(kind).transpose()?;
    state.with_hub(|h| {
        Ok(h.search(&query, k, limit.min(200))?
            .into_iter()
            .map(|x| HitDto { id: x.id, kind: x.kind, label: x.label })
            .collect())
    })
}

#[tauri::command]
async fn show(state: State<'_, AppState>, id: String) -> ApiResult<aidmesh_hub::RecordView> {
    state.with_hub(|h| {
        let me = h.handle().to_string();
        Ok(h.show(&id)?.redacted_for(&me))
    })
}

/// The fields of a kind with their defaults: what a form shows.
#[tauri::command]
async fn template(kind_name: String) -> ApiResult<Map<String, Value>> {
    Ok(kind(&kind_name)?.template().to_fields())
}

#[tauri::command]
async fn add(state: State<'_, AppState>, kind_name: String, fields: Map<String, Value>) -> ApiResult<Value> {
    let k = kind(&kind_name)?;
    state.with_hub(|h| Ok(Value::Object(h.add(k, fields)?.to_json())))
}

#[tauri::command]
async fn update(state: State<'_, AppState>, id: String, fields: Map<String, Value>) -> ApiResult<Value> {
    state.with_hub(|h| Ok(Value::Object(h.update(&id, fields)?.to_json())))
}

#[tauri::command]
async fn amend(
    state: State<'_, AppState>,
    id: String,
    field: String,
    value: Value,
    reason: String,
) -> ApiResult<Value> {
    state.with_hub(|h| Ok(Value::Object(h.amend(&id, &field, value, &reason)?.to_json())))
}

#[tauri::command]
async fn stock(state: State<'_, AppState>, item: Option<String>) -> ApiResult<Vec<aidmesh_hub::StockLine>> {
    state.with_hub(|h| h.stock(item.as_deref()))
}

/// Total stock of each of `items` (the rows a screen shows), in one call.
#[tauri::command]
async fn levels(state: State<'_, AppState>, items: Vec<String>) -> ApiResult<std::collections::BTreeMap<String, i64>> {
    state.with_hub(|h| {
        let mut out = std::collections::BTreeMap::new();
        for i in items.into_iter().take(500) {
            let total = h.stock(Some(&i))?.iter().map(|l| l.quantity).sum();
            out.insert(i, total);
        }
        Ok(out)
    })
}

#[tauri::command]
async fn suggestions(state: State<'_, AppState>, request: Option<String>) -> ApiResult<Value> {
    state.with_hub(|h| Ok(serde_json::to_value(h.suggestions(request.as_deref(), 50)?).unwrap_or(Value::Null)))
}

/// Shifts from `from` for `hours`, with those short of people and double-bookings.
#[tauri::command]
async fn roster(state: State<'_, AppState>, from: String, hours: i64) -> ApiResult<Value> {
    let from = Timestamp::parse(&from).map_err(|e| ApiError::new("invalid", format!("from: {e}")))?;
    let to = Timestamp::from_millis(from.millis() + hours.clamp(1, 24 * 14) * 3_600_000);
    state.with_hub(|h| {
        let (shifts, unfilled, doubles) = h.roster_window(from, to)?;
        let shifts: Vec<Value> = shifts.into_iter().map(|r| Value::Object(r.to_json())).collect();
        Ok(serde_json::json!({"shifts": shifts, "unfilled": unfilled, "double_bookings": doubles}))
    })
}

#[tauri::command]
async fn ledger(state: State<'_, AppState>) -> ApiResult<Value> {
    state.with_hub(|h| {
        // Each waiting expense with what it lacks: who may approve, how many approvals.
        let unapproved: Vec<Value> = h
            .unapproved_expenses_why(200)?
            .into_iter()
            .map(|(r, why)| {
                let mut j = r.to_json();
                j.insert("approval".into(), serde_json::to_value(why).unwrap_or(Value::Null));
                Value::Object(j)
            })
            .collect();
        Ok(serde_json::json!({"totals": h.ledger_totals()?, "unapproved": unapproved}))
    })
}

#[tauri::command]
async fn peers(state: State<'_, AppState>) -> ApiResult<Value> {
    state.with_running(|r| serde_json::json!({"listening": r.addr.to_string(), "peers": r.mesh.peers()}))
}

#[tauri::command]
async fn identity(state: State<'_, AppState>) -> ApiResult<Value> {
    state.with_hub(|h| {
        let members = h.members()?;
        Ok(serde_json::json!({
            "hub_name": h.hub_name()?,
            "fingerprint": h.fingerprint().to_string(),
            "public_key": h.public_key(),
            "founder": h.founder()?,
            "members": members.members.values().collect::<Vec<_>>(),
            "has_coalition_key": h.coalition_key_hex()?.is_some(),
        }))
    })
}

#[tauri::command]
async fn add_peer(state: State<'_, AppState>, addr: String) -> ApiResult<()> {
    let a: std::net::SocketAddr = addr
        .trim()
        .parse()
        .map_err(|_| ApiError::new("invalid", format!("\"{addr}\" is not an address like 192.168.1.20:7420")))?;
    state.with_running(|r| r.dialer.dial(a))
}

#[tauri::command]
async fn revoke(state: State<'_, AppState>, hub: String) -> ApiResult<()> {
    state.with_hub(|h| h.revoke(&hub).map(|_| ()))?;
    state.with_running(|r| r.mesh.refresh_members())
}

/// Writes a USB bundle at `path` (beside it first, then renamed: a pulled stick leaves no half file).
#[tauri::command]
async fn export_bundle(state: State<'_, AppState>, path: String, full: bool) -> ApiResult<aidmesh_hub::BundleSummary> {
    let e = state.with_hub(|h| h.export_bundle(full, &[]))?;
    let path = PathBuf::from(path);
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, &e.bytes)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            ApiError::new("io", format!("cannot write {}: {err}", path.display()))
        })?;
    state.with_hub(|h| h.bundle_written(&e))?;
    Ok(e.summary)
}

#[tauri::command]
async fn import_bundle(state: State<'_, AppState>, path: String) -> ApiResult<Value> {
    let bytes = std::fs::read(&path).map_err(|e| ApiError::new("io", format!("cannot read {path}: {e}")))?;
    let (summary, changed) = state.with_hub(|h| h.import_bundle(&bytes))?;
    Ok(serde_json::json!({"summary": summary, "changed": changed}))
}

#[tauri::command]
async fn export_json(state: State<'_, AppState>, path: String) -> ApiResult<usize> {
    let mut out = Vec::new();
    let n = state.with_hub(|h| h.export_json(&mut out))?;
    std::fs::write(&path, out).map_err(|e| ApiError::new("io", format!("cannot write {path}: {e}")))?;
    Ok(n)
}

#[tauri::command]
async fn change_passphrase(state: State<'_, AppState>, current: String, new: String) -> ApiResult<()> {
    check_new_passphrase(&new)?;
    state.with_hub(|h| h.change_passphrase_checked(&current, &new))
}

#[derive(Serialize)]
struct SavedPdf {
    path: String,
    bytes: u64,
}

/// Saves what the window shows (its print layout) as a PDF in the PDF folder.
#[tauri::command]
async fn save_pdf(
    window: tauri::WebviewWindow,
    state: State<'_, AppState>,
    sheet: String,
    paper: String,
) -> ApiResult<SavedPdf> {
    let paper = crate::print::Paper::parse(&paper)?;
    let now = state.with_hub(|h| Ok(h.now()))?;
    let dir = &state.settings.pdf_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| ApiError::new("io", format!("cannot create the PDF folder {}: {e}", dir.display())))?;
    let path = crate::print::pdf_path(dir, &sheet, now, paper)?;
    let bytes = crate::print::save_pdf(&window, &path, paper).await?;
    tracing::info!(path = %path.display(), bytes, "saved a PDF");
    Ok(SavedPdf { path: path.display().to_string(), bytes })
}

/// The system's file chooser: a path to write a bundle to (`save`) or to read one from.
#[tauri::command]
async fn choose_file(
    window: tauri::WebviewWindow,
    save: bool,
    title: String,
    suggested: Option<String>,
) -> ApiResult<Option<String>> {
    crate::dialog::choose(window, save, title, suggested).await
}
