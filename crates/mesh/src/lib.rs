//! How hubs know each other: identities, the coalition's authority log, and the sync
//! session that merges documents between two hubs.
//!
//! The core is sans-IO: keys come from a random source the caller passes, time is a parameter,
//! the session (`session`) turns frames into frames and the connection policy (`policy`)
//! decides which connections live and when to dial, without touching a socket. The tokio
//! driver (`net`), mDNS (`discovery`) and the invite listener (`invite`) are the IO around it.

pub mod authority;
pub mod bundle;
pub mod changes;
pub mod discovery;
pub mod handshake;
pub mod hex;
pub mod identity;
pub mod invite;
pub mod keyring;
pub mod membership;
pub mod memory;
pub mod meter;
pub mod net;
pub mod policy;
pub mod seal;
pub mod session;
pub mod whereabouts;

pub use identity::{HubId, Identity};
pub use membership::{Action, Entry, Members, Role};
