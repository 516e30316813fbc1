//! How hubs know each other: identities, the coalition's signed membership log, and the sync
//! session that merges documents between two hubs.
//!
//! Everything here is sans-IO: keys come from a random source the caller passes, time is a
//! parameter, and the session turns events into effects without touching a socket.

pub mod bundle;
pub mod discovery;
pub mod identity;
pub mod invite;
pub mod membership;
pub mod memory;
pub mod net;
pub mod session;

pub use identity::{HubId, Identity};
pub use membership::{Action, Entry, Members, Role};
