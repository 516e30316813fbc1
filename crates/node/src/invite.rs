//! Invites and joining, as both front ends run them: the inviting hub opens a one-time listener
//! and, once its coordinator confirms the code both screens show, admits the joiner and hands
//! over what it needs (founder, coalition key, the coalition's documents with the whole signed
//! membership log, where to sync); the joining hub checks the invite, shows the confirmation
//! code and adopts the coalition.

use aidmesh_hub::Driver;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use aidmesh_hub::model::Timestamp;
use aidmesh_hub::{Founder, Hub};
use aidmesh_mesh::changes::ChangeSig;
pub use aidmesh_mesh::invite::join;
use aidmesh_mesh::invite::{accept_join, Invite, Pending, Welcome, WelcomeDoc};
use anyhow::{bail, Result};
use rand_core::RngCore;

/// The wall clock, for invite expiry.
fn wall_now() -> Timestamp {
    aidmesh_hub::model::Clock::now(&aidmesh_hub::model::SystemClock)
}

/// An invite listening for its one joiner.
pub struct OpenInvite {
    pub invite: Invite,
    listener: tokio::net::TcpListener,
    identity: aidmesh_mesh::Identity,
}

/// Whether the person unlocked at this hub may invite (admins only), and the identity an
/// invite is made with.
pub fn inviter(hub: &Hub) -> Result<aidmesh_mesh::Identity> {
    if !hub.acting_is_admin()? {
        match hub.acting() {
            Some(p) => bail!("{} is not an admin of the coalition: an admin invites", p.handle),
            None => bail!("no one is unlocked at this hub: an admin unlocks with their PIN to invite"),
        }
    }
    Ok(hub.identity())
}

/// The coordinator a joining hub presents: the unlocked person, or else the person kept here
/// under the hub's handle.
pub fn claim(hub: &Hub) -> Option<aidmesh_mesh::invite::Claim> {
    let p =
        hub.acting().cloned().or_else(|| hub.local_people().ok()?.into_iter().find(|p| p.handle == hub.handle()))?;
    Some(aidmesh_mesh::invite::Claim { key: p.key, handle: p.handle })
}

/// Opens an invite on `listen` (port 0: any), valid `minutes`, advertising `advertise` (the
/// address the joining laptop can reach; by default the listening address).
pub async fn open_invite(
    identity: aidmesh_mesh::Identity,
    listen: SocketAddr,
    advertise: Option<Ipv4Addr>,
    minutes: u32,
) -> Result<OpenInvite> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let ip = match (advertise, local.ip()) {
        (Some(ip), _) => ip,
        (None, std::net::IpAddr::V4(ip)) if !ip.is_unspecified() => ip,
        _ => bail!("give the IPv4 address the joining laptop can reach (--advertise)"),
    };
    let mut secret = [0u8; 10];
    rand_core::OsRng.fill_bytes(&mut secret);
    let expires_min = (wall_now().millis() / 60_000) as u32 + minutes;
    let invite = Invite { inviter: identity.id(), addr: SocketAddrV4::new(ip, local.port()), secret, expires_min };
    Ok(OpenInvite { invite, listener, identity })
}

impl OpenInvite {
    /// Waits for the joiner (until the invite expires); the coordinator then compares
    /// `Pending::confirmation` with the joiner's screen and calls [`admit`] or refuses.
    pub async fn wait(&self) -> Result<Pending> {
        accept_join(&self.identity, &self.listener, &self.invite, wall_now).await.map_err(anyhow::Error::msg)
    }
}

/// Admits a confirmed joiner and makes what it is sent: founder, coalition key, and `peer`,
/// where this hub syncs. Send it with `Pending::answer`.
pub fn admit(hub: &mut Hub, pending: &Pending, peer: Option<String>) -> Result<Welcome> {
    let key = aidmesh_mesh::hex::encode(pending.joiner_key);
    hub.admit(&key, &pending.name)?;
    // The joining hub's coordinator comes in with their hub, as a plain member.
    if let Some(p) = pending.person.as_ref().filter(|p| !hub.is_person(&p.key).unwrap_or(false)) {
        hub.add_person(&p.key, &p.handle, false)?;
    }
    let f = hub.founder()?;
    let coalition = hub
        .coalition_docs()?
        .into_iter()
        .map(|d| WelcomeDoc {
            doc: d.doc,
            partition: d.partition,
            created_at: d.created_at.millis(),
            bytes: aidmesh_mesh::hex::encode(&d.bytes),
            sigs: d.sigs.iter().map(|s| aidmesh_mesh::hex::encode(s.to_bytes())).collect(),
        })
        .collect();
    Ok(Welcome {
        founder_key: f.key,
        founder_name: f.name,
        founded_at: f.at.millis(),
        peer,
        coalition_key: hub.coalition_key_hex()?,
        coalition,
        coalition_id: hub.coalition_id()?,
        authority: hub.authority_entries()?.into_iter().filter_map(|e| String::from_utf8(e).ok()).collect(),
    })
}

/// Reads an invite code, refusing an expired one before anything else happens.
pub fn parse_invite(code: &str) -> Result<Invite> {
    let inv = Invite::parse(code).map_err(anyhow::Error::msg)?;
    if inv.expired(wall_now()) {
        bail!("this invite has expired: ask for a new one");
    }
    Ok(inv)
}

/// Adopts the coalition a welcome describes (after `aidmesh_mesh::invite::join`).
pub fn adopt(hub: &mut Hub, welcome: &Welcome) -> Result<()> {
    // The whole membership log comes with the coalition's documents: this hub accepts every
    // member, not only the founder, at once. Entries count only as far as their signatures chain
    // back to the founder adopted here. Every document is checked before anything changes.
    let known = hub.doc_partitions()?;
    let mut docs = Vec::new();
    for d in &welcome.coalition {
        let elsewhere = known.get(&d.doc).is_some_and(|p| p != "coalition");
        if d.partition != "coalition" || !d.doc.starts_with("coalition-") || elsewhere {
            bail!("the welcome holds document {:?}, which is not the coalition's: nothing adopted", d.doc);
        }
        let bytes = aidmesh_mesh::hex::decode(&d.bytes)
            .ok_or_else(|| anyhow::anyhow!("the welcome's document {:?} is not hex: nothing adopted", d.doc))?;
        let sigs = d
            .sigs
            .iter()
            .map(|s| aidmesh_mesh::hex::decode(s).as_deref().and_then(ChangeSig::from_bytes))
            .collect::<Option<Vec<ChangeSig>>>()
            .ok_or_else(|| {
                anyhow::anyhow!("the welcome's document {:?} has a damaged signature: nothing adopted", d.doc)
            })?;
        docs.push((d, bytes, sigs));
    }
    let entries: Vec<Vec<u8>> = welcome.authority.iter().map(|e| e.as_bytes().to_vec()).collect();
    hub.adopt_founder(&Founder {
        key: welcome.founder_key.clone(),
        name: welcome.founder_name.clone(),
        at: Timestamp::from_millis(welcome.founded_at),
    })?;
    if let Some(k) = &welcome.coalition_key {
        hub.set_coalition_key(k)?;
    }
    let offer = hub.adopt_authority(welcome.coalition_id.as_deref(), &entries)?;
    if !offer.refused.is_empty() {
        tracing::warn!(refused = offer.refused.len(), first = %offer.refused[0], "entries of the welcome's authority log were refused (the first 20 named, the rest counted)");
    }
    for (d, bytes, sigs) in docs {
        hub.merge_doc(&d.doc, &d.partition, Timestamp::from_millis(d.created_at), &bytes, &sigs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(dir: &std::path::Path, name: &str) -> Hub {
        let opts = aidmesh_hub::InitOptions { hub_name: name.into(), location: String::new(), pin: None };
        Hub::init(&dir.join(format!("{name}.aidmesh")), "pw for tests", &opts, aidmesh_hub::Config::system("coord"))
            .unwrap()
    }

    /// A welcome may bring the coalition's documents only: not the index, not a document this
    /// hub holds under another partition. Nothing is adopted from one that tries.
    #[test]
    fn a_welcome_with_documents_other_than_the_coalitions_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut inviter = hub(dir.path(), "north");
        let mut joiner = hub(dir.path(), "south");
        let founder_before = joiner.founder().unwrap();
        let good = inviter.coalition_docs().unwrap();
        assert!(!good.is_empty());
        let f = inviter.founder().unwrap();
        let welcome = |docs: Vec<WelcomeDoc>| Welcome {
            founder_key: f.key.clone(),
            founder_name: f.name.clone(),
            founded_at: f.at.millis(),
            peer: None,
            coalition_key: None,
            coalition: docs,
            coalition_id: None,
            authority: vec![],
        };
        let as_welcome = |d: &aidmesh_hub::DocExport, doc: &str, partition: &str| WelcomeDoc {
            doc: doc.into(),
            partition: partition.into(),
            created_at: d.created_at.millis(),
            bytes: aidmesh_mesh::hex::encode(&d.bytes),
            sigs: d.sigs.iter().map(|s| aidmesh_mesh::hex::encode(s.to_bytes())).collect(),
        };
        for bad in [
            as_welcome(&good[0], "index", "coalition"),
            as_welcome(&good[0], &good[0].doc, "item"),
            as_welcome(&good[0], "item-01abc", "coalition"),
        ] {
            let e = adopt(&mut joiner, &welcome(vec![bad])).unwrap_err();
            assert!(e.to_string().contains("nothing adopted"), "{e}");
            assert_eq!(joiner.founder().unwrap(), founder_before);
        }
        let ok: Vec<WelcomeDoc> = good.iter().map(|d| as_welcome(d, &d.doc, &d.partition)).collect();
        adopt(&mut joiner, &welcome(ok)).unwrap();
        assert_eq!(joiner.founder().unwrap().key, f.key);
    }
}
