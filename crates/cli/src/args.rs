//! The command line: subcommands and `field=value` arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

#[derive(Parser, serde::Serialize, serde::Deserialize)]
#[command(name = "aidmesh", version, about = "An offline-first hub for mutual aid coordinators", long_about = None)]
pub(crate) struct Cli {
    /// The hub's store file.
    #[arg(long, global = true, env = "AIDMESH_STORE")]
    pub(crate) store: Option<PathBuf>,
    /// Read the store passphrase from this file (otherwise AIDMESH_PASSPHRASE, or a prompt).
    #[arg(long, global = true)]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Your pseudonymous handle: recorded as the author of what you write.
    #[arg(long, global = true, env = "AIDMESH_HANDLE", default_value = "coordinator")]
    pub(crate) handle: String,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, serde::Serialize, serde::Deserialize)]
pub(crate) enum Command {
    /// Create a new hub store.
    Init {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        location: String,
    },
    /// Seed an empty hub with a demo march of three hubs (creates the store if needed).
    Demo {
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Shortages, expiring stock, urgent requests, unfilled shifts, incidents, conflicts.
    Overview,
    /// Add a record: `aidmesh add item name="Water" unit=bottle category=water`.
    Add {
        kind: String,
        #[arg(value_name = "FIELD=VALUE")]
        fields: Vec<String>,
    },
    /// Change fields of a record.
    Update {
        id: String,
        #[arg(value_name = "FIELD=VALUE", required = true)]
        fields: Vec<String>,
    },
    /// Correct an append-only record (incident, expense, movement...) keeping the original.
    Amend {
        id: String,
        field: String,
        value: String,
        #[arg(long)]
        reason: String,
    },
    /// List records of a kind, newest first.
    List {
        kind: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Show a record with its amendments, conflicts, history and stock.
    Show { id: String },
    /// Who changed a record, when and where.
    History { id: String },
    /// Full-text search.
    Search {
        query: String,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Stock per item and place.
    Stock { item: Option<String> },
    /// Suggested allocations from the matching engine.
    Suggest {
        request: Option<String>,
        #[arg(long, default_value_t = 3)]
        limit: usize,
    },
    /// Allocate to a request from an offer (--offer) or from stock (--item and --place).
    Allocate {
        request: String,
        #[arg(long, conflicts_with_all = ["item", "place"])]
        offer: Option<String>,
        #[arg(long, requires = "place")]
        item: Option<String>,
        #[arg(long, requires = "item")]
        place: Option<String>,
        #[arg(long)]
        quantity: u64,
    },
    /// Move an allocation on: in_transit, delivered (issues stock, fulfils the request once
    /// covered) or released (frees the source).
    Step { allocation: String, step: String },
    /// Cancel a request, or reopen it.
    Request {
        request: String,
        #[arg(value_parser = ["cancel", "reopen"])]
        action: String,
    },
    /// Record a dated step in handling a grievance (readers only), and the status it leaves:
    /// `aidmesh grievance-step ID "Spoke with both sides" --status investigating`.
    GrievanceStep {
        grievance: String,
        note: String,
        #[arg(long, value_parser = ["received", "investigating", "resolved", "dismissed"])]
        status: Option<String>,
    },
    /// Acknowledge a handoff as the next shift (recorded as an amendment: handoffs are append-only).
    Acknowledge { handoff: String },
    /// Check a volunteer out now, or mark a follow-up done (recorded as an amendment: check-ins
    /// and follow-ups are append-only).
    Close { id: String },
    /// Ledger totals per fund and category.
    Ledger,
    /// The fields of a record kind.
    Fields { kind: String },
    /// Personal data, kept outside the shared records.
    #[command(subcommand)]
    Vault(VaultCmd),
    /// Export records.
    #[command(subcommand)]
    Export(ExportCmd),
    /// Import records: all or nothing.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Rebuild the query index from the documents.
    Reindex,
    /// Check that every document loads, and repair those that do not (stores damaged when two
    /// processes wrote to one store): says what it did.
    Repair,
    /// This hub's id, public key and the coalition's founder code.
    Identity,
    /// Admit a hub to the coalition by its public key (you must be an admin).
    Admit {
        key: String,
        #[arg(long)]
        name: String,
    },
    /// Revoke a member hub (a lost or seized laptop): it is refused from then on.
    Revoke { hub: String },
    /// Turn the coalition secret over without revoking anyone, if you think it leaked (admins).
    RotateSecret,
    /// People of the coalition: each coordinator's own key, and who holds which role.
    #[command(subcommand)]
    Person(PersonCmd),
    /// Give a person a named role (treasurer, ...); --revoke takes it back (admins).
    Grant {
        who: String,
        role: String,
        #[arg(long)]
        revoke: bool,
    },
    /// Take another coalition's founder as this hub's (the code `aidmesh identity` prints there).
    AdoptFounder { code: String },
    /// Run the hub headless: sync with member hubs.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:7433")]
        listen: std::net::SocketAddr,
        /// A peer to connect to by address (repeatable), for networks where mDNS is blocked.
        #[arg(long)]
        peer: Vec<std::net::SocketAddr>,
        /// Limit mDNS discovery to these network interfaces (repeatable; default: all).
        #[arg(long = "mdns-interface", env = "AIDMESH_MDNS_INTERFACES", value_delimiter = ',')]
        mdns_interfaces: Vec<String>,
        /// Do not advertise or look for hubs with mDNS.
        #[arg(long)]
        no_discovery: bool,
        #[command(flatten)]
        internet: InternetArgs,
    },
    /// Sync over the internet, through the coalition's relays: show it, switch it at this hub,
    /// or name the coalition's relays (admins).
    #[command(subcommand)]
    Internet(InternetCmd),
    /// Peers of the running `aidmesh serve`, and the coalition's members.
    Peers,
    /// Invite a hub: prints a one-time code and QR code, waits for it, asks you to confirm.
    Invite {
        /// Address to wait on for the joining hub.
        #[arg(long, default_value = "0.0.0.0:7434")]
        listen: std::net::SocketAddr,
        /// The IPv4 address the joining laptop reaches this one at (needed when listening on 0.0.0.0).
        #[arg(long)]
        advertise: Option<std::net::Ipv4Addr>,
        /// Minutes the invite stays valid.
        #[arg(long, default_value_t = 15)]
        minutes: u32,
        /// Where this hub runs `aidmesh serve`, given to the new hub to dial first.
        #[arg(long)]
        serve_addr: Option<String>,
    },
    /// USB bundles: carry changes to hubs that never share a network.
    #[command(subcommand)]
    Bundle(BundleCmd),
    /// Join a coalition with an invite code.
    Join {
        code: String,
        /// How the coalition will know this hub.
        #[arg(long)]
        name: String,
    },
    /// Change the store passphrase.
    Passphrase,
}

/// How `serve` syncs over the internet (once the coalition names a relay, or these name one).
#[derive(clap::Args, serde::Serialize, serde::Deserialize)]
pub(crate) struct InternetArgs {
    /// A relay of this hub's own, besides the coalition's (repeatable): how a hub that joins
    /// from afar reaches the others before it learns the coalition's relays.
    #[arg(long = "relay", value_name = "URL")]
    pub relays: Vec<String>,
    /// A certificate (PEM file) that relays' certificates may chain to, for a relay whose
    /// certificate the coalition made itself (repeatable).
    #[arg(long = "relay-root", value_name = "FILE")]
    pub relay_roots: Vec<std::path::PathBuf>,
    /// Where the internet (QUIC) socket binds, for a hub at a fixed address that member hubs
    /// dial directly (it then listens there, relay or not); by default any free port, once the
    /// coalition names a relay.
    #[arg(long = "internet-bind", value_name = "IP:PORT")]
    pub bind: Option<std::net::SocketAddr>,
    /// A member hub reachable directly over the internet, as KEY@IP:PORT (its public key, as
    /// `aidmesh identity` prints it; repeatable).
    #[arg(long = "internet-peer", value_name = "KEY@ADDRESS")]
    pub peers: Vec<String>,
    /// No sync over the internet in this run, whatever the coalition names.
    #[arg(long)]
    pub no_internet: bool,
}

#[derive(Subcommand, serde::Serialize, serde::Deserialize)]
pub(crate) enum InternetCmd {
    /// Whether this hub syncs over the internet, and the coalition's relays.
    Show,
    /// Sync over the internet where the coalition names relays (the default).
    On,
    /// No sync over the internet at this hub (LAN and USB bundles only).
    Off,
    /// The access list for the coalition's `iroh-relay` servers: the member hubs' keys, as the
    /// relay's configuration file takes them (write it again after each admit or revoke).
    Allowlist,
    /// Name the coalition's relays (admins): `aidmesh internet relays https://relay.example.org`;
    /// `--none` for direct addresses only.
    Relays {
        #[arg(value_name = "URL")]
        urls: Vec<String>,
        #[arg(long, conflicts_with = "urls")]
        none: bool,
    },
    /// A day's budget for sync over the internet at this hub (`50MB`, `1GB`): past it, only
    /// urgent records go (incidents with their follow-ups and amendments, requests; the
    /// coalition's authority and personal-data erasures always go). `--none` lifts it.
    Budget {
        #[arg(value_name = "SIZE")]
        size: Option<String>,
        #[arg(long, conflicts_with = "size")]
        none: bool,
    },
}

#[derive(Subcommand, serde::Serialize, serde::Deserialize)]
pub(crate) enum PersonCmd {
    /// Make your key at this hub, guarded by a PIN you choose (AIDMESH_PIN, or asked).
    New {
        /// Your handle (by default --handle).
        handle: Option<String>,
        /// Guard the key with the store's passphrase only (a laptop with one coordinator).
        #[arg(long)]
        no_pin: bool,
    },
    /// Who is in the coalition: people, their roles, removals waiting for admins, and entries
    /// refused (with the hub that sent them).
    List,
    /// Add a person by the key they made (`aidmesh person new` prints it); admins only.
    Add {
        key: String,
        /// The handle the coalition will know them by.
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin: bool,
    },
    /// Remove a person. An admin's removal needs a majority of the other admins (see endorse).
    Remove { who: String },
    /// Sign a waiting removal, demotion or promotion of an admin (each needs a majority of the
    /// admins): by its entry id, as `person list` shows it, or by the person if only one change
    /// of theirs waits.
    Endorse { who: String },
    /// With no admin left (admins who removed each other, keys lost): vote to make WHO an admin.
    /// A majority of the coalition's people make it so; refused while any admin is left.
    VoteAdmin { who: String },
    /// At a new hub, as your new key: the proof that lets your first key add this one
    /// (PERSON is your first key, as `person list` shows it elsewhere).
    Prove { person: String },
    /// Make KEY (made with `aidmesh person new` at another hub, with its `person prove` PROOF)
    /// one of your keys: you are then the same person at both hubs.
    AddKey {
        key: String,
        #[arg(long)]
        proof: String,
    },
    /// Withdraw one of your keys (a lost laptop's); admins may withdraw anyone's.
    RevokeKey { key: String },
    /// Make a person an admin, or --demote them (by majority, as for removal).
    Admin {
        who: String,
        #[arg(long)]
        demote: bool,
    },
}

#[derive(Subcommand, serde::Serialize, serde::Deserialize)]
pub(crate) enum VaultCmd {
    /// Store personal data: `aidmesh vault put name="Amal H." phone="+34 600..."`.
    Put {
        #[arg(value_name = "FIELD=VALUE", required = true)]
        fields: Vec<String>,
    },
    /// Store the contact of a volunteer, request or offer, and have the record name it:
    /// `aidmesh vault contact RECORD name="Amal H." phone="+34 600..." access_needs="..."`. The
    /// fields given change those of the contact, the others stay; `phone=` removes one. A
    /// volunteer who did not consent to share it has it kept at this hub only.
    Contact {
        record: String,
        #[arg(value_name = "FIELD=VALUE", required = true)]
        fields: Vec<String>,
    },
    /// Show a vault entry (its id, or the id of the record naming it). Every read is logged with
    /// who read it and the reason.
    Show {
        id: String,
        /// Why you need it (at least 4 characters): kept in the read log.
        #[arg(long)]
        reason: String,
    },
    /// Who read which contact, when, and why (newest first).
    Reads {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Destroy a vault entry's content and key.
    Erase { id: String },
}

#[derive(Subcommand, serde::Serialize, serde::Deserialize)]
pub(crate) enum BundleCmd {
    /// Write what other hubs may lack: the changes after what this hub knows they hold (from
    /// earlier syncs and bundles), or everything with --full.
    Export {
        #[arg(long)]
        to: PathBuf,
        /// Everything this hub holds, for hubs it knows nothing of.
        #[arg(long)]
        full: bool,
        /// Only for this hub (its id; repeat for several). By default: every other member this
        /// hub has synced or exchanged bundles with.
        #[arg(long = "for", value_name = "HUB")]
        made_for: Vec<String>,
    },
    /// Which hub made a bundle, when, and how many records of each kind it holds.
    Inspect { path: PathBuf },
    /// Merge a bundle: all of it, or nothing.
    Import { path: PathBuf },
}

#[derive(Subcommand, serde::Serialize, serde::Deserialize)]
pub(crate) enum ExportCmd {
    /// Every record as JSON.
    Json {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// HXL-tagged CSV of inventory, requests or incidents.
    Hxl {
        kind: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, serde::Serialize, serde::Deserialize)]
pub(crate) enum ImportCmd {
    Json { path: PathBuf },
    Hxl { kind: String, path: PathBuf },
}

pub(crate) fn split_field(arg: &str) -> anyhow::Result<(&str, &str)> {
    arg.split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .ok_or_else(|| anyhow::anyhow!("{arg:?} is not FIELD=VALUE"))
}

/// A typed value: JSON where it parses as a number, boolean, null, list or object; text otherwise.
pub(crate) fn value_of(s: &str) -> Value {
    let t = s.trim();
    let looks_json =
        t.starts_with(['[', '{', '"']) || matches!(t, "true" | "false" | "null") || t.parse::<f64>().is_ok();
    if looks_json {
        if let Ok(v) = serde_json::from_str(t) {
            return v;
        }
    }
    Value::String(s.to_string())
}

/// Runs `f` with the fields typed; if a field read as a number or boolean was meant as text
/// ("receipt=0042"), runs it again with that field as text.
pub(crate) fn with_fields<T>(
    args: &[String],
    mut f: impl FnMut(Map<String, Value>) -> aidmesh_hub::Result<T>,
) -> anyhow::Result<T> {
    let mut m = Map::new();
    let mut raw = Map::new();
    for a in args {
        let (k, v) = split_field(a)?;
        m.insert(k.to_string(), value_of(v));
        raw.insert(k.to_string(), Value::String(v.to_string()));
    }
    for _ in 0..=args.len() {
        match f(m.clone()) {
            Err(aidmesh_hub::Error::Invalid { kind, errors }) => {
                let retry: Vec<String> = errors
                    .iter()
                    .filter(|e| e.message.contains("invalid type") && m.get(&e.field).is_some_and(|v| !v.is_string()))
                    .map(|e| e.field.clone())
                    .collect();
                if retry.is_empty() {
                    return Err(aidmesh_hub::Error::Invalid { kind, errors }.into());
                }
                for k in retry {
                    m.insert(k.clone(), raw[&k].clone());
                }
            }
            r => return Ok(r?),
        }
    }
    anyhow::bail!("could not read the fields")
}

impl Cli {
    /// Checks the files this command reads and writes can be handed to the hub that runs it: it
    /// runs in another process, so a path that means something only in this one (`/dev/stdin`,
    /// `/dev/fd/N` from `<(…)`, `/proc/self/…`) would reach the hub's own.
    pub(crate) fn files_for_the_owner(&self) -> Result<(), String> {
        let special = |p: &std::path::Path| {
            let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            p.starts_with("/dev") || p.starts_with("/proc")
        };
        let input = |p: &PathBuf| -> Result<(), String> {
            if special(p) || std::fs::metadata(p).is_ok_and(|m| !m.is_file()) {
                return Err(format!(
                    "{} is not a plain file: while a hub runs, commands read their input from files",
                    p.display()
                ));
            }
            Ok(())
        };
        let output = |p: &PathBuf| -> Result<(), String> {
            if special(p) {
                return Err(format!(
                    "{} is not a plain file: while a hub runs, write to a file (or leave out --out for standard output)",
                    p.display()
                ));
            }
            Ok(())
        };
        match &self.command {
            Command::Bundle(BundleCmd::Export { to, .. }) => output(to),
            Command::Bundle(BundleCmd::Inspect { path } | BundleCmd::Import { path }) => input(path),
            Command::Export(ExportCmd::Json { out: Some(o) } | ExportCmd::Hxl { out: Some(o), .. }) => output(o),
            Command::Import(ImportCmd::Json { path } | ImportCmd::Hxl { path, .. }) => input(path),
            _ => Ok(()),
        }
    }

    /// Makes every path absolute against `cwd`, so that the hub that owns the store reads and
    /// writes the same files the command was given (it runs in another process and folder).
    pub(crate) fn absolutize(&mut self, cwd: &std::path::Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        self.store.iter_mut().for_each(abs);
        self.passphrase_file.iter_mut().for_each(abs);
        match &mut self.command {
            Command::Bundle(BundleCmd::Export { to, .. }) => abs(to),
            Command::Bundle(BundleCmd::Inspect { path } | BundleCmd::Import { path }) => abs(path),
            Command::Export(ExportCmd::Json { out } | ExportCmd::Hxl { out, .. }) => out.iter_mut().for_each(abs),
            Command::Import(ImportCmd::Json { path } | ImportCmd::Hxl { path, .. }) => abs(path),
            _ => {}
        }
    }
}
