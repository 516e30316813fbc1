//! The coalition's membership: a log of signed entries, evaluated on read.
//!
//! Any hub can write anything into a CRDT, so membership is never a list trusted as written.
//! An entry counts only if its signature is valid and its signer was an admin of the coalition
//! when it signed, which chains every admission back to the founding hub. Entries are evaluated
//! in a fixed order (time, then signature), so every hub that holds the same entries computes the
//! same members.

use std::collections::{BTreeMap, BTreeSet};

use aidmesh_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::authority::Key;
use crate::hex;
use crate::identity::{verify_strict, HubId, Identity};

/// What a member may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May admit and revoke hubs and change roles.
    Admin,
    /// Syncs and writes records.
    Member,
}

/// A change to membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Admits a hub by its public key (hex), with a name people recognise.
    Admit {
        key: String,
        name: String,
        role: Role,
    },
    Revoke {
        hub: HubId,
    },
    SetRole {
        hub: HubId,
        role: Role,
    },
}

/// One signed entry of the membership log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub action: Action,
    /// Public key of the signer, hex.
    pub signer: String,
    pub at: Timestamp,
    /// Ed25519 signature over [`Entry::signed_bytes`], hex.
    pub sig: String,
}

impl Entry {
    /// Signs an action as `identity` at time `at`.
    pub fn sign(identity: &Identity, action: Action, at: Timestamp) -> Entry {
        let mut e = Entry { action, signer: hex::encode(identity.public().as_bytes()), at, sig: String::new() };
        e.sig = hex::encode(identity.sign(&e.signed_bytes()));
        e
    }

    /// The bytes the signature covers: a domain tag and the canonical JSON of everything else.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let body = serde_json::json!({ "action": self.action, "signer": self.signer, "at": self.at });
        let mut out = b"aidmesh membership v1\n".to_vec();
        out.extend(serde_json::to_vec(&body).unwrap_or_default());
        out
    }

    fn check_signature(&self) -> Result<[u8; 32], String> {
        let key: [u8; 32] = hex::decode_array(&self.signer).ok_or("the signer key is malformed")?;
        let sig: [u8; 64] = hex::decode_array(&self.sig).ok_or("the signature is malformed")?;
        if verify_strict(&key, &self.signed_bytes(), &sig) {
            Ok(key)
        } else {
            Err("the signature does not match the entry".into())
        }
    }
}

/// A current member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: HubId,
    pub key: Key,
    pub name: String,
    pub role: Role,
    pub since: Timestamp,
}

/// The members a log of entries makes, and the entries that did not count.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct Members {
    pub members: BTreeMap<HubId, Member>,
    pub revoked: BTreeSet<HubId>,
    /// (index in the given entries, why it did not count).
    pub rejected: Vec<(usize, String)>,
}

impl Members {
    /// Evaluates the log. `founder_key` (hex) is the trust anchor: the founding hub is an admin
    /// from the start and cannot be revoked.
    pub fn evaluate(founder_key: &str, founder_name: &str, founded: Timestamp, entries: &[Entry]) -> Members {
        let mut m = Members::default();
        let Some(fk) = hex::decode_array::<32>(founder_key) else {
            return m;
        };
        let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&fk) else { return m };
        let founder = HubId::of(&vk);
        m.members.insert(
            founder.clone(),
            Member {
                id: founder.clone(),
                key: Key(fk),
                name: founder_name.to_string(),
                role: Role::Admin,
                since: founded,
            },
        );
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|a, b| (entries[*a].at, &entries[*a].sig).cmp(&(entries[*b].at, &entries[*b].sig)));
        for i in order {
            let e = &entries[i];
            let signer = match e.check_signature() {
                Ok(k) => match ed25519_dalek::VerifyingKey::from_bytes(&k) {
                    Ok(vk) => HubId::of(&vk),
                    Err(_) => {
                        m.rejected.push((i, "the signer key is not a valid Ed25519 key".into()));
                        continue;
                    }
                },
                Err(why) => {
                    m.rejected.push((i, why));
                    continue;
                }
            };
            if m.members.get(&signer).map(|s| s.role) != Some(Role::Admin) {
                m.rejected.push((i, format!("{} was not an admin of the coalition when it signed", signer.short())));
                continue;
            }
            match &e.action {
                Action::Admit { key, name, role } => {
                    let Some(vk) =
                        hex::decode_array::<32>(key).and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
                    else {
                        m.rejected.push((i, "the admitted key is not a valid Ed25519 key".into()));
                        continue;
                    };
                    let id = HubId::of(&vk);
                    m.revoked.remove(&id);
                    m.members.insert(
                        id.clone(),
                        Member { id, key: Key(vk.to_bytes()), name: name.clone(), role: *role, since: e.at },
                    );
                }
                Action::Revoke { hub } if *hub == founder => {
                    m.rejected.push((i, "the founding hub cannot be revoked".into()));
                }
                Action::Revoke { hub } => {
                    if m.members.remove(hub).is_some() {
                        m.revoked.insert(hub.clone());
                    }
                }
                Action::SetRole { hub, role } => match m.members.get_mut(hub) {
                    Some(mem) if *hub != founder => mem.role = *role,
                    Some(_) => m.rejected.push((i, "the founding hub stays an admin".into())),
                    None => m.rejected.push((i, format!("{} is not a member", hub.short()))),
                },
            }
        }
        m
    }

    pub fn is_member(&self, id: &HubId) -> bool {
        self.members.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn t(h: i64) -> Timestamp {
        Timestamp::from_millis(1_764_000_000_000 + h * 3_600_000)
    }

    fn ids() -> (Identity, Identity, Identity, Identity) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        (
            Identity::generate(&mut rng),
            Identity::generate(&mut rng),
            Identity::generate(&mut rng),
            Identity::generate(&mut rng),
        )
    }

    fn admit(by: &Identity, who: &Identity, role: Role, at: Timestamp) -> Entry {
        Entry::sign(by, Action::Admit { key: hex::encode(who.public().as_bytes()), name: "hub".into(), role }, at)
    }

    #[test]
    fn admissions_chain_back_to_the_founder() {
        let (founder, a, b, outsider) = ids();
        let fk = hex::encode(founder.public().as_bytes());
        let log = vec![
            admit(&founder, &a, Role::Admin, t(1)),
            admit(&a, &b, Role::Member, t(2)),
            // b is a plain member: its admission of the outsider does not count.
            admit(&b, &outsider, Role::Member, t(3)),
            // Nor does the outsider admitting itself.
            admit(&outsider, &outsider, Role::Admin, t(4)),
        ];
        let m = Members::evaluate(&fk, "North", t(0), &log);
        assert!(m.is_member(&founder.id()) && m.is_member(&a.id()) && m.is_member(&b.id()));
        assert!(!m.is_member(&outsider.id()));
        assert_eq!(m.rejected.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 3]);
        // Order of the given entries does not matter.
        let mut rev = log.clone();
        rev.reverse();
        let m2 = Members::evaluate(&fk, "North", t(0), &rev);
        assert_eq!(m2.members, m.members);
    }

    #[test]
    fn revocation_removes_authority_from_then_on() {
        let (founder, a, b, c) = ids();
        let fk = hex::encode(founder.public().as_bytes());
        let log = vec![
            admit(&founder, &a, Role::Admin, t(1)),
            admit(&a, &b, Role::Member, t(2)),
            Entry::sign(&founder, Action::Revoke { hub: a.id() }, t(3)),
            // After its revocation, a can admit no one.
            admit(&a, &c, Role::Member, t(4)),
            Entry::sign(&a, Action::Revoke { hub: founder.id() }, t(5)),
        ];
        let m = Members::evaluate(&fk, "North", t(0), &log);
        assert!(!m.is_member(&a.id()) && m.revoked.contains(&a.id()));
        assert!(m.is_member(&b.id()), "what a signed while it held authority still counts");
        assert!(!m.is_member(&c.id()));
        assert!(m.is_member(&founder.id()));
    }

    #[test]
    fn tampered_entries_do_not_count() {
        let (founder, a, b, _) = ids();
        let fk = hex::encode(founder.public().as_bytes());
        let mut e = admit(&founder, &a, Role::Member, t(1));
        e.action = Action::Admit { key: hex::encode(b.public().as_bytes()), name: "evil".into(), role: Role::Admin };
        let mut garbled = admit(&founder, &b, Role::Member, t(2));
        garbled.sig = "zz".into();
        let m = Members::evaluate(&fk, "North", t(0), &[e, garbled]);
        assert_eq!(m.members.len(), 1);
        assert_eq!(m.rejected.len(), 2);
        assert!(m.rejected[0].1.contains("signature"));
        // A bad founder key yields no members at all rather than a panic.
        assert!(Members::evaluate("nothex", "x", t(0), &[]).members.is_empty());
    }

    #[test]
    fn entries_round_trip_as_json() {
        let (founder, a, _, _) = ids();
        let e = admit(&founder, &a, Role::Admin, t(1));
        let j = serde_json::to_string(&e).unwrap();
        let back: Entry = serde_json::from_str(&j).unwrap();
        assert_eq!(back, e);
        assert!(back.check_signature().is_ok());
    }
}
