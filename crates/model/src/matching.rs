//! The matching engine: suggests allocations for open requests from open offers and stock.
//!
//! Candidates are ranked by fit (exact item, then category; skill for service requests),
//! quantity covered, the request's urgency, expiry (oldest stock first) and nearness (same place,
//! then same hub). The result depends only on the records given: ties break by source id.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::views::{allocated, Levels, Source};
use crate::{of_kind, Item, Meta, Offer, Place, Record, RecordId, Request, Urgency};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Suggestion {
    pub request: RecordId,
    pub source: Source,
    /// How much to allocate: what the source has left, at most what is still needed.
    pub quantity: u64,
    pub score: i64,
    /// Why this candidate ranks where it does, for the person deciding.
    pub reasons: Vec<Reason>,
}

/// One reason a candidate fits a request; front ends put it in the person's language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reason {
    SkillMatches,
    SameItem,
    SameCategory,
    /// The source covers `quantity` of the `needed` still open.
    Covers {
        quantity: u64,
        needed: u64,
    },
    Expires {
        date: NaiveDate,
    },
    SamePlace,
    /// Another place of the same hub.
    SameHub,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::SkillMatches => f.write_str("skill matches"),
            Reason::SameItem => f.write_str("same item"),
            Reason::SameCategory => f.write_str("same category"),
            Reason::Covers { quantity, needed } => write!(f, "covers {quantity} of {needed}"),
            Reason::Expires { date } => write!(f, "expires {date}"),
            Reason::SamePlace => f.write_str("same place"),
            Reason::SameHub => f.write_str("same hub"),
        }
    }
}

/// Suggestions for one request, best first, at most `limit`.
pub fn suggest(
    records: &[Record],
    levels: &Levels,
    request: &RecordId,
    today: NaiveDate,
    limit: usize,
) -> Vec<Suggestion> {
    let ctx = Context::new(records, levels);
    let Some((rm, req)) = of_kind::<Request>(records).find(|(m, _)| &m.id == request) else {
        return Vec::new();
    };
    ctx.for_request(rm, req, today, limit)
}

/// The best suggestion for every open request, most urgent requests first.
pub fn suggest_all(records: &[Record], levels: &Levels, today: NaiveDate, per_request: usize) -> Vec<Suggestion> {
    let ctx = Context::new(records, levels);
    let mut reqs: Vec<(&Meta, &Request)> = of_kind::<Request>(records).filter(|(_, r)| r.status.is_active()).collect();
    reqs.sort_by(|a, b| {
        b.1.urgency
            .cmp(&a.1.urgency)
            .then_with(|| a.1.needed_by.unwrap_or_default().cmp(&b.1.needed_by.unwrap_or_default()))
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    reqs.into_iter().flat_map(|(m, r)| ctx.for_request(m, r, today, per_request)).collect()
}

struct Context<'a> {
    items: BTreeMap<&'a RecordId, &'a Item>,
    place_hub: BTreeMap<&'a RecordId, Option<&'a RecordId>>,
    offers: Vec<(&'a Meta, &'a Offer)>,
    levels: &'a Levels,
    allocated: BTreeMap<Source, u64>,
    requested: BTreeMap<RecordId, u64>,
}

impl<'a> Context<'a> {
    fn new(records: &'a [Record], levels: &'a Levels) -> Self {
        let alloc = allocated(records);
        let mut requested = BTreeMap::new();
        for (_, a) in of_kind::<crate::Allocation>(records).filter(|(_, a)| a.holds()) {
            *requested.entry(a.request.clone()).or_insert(0) += a.quantity;
        }
        Context {
            items: of_kind::<Item>(records).map(|(m, i)| (&m.id, i)).collect(),
            place_hub: of_kind::<Place>(records).map(|(m, p)| (&m.id, p.hub.as_ref())).collect(),
            offers: of_kind::<Offer>(records).filter(|(_, o)| o.status.is_active()).collect(),
            levels,
            allocated: alloc,
            requested,
        }
    }

    fn for_request(&self, rm: &Meta, req: &Request, today: NaiveDate, limit: usize) -> Vec<Suggestion> {
        let still = req.quantity.saturating_sub(self.requested.get(&rm.id).copied().unwrap_or(0));
        if still == 0 || !req.status.is_active() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (om, o) in &self.offers {
            let src = Source::Offer { offer: om.id.clone() };
            let left = o.quantity as i64 - self.allocated.get(&src).copied().unwrap_or(0) as i64;
            let cat = o.category.or_else(|| o.item.as_ref().and_then(|i| self.items.get(i).map(|it| it.category)));
            let expiry = o.expiry.or_else(|| o.item.as_ref().and_then(|i| self.items.get(i).and_then(|it| it.expiry)));
            if let Some(s) =
                self.score(rm, req, src, left, still, o.item.as_ref(), cat, o.skill, expiry, o.place.as_ref(), today)
            {
                out.push(s);
            }
        }
        if req.skill.is_none() {
            for ((item, place), level) in self.levels {
                let Some(it) = self.items.get(item) else {
                    continue;
                };
                let src = Source::Stock { item: item.clone(), place: place.clone() };
                let left = level - self.allocated.get(&src).copied().unwrap_or(0) as i64;
                if let Some(s) = self.score(
                    rm,
                    req,
                    src,
                    left,
                    still,
                    Some(item),
                    Some(it.category),
                    None,
                    it.expiry,
                    Some(place),
                    today,
                ) {
                    out.push(s);
                }
            }
        }
        out.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.source.cmp(&b.source)));
        out.truncate(limit);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn score(
        &self,
        rm: &Meta,
        req: &Request,
        source: Source,
        left: i64,
        still: u64,
        item: Option<&RecordId>,
        category: Option<crate::Category>,
        skill: Option<crate::SkillKind>,
        expiry: Option<NaiveDate>,
        place: Option<&RecordId>,
        today: NaiveDate,
    ) -> Option<Suggestion> {
        if left <= 0 {
            return None;
        }
        if let Some(e) = expiry {
            if e < today {
                return None;
            }
        }
        let mut reasons = Vec::new();
        let mut score: i64 = 0;
        // Fit.
        if let Some(want) = req.skill {
            if skill != Some(want) {
                return None;
            }
            score += 1000;
            reasons.push(Reason::SkillMatches);
        } else if req.item.is_some() && req.item.as_ref() == item {
            score += 1000;
            reasons.push(Reason::SameItem);
        } else {
            let want_cat =
                req.category.or_else(|| req.item.as_ref().and_then(|i| self.items.get(i).map(|it| it.category)));
            if want_cat.is_some() && want_cat == category && skill.is_none() {
                score += 400;
                reasons.push(Reason::SameCategory);
            } else {
                return None;
            }
        }
        // Quantity covered.
        let qty = (left as u64).min(still);
        score += (qty * 300 / still) as i64;
        reasons.push(Reason::Covers { quantity: qty, needed: still });
        // Urgency of the request.
        score += match req.urgency {
            Urgency::Low => 0,
            Urgency::Normal => 100,
            Urgency::High => 200,
            Urgency::Critical => 300,
        };
        // Oldest stock first: the sooner it expires, the higher.
        if let Some(e) = expiry {
            let days = (e - today).num_days();
            score += (200 - days).max(0);
            reasons.push(Reason::Expires { date: e });
        }
        // Nearness.
        if let (Some(want), Some(at)) = (req.place.as_ref(), place) {
            if want == at {
                score += 200;
                reasons.push(Reason::SamePlace);
            } else {
                let h1 = self.place_hub.get(want).copied().flatten();
                let h2 = self.place_hub.get(at).copied().flatten();
                if h1.is_some() && h1 == h2 {
                    score += 100;
                    reasons.push(Reason::SameHub);
                }
            }
        }
        Some(Suggestion { request: rm.id.clone(), source, quantity: qty, score, reasons })
    }
}
