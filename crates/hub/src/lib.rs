//! The application API of an aidmesh hub: what the CLI and the desktop shell both call.
//!
//! A [`Hub`] owns one store file and the Automerge documents inside it. Commands validate input
//! against the model's rules, write one record at a time to its partition document, and persist
//! the Automerge change, the query index and stock sums in one store transaction before they
//! return. Queries read the query index; documents are loaded only when a write or a merge needs
//! them, so opening a hub costs the same whatever the coalition's size.
//!
//! Time comes from a [`Clock`] and randomness from a seeded generator that the caller supplies.

mod authority;
mod bundle;
mod care;
mod contacts;
#[cfg(feature = "demo")]
mod demo;
mod driver;
mod error;
mod exchange;
mod files;
mod flow;
mod members;
mod people;
mod query;
mod repair;
mod signing;
mod sync;
mod whereabouts;
mod write;

use std::collections::HashMap;
use std::path::Path;

use aidmesh_mesh::Identity;
use aidmesh_model::Timestamp;
use aidmesh_replica::{Doc, Index, INDEX_DOC};
use aidmesh_store::Store;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

pub use aidmesh_mesh::{HubId, Role as MemberRole};
pub use aidmesh_model as model;
pub use aidmesh_store::{sibling as sibling_path, Error as StoreError, Hit, LogFolder, VaultState};
pub use authority::{
    Authority, AuthorityOffer, PersonView, PolicyView, RefusedView, VoteView, WaitingChange, WaitingView, LAPSED,
    REFUSALS_NAMED,
};
pub use bundle::{BundleExport, BundleSummary};
pub use contacts::{ContactRead, ContactState, ContactView, MIN_REASON_CHARS};
#[cfg(feature = "demo")]
pub use demo::{generate, Scale};
pub use driver::Driver;
pub use error::{Error, Result, RowError};
pub use exchange::{HxlKind, ImportReport};
pub use files::{
    begin_join, clear_unfinished_join, join_finished, private_dir, read_bundle_file, unfinished_join, write_atomically,
};
pub use flow::{AllocationStep, SuggestionView, MAX_SUGGESTIONS};
pub use members::{Founder, FounderCode};
pub use people::{LocalPerson, MIN_PIN_CHARS};

pub use query::{
    ConflictEntry, Conflicted, HistoryLine, Ledger, Listed, Overview, PlaceView, RecordView, Roster, StockLine, Stored,
    Waiting,
};
pub use repair::DocRepair;
pub use whereabouts::WhereaboutsView;
pub use write::{DocExport, Erased, UPKEEP_AT_LEAST_MS};

/// An error with code `busy` if a process owns the store at `path` now, checked without
/// opening it.
pub fn ensure_store_free(path: &Path) -> Result<()> {
    Ok(Store::ensure_free(path)?)
}

/// The shortest passphrase a new store or a changed passphrase may have, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

/// The rule for a new passphrase, the same for every face: at least [`MIN_PASSPHRASE_CHARS`]
/// characters, and not easy to guess as zxcvbn judges it (score 3 of 4, about 10^8 guesses or
/// more, each guess costing a store unlock), counting `context` (the hub's name, the handle, the
/// place) as easy guesses. The error says why and what would do.
pub fn check_new_passphrase(passphrase: &str, context: &[&str]) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::invalid(
            "hub",
            vec![model::FieldError::new(
                "passphrase",
                format!("{why} (a lost passphrase cannot be recovered: write it down somewhere safe)"),
            )],
        ))
    };
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return refuse(format!("needs at least {MIN_PASSPHRASE_CHARS} characters"));
    }
    let mut known = vec!["aidmesh", "hub", "mesh", "coalition"];
    known.extend(context.iter().flat_map(|c| c.split_whitespace()));
    let judged = zxcvbn::zxcvbn(passphrase, &known);
    if judged.score() < zxcvbn::Score::Three {
        let feedback = judged.feedback();
        let warning = feedback.and_then(|f| f.warning()).map(|w| format!(": {w}")).unwrap_or_default();
        let hint = feedback
            .map(|f| f.suggestions().iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" "))
            .filter(|h| !h.is_empty())
            .map(|h| format!(" {h}"))
            .unwrap_or_default();
        return refuse(format!(
            "is too easy to guess{warning}.{hint} Three or four words that do not belong together make a good one"
        ));
    }
    Ok(())
}

pub use aidmesh_model::clock::{Clock, ManualClock, SystemClock};

/// How to open a hub: the acting person, the clock and the random seed.
pub struct Config {
    /// Pseudonymous handle of the person at the keyboard: recorded as author of what they write.
    pub handle: String,
    pub clock: Box<dyn Clock>,
    /// Seed of the hub's random generator (ids, vault keys). Fresh from the OS in production.
    pub seed: [u8; 32],
}

impl Config {
    /// The production configuration: system clock, seed from the operating system.
    pub fn system(handle: &str) -> Config {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Config { handle: handle.to_string(), clock: Box::new(SystemClock), seed }
    }
}

/// What a new hub is called.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    pub hub_name: String,
    pub location: String,
    /// The founding coordinator's PIN (the handle is `Config::handle`). Without one, their key
    /// is protected by the store's encryption alone (see `people.rs`).
    pub pin: Option<String>,
}

/// Something the hub's records did: the UI listens to update live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Records were created or changed, here or by a merge.
    RecordsChanged { ids: Vec<String> },
    /// The authority log grew (people, roles, hubs, policy, approvals), here or from a peer.
    AuthorityChanged,
    /// Vault entries (contacts) were stored, saved again or erased, here or from a peer: a
    /// screen showing one reads it again, or stops showing it.
    VaultChanged { ids: Vec<String> },
    /// A long task advanced: `done` of `total` documents.
    Progress { task: Task, done: u64, total: u64 },
}

/// Long tasks that report [`Event::Progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    BundleExport,
    BundleImport,
}

/// A subscriber to hub events.
type Listener = Box<dyn FnMut(&Event) + Send>;

/// The Automerge actor of one run of a hub: the hub's public key, then 8 random bytes. Each
/// run writes under its own actor, so that no two runs (nor two processes, should the store's
/// lock ever fail) can give two different changes the same actor and sequence number; the
/// key prefix still names the hub.
fn run_actor(identity: &Identity, rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut actor = identity.public().as_bytes().to_vec();
    let mut run = [0u8; 8];
    rng.fill_bytes(&mut run);
    actor.extend_from_slice(&run);
    actor
}

/// Who acted at a hub before [`Hub::act_as`]: a handle, and the unlocked person if any.
pub struct Acting {
    handle: String,
    person: Option<(Identity, LocalPerson)>,
}

/// Documents kept in memory at once; others are dropped and reloaded when needed.
const DOC_CACHE: usize = 6;

/// An open hub.
pub struct Hub {
    identity: Identity,
    store: Store,
    index: Index,
    docs: HashMap<String, (u64, Doc)>,
    use_counter: u64,
    /// Documents read from the store into memory since opening (see [`Hub::documents_loaded`]).
    loads: u64,
    hub_id: String,
    actor: Vec<u8>,
    handle: String,
    clock: Box<dyn Clock>,
    rng: ChaCha20Rng,
    listeners: Vec<(u64, Listener)>,
    next_listener: u64,
    /// What opening repaired (see [`Hub::repaired_at_open`]).
    repaired: Vec<DocRepair>,
    /// Documents changed since the sync driver last asked (see `take_changed_docs`).
    changed_docs: std::collections::BTreeSet<String>,
    /// Vault entries changed since the sync driver last asked.
    vault_changes: Vec<aidmesh_mesh::session::VaultItem>,
    /// Whereabouts taken since the sync driver last asked (see `whereabouts.rs`).
    whereabouts_changes: Vec<aidmesh_mesh::whereabouts::Whereabouts>,
    /// The authority log, loaded when first needed (see `authority.rs`).
    authority: std::cell::RefCell<Option<aidmesh_mesh::authority::Log>>,
    /// Until the log is loaded: its resolved state as the store kept it.
    authority_kept: std::cell::RefCell<Option<aidmesh_mesh::authority::Resolved<'static>>>,
    /// How many entries the resolved state in the store stands for, once known.
    authority_kept_entries: std::cell::Cell<Option<u64>>,
    /// Upkeep could not load the log: it does not try again in this run.
    authority_unloadable: bool,
    /// Authority entries stored since the sync driver last asked.
    authority_changes: Vec<Vec<u8>>,
    /// The person this hub signs authority work as (see `people.rs`).
    acting: Option<(Identity, LocalPerson)>,
    /// Changes that passed the door and wait for what they depend on, per document (see
    /// `signing.rs`).
    waiting_changes: HashMap<String, aidmesh_mesh::changes::Waiting>,
    /// The store's write count when upkeep last looked, and when it last did a step (see
    /// [`Hub::upkeep`]).
    upkept_at: u64,
    upkept_when: i64,
    /// The store's write count when upkeep last found nothing to do.
    rested_at: Option<u64>,
    /// Documents that could not be folded in this run (they do not load): not tried again.
    unfoldable: std::collections::BTreeSet<String>,
}

impl Hub {
    /// Creates a new hub store at `path` and records the hub in its coalition document.
    pub fn init(path: &Path, passphrase: &str, opts: &InitOptions, config: Config) -> Result<Hub> {
        if opts.hub_name.trim().is_empty() {
            return Err(Error::invalid("hub", vec![model::FieldError::new("name", "is required")]));
        }
        if config.handle.trim().is_empty() {
            return Err(Error::invalid("hub", vec![model::FieldError::new("handle", "is required")]));
        }
        check_new_passphrase(passphrase, &[&opts.hub_name, &config.handle, &opts.location])?;
        if let Some(pin) = &opts.pin {
            people::check_pin(pin)?;
        }
        let mut rng = ChaCha20Rng::from_seed(config.seed);
        let identity = Identity::generate(&mut rng);
        let hub_id = identity.id().to_string();
        let actor = run_actor(&identity, &mut rng);
        let mut coalition_key = [0u8; 32];
        rng.fill_bytes(&mut coalition_key);
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let mut store = Store::create(path, passphrase, salt)?;
        let mut index = Index::new(&actor);
        let bytes = index.doc().save();
        let now = config.clock.now();
        let created = store.write(|tx| {
            tx.set_meta("hub_id", &hub_id)?;
            tx.set_meta("hub_name", opts.hub_name.trim())?;
            tx.set_meta("identity", &aidmesh_mesh::hex::encode(identity.secret()))?;
            // This hub founds its coalition; joining another replaces the founder (mesh issue).
            tx.set_meta("founder_key", &aidmesh_mesh::hex::encode(identity.public().as_bytes()))?;
            tx.set_meta("founder_name", opts.hub_name.trim())?;
            tx.set_meta("founded_at", &now.millis().to_string())?;
            tx.set_meta("coalition_key", &aidmesh_mesh::hex::encode(coalition_key))?;
            tx.add_doc(INDEX_DOC, "index", 0)?;
            tx.replace_doc(INDEX_DOC, &bytes)
        });
        if let Err(e) = created {
            let _ = store.destroy();
            return Err(e.into());
        }
        let mut hub = Hub::assemble(store, index, hub_id, identity, actor, config, rng);
        let mut fields = serde_json::Map::new();
        fields.insert("name".into(), opts.hub_name.trim().into());
        fields.insert("location".into(), opts.location.trim().into());
        // A store that could not be made whole goes, with its journal: the next try starts clean.
        // The founding coordinator gets their key and founds the coalition's authority log.
        let handle = hub.handle.clone();
        let recorded = hub
            .add(model::Kind::Hub, fields)
            .and_then(|rec| Ok(hub.store.write(|tx| tx.set_meta("hub_record", rec.id().as_str()))?))
            .and_then(|_| hub.make_person(&handle, opts.pin.as_deref()))
            .and_then(|p| hub.unlock(&p.key, opts.pin.as_deref()))
            .and_then(|_| hub.found_coalition(true));
        if let Err(e) = recorded {
            let _ = hub.discard();
            return Err(e);
        }
        Ok(hub)
    }

    /// Opens an existing hub store.
    pub fn open(path: &Path, passphrase: &str, config: Config) -> Result<Hub> {
        let mut store = Store::open(path, passphrase)?;
        let mut rng = ChaCha20Rng::from_seed(config.seed);
        let identity = match store.meta("identity")? {
            Some(h) => {
                let secret = aidmesh_mesh::hex::decode(&h)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| Error::Corrupt("the store's hub identity is malformed".into()))?;
                Identity::from_secret(&secret)
            }
            // A store from before hubs had keys: give it one, founding its own coalition.
            None => {
                let identity = Identity::generate(&mut rng);
                let name = store.meta("hub_name")?.unwrap_or_default();
                let now = config.clock.now();
                store.write(|tx| {
                    tx.set_meta("identity", &aidmesh_mesh::hex::encode(identity.secret()))?;
                    tx.set_meta("hub_id", &identity.id().to_string())?;
                    tx.set_meta("founder_key", &aidmesh_mesh::hex::encode(identity.public().as_bytes()))?;
                    tx.set_meta("founder_name", &name)?;
                    tx.set_meta("founded_at", &now.millis().to_string())
                })?;
                identity
            }
        };
        let hub_id = identity.id().to_string();
        // A founding hub from before bundles: give its coalition a key.
        let own = aidmesh_mesh::hex::encode(identity.public().as_bytes());
        if store.meta("coalition_key")?.is_none() && store.meta("founder_key")?.as_deref() == Some(own.as_str()) {
            let mut k = [0u8; 32];
            rng.fill_bytes(&mut k);
            store.write(|tx| tx.set_meta("coalition_key", &aidmesh_mesh::hex::encode(k)))?;
        }
        let actor = run_actor(&identity, &mut rng);
        let bytes =
            store.doc_bytes(INDEX_DOC)?.ok_or_else(|| Error::Corrupt("the index document is missing".into()))?;
        // A store damaged by two processes writing as one actor: repaired as it opens.
        let (index, damaged) = match Doc::load(INDEX_DOC, &bytes, &actor) {
            Ok(doc) => (Index::from_doc(doc), false),
            Err(_) => (Index::new(&actor), true),
        };
        let mut hub = Hub::assemble(store, index, hub_id, identity, actor, config, rng);
        if damaged {
            hub.repaired = hub.repair()?;
        }
        hub.unlock_default()?;
        hub.migrate_to_authority_log()?;
        hub.sign_own_vault()?;
        Ok(hub)
    }

    fn assemble(
        store: Store,
        index: Index,
        hub_id: String,
        identity: Identity,
        actor: Vec<u8>,
        config: Config,
        rng: ChaCha20Rng,
    ) -> Hub {
        let opened = config.clock.now().millis();
        Hub {
            identity,
            store,
            index,
            docs: HashMap::new(),
            use_counter: 0,
            loads: 0,
            hub_id,
            actor,
            handle: config.handle,
            clock: config.clock,
            rng,
            listeners: Vec::new(),
            next_listener: 0,
            repaired: Vec::new(),
            changed_docs: std::collections::BTreeSet::new(),
            vault_changes: Vec::new(),
            whereabouts_changes: Vec::new(),
            authority: std::cell::RefCell::new(None),
            authority_kept: std::cell::RefCell::new(None),
            authority_kept_entries: std::cell::Cell::new(None),
            authority_unloadable: false,
            authority_changes: Vec::new(),
            acting: None,
            waiting_changes: HashMap::new(),
            upkept_at: 0,
            upkept_when: opened,
            rested_at: None,
            unfoldable: Default::default(),
        }
    }

    /// This hub's id.
    pub fn hub_id(&self) -> &str {
        &self.hub_id
    }

    /// This hub's name.
    pub fn hub_name(&self) -> Result<String> {
        Ok(self.store.meta("hub_name")?.unwrap_or_default())
    }

    /// The acting person's handle.
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// Acts as another person from now on (a command run through the hub that owns the store
    /// acts as the handle it was given): their key is unlocked if no PIN guards it, otherwise
    /// no one is unlocked until they give their PIN. Returns who acted before, for
    /// [`Hub::restore_acting`].
    pub fn act_as(&mut self, handle: &str) -> Acting {
        let previous =
            Acting { handle: std::mem::replace(&mut self.handle, handle.to_string()), person: self.acting.take() };
        if let Err(e) = self.unlock_default() {
            tracing::warn!(error = %e, "cannot unlock {handle}");
        }
        previous
    }

    /// Goes back to who acted before [`Hub::act_as`].
    pub fn restore_acting(&mut self, previous: Acting) {
        self.handle = previous.handle;
        self.acting = previous.person;
    }

    /// Documents that did not load and were repaired as the store opened (see [`Hub::repair`]).
    pub fn repaired_at_open(&self) -> &[DocRepair] {
        &self.repaired
    }

    /// How many times this hub has read a document from its store into memory since it
    /// opened. It keeps six in memory at once; a sync of many documents should read
    /// each one it sends or takes at most once, and none it need not touch.
    pub fn documents_loaded(&self) -> u64 {
        self.loads
    }

    /// The store file this hub owns.
    pub fn store_path(&self) -> &Path {
        self.store.path()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Calls `f` for every event from now on, until [`Hub::unsubscribe`] with the id returned.
    pub fn subscribe(&mut self, f: impl FnMut(&Event) + Send + 'static) -> u64 {
        self.next_listener += 1;
        self.listeners.push((self.next_listener, Box::new(f)));
        self.next_listener
    }

    /// Stops calling a subscriber.
    pub fn unsubscribe(&mut self, id: u64) {
        self.listeners.retain(|(i, _)| *i != id);
    }

    /// Closes the hub and removes its store: for a store made for a join that failed, so that
    /// the next try starts clean.
    pub fn discard(self) -> Result<()> {
        Ok(self.store.destroy()?)
    }

    /// Caps the store file's size at about `mib` MiB: past it, writes fail as on a full disk.
    pub fn limit_store_size(&mut self, mib: i64) -> Result<()> {
        let pages = (mib * 256).max(self.store.page_count()?);
        Ok(self.store.limit_pages(pages)?)
    }

    /// Changes the store passphrase, after checking the current one (a person at an unlocked
    /// laptop must still know it).
    pub fn change_passphrase_checked(&mut self, current: &str, new: &str) -> Result<()> {
        self.store.check_passphrase(current)?;
        self.change_passphrase(new)
    }

    /// Changes the store passphrase (the new one follows [`check_new_passphrase`]).
    pub fn change_passphrase(&mut self, new: &str) -> Result<()> {
        let name = self.hub_name().unwrap_or_default();
        check_new_passphrase(new, &[&name, &self.handle])?;
        Ok(self.store.rekey(new)?)
    }

    fn emit(&mut self, e: Event) {
        for (_, l) in &mut self.listeners {
            l(&e);
        }
    }

    pub(crate) fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }
}
