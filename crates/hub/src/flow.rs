//! The request loop: suggestions in words, allocating from an offer or from stock, and an
//! allocation's steps (in transit, delivered, released) with what each step does to the
//! request, the offer and the stock. Every face goes through these, so the rules are the same
//! from the app and from the command.

use aidmesh_model::matching::{Reason, Suggestion};
use aidmesh_model::views::Source;
use aidmesh_model::{
    Allocation, AllocationStatus, Body, FieldError, FlowStatus, Kind, Movement, MovementKind, Record, RecordId,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Error, Hub, Result};

/// The most suggestions answered at once for every open request: a screen's worth, the most
/// urgent requests first.
pub const MAX_SUGGESTIONS: usize = 200;

/// A suggestion with what a person needs to decide on it: what is asked, where it would come
/// from, how much of what is still needed it covers.
#[derive(Clone, Debug, PartialEq, Serialize, ts_rs::TS)]
pub struct SuggestionView {
    pub request: RecordId,
    pub source: Source,
    /// How much to allocate.
    pub quantity: u64,
    /// What the request still needs (asked, less what is allocated).
    pub needed: u64,
    pub score: i64,
    pub reasons: Vec<Reason>,
    /// The request as people read it ("Blankets for the night shelter").
    pub request_label: String,
    /// The offer, or the item in stock ("Corner shop: 10 blankets", "Blanket").
    pub source_label: String,
    /// The place the source is at, by name, if known.
    pub place_label: Option<String>,
}

/// A step an allocation takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum AllocationStep {
    /// On its way: the request reads "in transit".
    InTransit,
    /// Handed over: stock is issued (for stock), the request is fulfilled once delivered
    /// allocations cover it, an offer once they use it up.
    Delivered,
    /// Given back: the source is free again; a request left with nothing allocated reopens.
    Released,
}

impl AllocationStep {
    pub fn parse(s: &str) -> Result<AllocationStep> {
        serde_json::from_value(Value::String(s.trim().to_ascii_lowercase().replace([' ', '-'], "_"))).map_err(|_| {
            Error::invalid(
                "allocation",
                vec![FieldError::new("status", format!("{s:?} is not a step: in_transit, delivered or released"))],
            )
        })
    }
}

impl Hub {
    /// Suggested allocations for one request (up to `limit`), or for every open request (up to
    /// `limit` each, the most urgent requests first, [`MAX_SUGGESTIONS`] in all), in words.
    pub fn suggestions(&self, request: Option<&str>, limit: usize) -> Result<Vec<SuggestionView>> {
        let mut raw = self.raw_suggestions(request, limit)?;
        raw.truncate(MAX_SUGGESTIONS);
        // Many suggestions name the same requests, items and places: each is read once.
        let mut names = std::collections::HashMap::new();
        raw.into_iter().map(|s| self.suggestion_view(s, &mut names)).collect()
    }

    fn suggestion_view(
        &self,
        s: Suggestion,
        names: &mut std::collections::HashMap<RecordId, (String, Option<RecordId>)>,
    ) -> Result<SuggestionView> {
        // A record's label, and for an offer the place it is at.
        let mut read = |id: &RecordId| {
            names
                .entry(id.clone())
                .or_insert_with(|| match self.get(id.as_str()) {
                    Ok(r) => {
                        let at = match &r.body {
                            Body::Offer(o) => o.place.clone(),
                            _ => None,
                        };
                        (r.body.label(), at)
                    }
                    Err(_) => (id.to_string(), None),
                })
                .clone()
        };
        let (source_label, place) = match &s.source {
            Source::Offer { offer } => read(offer),
            Source::Stock { item, place } => (read(item).0, Some(place.clone())),
        };
        let mut label = |id: &RecordId| read(id).0;
        let needed = s
            .reasons
            .iter()
            .find_map(|r| match r {
                Reason::Covers { needed, .. } => Some(*needed),
                _ => None,
            })
            .unwrap_or(s.quantity);
        let request_label = label(&s.request);
        let place_label = place.as_ref().map(label);
        Ok(SuggestionView {
            request_label,
            source_label,
            place_label,
            needed,
            request: s.request,
            source: s.source,
            quantity: s.quantity,
            score: s.score,
            reasons: s.reasons,
        })
    }

    /// Allocates `quantity` from `source` to `request`; an open request becomes matched.
    /// Promising more than the source holds is allowed (two hubs may do it while apart): the
    /// overview shows the over-allocation for a person to settle.
    pub fn allocate(&mut self, request: &str, source: &Source, quantity: u64) -> Result<Record> {
        let req = self.request(request)?;
        self.still_open(&req, "allocate to it")?;
        if let Source::Offer { offer } = source {
            let o = self.get(offer.as_str())?;
            match &o.body {
                Body::Offer(x) if !x.status.is_active() => {
                    return Err(Error::invalid(
                        "allocation",
                        vec![FieldError::new(
                            "offer",
                            format!("the offer is {}: nothing is left to promise", word(x.status)),
                        )],
                    ))
                }
                Body::Offer(_) => {}
                _ => return Err(Error::NotFound(format!("offer {offer}"))),
            }
        }
        let (offer, item, place) = match source {
            Source::Offer { offer } => (Some(offer.clone()), None, None),
            Source::Stock { item, place } => (None, Some(item.clone()), Some(place.clone())),
        };
        let rec = self.add_body(Body::Allocation(Allocation {
            request: req.id().clone(),
            offer,
            item,
            place,
            quantity,
            status: AllocationStatus::Active,
        }))?;
        if let Body::Request(r) = &req.body {
            if r.status == FlowStatus::Open {
                self.set_status(req.id(), FlowStatus::Matched)?;
            }
        }
        Ok(rec)
    }

    /// Moves an allocation one step, with what the step does to the stock, the request and
    /// the offer (see [`AllocationStep`]). A step an allocation cannot take is refused and
    /// changes nothing: a delivered or released allocation is settled.
    pub fn advance_allocation(&mut self, id: &str, step: AllocationStep) -> Result<Record> {
        let rec = self.get(id)?;
        let Body::Allocation(a) = &rec.body else {
            return Err(Error::NotFound(format!("allocation {id}")));
        };
        // The id as stored, whatever the case or spaces it was typed with: the movement names it.
        let id = rec.id().as_str();
        // Delivering again what is delivered only settles the request and the offer once more:
        // a delivery interrupted between its writes is finished by trying it again.
        if a.status == AllocationStatus::Delivered && step == AllocationStep::Delivered {
            let a = a.clone();
            self.settle_request(&a.request)?;
            if let Some(offer) = &a.offer {
                self.settle_offer(offer)?;
            }
            return self.get(id);
        }
        if a.status != AllocationStatus::Active {
            return Err(Error::invalid(
                "allocation",
                vec![FieldError::new("status", format!("this allocation is already {}", word(a.status)))],
            ));
        }
        let a = a.clone();
        if step != AllocationStep::Released {
            self.still_open(&self.get(a.request.as_str())?, "send or deliver for it")?;
        }
        match step {
            AllocationStep::InTransit => {
                self.set_status(&a.request, FlowStatus::InTransit)?;
                return self.get(id);
            }
            AllocationStep::Delivered => {
                // Stock leaves the shelf first: if it is not there, nothing else changes. A
                // delivery tried again after an interruption finds its movement already made.
                let unissued = match (&a.item, &a.place) {
                    (Some(item), Some(place)) if !self.issued_for(item, id)? => Some((item, place)),
                    _ => None,
                };
                if let Some((item, place)) = unissued {
                    let request = self.get(a.request.as_str())?.body.label();
                    self.add_body(Body::Movement(Movement {
                        item: item.clone(),
                        kind: MovementKind::Issue,
                        quantity: a.quantity as i64,
                        place: place.clone(),
                        to_place: None,
                        counted: None,
                        reason: format!("delivered for request {request} (allocation {id})"),
                    }))?;
                }
                self.set_status(rec.id(), AllocationStatus::Delivered)?;
            }
            AllocationStep::Released => {
                self.set_status(rec.id(), AllocationStatus::Released)?;
            }
        }
        self.settle_request(&a.request)?;
        if let Some(offer) = &a.offer {
            self.settle_offer(offer)?;
        }
        self.get(id)
    }

    /// Cancels a request (what is still promised to it is released), or reopens a cancelled or
    /// fulfilled one (matched again if something is still promised to it). Other statuses follow
    /// from the allocations' steps, never set by hand.
    pub fn set_request_status(&mut self, id: &str, status: FlowStatus) -> Result<Record> {
        let req = self.request(id)?;
        match status {
            FlowStatus::Cancelled => {
                for a in self.by_field(Kind::Allocation, "request", req.id().as_str())? {
                    if matches!(&a.body, Body::Allocation(x) if x.status == AllocationStatus::Active) {
                        self.set_status(a.id(), AllocationStatus::Released)?;
                    }
                }
                self.set_status(req.id(), FlowStatus::Cancelled)?;
            }
            FlowStatus::Open => {
                let active =
                    self.allocations_of("request", req.id())?.iter().any(|a| a.status == AllocationStatus::Active);
                self.set_status(req.id(), if active { FlowStatus::Matched } else { FlowStatus::Open })?;
            }
            other => {
                return Err(Error::invalid(
                    "request",
                    vec![FieldError::new(
                        "status",
                        format!(
                            "a request is cancelled or reopened by hand; {} follows from its allocations",
                            word(other)
                        ),
                    )],
                ))
            }
        }
        self.get(id)
    }

    /// Refuses what cannot be done for a cancelled or fulfilled request.
    fn still_open(&self, req: &Record, what: &str) -> Result<()> {
        match &req.body {
            Body::Request(r) if !r.status.is_active() => Err(Error::invalid(
                "request",
                vec![FieldError::new("status", format!("the request is {}: reopen it to {what}", word(r.status)))],
            )),
            _ => Ok(()),
        }
    }

    /// Whether the issue movement of allocation `id` was already made (a delivery interrupted
    /// after it).
    fn issued_for(&self, item: &RecordId, id: &str) -> Result<bool> {
        let mark = format!("(allocation {id})");
        Ok(self.by_field(Kind::Movement, "item", item.as_str())?.iter().any(
            |m| matches!(&m.body, Body::Movement(x) if x.kind == MovementKind::Issue && x.reason.ends_with(&mark)),
        ))
    }

    fn request(&self, id: &str) -> Result<Record> {
        let r = self.get(id)?;
        match r.body {
            Body::Request(_) => Ok(r),
            _ => Err(Error::NotFound(format!("request {id}"))),
        }
    }

    fn allocations_of(&self, field: &str, id: &RecordId) -> Result<Vec<Allocation>> {
        Ok(self
            .by_field(Kind::Allocation, field, id.as_str())?
            .into_iter()
            .filter_map(|r| match r.body {
                Body::Allocation(a) => Some(a),
                _ => None,
            })
            .collect())
    }

    /// A request's status from its allocations: fulfilled once deliveries cover it; open again
    /// once nothing holds for it.
    fn settle_request(&mut self, id: &RecordId) -> Result<()> {
        let Body::Request(r) = self.get(id.as_str())?.body else { return Ok(()) };
        if !r.status.is_active() {
            return Ok(());
        }
        let allocs = self.allocations_of("request", id)?;
        let delivered: u64 =
            allocs.iter().filter(|a| a.status == AllocationStatus::Delivered).map(|a| a.quantity).sum();
        if delivered >= r.quantity {
            self.set_status(id, FlowStatus::Fulfilled)
        } else if !allocs.iter().any(|a| a.holds()) {
            self.set_status(id, FlowStatus::Open)
        } else if !allocs.iter().any(|a| a.status == AllocationStatus::Active) && r.status == FlowStatus::InTransit {
            // Part delivered, nothing more on its way: still matched, waiting for the rest.
            self.set_status(id, FlowStatus::Matched)
        } else {
            Ok(())
        }
    }

    /// An offer is fulfilled once its deliveries use it up.
    fn settle_offer(&mut self, id: &RecordId) -> Result<()> {
        let Body::Offer(o) = self.get(id.as_str())?.body else { return Ok(()) };
        let delivered: u64 = self
            .allocations_of("offer", id)?
            .iter()
            .filter(|a| a.status == AllocationStatus::Delivered)
            .map(|a| a.quantity)
            .sum();
        if o.status.is_active() && delivered >= o.quantity {
            self.set_status(id, FlowStatus::Fulfilled)?;
        }
        Ok(())
    }

    /// Sets the status of a request, an offer or an allocation, as the loop rules it.
    fn set_status(&mut self, id: &RecordId, status: impl Serialize) -> Result<()> {
        let mut patch = Map::new();
        patch.insert("status".into(), serde_json::to_value(status).unwrap_or(Value::Null));
        self.update_as(id.as_str(), patch, true).map(drop)
    }
}

/// A status as people read it in a message ("in transit"): its name, spaced.
fn word(status: impl Serialize) -> String {
    serde_json::to_value(status).ok().and_then(|v| v.as_str().map(|w| w.replace('_', " "))).unwrap_or_default()
}
