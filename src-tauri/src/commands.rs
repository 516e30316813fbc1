//! The app's commands: each is one call into the hub, typed at the edge (`edge.rs`). Errors
//! reach the UI as `{code, message}` ([`ApiError`]). Commands are async: they run on the async
//! runtime, off the window's thread, so a slow query never freezes the window. Every command
//! but printing and the file chooser works on any Tauri runtime, so the contract tests run
//! these very commands without a window.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aidmesh_hub::model::{views::Source, FlowStatus, GrievanceStatus, Kind, Record, Timestamp};
use aidmesh_hub::{AllocationStep, Config, Hub, InitOptions};
use serde_json::{Map, Value};
use tauri::{AppHandle, Emitter, Runtime, State};

use crate::edge::{self, HubEvent};
use crate::state::{ApiError, ApiResult, AppState};

/// The commands that need no window of their own.
pub fn handler<R: Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static {
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
        allocate,
        step_allocation,
        request_status,
        stock,
        levels,
        suggestions,
        roster,
        ledger,
        peers,
        identity,
        add_peer,
        revoke,
        rotate_secret,
        internet,
        set_internet,
        set_internet_budget,
        export_bundle,
        import_bundle,
        export_json,
        change_passphrase,
        currencies,
        places,
        stored_at,
        authority,
        people_here,
        unlock_person,
        lock_person,
        make_person,
        add_person,
        remove_person,
        set_admin,
        endorse,
        vote_admin,
        key_proof,
        add_key,
        grant,
        contacts,
        set_contact,
        read_contact,
        erase_contact,
        contact_reads,
        grievance_step,
        acknowledge_handoff,
        close_record,
    ]
}

/// The commands that drive the real window: printing and the system's file chooser.
pub(crate) fn desktop_handler() -> impl Fn(tauri::ipc::Invoke<tauri::Wry>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![save_pdf, choose_file]
}

fn kind(name: &str) -> ApiResult<Kind> {
    Kind::parse(name).map_err(|e| ApiError::new("invalid", e.to_string()))
}

fn emitter<R: Runtime>(app: AppHandle<R>) -> impl Fn(HubEvent) + Send + Sync + 'static {
    move |e| {
        if let Err(err) = app.emit("hub-event", e) {
            tracing::warn!(error = %err, "cannot send an event to the window");
        }
    }
}

#[tauri::command]
async fn status(state: State<'_, AppState>) -> ApiResult<edge::Status> {
    let path = state.settings.store_path();
    let unlocked = state.running.lock().map(|g| g.is_some()).unwrap_or(false);
    // A store left by a join that never finished is no hub: the first start is offered again.
    let store_exists = path.exists() && !aidmesh_hub::unfinished_join(&path);
    Ok(edge::Status { store_exists, unlocked, store_path: path.display().to_string() })
}

fn check_handle(handle: &str) -> ApiResult<()> {
    if handle.trim().is_empty() {
        return Err(ApiError::new("invalid", "your handle (a nickname, not your legal name) is required"));
    }
    Ok(())
}

/// First start: a new store and a new coalition, founded by this hub.
#[tauri::command]
async fn create_hub<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    hub_name: String,
    location: String,
    handle: String,
    passphrase: String,
) -> ApiResult<()> {
    // A store left by a join that never finished goes first.
    aidmesh_hub::clear_unfinished_join(&state.settings.store_path())?;
    let hub = new_store(&state, &hub_name, location, &handle, &passphrase)?;
    state.start(hub, emitter(app)).await
}

/// A new store for a first start; the hub checks the name and the passphrase.
/// A new store at the data folder's store path.
fn new_store(state: &AppState, hub_name: &str, location: String, handle: &str, passphrase: &str) -> ApiResult<Hub> {
    check_handle(handle)?;
    aidmesh_hub::check_new_passphrase(passphrase, &[hub_name, handle, &location])?;
    aidmesh_hub::private_dir(&state.settings.data_dir)?;
    let opts = InitOptions { hub_name: hub_name.trim().into(), location, pin: None };
    Ok(Hub::init(&state.settings.store_path(), passphrase, &opts, Config::system(handle.trim()))?)
}

/// First start by invite: checks the code, creates the store, shows the confirmation code (the
/// `hub-event` {type: "join", confirmation}), and once the inviting coordinator confirms, adopts
/// the coalition and dials the inviting hub. If joining fails, the new store is removed again.
#[tauri::command]
async fn join_hub<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    code: String,
    hub_name: String,
    location: String,
    handle: String,
    passphrase: String,
) -> ApiResult<()> {
    let invite =
        aidmesh_node::invite::parse_invite(&code).map_err(|e| ApiError::new("invalid", format!("invite code: {e}")))?;
    // Until the coalition is adopted, the new store is marked as a join: should the app be
    // quit while it waits, the next start offers joining (or founding) again. A hub already
    // there is never marked.
    let path = state.settings.store_path();
    if let Some(dir) = path.parent() {
        aidmesh_hub::private_dir(dir)?;
    }
    aidmesh_hub::clear_unfinished_join(&path)?;
    if path.exists() {
        return Err(aidmesh_hub::Error::Store(aidmesh_hub::StoreError::Exists(path)).into());
    }
    aidmesh_hub::begin_join(&path)?;
    let mut hub = match new_store(&state, &hub_name, location, &handle, &passphrase) {
        Ok(h) => h,
        Err(e) => {
            let _ = aidmesh_hub::join_finished(&path);
            return Err(e);
        }
    };
    let identity = hub.identity();
    let claim = aidmesh_node::invite::claim(&hub);
    let show = emitter(app.clone());
    let joined = aidmesh_node::invite::join(&identity, &invite, hub_name.trim(), claim, |c: &str| {
        show(HubEvent::Join { confirmation: c.to_string() })
    })
    .await
    .map_err(|e| ApiError::new("join", e.to_string()))
    .and_then(|w| {
        aidmesh_node::invite::adopt(&mut hub, &w).map(|_| w).map_err(|e| ApiError::new("join", e.to_string()))
    });
    let welcome = match joined {
        Ok(w) => w,
        Err(e) => {
            if let Err(gone) = hub.discard().and_then(|_| aidmesh_hub::join_finished(&path)) {
                tracing::warn!(error = %gone, "the store made for the join could not be removed");
            }
            return Err(e);
        }
    };
    aidmesh_hub::join_finished(&path)?;
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

/// Opens a one-time invite. When a hub answers, `hub-event` {type: "invite", state: "pending",
/// name, joiner, confirmation} asks the coordinator to compare codes ([`invite_answer`]).
#[tauri::command]
async fn invite_create<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    minutes: u32,
    advertise: Option<String>,
) -> ApiResult<edge::Invite> {
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
        edge::Invite { code: open.invite.code(), qr_svg: open.invite.qr_svg(), expires_min: open.invite.expires_min };
    let emit = emitter(app.clone());
    let reach = *open.invite.addr.ip();
    tauri::async_runtime::spawn(async move {
        use tauri::Manager;
        match open.wait().await {
            Ok(p) => {
                emit(HubEvent::Invite {
                    state: "pending".into(),
                    name: Some(p.name.clone()),
                    joiner: Some(p.joiner.to_string()),
                    confirmation: Some(p.confirmation.clone()),
                    message: None,
                });
                if let Ok(mut g) = app.state::<AppState>().pending_invite.lock() {
                    *g = Some((p, reach));
                }
            }
            Err(e) => emit(HubEvent::Invite {
                state: "failed".into(),
                name: None,
                joiner: None,
                confirmation: None,
                message: Some(e.to_string()),
            }),
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
        return pending.answer(None).await.map_err(|e| ApiError::new("network", e.to_string()));
    }
    // Where the joiner dials this hub's mesh: the invite's address, with the mesh's port.
    let peer = state.with_running(|r| std::net::SocketAddr::new(reach.into(), r.addr.port()).to_string())?;
    let welcome =
        state.with_hub(|h| Ok(aidmesh_node::invite::admit(h, &pending, Some(peer))))?.map_err(invite_error)?;
    pending.answer(Some(welcome)).await.map_err(|e| ApiError::new("network", e.to_string()))?;
    state.with_running(|r| r.mesh.refresh_members())
}

#[tauri::command]
async fn unlock<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    passphrase: String,
    handle: String,
) -> ApiResult<()> {
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
async fn list(
    state: State<'_, AppState>,
    kind_name: String,
    limit: usize,
    offset: usize,
) -> ApiResult<Vec<aidmesh_hub::Listed>> {
    let k = kind(&kind_name)?;
    state.with_hub(|h| h.list(k, limit.min(500), offset))
}

#[tauri::command]
async fn count(state: State<'_, AppState>, kind_name: String) -> ApiResult<i64> {
    let k = kind(&kind_name)?;
    state.with_hub(|h| h.count(k))
}

#[tauri::command]
async fn search(
    state: State<'_, AppState>,
    query: String,
    kind_name: Option<String>,
    limit: usize,
) -> ApiResult<Vec<edge::Hit>> {
    let k = kind_name.as_deref().map(kind).transpose()?;
    state.with_hub(|h| {
        Ok(h.search(&query, k, limit.min(200))?
            .into_iter()
            // A kind this version does not know (written by a newer hub) is left out.
            .filter_map(|x| Some(edge::Hit { kind: Kind::parse(&x.kind).ok()?, id: x.id, label: x.label }))
            .collect())
    })
}

#[tauri::command]
async fn show(state: State<'_, AppState>, id: String) -> ApiResult<aidmesh_hub::RecordView> {
    state.with_hub(|h| h.show(&id))
}

/// The fields of a kind with their defaults: what a form shows.
#[tauri::command]
async fn template(kind_name: String) -> ApiResult<Map<String, Value>> {
    Ok(kind(&kind_name)?.template().to_fields())
}

#[tauri::command]
async fn add(state: State<'_, AppState>, kind_name: String, fields: Map<String, Value>) -> ApiResult<Record> {
    let k = kind(&kind_name)?;
    state.with_hub(|h| h.add(k, fields))
}

#[tauri::command]
async fn update(state: State<'_, AppState>, id: String, fields: Map<String, Value>) -> ApiResult<Record> {
    state.with_hub(|h| h.update(&id, fields))
}

#[tauri::command]
async fn amend(
    state: State<'_, AppState>,
    id: String,
    field: String,
    value: Value,
    reason: String,
) -> ApiResult<Record> {
    state.with_hub(|h| h.amend(&id, &field, value, &reason))
}

#[tauri::command]
async fn allocate(state: State<'_, AppState>, request: String, source: Source, quantity: u64) -> ApiResult<Record> {
    state.with_hub(|h| h.allocate(&request, &source, quantity))
}

#[tauri::command]
async fn step_allocation(state: State<'_, AppState>, id: String, step: AllocationStep) -> ApiResult<Record> {
    state.with_hub(|h| h.advance_allocation(&id, step))
}

#[tauri::command]
async fn request_status(state: State<'_, AppState>, id: String, status: FlowStatus) -> ApiResult<Record> {
    state.with_hub(|h| h.set_request_status(&id, status))
}

#[tauri::command]
async fn stock(state: State<'_, AppState>, item: Option<String>) -> ApiResult<Vec<aidmesh_hub::StockLine>> {
    state.with_hub(|h| h.stock(item.as_deref()))
}

/// Total stock of each of `items` (the rows a screen shows), in one call.
#[tauri::command]
async fn levels(state: State<'_, AppState>, items: Vec<String>) -> ApiResult<BTreeMap<String, i64>> {
    state.with_hub(|h| {
        let mut out = BTreeMap::new();
        for i in items.into_iter().take(500) {
            let total = h.stock(Some(&i))?.iter().map(|l| l.quantity).sum();
            out.insert(i, total);
        }
        Ok(out)
    })
}

#[tauri::command]
async fn suggestions(
    state: State<'_, AppState>,
    request: Option<String>,
) -> ApiResult<Vec<aidmesh_hub::SuggestionView>> {
    // For one request, its best 50; for every open request, the best of each (the screen's
    // list), the most urgent first.
    let per_request = if request.is_some() { 50 } else { 1 };
    state.with_hub(|h| h.suggestions(request.as_deref(), per_request))
}

/// Shifts from `from` for `hours`, with those short of people and double-bookings.
#[tauri::command]
async fn roster(state: State<'_, AppState>, from: String, hours: i64) -> ApiResult<aidmesh_hub::Roster> {
    let from = Timestamp::parse(&from).map_err(|e| ApiError::new("invalid", format!("from: {e}")))?;
    state.with_hub(|h| h.roster(from, hours))
}

#[tauri::command]
async fn ledger(state: State<'_, AppState>) -> ApiResult<aidmesh_hub::Ledger> {
    state.with_hub(|h| h.ledger(200))
}

#[tauri::command]
async fn peers(state: State<'_, AppState>) -> ApiResult<edge::Peers> {
    let names: BTreeMap<String, String> =
        state.with_hub(|h| Ok(h.members()?.members.values().map(|m| (m.id.to_string(), m.name.clone())).collect()))?;
    state.with_running(|r| edge::Peers {
        listening: r.addr.to_string(),
        peers: r
            .mesh
            .peers()
            .into_iter()
            .map(|p| edge::Peer {
                name: names.get(&p.hub).cloned(),
                hub: p.hub,
                addr: p.addr,
                reach: p.reach.into(),
                dialed: p.dialed,
                connected_at: p.connected_at,
                last_synced: p.last_synced,
                waiting: p.backlog.queued,
                held: p.backlog.held,
            })
            .collect(),
    })
}

#[tauri::command]
async fn identity(state: State<'_, AppState>) -> ApiResult<edge::Identity> {
    state.with_hub(|h| {
        let members = h.members()?;
        Ok(edge::Identity {
            hub_name: h.hub_name()?,
            fingerprint: h.fingerprint().to_string(),
            public_key: h.public_key(),
            founder: h.founder()?.name,
            members: members
                .members
                .values()
                .map(|m| edge::Member {
                    id: m.id.to_string(),
                    name: m.name.clone(),
                    role: serde_json::to_value(m.role)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    since: m.since,
                })
                .collect(),
            has_coalition_key: h.has_coalition_key()?,
        })
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

/// Turns the coalition secret over without revoking anyone (admins): how many member hubs it
/// was sealed for.
#[tauri::command]
async fn rotate_secret(state: State<'_, AppState>) -> ApiResult<usize> {
    let hubs = state.with_hub(|h| h.rotate_secret())?;
    state.with_running(|r| r.mesh.refresh_members())?;
    Ok(hubs)
}

/// Whether this hub syncs over the internet, the coalition's relays, the day's budget and use.
#[tauri::command]
async fn internet(state: State<'_, AppState>) -> ApiResult<edge::InternetSync> {
    state.with_hub(|h| internet_sync(h))
}

fn internet_sync(h: &aidmesh_hub::Hub) -> aidmesh_hub::Result<edge::InternetSync> {
    let today = h.now().date().to_string();
    Ok(edge::InternetSync {
        on: h.internet_on()?,
        relays: h.relays()?,
        budget: h.internet_budget()?,
        used_today: h.internet_used(&today)?,
    })
}

/// Sets (or, with none, lifts) the day's budget for internet sync at this hub.
#[tauri::command]
async fn set_internet_budget(state: State<'_, AppState>, bytes: Option<u64>) -> ApiResult<edge::InternetSync> {
    state.with_hub(|h| {
        h.set_internet_budget(bytes)?;
        internet_sync(h)
    })
}

/// Switches sync over the internet on or off at this hub (the running hub follows within a
/// second).
#[tauri::command]
async fn set_internet(state: State<'_, AppState>, on: bool) -> ApiResult<edge::InternetSync> {
    state.with_hub(|h| {
        h.set_internet(on)?;
        internet_sync(h)
    })
}

/// Who may do what in the coalition, as this hub resolves its authority log.
#[tauri::command]
async fn authority(state: State<'_, AppState>) -> ApiResult<aidmesh_hub::Authority> {
    state.with_hub(|h| h.authority())
}

/// The people whose keys this hub keeps (to choose yourself before unlocking).
#[tauri::command]
async fn people_here(state: State<'_, AppState>) -> ApiResult<Vec<aidmesh_hub::LocalPerson>> {
    state.with_hub(|h| h.local_people())
}

/// Unlocks a person's key with their PIN: the app then signs authority work as them.
#[tauri::command]
async fn unlock_person(
    state: State<'_, AppState>,
    who: String,
    pin: Option<String>,
) -> ApiResult<aidmesh_hub::LocalPerson> {
    state.with_hub(|h| h.unlock(&who, pin.as_deref().filter(|p| !p.is_empty())))
}

#[tauri::command]
async fn lock_person(state: State<'_, AppState>) -> ApiResult<()> {
    state.with_hub(|h| {
        h.lock_person();
        Ok(())
    })
}

/// Makes a key for someone new at this hub; an admin then adds them by it.
#[tauri::command]
async fn make_person(
    state: State<'_, AppState>,
    handle: String,
    pin: Option<String>,
) -> ApiResult<aidmesh_hub::LocalPerson> {
    state.with_hub(|h| h.make_person(&handle, pin.as_deref().filter(|p| !p.is_empty())))
}

#[tauri::command]
async fn add_person(state: State<'_, AppState>, key: String, handle: String, admin: bool) -> ApiResult<bool> {
    state.with_hub(|h| h.add_person(&key, &handle, admin))
}

/// Removes a person; `false` while an admin's removal waits for more admins to sign.
#[tauri::command]
async fn remove_person(state: State<'_, AppState>, who: String) -> ApiResult<bool> {
    state.with_hub(|h| h.remove_person(&who))
}

#[tauri::command]
async fn set_admin(state: State<'_, AppState>, who: String, admin: bool) -> ApiResult<bool> {
    state.with_hub(|h| h.set_admin(&who, admin))
}

/// Signs the waiting removal or demotion of an admin; `true` once it has taken effect.
#[tauri::command]
async fn endorse(state: State<'_, AppState>, who: String) -> ApiResult<bool> {
    state.with_hub(|h| h.endorse(&who))
}

#[tauri::command]
async fn key_proof(state: State<'_, AppState>, person: String) -> ApiResult<String> {
    state.with_hub(|h| h.key_proof(&person))
}

#[tauri::command]
async fn add_key(state: State<'_, AppState>, key: String, proof: String) -> ApiResult<()> {
    state.with_hub(|h| h.add_key(&key, &proof))
}

#[tauri::command]
async fn vote_admin(state: State<'_, AppState>, who: String) -> ApiResult<bool> {
    state.with_hub(|h| h.vote_admin(&who))
}

#[tauri::command]
async fn grant(state: State<'_, AppState>, who: String, role: String, give: bool) -> ApiResult<()> {
    state.with_hub(|h| h.grant(&who, &role, give))
}

/// Every volunteer, and every request and offer that names a contact, with what the vault holds.
#[tauri::command]
async fn contacts(state: State<'_, AppState>) -> ApiResult<Vec<aidmesh_hub::ContactView>> {
    state.with_hub(|h| h.contacts())
}

/// Stores a record's contact; kept at this hub only unless the person consented to share it.
#[tauri::command]
async fn set_contact(
    state: State<'_, AppState>,
    record: String,
    fields: Map<String, Value>,
) -> ApiResult<aidmesh_hub::ContactView> {
    state.with_hub(|h| h.set_contact(&record, &fields))
}

/// A record's contact, read as the unlocked person for `reason` (logged before it is shown).
#[tauri::command]
async fn read_contact(state: State<'_, AppState>, record: String, reason: String) -> ApiResult<Map<String, Value>> {
    state.with_hub(|h| h.read_contact(&record, &reason))
}

#[tauri::command]
async fn erase_contact(state: State<'_, AppState>, record: String) -> ApiResult<aidmesh_hub::ContactView> {
    state.with_hub(|h| h.erase_contact(&record))
}

/// Who read which contact at this hub, when and why, newest first.
#[tauri::command]
async fn contact_reads(state: State<'_, AppState>, limit: usize) -> ApiResult<Vec<aidmesh_hub::ContactRead>> {
    state.with_hub(|h| h.contact_reads(limit))
}

/// Records a dated step in handling a grievance, and the status it leaves (readers only).
#[tauri::command]
async fn grievance_step(
    state: State<'_, AppState>,
    id: String,
    note: String,
    status: Option<GrievanceStatus>,
) -> ApiResult<Record> {
    state.with_hub(|h| h.grievance_step(&id, &note, status))
}

/// Marks a handoff read by the next shift, as the person acting here.
#[tauri::command]
async fn acknowledge_handoff(state: State<'_, AppState>, id: String) -> ApiResult<Record> {
    state.with_hub(|h| h.acknowledge_handoff(&id))
}

/// Checks a volunteer out now, or marks a follow-up done (an amendment: both are append-only).
#[tauri::command]
async fn close_record(state: State<'_, AppState>, id: String) -> ApiResult<Record> {
    state.with_hub(|h| h.close(&id))
}

/// Writes a USB bundle at `path` (beside it first, then renamed: a pulled stick leaves no half file).
#[tauri::command]
async fn export_bundle(state: State<'_, AppState>, path: String, full: bool) -> ApiResult<aidmesh_hub::BundleSummary> {
    let e = state.with_hub(|h| h.export_bundle(full, &[]))?;
    aidmesh_hub::write_atomically(&PathBuf::from(&path), |w| Ok(w.write_all(&e.bytes)?))?;
    state.with_hub(|h| h.bundle_written(&e))?;
    Ok(e.summary)
}

#[tauri::command]
async fn import_bundle(state: State<'_, AppState>, path: String) -> ApiResult<edge::Imported> {
    // Read and checked outside the hub: a large file on a slow stick takes a while.
    let bytes =
        aidmesh_hub::read_bundle_file(std::path::Path::new(&path), |head| state.with_hub(|h| h.bundle_key(head)))?;
    let (summary, changed) = state.with_hub(|h| h.import_bundle(bytes))?;
    Ok(edge::Imported { summary, changed })
}

#[tauri::command]
async fn export_json(state: State<'_, AppState>, path: String) -> ApiResult<usize> {
    state.with_hub(|h| aidmesh_hub::write_atomically(&PathBuf::from(&path), |w| h.export_json(w)))
}

#[tauri::command]
async fn change_passphrase(state: State<'_, AppState>, current: String, new: String) -> ApiResult<()> {
    state.with_hub(|h| h.change_passphrase_checked(&current, &new))
}

/// Every place, with how much is stored there.
#[tauri::command]
async fn places(state: State<'_, AppState>) -> ApiResult<Vec<aidmesh_hub::PlaceView>> {
    state.with_hub(|h| h.places())
}

/// What is stored at one place, by item name.
#[tauri::command]
async fn stored_at(state: State<'_, AppState>, place: String) -> ApiResult<Vec<aidmesh_hub::Stored>> {
    state.with_hub(|h| h.stored_at(&place))
}

/// The currencies the ledger takes, with their minor units.
#[tauri::command]
async fn currencies() -> ApiResult<Vec<edge::Currency>> {
    Ok(aidmesh_hub::model::currencies().map(|(code, digits)| edge::Currency { code: code.into(), digits }).collect())
}

/// Saves what the window shows (its print layout) as a PDF in the PDF folder.
#[tauri::command]
async fn save_pdf(
    window: tauri::WebviewWindow,
    state: State<'_, AppState>,
    sheet: String,
    paper: edge::Paper,
) -> ApiResult<edge::SavedPdf> {
    let now = state.with_hub(|h| Ok(h.now()))?;
    let dir = &state.settings.pdf_dir;
    aidmesh_hub::private_dir(dir)?;
    let path = crate::print::pdf_path(dir, &sheet, now, paper)?;
    let bytes = crate::print::save_pdf(&window, &path, paper).await?;
    tracing::info!(path = %path.display(), bytes, "saved a PDF");
    Ok(edge::SavedPdf { path: path.display().to_string(), bytes })
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
