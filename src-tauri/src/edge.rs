//! The edge between the hub and the UI: what the app's commands send that the hub does not
//! define itself, and [`typescript`], which writes every type the commands send or take as
//! TypeScript. The UI imports only these (`ui/src/lib/hub.gen.ts`); a test fails when the
//! file and the Rust types differ, and `cargo xtask types` writes it again.

use std::collections::BTreeMap;

use aidmesh_hub::model::{views::Source, FlowStatus, Kind, Record, Timestamp};
use aidmesh_hub::{
    AllocationStep, BundleSummary, Ledger, Listed, Overview, RecordView, Roster, StockLine, SuggestionView,
};
use serde::Serialize;
use ts_rs::{TypeVisitor, TS};

pub use crate::state::ApiError;

/// Whether a store exists and whether it is open.
#[derive(Clone, Debug, Serialize, TS)]
pub struct Status {
    pub store_exists: bool,
    pub unlocked: bool,
    pub store_path: String,
}

/// An open invite, as the inviting coordinator shows it.
#[derive(Clone, Debug, Serialize, TS)]
pub struct Invite {
    pub code: String,
    pub qr_svg: String,
    pub expires_min: u32,
}

/// A search hit.
#[derive(Clone, Debug, Serialize, TS)]
pub struct Hit {
    pub id: String,
    pub kind: Kind,
    pub label: String,
}

/// A connected peer, named as the coalition knows it.
#[derive(Clone, Debug, Serialize, TS)]
pub struct Peer {
    pub hub: String,
    /// The member's name, if this hub knows the peer as a member.
    pub name: Option<String>,
    pub addr: String,
    pub reach: Reach,
    pub dialed: bool,
    pub connected_at: Timestamp,
    pub last_synced: Option<Timestamp>,
    /// Documents waiting to go to the peer or to be asked of it.
    pub waiting: u64,
    /// Documents the peer lacks that the day's internet budget holds back.
    pub held: u64,
}

/// How a connected peer is reached: on the local network, over the internet on a direct path,
/// or through one of the coalition's relays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    Lan,
    Direct,
    Relayed,
}

impl From<aidmesh_mesh::net::Reach> for Reach {
    fn from(r: aidmesh_mesh::net::Reach) -> Reach {
        match r {
            aidmesh_mesh::net::Reach::Lan => Reach::Lan,
            aidmesh_mesh::net::Reach::Direct => Reach::Direct,
            aidmesh_mesh::net::Reach::Relayed => Reach::Relayed,
        }
    }
}

/// Whether this hub syncs over the internet, and the relays the coalition names for it.
#[derive(Clone, Debug, Serialize, TS)]
pub struct InternetSync {
    /// Switched on at this hub (it holds across restarts); it runs once a relay is named.
    pub on: bool,
    pub relays: Vec<String>,
    /// The day's budget for internet sync, in bytes, if set: past it only urgent records go.
    pub budget: Option<u64>,
    /// What internet sync used today (UTC), as the running hub last kept it.
    pub used_today: u64,
}

/// Where this hub listens, and who it is connected to.
#[derive(Clone, Debug, Serialize, TS)]
pub struct Peers {
    pub listening: String,
    pub peers: Vec<Peer>,
}

/// A member hub of the coalition.
#[derive(Clone, Debug, Serialize, TS)]
pub struct Member {
    pub id: String,
    pub name: String,
    /// "admin" or "member".
    pub role: String,
    pub since: Timestamp,
}

/// This hub, and the coalition's members as it knows them.
#[derive(Clone, Debug, Serialize, TS)]
pub struct Identity {
    pub hub_name: String,
    pub fingerprint: String,
    pub public_key: String,
    pub founder: String,
    pub members: Vec<Member>,
    pub has_coalition_key: bool,
}

/// What an imported bundle held and how many records it changed here.
#[derive(Clone, Debug, Serialize, TS)]
pub struct Imported {
    pub summary: BundleSummary,
    pub changed: usize,
}

/// A saved PDF: where, and how big.
#[derive(Clone, Debug, Serialize, TS)]
pub struct SavedPdf {
    pub path: String,
    pub bytes: u64,
}

/// What the hub tells the window without being asked (the `hub-event` event).
#[derive(Clone, Debug, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubEvent {
    /// Records changed, here or by a merge.
    RecordsChanged { ids: Vec<String> },
    /// Who may do what changed (people, roles, hubs, policy, approvals), here or from a peer.
    AuthorityChanged,
    /// Contacts were stored, saved again or erased, here or from a peer.
    VaultChanged { ids: Vec<String> },
    /// Joining: the code to read aloud to the inviting coordinator.
    Join { confirmation: String },
    /// A hub answered this hub's invite and waits (`state: "pending"`), or the invite failed.
    Invite {
        state: String,
        name: Option<String>,
        joiner: Option<String>,
        confirmation: Option<String>,
        message: Option<String>,
    },
    /// A long task's progress.
    Progress { task: aidmesh_hub::Task, done: u64, total: u64 },
    /// What `peers` shows changed: a hub connected or went, or a sync with one completed.
    PeersChanged,
}

impl From<&aidmesh_hub::Event> for HubEvent {
    fn from(e: &aidmesh_hub::Event) -> HubEvent {
        match e {
            aidmesh_hub::Event::RecordsChanged { ids } => HubEvent::RecordsChanged { ids: ids.clone() },
            aidmesh_hub::Event::AuthorityChanged => HubEvent::AuthorityChanged,
            aidmesh_hub::Event::VaultChanged { ids } => HubEvent::VaultChanged { ids: ids.clone() },
            aidmesh_hub::Event::Progress { task, done, total } => {
                HubEvent::Progress { task: *task, done: *done, total: *total }
            }
        }
    }
}

/// A currency the ledger takes: its ISO 4217 code, and the digits of its minor unit (2 for
/// EUR: 42.50; 0 for JPY).
#[derive(Clone, Debug, Serialize, TS)]
pub struct Currency {
    pub code: String,
    pub digits: u32,
}

/// The paper a sheet is printed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Paper {
    A4,
    Letter,
}

/// Every type the commands send or take, and what they name, as one TypeScript module.
pub fn typescript() -> String {
    let mut d = Decls {
        cfg: ts_rs::Config::new().with_large_int("number"),
        done: BTreeMap::new(),
        seen: std::collections::HashSet::new(),
    };
    // What the commands send...
    d.visit::<Status>();
    d.visit::<Invite>();
    d.visit::<Overview>();
    d.visit::<Listed>();
    d.visit::<Hit>();
    d.visit::<RecordView>();
    d.visit::<Record>();
    d.visit::<StockLine>();
    d.visit::<aidmesh_hub::PlaceView>();
    d.visit::<aidmesh_hub::Stored>();
    d.visit::<SuggestionView>();
    d.visit::<Roster>();
    d.visit::<Ledger>();
    d.visit::<Peers>();
    d.visit::<InternetSync>();
    d.visit::<Identity>();
    d.visit::<BundleSummary>();
    d.visit::<Imported>();
    d.visit::<SavedPdf>();
    d.visit::<HubEvent>();
    d.visit::<ApiError>();
    d.visit::<Currency>();
    d.visit::<aidmesh_hub::Authority>();
    d.visit::<aidmesh_hub::LocalPerson>();
    d.visit::<aidmesh_hub::ContactView>();
    d.visit::<aidmesh_hub::ContactRead>();
    // ...and what they take.
    d.visit::<Kind>();
    d.visit::<Source>();
    d.visit::<AllocationStep>();
    d.visit::<FlowStatus>();
    d.visit::<aidmesh_hub::model::GrievanceStatus>();
    d.visit::<Paper>();
    let mut out = String::from(
        "// Generated from the Rust types by src-tauri/src/edge.rs: do not edit.\n\
         // `cargo xtask types` writes it again after a change on the Rust side.\n",
    );
    for decl in d.done.values() {
        out.push('\n');
        out.push_str(decl);
        out.push('\n');
    }
    // The fields of every kind, as the hub's `template` answers them: the contract checks each
    // backend's templates against these.
    let fields: BTreeMap<&str, Vec<String>> = Kind::ALL.iter().map(|k| (k.name(), k.field_names())).collect();
    out.push_str("\n/** Every kind's fields, as the hub's `template` names them. */\n");
    out.push_str(&format!(
        "export const KIND_FIELDS: {{ [K in Kind]: string[] }} = {};\n",
        serde_json::to_string(&fields).unwrap_or_default()
    ));
    out
}

/// Declarations by TypeScript name, gathered by walking each type's dependencies (each type
/// once: some, like JSON values, contain themselves).
struct Decls {
    cfg: ts_rs::Config,
    done: BTreeMap<String, String>,
    seen: std::collections::HashSet<std::any::TypeId>,
}

impl TypeVisitor for Decls {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        if !self.seen.insert(std::any::TypeId::of::<T>()) {
            return;
        }
        if T::output_path().is_some() {
            let docs = T::docs().unwrap_or_default();
            self.done.insert(T::ident(&self.cfg), format!("{docs}export {}", T::decl(&self.cfg)));
        }
        T::visit_dependencies(self);
        T::visit_generics(self);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// The UI's copy of the types is the one the hub sends: a change on either side that the
    /// other does not follow fails here (and the UI's type check then shows every use).
    #[test]
    fn the_ui_reads_the_types_the_hub_sends() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/hub.gen.ts");
        let now = super::typescript();
        if std::env::var_os("AIDMESH_WRITE_TYPES").is_some() {
            std::fs::write(&path, &now).unwrap();
            return;
        }
        let before = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            before == now,
            "{} differs from the Rust types: run `cargo xtask types` and check the UI with `npm run check` in ui/",
            path.display()
        );
    }
}
