//! `aidmesh`: the command-line hub. A thin layer of argument parsing and printing over
//! `aidmesh-hub`; everything it does, the desktop app can do through the same API.
//!
//! One process owns a store. When a hub runs (`aidmesh serve`, or the desktop app), a command
//! does not open the store: it sends itself over the owner's control channel
//! (`aidmesh_node::control`) and the owner runs it, with this same code, on its open hub
//! ([`commands`]); what it prints and asks comes back through [`term`].

/// `println!` for the command's output, to wherever the command's terminal is; a closed stdout
/// (`aidmesh list | head`) ends the program quietly instead of panicking.
macro_rules! outln {
    () => {
        $crate::term::out(b"\n")
    };
    ($($t:tt)*) => {
        $crate::term::out(format!("{}\n", format_args!($($t)*)).as_bytes())
    };
}

/// `eprintln!` to the command's terminal.
macro_rules! errln {
    ($($t:tt)*) => {
        $crate::term::err(format!("{}\n", format_args!($($t)*)).as_bytes())
    };
}

mod args;
mod print;
mod secrets;
mod serve;
mod term;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use aidmesh_hub::model::views::Source;
use aidmesh_hub::model::{FlowStatus, Kind};
use aidmesh_hub::{AllocationStep, BundleSummary, Config, Error, Hub, HxlKind, InitOptions, Scale};
use anyhow::{bail, Context, Result};
use clap::Parser;

use aidmesh_node::{control, Owner};
use args::{BundleCmd, Cli, Command, ExportCmd, ImportCmd, InternetArgs, InternetCmd, PersonCmd, VaultCmd};

/// The `aidmesh` program: through the hub that owns the store if one runs, else on its own.
pub fn main() -> ExitCode {
    secrets::take_from_environment();
    let mut cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("AIDMESH_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Ok(cwd) = std::env::current_dir() {
        cli.absolutize(&cwd);
    }
    let store = cli.store.clone().unwrap_or_else(default_store);
    // The hub that runs this command finds the store by its own defaults otherwise.
    cli.store = Some(store.clone());
    // An owner that is starting holds the lock before its channel is open: wait for it a little.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match forward(&store, &cli) {
            Ok(control::Forwarded::Exit(code)) => return ExitCode::from(code.clamp(0, 255) as u8),
            Ok(control::Forwarded::NoOwner) => {}
            Err(e) => {
                errln!("error: {e}");
                return ExitCode::from(1);
            }
        }
        let result = run(clone_cli(&cli), Face::Local);
        let busy = matches!(&result, Err(e) if e.downcast_ref::<Error>().is_some_and(|e| e.code() == "busy"));
        if busy && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        return exit_code(result);
    }
}

/// What a finished command's result means for its exit code, after printing any error.
fn exit_code(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): what it wanted, it has.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn clone_cli(cli: &Cli) -> Cli {
    serde_json::from_value(serde_json::to_value(cli).expect("arguments serialise")).expect("and read back")
}

/// Offers the command to the hub that owns the store, if one runs.
fn forward(store: &Path, cli: &Cli) -> std::io::Result<control::Forwarded> {
    if !control::socket_path(store).exists() {
        return Ok(control::Forwarded::NoOwner);
    }
    cli.files_for_the_owner().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let req = control::Request {
        command: serde_json::to_value(cli).map_err(std::io::Error::other)?,
        stdin_is_terminal: std::io::IsTerminal::is_terminal(&std::io::stdin()),
    };
    let mut secret = |prompt: &str| rpassword::prompt_password(format!("{prompt}: "));
    control::forward(
        store,
        &req,
        control::Local {
            stdout: &mut std::io::stdout(),
            stderr: &mut std::io::stderr(),
            stdin: &mut std::io::stdin().lock(),
            read_secret: &mut secret,
        },
    )
}

/// How the hub that owns a store runs the commands sent to it: the same code as a command
/// run on its own, on the owner's open hub, printing to the command's terminal.
pub fn commands() -> aidmesh_node::Commands {
    Arc::new(|owner: &Owner, req: control::Request, term: Box<dyn control::Terminal>| {
        term::with_remote(term, req.stdin_is_terminal, || {
            let result = serde_json::from_value::<Cli>(req.command)
                .map_err(|e| anyhow::anyhow!("this hub runs another version of aidmesh: {e}"))
                .and_then(|cli| run(cli, Face::Owner(owner)));
            match exit_code(result) {
                c if c == ExitCode::SUCCESS => 0,
                _ => 1,
            }
        })
    })
}

/// Output could not be written. A closed pipe ends the program quietly, like a finished one;
/// anything else (a full disk) is an error.
pub(crate) fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0)
    }
    errln!("error: cannot write the output: {e}");
    std::process::exit(1)
}

/// What opening the store needs.
#[derive(Clone)]
struct Access {
    passphrase_file: Option<PathBuf>,
    handle: String,
}

/// Where a command runs: in its own process, or inside the hub that owns the store.
enum Face<'a> {
    Local,
    Owner(&'a Owner),
}

/// The hub a command works on: opened by the command when it runs on its own (once, on first
/// use), or lent by the owner for as long as a [`HubRef`] is held.
struct Hubs<'a> {
    face: Face<'a>,
    store: PathBuf,
    access: Access,
    own: Option<Hub>,
}

impl<'a> Hubs<'a> {
    fn hub(&mut self) -> Result<HubRef<'_>> {
        match &self.face {
            Face::Local => {
                if self.own.is_none() {
                    self.own = Some(open(&self.store, &self.access)?);
                }
                Ok(HubRef::Own(self.own.as_mut().expect("opened above")))
            }
            Face::Owner(owner) => {
                let mut guard = owner.mesh.lock_hub();
                let previous = Some(Box::new(guard.act_as(&self.access.handle)));
                Ok(HubRef::Lent { guard, previous, listeners: Vec::new() })
            }
        }
    }

    /// The running hub this command was sent to, if it was.
    fn owner(&self) -> Option<&Owner> {
        match &self.face {
            Face::Owner(o) => Some(o),
            Face::Local => None,
        }
    }

    /// The hub itself, for a command that runs it (serve): only a command on its own has one.
    fn take(&mut self, what: &str) -> Result<Hub> {
        if let Face::Owner(_) = self.face {
            bail!(
                "a hub already runs on {} (process {}: `aidmesh serve` or the desktop app): stop it before \
                 `aidmesh {what}`",
                self.store.display(),
                std::process::id()
            );
        }
        match self.own.take() {
            Some(h) => Ok(h),
            None => open(&self.store, &self.access),
        }
    }
}

enum HubRef<'a> {
    Own(&'a mut Hub),
    Lent {
        guard: aidmesh_mesh::net::HubGuard<'a, Hub>,
        previous: Option<Box<aidmesh_hub::Acting>>,
        listeners: Vec<u64>,
    },
}

impl HubRef<'_> {
    /// Subscribes for as long as this reference is held.
    fn listen(&mut self, f: impl FnMut(&aidmesh_hub::Event) + Send + 'static) {
        let id = self.subscribe(f);
        if let HubRef::Lent { listeners, .. } = self {
            listeners.push(id);
        }
    }
}

impl std::ops::Deref for HubRef<'_> {
    type Target = Hub;
    fn deref(&self) -> &Hub {
        match self {
            HubRef::Own(h) => h,
            HubRef::Lent { guard, .. } => guard,
        }
    }
}

impl std::ops::DerefMut for HubRef<'_> {
    fn deref_mut(&mut self) -> &mut Hub {
        match self {
            HubRef::Own(h) => h,
            HubRef::Lent { guard, .. } => guard,
        }
    }
}

impl Drop for HubRef<'_> {
    fn drop(&mut self) {
        if let HubRef::Lent { guard, previous, listeners } = self {
            for id in listeners.drain(..) {
                guard.unsubscribe(id);
            }
            if let Some(p) = previous.take() {
                guard.restore_acting(*p);
            }
        }
    }
}

/// Runs one command: on its own (`Face::Local`), or on the open hub of the owner it was sent to.
fn run(cli: Cli, face: Face<'_>) -> Result<()> {
    let Cli { store, passphrase_file, handle, json, command } = cli;
    let store = store.unwrap_or_else(default_store);
    let owned = matches!(face, Face::Owner(_));
    let mut hubs =
        Hubs { face, store: store.clone(), access: Access { passphrase_file, handle: handle.clone() }, own: None };
    match command {
        Command::Init { .. } if owned => bail!("a store already exists at {}", store.display()),
        Command::Init { name, location } => init(&store, &hubs.access, name, location, json),
        Command::Demo { seed } => demo(&mut hubs, &store, seed, json),
        Command::Overview => overview(&mut hubs, json),
        Command::Add { kind, fields } => add(&mut hubs, &handle, &kind, &fields, json),
        Command::Update { id, fields } => update(&mut hubs, &id, &fields, json),
        Command::Amend { id, field, value, reason } => amend(&mut hubs, &id, &field, value, &reason, json),
        Command::List { kind, limit, offset } => list(&mut hubs, &kind, limit, offset, json),
        Command::Show { id } => show(&mut hubs, &id, json),
        Command::History { id } => history(&mut hubs, &id, json),
        Command::Search { query, kind, limit } => search(&mut hubs, &query, kind, limit, json),
        Command::Stock { item } => stock(&mut hubs, item, json),
        Command::Suggest { request, limit } => suggest(&mut hubs, request, limit, json),
        Command::Allocate { request, offer, item, place, quantity } => {
            allocate(&mut hubs, &request, offer, item, place, quantity, json)
        }
        Command::Step { allocation, step } => step_allocation(&mut hubs, &allocation, &step, json),
        Command::Request { request, action } => request_status(&mut hubs, &request, &action, json),
        Command::GrievanceStep { grievance, note, status } => {
            grievance_step(&mut hubs, &grievance, &note, status, json)
        }
        Command::Acknowledge { handoff } => acknowledge(&mut hubs, &handoff, json),
        Command::Close { id } => close(&mut hubs, &id, json),
        Command::Ledger => ledger(&mut hubs, json),
        Command::Fields { kind } => fields(&kind, json),
        Command::Vault(cmd) => vault(&mut hubs, cmd, json),
        Command::Export(cmd) => export(&mut hubs, cmd),
        Command::Import(cmd) => import(&mut hubs, cmd, json),
        Command::Reindex => reindex(&mut hubs),
        Command::Repair => repair(&mut hubs, json),
        Command::Identity => identity(&mut hubs, json),
        Command::Admit { key, name } => admit(&mut hubs, &handle, &key, &name, json),
        Command::Revoke { hub: who } => revoke_hub(&mut hubs, &handle, &who),
        Command::RotateSecret => rotate_secret(&mut hubs, &handle),
        Command::Person(cmd) => person(&mut *hubs.hub()?, cmd, &handle, json),
        Command::Grant { who, role, revoke } => grant(&mut hubs, &handle, &who, &role, revoke),
        Command::AdoptFounder { code } => adopt_founder(&mut hubs, &code),
        Command::Serve { listen, peer, mdns_interfaces, no_discovery, internet } => {
            serve_headless(&mut hubs, listen, peer, mdns_interfaces, no_discovery, internet)
        }
        Command::Internet(cmd) => internet(&mut hubs, &handle, cmd, json),
        Command::Peers => peers(&mut hubs, json),
        Command::Invite { listen, advertise, minutes, serve_addr } => {
            serve::invite(&mut hubs, listen, advertise, minutes, serve_addr)
        }
        Command::Bundle(cmd) => bundle(&mut hubs, cmd, json),
        Command::Join { code, name } => serve::join(&mut hubs, &code, &name),
        Command::Passphrase => change_passphrase(&mut hubs),
    }
}

// ---------------------------------------------------------------------------------------------
// Making a store

/// `init`: creates a hub store at `store`.
fn init(store: &Path, access: &Access, name: String, location: String, json: bool) -> Result<()> {
    let pass = new_passphrase(&access.passphrase_file)?;
    if let Some(dir) = store.parent() {
        aidmesh_hub::private_dir(dir)?;
    }
    let hub =
        Hub::init(store, &pass, &InitOptions { hub_name: name, location, pin: None }, Config::system(&access.handle))?;
    if json {
        print::json(&serde_json::json!({"hub_id": hub.hub_id(), "store": store}))
    } else {
        outln!("Created hub {} ({}) at {}", hub.hub_name()?, hub.hub_id(), store.display());
        Ok(())
    }
}

/// `demo`: seeds an empty hub with the demo march, creating the store if there is none.
fn demo(hubs: &mut Hubs<'_>, store: &Path, seed: u64, json: bool) -> Result<()> {
    let existed = store.exists();
    let mut fresh = None;
    let mut hub = if existed {
        hubs.hub()?
    } else {
        let pass = new_passphrase(&hubs.access.passphrase_file)?;
        if let Some(dir) = store.parent() {
            aidmesh_hub::private_dir(dir)?;
        }
        let opts = InitOptions { hub_name: "Demo hub".into(), location: "Main square".into(), pin: None };
        HubRef::Own(fresh.insert(Hub::init(store, &pass, &opts, Config::system(&hubs.access.handle))?))
    };
    if hub.count(Kind::Item)? > 0 {
        bail!("the hub at {} already holds records: the demo seeds an empty hub only", store.display());
    }
    let recs = aidmesh_hub::generate(Scale::demo(), seed, hub.now());
    let rows = recs.into_iter().enumerate().map(|(i, r)| (i + 1, Ok(r))).collect();
    let rep = hub.import_records(rows)?;
    // Authority is not imported: the demo's founder signs its policy and records its
    // expenses, so that the ledger has something to approve.
    hub.sign_demo_authority()?;
    if json {
        return print::json(&rep);
    }
    outln!("Seeded {} records of a march with three hubs into {}", rep.imported, store.display());
    for (k, n) in &rep.per_kind {
        outln!("  {n:>5} {k}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Records

/// `overview`: shortages, expiring stock, urgent requests, unfilled shifts, incidents, conflicts.
fn overview(hubs: &mut Hubs<'_>, json: bool) -> Result<()> {
    let hub = hubs.hub()?;
    let ov = hub.overview()?;
    if json {
        print::json(&ov)
    } else {
        print::overview(&hub, &ov)
    }
}

/// `add`: adds a record of `kind` from `FIELD=VALUE` pairs.
fn add(hubs: &mut Hubs<'_>, handle: &str, kind: &str, fields: &[String], json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let kind = Kind::parse(kind).map_err(anyhow::Error::msg)?;
    // These are signed by the person who makes them: unlock them (with their PIN).
    if matches!(kind, Kind::Approval | Kind::RoleGrant | Kind::Policy | Kind::Expense) {
        unlock(&mut hub, handle)?;
    }
    let rec = args::with_fields(fields, |f| hub.add(kind, f))?;
    if json {
        print::json(&rec)
    } else {
        outln!("Added {} {}", kind, rec.id());
        Ok(())
    }
}

/// `update`: changes fields of a record.
fn update(hubs: &mut Hubs<'_>, id: &str, fields: &[String], json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let rec = args::with_fields(fields, |f| hub.update(id, f))?;
    if json {
        print::json(&rec)
    } else {
        outln!("Updated {} {}", rec.kind(), rec.id());
        Ok(())
    }
}

/// `amend`: corrects a field of an append-only record; a value the field refuses as typed
/// JSON is tried again as text.
fn amend(hubs: &mut Hubs<'_>, id: &str, field: &str, value: String, reason: &str, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let v = args::value_of(&value);
    let rec = match hub.amend(id, field, v.clone(), reason) {
        Err(Error::Invalid { .. }) if !v.is_string() => {
            hub.amend(id, field, serde_json::Value::String(value), reason)?
        }
        r => r?,
    };
    if json {
        print::json(&rec)
    } else {
        outln!("Amended {id}: {field} (amendment {})", rec.id());
        Ok(())
    }
}

/// `list`: a page of the records of a kind, newest first.
fn list(hubs: &mut Hubs<'_>, kind: &str, limit: usize, offset: usize, json: bool) -> Result<()> {
    let hub = hubs.hub()?;
    let kind = Kind::parse(kind).map_err(anyhow::Error::msg)?;
    let recs = hub.list(kind, limit, offset)?;
    if json {
        print::json(&recs)
    } else {
        print::list(&recs, hub.count(kind)?, offset)
    }
}

/// `show`: a record with its amendments, conflicts, history and stock.
fn show(hubs: &mut Hubs<'_>, id: &str, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let v = hub.show(id)?;
    if json {
        print::json(&v)
    } else {
        print::show(&v)
    }
}

/// `history`: who changed a record, when and where.
fn history(hubs: &mut Hubs<'_>, id: &str, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let h = hub.history(id)?;
    if json {
        return print::json(&h);
    }
    for l in h {
        outln!("{}  {:<16} hub {}  {}", l.at, print::signed_by(&l), short(&l.hub), short(&l.change));
    }
    Ok(())
}

/// `search`: full-text search, of one kind of record or all.
fn search(hubs: &mut Hubs<'_>, query: &str, kind: Option<String>, limit: usize, json: bool) -> Result<()> {
    let hub = hubs.hub()?;
    let kind = kind.map(|k| Kind::parse(&k)).transpose().map_err(anyhow::Error::msg)?;
    let hits = hub.search(query, kind, limit)?;
    if json {
        return print::json(
            &hits.iter().map(|h| serde_json::json!({"id": h.id, "kind": h.kind, "label": h.label})).collect::<Vec<_>>(),
        );
    }
    if hits.is_empty() {
        outln!("Nothing matches {query:?}.");
    }
    for h in hits {
        outln!("{}  {:<12} {}", h.id, h.kind, h.label);
    }
    Ok(())
}

/// `fields`: the fields of a record kind, with their defaults.
fn fields(kind: &str, json: bool) -> Result<()> {
    let kind = Kind::parse(kind).map_err(anyhow::Error::msg)?;
    let t = kind.template().to_fields();
    if json {
        return print::json(&t);
    }
    outln!("{kind} fields (default in brackets):");
    for (k, v) in t {
        outln!("  {k:<22} [{v}]");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stock, requests and what moves them on

/// `stock`: stock per item and place.
fn stock(hubs: &mut Hubs<'_>, item: Option<String>, json: bool) -> Result<()> {
    let hub = hubs.hub()?;
    let lines = hub.stock(item.as_deref())?;
    if json {
        return print::json(&lines);
    }
    print::stock(&hub, &lines)
}

/// `suggest`: the matching engine's suggested allocations, for one request or all open ones.
fn suggest(hubs: &mut Hubs<'_>, request: Option<String>, limit: usize, json: bool) -> Result<()> {
    let hub = hubs.hub()?;
    let s = hub.suggestions(request.as_deref(), limit)?;
    if json {
        return print::json(&s);
    }
    if s.is_empty() {
        outln!("No suggestions: no open request has a matching offer or stock.");
    }
    for x in s {
        let at = x.place_label.as_deref().map(|p| format!(" at {p}")).unwrap_or_default();
        let reasons: Vec<String> = x.reasons.iter().map(ToString::to_string).collect();
        outln!("{} ← {}{at}: {} of {} still needed", x.request_label, x.source_label, x.quantity, x.needed);
        outln!("    request {}, {}  ({})", x.request, print::source(&x.source), reasons.join(", "));
    }
    Ok(())
}

/// `allocate`: allocates to a request from an offer, or from an item's stock at a place.
fn allocate(
    hubs: &mut Hubs<'_>,
    request: &str,
    offer: Option<String>,
    item: Option<String>,
    place: Option<String>,
    quantity: u64,
    json: bool,
) -> Result<()> {
    let mut hub = hubs.hub()?;
    let source = match (offer, item, place) {
        (Some(offer), _, _) => Source::Offer { offer: offer.as_str().into() },
        (None, Some(item), Some(place)) => Source::Stock { item: item.as_str().into(), place: place.as_str().into() },
        _ => bail!("say where from: --offer OFFER, or --item ITEM --place PLACE"),
    };
    let rec = hub.allocate(request, &source, quantity)?;
    if json {
        return print::json(&rec);
    }
    outln!("Allocated {quantity} from {} to request {request} (allocation {}).", print::source(&source), rec.id());
    Ok(())
}

/// `step`: moves an allocation on (in transit, delivered, released).
fn step_allocation(hubs: &mut Hubs<'_>, allocation: &str, step: &str, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let rec = hub.advance_allocation(allocation, AllocationStep::parse(step)?)?;
    if json {
        return print::json(&rec);
    }
    outln!("Allocation {allocation}: {step}.");
    Ok(())
}

/// `request`: cancels a request (`action` "cancel"), or reopens it.
fn request_status(hubs: &mut Hubs<'_>, request: &str, action: &str, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let status = if action == "cancel" { FlowStatus::Cancelled } else { FlowStatus::Open };
    let rec = hub.set_request_status(request, status)?;
    if json {
        return print::json(&rec);
    }
    outln!("Request {request}: {}.", if action == "cancel" { "cancelled" } else { "open again" });
    Ok(())
}

/// `grievance-step`: records a step in handling a grievance, and the status it leaves.
fn grievance_step(hubs: &mut Hubs<'_>, grievance: &str, note: &str, status: Option<String>, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let status = status
        .map(|s| serde_json::from_value::<aidmesh_hub::model::GrievanceStatus>(serde_json::Value::String(s)))
        .transpose()?;
    let rec = hub.grievance_step(grievance, note, status)?;
    if json {
        return print::json(&rec);
    }
    let aidmesh_hub::model::Body::Grievance(g) = &rec.body else { bail!("{grievance} is not a grievance") };
    let status = serde_json::to_value(g.status)?;
    outln!("Grievance {grievance}: step {} recorded; it is {}.", g.steps.len(), status.as_str().unwrap_or("?"));
    Ok(())
}

/// `acknowledge`: acknowledges a handoff as the next shift.
fn acknowledge(hubs: &mut Hubs<'_>, handoff: &str, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let rec = hub.acknowledge_handoff(handoff)?;
    if json {
        return print::json(&rec);
    }
    outln!("Handoff {handoff}: acknowledged.");
    Ok(())
}

/// `close`: checks a volunteer out, or marks a follow-up done.
fn close(hubs: &mut Hubs<'_>, id: &str, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let rec = hub.close(id)?;
    if json {
        return print::json(&rec);
    }
    match &rec.body {
        aidmesh_hub::model::Body::CheckIn(c) => {
            outln!("Check-in {id}: checked out at {}.", c.checked_out.map(|t| t.to_string()).unwrap_or_default())
        }
        _ => outln!("Follow-up {id}: done."),
    }
    Ok(())
}

/// `ledger`: spending totals per fund and per category.
fn ledger(hubs: &mut Hubs<'_>, json: bool) -> Result<()> {
    let hub = hubs.hub()?;
    let t = hub.ledger_totals()?;
    if json {
        let f: Vec<_> =
            t.per_fund.iter().map(|((f, c), v)| serde_json::json!({"fund": f, "currency": c, "minor": v})).collect();
        let k: Vec<_> = t
            .per_category
            .iter()
            .map(|((f, c), v)| serde_json::json!({"category": f, "currency": c, "minor": v}))
            .collect();
        return print::json(&serde_json::json!({"per_fund": f, "per_category": k}));
    }
    outln!("Per fund:");
    for ((f, c), v) in &t.per_fund {
        outln!("  {f:<20} {:>14}", aidmesh_hub::model::format_amount(*v, c));
    }
    outln!("Per category:");
    for ((f, c), v) in &t.per_category {
        outln!("  {f:<20} {:>14}", aidmesh_hub::model::format_amount(*v, c));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Personal data

/// `vault`: stores, shows, erases personal data, and lists who read it.
fn vault(hubs: &mut Hubs<'_>, cmd: VaultCmd, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    match cmd {
        VaultCmd::Put { fields } => {
            let id = hub.vault_put(&vault_fields(&fields)?)?;
            if json {
                print::json(&serde_json::json!({ "vault_id": id }))
            } else {
                outln!("Stored in the vault as {id} (a record's contact is set with `aidmesh vault contact RECORD name=…`)");
                Ok(())
            }
        }
        VaultCmd::Contact { record, fields } => {
            let c = hub.set_contact(&record, &vault_fields(&fields)?)?;
            if json {
                return print::json(&c);
            }
            let kept = match c.state {
                aidmesh_hub::ContactState::Held { here_only: true, .. } => {
                    "kept at this hub only (no consent to share it)"
                }
                _ => "shared with member hubs",
            };
            outln!("Stored the contact of {} as {}: {kept}.", c.label, c.vault.unwrap_or_default());
            Ok(())
        }
        VaultCmd::Show { id, reason } => {
            let m = hub.read_contact(&id, &reason)?;
            if json {
                return print::json(&m);
            }
            for (k, v) in &m {
                outln!("{k}: {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
            }
            Ok(())
        }
        VaultCmd::Reads { limit } => vault_reads(&hub, limit, json),
        VaultCmd::Erase { id } => {
            match hub.vault_erase(&id)? {
                aidmesh_hub::Erased::Here => outln!("Erased {id}: its content and key are destroyed here, and the erasure is passed on."),
                aidmesh_hub::Erased::Elsewhere => outln!(
                    "Erasure of {id} signed: this hub does not hold it; the hub that does destroys it when the authority log reaches it (over the mesh or a bundle)."
                ),
            }
            Ok(())
        }
    }
}

/// `vault reads`: who read which contact, when, and why, newest first.
fn vault_reads(hub: &Hub, limit: usize, json: bool) -> Result<()> {
    let reads = hub.contact_reads(limit)?;
    if json {
        return print::json(&reads);
    }
    if reads.is_empty() {
        outln!("No one has read a contact at this hub.");
    }
    for r in reads {
        let of = if r.record.is_empty() { r.vault } else { format!("{} ({})", r.record, r.vault) };
        outln!("{}  {}  read {of}: {}", r.at, r.by, r.reason);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Export, import and the store's upkeep

/// `export`: every record as JSON, or one kind as HXL-tagged CSV, to a file or stdout.
fn export(hubs: &mut Hubs<'_>, cmd: ExportCmd) -> Result<()> {
    let hub = hubs.hub()?;
    let (out_path, n) = match cmd {
        ExportCmd::Json { out } => {
            let n = write_out(out.as_deref(), |w| Ok(hub.export_json(w)?))?;
            (out, n)
        }
        ExportCmd::Hxl { kind, out } => {
            let k = HxlKind::parse(&kind).map_err(anyhow::Error::msg)?;
            let n = write_out(out.as_deref(), |w| Ok(hub.export_hxl(k, w)?))?;
            (out, n)
        }
    };
    if let Some(p) = out_path {
        errln!("Exported {n} records to {}", p.display());
    }
    Ok(())
}

/// `import`: records from JSON or HXL-tagged CSV, all or nothing.
fn import(hubs: &mut Hubs<'_>, cmd: ImportCmd, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let rep = match cmd {
        ImportCmd::Json { path } => {
            let mut f = std::fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
            hub.import_json(&mut f)?
        }
        ImportCmd::Hxl { kind, path } => {
            let k = HxlKind::parse(&kind).map_err(anyhow::Error::msg)?;
            let mut f = std::fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
            hub.import_hxl(k, &mut f)?
        }
    };
    if json {
        return print::json(&rep);
    }
    outln!("Imported {} records ({} already present).", rep.imported, rep.skipped);
    for (k, n) in &rep.per_kind {
        outln!("  {n:>6} {k}");
    }
    Ok(())
}

/// `reindex`: rebuilds the query index from the documents.
fn reindex(hubs: &mut Hubs<'_>) -> Result<()> {
    let mut hub = hubs.hub()?;
    let n = hub.rebuild_index()?;
    outln!("Rebuilt the index from the documents: {n} records.");
    Ok(())
}

/// `repair`: repairs the documents that do not load, and says what it did (and what opening
/// the store repaired).
fn repair(hubs: &mut Hubs<'_>, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    let mut done = hub.repaired_at_open().to_vec();
    done.extend(hub.repair()?);
    if json {
        return print::json(&done);
    }
    if done.is_empty() {
        outln!("Every document loads: nothing to repair.");
    }
    for r in &done {
        outln!(
            "Repaired {}: {} clashing change(s) dropped, {} {} restored.",
            r.doc,
            r.dropped_changes,
            r.restored,
            if r.doc == "index" { "documents listed" } else { "records written again from the index" }
        );
    }
    Ok(())
}

/// `passphrase`: changes the store passphrase. Sent to a running hub, it asks for the current
/// one too.
fn change_passphrase(hubs: &mut Hubs<'_>) -> Result<()> {
    // Asked before the hub is taken: a running hub syncs on while a person types.
    let current = if hubs.owner().is_some() { Some(term::read_secret("Current passphrase")?) } else { None };
    let new = prompt_twice("New passphrase")?;
    let mut hub = hubs.hub()?;
    match current {
        // Whoever reaches the running hub must still know the passphrase to change it.
        Some(c) => hub.change_passphrase_checked(&c, &new)?,
        None => hub.change_passphrase(&new)?,
    }
    outln!("Passphrase changed.");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The coalition: hubs and their authority

/// `identity`: this hub's id, public key and the coalition's founder code.
fn identity(hubs: &mut Hubs<'_>, json: bool) -> Result<()> {
    let hub = hubs.hub()?;
    let code = hub.founder_code()?.to_string();
    if json {
        return print::json(&serde_json::json!({
            "hub_id": hub.fingerprint().to_string(), "public_key": hub.public_key(), "founder_code": code,
        }));
    }
    outln!("hub id       {}", hub.fingerprint());
    outln!("public key   {}", hub.public_key());
    outln!("founder code {code}");
    Ok(())
}

/// `admit`: admits a hub to the coalition by its public key, as `handle`.
fn admit(hubs: &mut Hubs<'_>, handle: &str, key: &str, name: &str, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    unlock(&mut hub, handle)?;
    let code = hub.admit(key.trim(), name)?.to_string();
    if json {
        return print::json(&serde_json::json!({ "admitted": name, "founder_code": code }));
    }
    outln!("Admitted {name}. Unless it joined by invite, run this on {name} (the code is for that hub alone):");
    outln!("  aidmesh adopt-founder {code}");
    Ok(())
}

/// `revoke`: revokes a member hub, as `handle`.
fn revoke_hub(hubs: &mut Hubs<'_>, handle: &str, who: &str) -> Result<()> {
    let mut hub = hubs.hub()?;
    unlock(&mut hub, handle)?;
    hub.revoke(who)?;
    outln!("Revoked {who}: member hubs refuse it once they have this entry.");
    Ok(())
}

/// `rotate-secret`: turns the coalition secret over, as `handle`.
fn rotate_secret(hubs: &mut Hubs<'_>, handle: &str) -> Result<()> {
    let mut hub = hubs.hub()?;
    unlock(&mut hub, handle)?;
    let n = hub.rotate_secret()?;
    outln!(
        "Turned the coalition secret over for {n} member hub{}. Each takes the new one when this entry reaches it; \
         until then they still reach each other. A copy of the old secret finds and reaches no hub that has it.",
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `grant`: gives a person a named role, or takes it back, as `handle`.
fn grant(hubs: &mut Hubs<'_>, handle: &str, who: &str, role: &str, revoke: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    unlock(&mut hub, handle)?;
    hub.grant(who, role, !revoke)?;
    outln!("{} {role:?} {} {who}.", if revoke { "Took" } else { "Granted" }, if revoke { "from" } else { "to" });
    Ok(())
}

/// `adopt-founder`: takes another coalition's founder as this hub's.
fn adopt_founder(hubs: &mut Hubs<'_>, code: &str) -> Result<()> {
    let mut hub = hubs.hub()?;
    let code = aidmesh_hub::FounderCode::parse(code)?;
    hub.adopt(&code)?;
    let name = &code.founder.name;
    if code.welcome.is_some() {
        outln!("This hub now belongs to {name}'s coalition: serve, and it syncs with the coalition's hubs.");
    } else {
        outln!(
            "This hub now belongs to {name}'s coalition. An admin must admit it (aidmesh admit {}) and give it \
             the code that prints, or a bundle, before it can reach the coalition's hubs.",
            hub.public_key()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The mesh: serving, peers and bundles

/// `serve`: runs the hub headless, syncing with member hubs.
fn serve_headless(
    hubs: &mut Hubs<'_>,
    listen: std::net::SocketAddr,
    peer: Vec<std::net::SocketAddr>,
    mdns_interfaces: Vec<String>,
    no_discovery: bool,
    internet: InternetArgs,
) -> Result<()> {
    // Bad settings are told before the store is taken.
    let internet = serve::internet_config(internet)?;
    let hub = hubs.take("serve")?;
    let discovery = (!no_discovery).then_some(aidmesh_mesh::discovery::DiscoveryConfig { interfaces: mdns_interfaces });
    serve::run(hub, listen, peer, discovery, internet)
}

/// `internet`: shows or switches sync over the internet, or names the coalition's relays.
fn internet(hubs: &mut Hubs<'_>, handle: &str, cmd: InternetCmd, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    match cmd {
        InternetCmd::Show => {}
        InternetCmd::Allowlist => {
            let members = hub.members()?;
            if json {
                let keys: Vec<String> = members.members.values().map(|m| m.key.hex()).collect();
                return print::json(&serde_json::json!({ "allowlist": keys }));
            }
            outln!("# The member hubs of the coalition, for iroh-relay's configuration file.");
            outln!("# Write it again after each admit or revoke, and restart the relay.");
            outln!("[access]");
            outln!("allowlist = [");
            for m in members.members.values() {
                outln!("  \"{}\",  # {}", m.key.hex(), m.name.replace(['\n', '\r'], " "));
            }
            outln!("]");
            return Ok(());
        }
        InternetCmd::On => hub.set_internet(true)?,
        InternetCmd::Off => hub.set_internet(false)?,
        InternetCmd::Relays { urls, none } => {
            if urls.is_empty() && !none {
                bail!("name at least one relay (https://...), or --none for direct addresses only");
            }
            unlock(&mut hub, handle)?;
            hub.set_relays(&urls)?;
        }
        InternetCmd::Budget { size, none } => match (size, none) {
            (Some(size), _) => hub.set_internet_budget(Some(parse_size(&size)?))?,
            (None, true) => hub.set_internet_budget(None)?,
            (None, false) => bail!("give a day's budget (50MB, 1GB), or --none to lift it"),
        },
    }
    let (on, relays, budget) = (hub.internet_on()?, hub.relays()?, hub.internet_budget()?);
    let today = hub.now().date().to_string();
    let used = hub.internet_used(&today)?;
    let whereabouts = hub.member_whereabouts()?;
    if json {
        return print::json(&serde_json::json!({
            "on": on, "relays": relays, "budget": budget, "used_today": used, "day": today,
            "whereabouts": whereabouts,
        }));
    }
    outln!(
        "Sync over the internet: {}",
        match (on, relays.is_empty()) {
            (false, _) => "off at this hub (LAN and USB bundles only)",
            (true, true) =>
                "on, but the coalition names no relay (`aidmesh serve --relay` or --internet-peer to reach hubs)",
            (true, false) => "on",
        }
    );
    outln!("The coalition's relays:{}", if relays.is_empty() { " none" } else { "" });
    for r in &relays {
        outln!("  {r}");
    }
    match budget {
        Some(b) if used >= b => outln!(
            "Today ({today}, UTC): {} of the day's budget of {} used: only urgent records go until midnight UTC",
            size_text(used),
            size_text(b)
        ),
        Some(b) => outln!("Today ({today}, UTC): {} of the day's budget of {} used", size_text(used), size_text(b)),
        None => outln!("Today ({today}, UTC): {} used; no daily budget", size_text(used)),
    }
    if !whereabouts.is_empty() {
        outln!("Where member hubs last said they can be reached:");
    }
    for w in &whereabouts {
        let mut at: Vec<String> = w.relay.iter().map(|r| format!("relay {r}")).collect();
        at.extend(w.direct.iter().cloned());
        let name = w.name.replace(['\n', '\r'], " ");
        outln!("  {name} ({}): {} (said {}, by its clock)", w.hub, at.join(", "), w.said_at);
    }
    Ok(())
}

/// A size as people write it: `50MB`, `1.5 GB`, `500kB`, `2GiB`, or bytes.
fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => bail!("{text:?} is not a size: unknown unit {other:?} (write 50MB, 1GB or 500kB)"),
    };
    let n: f64 = number.parse().map_err(|_| anyhow::anyhow!("{text:?} is not a size (write 50MB, 1GB or 500kB)"))?;
    let bytes = n * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        bail!("{text:?} is not a size a day's budget can be (at least 1 byte)");
    }
    Ok(bytes as u64)
}

/// A byte count as people read it (decimal units, one decimal: `999,999` is `1.0 MB`).
fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 999_950_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 999_950 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// `peers`: the running hub's connected peers, and the coalition's members.
fn peers(hubs: &mut Hubs<'_>, json: bool) -> Result<()> {
    // Only the process that serves the hub knows its connections.
    let status = hubs.owner().map(|o| o.mesh.peers()).unwrap_or_default();
    let members = hubs.hub()?.members()?;
    if json {
        return print::json(
            &serde_json::json!({ "connected": status, "members": members.members.values().collect::<Vec<_>>() }),
        );
    }
    outln!("Connected peers:");
    if status.is_empty() {
        outln!("  none{}", if hubs.owner().is_some() { "" } else { " (the hub is not serving)" });
    }
    for p in &status {
        let synced = p.last_synced.map(|t| t.to_string()).unwrap_or_else(|| "never".into());
        let via = match p.reach {
            aidmesh_mesh::net::Reach::Lan => format!("at {}", p.addr),
            aidmesh_mesh::net::Reach::Direct => "over the internet, direct".into(),
            aidmesh_mesh::net::Reach::Relayed => "over the internet, through a relay".into(),
        };
        let waits = match (p.backlog.queued, p.backlog.held) {
            (0, 0) => String::new(),
            (q, 0) => format!("  {q} document(s) waiting"),
            (q, h) => format!("  {q} document(s) waiting, {h} held back by the day's internet budget"),
        };
        outln!(
            "  {}  {via}  last synced {synced}  {} bytes in, {} out{waits}",
            p.hub,
            p.traffic.bytes_in,
            p.traffic.bytes_out
        );
    }
    outln!("Members:");
    for m in members.members.values() {
        outln!("  {}  {:<20} {:?}", m.id, m.name, m.role);
    }
    Ok(())
}

/// `bundle`: exports, inspects or imports a USB bundle, then describes it.
fn bundle(hubs: &mut Hubs<'_>, cmd: BundleCmd, json: bool) -> Result<()> {
    let mut hub = hubs.hub()?;
    hub.listen(print::progress());
    let summary = match cmd {
        BundleCmd::Export { to, full, made_for } => {
            let e = hub.export_bundle(full, &made_for)?;
            errln!("Writing {} bytes to {}...", e.bytes.len(), to.display());
            write_out(Some(&to), |w| {
                w.write_all(&e.bytes)?;
                Ok(e.bytes.len())
            })?;
            hub.bundle_written(&e)?;
            e.summary
        }
        BundleCmd::Inspect { path } => {
            hub.inspect_bundle(&aidmesh_hub::read_bundle_file(&path, |h| hub.bundle_key(h))?)?
        }
        BundleCmd::Import { path } => {
            let bytes = aidmesh_hub::read_bundle_file(&path, |h| hub.bundle_key(h))?;
            let (s, changed) = hub.import_bundle(bytes)?;
            errln!("{changed} records new or changed.");
            s
        }
    };
    if json {
        return print::json(&summary);
    }
    print_bundle(&summary);
    Ok(())
}

/// What a bundle holds, who made it and for whom, and what keeps it from being merged whole.
fn print_bundle(summary: &BundleSummary) {
    let who = summary.exporter_name.clone().unwrap_or_else(|| "unknown hub".into());
    outln!("Bundle from {who} ({}), made {}", summary.exporter, summary.created_at);
    outln!(
        "  {} documents, {} bytes, {}, {} vault entries{}",
        summary.documents,
        summary.bytes,
        if summary.full { "everything" } else { "changes only" },
        summary.vault_entries,
        if summary.member { "" } else { " — NOT from a current member: it will be refused" }
    );
    if !summary.made_for.is_empty() && !summary.full {
        outln!("  for: {}", summary.made_for.join(", "));
    }
    if !summary.unknown_members.is_empty() {
        outln!(
            "  not for: {} (this hub knows nothing of what they hold: give them a --full bundle)",
            summary.unknown_members.join(", ")
        );
    }
    if summary.waiting_documents > 0 {
        outln!(
            "  {} documents hold changes that wait for an earlier bundle from this hub (or a sync): \
             import it too; nothing is lost meanwhile",
            summary.waiting_documents
        );
    }
    for (k, n) in &summary.records {
        outln!("  {n:>8} {k}");
    }
}

fn default_store() -> PathBuf {
    if let Some(h) = std::env::var_os("AIDMESH_HOME") {
        return PathBuf::from(h).join("hub.aidmesh");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("aidmesh").join("hub.aidmesh")
}

fn open(store: &Path, cli: &Access) -> Result<Hub> {
    if !store.exists() {
        bail!("no hub at {}: create one with `aidmesh init --name NAME` (or `aidmesh demo`)", store.display());
    }
    // A hub that is starting owns the store before its control channel opens: say so before
    // asking for a passphrase (the command then waits for the channel).
    aidmesh_hub::ensure_store_free(store)?;
    let pass = passphrase(&cli.passphrase_file, "Passphrase")?;
    Ok(Hub::open(store, &pass, Config::system(&cli.handle))?)
}

/// The passphrase: from a file, from AIDMESH_PASSPHRASE, or typed at the terminal.
fn passphrase(file: &Option<PathBuf>, prompt: &str) -> Result<String> {
    if let Some(f) = file {
        let s =
            std::fs::read_to_string(f).with_context(|| format!("cannot read the passphrase file {}", f.display()))?;
        return Ok(s.trim_end_matches(['\n', '\r']).to_string());
    }
    if let Some(p) = secrets::get("AIDMESH_PASSPHRASE") {
        return Ok(p.to_string());
    }
    if !term::stdin_is_terminal() {
        bail!("no passphrase: set AIDMESH_PASSPHRASE, pass --passphrase-file, or run in a terminal");
    }
    Ok(term::read_secret(prompt)?)
}

/// A PIN: AIDMESH_PIN, or asked in a terminal.
fn pin(prompt: &str) -> Result<String> {
    if let Some(p) = secrets::get("AIDMESH_PIN") {
        return Ok(p.to_string());
    }
    if !term::stdin_is_terminal() {
        bail!("no PIN: set AIDMESH_PIN or run in a terminal");
    }
    Ok(term::read_secret(prompt)?)
}

/// Unlocks `handle`'s key for authority work, asking for their PIN if one guards it.
fn unlock(hub: &mut Hub, handle: &str) -> Result<()> {
    if hub.acting().is_some_and(|p| p.handle == handle) {
        return Ok(());
    }
    let Some(p) = hub.local_people()?.into_iter().find(|p| p.handle == handle) else {
        bail!("{handle} has no key at this hub: make one with `aidmesh person new`, and ask an admin to add you");
    };
    let pin = if p.pin { Some(pin(&format!("PIN for {handle}"))?) } else { None };
    hub.unlock(&p.key, pin.as_deref())?;
    Ok(())
}

/// `person`: people of the coalition, their keys and whether they are admins.
fn person(hub: &mut Hub, cmd: PersonCmd, handle: &str, json: bool) -> Result<()> {
    match cmd {
        PersonCmd::New { handle: h, no_pin } => {
            let h = h.unwrap_or_else(|| handle.to_string());
            let pin = if no_pin {
                None
            } else {
                Some(pin(&format!("Choose a PIN for {h} (at least {} characters)", aidmesh_hub::MIN_PIN_CHARS))?)
            };
            let p = hub.make_person(&h, pin.as_deref())?;
            if json {
                return print::json(&p);
            }
            outln!("Made a key for {} (fingerprint {}).", p.handle, p.fingerprint);
            outln!("An admin adds you with: aidmesh person add {} --name {}", p.key, p.handle);
            Ok(())
        }
        PersonCmd::List => person_list(hub, json),
        PersonCmd::Add { key, name: h, admin } => {
            unlock(hub, handle)?;
            if hub.add_person(&key, &h, admin)? {
                outln!("Added {h}{}.", if admin { " as an admin" } else { "" });
            } else {
                outln!("Added {h} as a plain member: making them an admin takes effect once a majority of the admins have signed (`aidmesh person endorse {h}`).");
            }
            Ok(())
        }
        PersonCmd::Remove { who } => {
            unlock(hub, handle)?;
            if hub.remove_person(&who)? {
                outln!("Removed {who}.");
            } else {
                outln!("Signed the removal of {who}: it takes effect once a majority of the other admins have signed (`aidmesh person endorse {who}`).");
            }
            Ok(())
        }
        PersonCmd::VoteAdmin { who } => {
            unlock(hub, handle)?;
            if hub.vote_admin(&who)? {
                outln!("Voted: a majority of the people agree, and {who} is an admin now.");
            } else {
                let a = hub.authority()?;
                outln!("Voted. Making someone an admin takes {} votes; so far:", a.votes_needed);
                for v in &a.votes {
                    outln!("  {}: {}", v.target, v.voters.join(", "));
                }
            }
            Ok(())
        }
        PersonCmd::Endorse { who } => {
            unlock(hub, handle)?;
            if hub.endorse(&who)? {
                outln!("Signed: the majority is reached, and it has taken effect.");
            } else {
                outln!("Signed: more admins must sign before it takes effect.");
            }
            Ok(())
        }
        PersonCmd::Prove { person } => {
            unlock(hub, handle)?;
            let proof = hub.key_proof(&person)?;
            let key = hub.acting().map(|p| p.key.clone()).unwrap_or_default();
            outln!("At a hub where you are unlocked: aidmesh person add-key {key} --proof {proof}");
            Ok(())
        }
        PersonCmd::AddKey { key, proof } => {
            unlock(hub, handle)?;
            hub.add_key(&key, &proof)?;
            outln!("That key signs for {handle} now, at every hub once they have this entry.");
            Ok(())
        }
        PersonCmd::RevokeKey { key } => {
            unlock(hub, handle)?;
            hub.revoke_key(&key)?;
            outln!("That key signs for no one now; what it signed while apart, unseen by this, does not count.");
            Ok(())
        }
        PersonCmd::Admin { who, demote } => {
            unlock(hub, handle)?;
            if hub.set_admin(&who, !demote)? {
                outln!("{who} is {} now.", if demote { "a plain member" } else { "an admin" });
            } else {
                outln!(
                    "Signed the {} of {who}: it takes effect once a majority of the admins have signed (`aidmesh person endorse {who}`).",
                    if demote { "demotion" } else { "promotion" }
                );
            }
            Ok(())
        }
    }
}

/// `person list`: who is in the coalition: people and their roles, changes of admins waiting
/// for admins, purchase policies, and entries contested or refused.
fn person_list(hub: &Hub, json: bool) -> Result<()> {
    let a = hub.authority()?;
    if json {
        return print::json(&a);
    }
    if a.coalition.is_empty() {
        outln!("This hub does not hold its coalition's authority log yet: it arrives with the next sync from the founding hub.");
    } else {
        outln!("Coalition {} ({} authority entries)", a.coalition, a.entries);
    }
    if let Some(p) = &a.acting {
        outln!("You act as {} ({}).", p.handle, p.fingerprint);
    }
    outln!("People:");
    for p in &a.people {
        let roles = if p.roles.is_empty() { String::new() } else { format!("  roles: {}", p.roles.join(", ")) };
        outln!(
            "  {:<16} {:<7} {}  since {} by {}{roles}",
            p.handle,
            if p.admin { "admin" } else { "member" },
            p.fingerprint,
            p.since,
            p.added_by
        );
    }
    for w in &a.waiting {
        outln!(
            "Waiting: {} of {} signed by {}: other admins sign with `aidmesh person endorse {}`",
            match w.change {
                aidmesh_hub::WaitingChange::Removal => "removal",
                aidmesh_hub::WaitingChange::Demotion => "demotion",
                aidmesh_hub::WaitingChange::Promotion => "promotion",
            },
            w.target,
            w.signed.join(", "),
            w.entry
        );
    }
    if !a.people.is_empty() && !a.people.iter().any(|p| p.admin) {
        outln!(
            "No admin is left: {} of the people must vote to make someone an admin (`aidmesh person vote-admin NAME`).",
            a.votes_needed
        );
        for v in &a.votes {
            outln!("  Votes for {}: {}", v.target, v.voters.join(", "));
        }
    }
    for p in &a.policies {
        let state = if p.in_force {
            "in force"
        } else if p.superseded {
            "replaced"
        } else {
            "set while apart, beside the one in force"
        };
        outln!(
            "Purchase policy ({state}), set by {} at {}: {}; above {} needs {} approvals",
            p.set_by,
            p.at,
            p.limits.join(", "),
            p.threshold,
            p.approvals_above_threshold
        );
    }
    if let Some(s) = &a.stranded {
        outln!("Left out of {s}.");
    }
    for c in &a.contested {
        outln!("Contested: {c}");
    }
    for r in &a.refused {
        outln!("Refused from {} at {}: {}", r.source, r.at, r.reason);
    }
    Ok(())
}

fn new_passphrase(file: &Option<PathBuf>) -> Result<String> {
    if file.is_some() || secrets::get("AIDMESH_PASSPHRASE").is_some() {
        return passphrase(file, "Passphrase");
    }
    prompt_twice("Choose a passphrase for this hub's store")
}

fn prompt_twice(prompt: &str) -> Result<String> {
    if !term::stdin_is_terminal() {
        bail!("no passphrase: set AIDMESH_PASSPHRASE, pass --passphrase-file, or run in a terminal");
    }
    let a = term::read_secret(prompt)?;
    let b = term::read_secret("Again")?;
    if a != b {
        bail!("the passphrases differ");
    }
    Ok(a)
}

fn write_out(path: Option<&Path>, f: impl FnOnce(&mut dyn Write) -> Result<usize>) -> Result<usize> {
    match path {
        None => f(&mut term::Stdout),
        Some(p) => {
            let mut failed = None;
            let n = aidmesh_hub::write_atomically(p, |w| {
                f(w).map_err(|e| {
                    let why = e.to_string();
                    failed = Some(e);
                    Error::Malformed { format: "export", why }
                })
            });
            match (n, failed) {
                (Ok(n), _) => Ok(n),
                (Err(_), Some(e)) => Err(e),
                (Err(e), None) => Err(e.into()),
            }
        }
    }
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// `FIELD=VALUE` pairs as a vault entry's fields.
fn vault_fields(fields: &[String]) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut m = serde_json::Map::new();
    for f in fields {
        let (k, v) = args::split_field(f)?;
        m.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    }
    Ok(m)
}
