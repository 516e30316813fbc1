//! A generated coalition: a realistic march with three hubs for demos, and the same generator
//! at benchmark scale. A pure function of its seed and start time.

use aidmesh_model::*;
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// How many records of each sort to generate.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub items: usize,
    pub volunteers: usize,
    pub incidents: usize,
    pub movements: usize,
    pub requests: usize,
    pub offers: usize,
    pub shifts: usize,
    pub expenses: usize,
}

impl Scale {
    /// A march with three hubs: a few hundred items, volunteers, shifts, requests, incidents.
    pub fn demo() -> Scale {
        Scale {
            items: 300,
            volunteers: 90,
            incidents: 30,
            movements: 900,
            requests: 40,
            offers: 30,
            shifts: 36,
            expenses: 24,
        }
    }
    /// The benchmark coalition of the hub-core issue.
    pub fn bench() -> Scale {
        Scale {
            items: 100_000,
            volunteers: 20_000,
            incidents: 200_000,
            movements: 500_000,
            requests: 5_000,
            offers: 5_000,
            shifts: 2_000,
            expenses: 2_000,
        }
    }
}

const HUBS: [(&str, &str, &str); 3] = [
    ("North hub", "St Mary's hall, north end of the route", "radio ch 3"),
    ("Central hub", "Union office, main square", "radio ch 1"),
    ("South hub", "Tent at the park gate", "radio ch 5"),
];

const ITEMS: &[(&str, Category, &str)] = &[
    ("Bottled water 1.5 l", Category::Water, "bottle"),
    ("Water jerrycan 20 l", Category::Water, "can"),
    ("Electrolyte sachets", Category::Medical, "sachet"),
    ("Sterile gauze pads", Category::Medical, "pack of 10"),
    ("Saline eyewash", Category::Medical, "bottle 250 ml"),
    ("Nitrile gloves", Category::Medical, "box of 100"),
    ("Emergency blankets", Category::Shelter, "blanket"),
    ("Wool blankets", Category::Shelter, "blanket"),
    ("Rain ponchos", Category::Shelter, "poncho"),
    ("Energy bars", Category::Food, "bar"),
    ("Rice", Category::Food, "kg"),
    ("Canned beans", Category::Food, "can"),
    ("Baby formula", Category::Food, "tin"),
    ("Sanitary pads", Category::Hygiene, "pack"),
    ("Hand sanitiser", Category::Hygiene, "bottle"),
    ("Face masks", Category::Hygiene, "box of 50"),
    ("Power banks", Category::Power, "unit"),
    ("Phone chargers", Category::Power, "unit"),
    ("Generator fuel", Category::Power, "litre"),
    ("Megaphones", Category::Communications, "unit"),
    ("Two-way radios", Category::Communications, "unit"),
    ("Folding tables", Category::Tools, "table"),
    ("Duct tape", Category::Tools, "roll"),
    ("Cargo bike", Category::Transport, "bike"),
];

const PLACES: [(&str, PlaceKind); 4] = [
    ("Main store", PlaceKind::Site),
    ("First aid tent", PlaceKind::Site),
    ("Staging area", PlaceKind::Staging),
    ("Van", PlaceKind::Vehicle),
];

const ADJ: &[&str] = &["quiet", "swift", "brave", "calm", "bright", "steady", "kind", "bold", "wise", "gentle"];
const ANIMALS: &[&str] = &["fox", "owl", "heron", "otter", "wren", "lynx", "crane", "badger", "finch", "hare"];
const LANGS: &[&str] = &["en", "es", "fr", "ar", "pt", "uk", "so", "tr"];

const ROLES: [(&str, Option<SkillKind>, &str, &str); 6] = [
    ("Medic", Some(SkillKind::Medic), "Treat and log every casualty", "Nobody waits more than 5 minutes"),
    ("Marshal", Some(SkillKind::Marshal), "Keep the route and exits clear", "No crush at the gates"),
    ("Runner", None, "Move supplies between hubs", "Every request answered within 30 minutes"),
    ("Kitchen", Some(SkillKind::Cook), "Hot food at the hub", "Meals served on time"),
    ("Translator desk", Some(SkillKind::Translation), "Help people who need another language", "Nobody turned away"),
    ("Legal observer", Some(SkillKind::LegalObserver), "Observe and record police conduct", "Every arrest noted"),
];

const INCIDENTS: &[(IncidentCategory, &str)] = &[
    (IncidentCategory::Medical, "Person fainted in the heat near the stage"),
    (IncidentCategory::Medical, "Asthma attack, inhaler given"),
    (IncidentCategory::Safety, "Crowd pressure building at the north gate"),
    (IncidentCategory::PoliceSecurity, "Kettling reported on the side street"),
    (IncidentCategory::Weather, "Heavy rain, ponchos running out"),
    (IncidentCategory::SupplyInterruption, "Water delivery van stuck in traffic"),
    (IncidentCategory::Accessibility, "Ramp blocked at the first aid tent"),
    (IncidentCategory::Conduct, "Volunteer shouted at a marcher"),
    (IncidentCategory::NearMiss, "Generator cable across the walkway"),
];

/// The trained skill of each volunteer, in turn.
const SKILLS: [SkillKind; 10] = [
    SkillKind::FirstAid,
    SkillKind::Medic,
    SkillKind::Marshal,
    SkillKind::DeEscalation,
    SkillKind::LegalObserver,
    SkillKind::Driver,
    SkillKind::Logistics,
    SkillKind::Cook,
    SkillKind::Radio,
    SkillKind::Childcare,
];

/// Who signs the coalition's founding records.
const FOUNDER: &str = "founder";

struct Gen {
    rng: ChaCha20Rng,
    now: Timestamp,
    /// When the coalition was founded: a month before now.
    founding: Timestamp,
    out: Vec<Record>,
}

impl Gen {
    fn id(&mut self, at: Timestamp) -> RecordId {
        RecordId::generate(at, self.rng.gen())
    }

    fn push(&mut self, hub: &RecordId, by: &str, at: Timestamp, body: Body) -> RecordId {
        let id = self.id(at);
        self.out.push(Record {
            meta: Meta {
                id: id.clone(),
                kind: body.kind(),
                created_hub: hub.to_string(),
                created_by: by.to_string(),
                created_at: at,
            },
            body,
        });
        id
    }

    /// A time up to `hours` before now.
    fn past(&mut self, hours: i64) -> Timestamp {
        Timestamp::from_millis(self.now.millis() - self.rng.gen_range(0..hours.max(1) * 3_600_000))
    }
}

/// The hubs, and every place with the index of its hub in `hubs`.
struct Sites {
    hubs: Vec<RecordId>,
    places: Vec<(RecordId, usize)>,
}

/// An item's id, its home place and the index of that place's hub.
type Stocked = (RecordId, RecordId, usize);

/// Generates a coalition's records at `scale`, as of `now`.
pub fn generate(scale: Scale, seed: u64, now: Timestamp) -> Vec<Record> {
    let mut g = Gen { rng: ChaCha20Rng::seed_from_u64(seed), now, founding: now.plus_days(-30), out: Vec::new() };
    let sites = hubs_and_places(&mut g);
    let h0 = sites.hubs[0].clone();
    governance(&mut g, &h0);
    let roles = roles(&mut g, &h0);
    let items = items(&mut g, &sites, scale.items);
    movements(&mut g, &sites.hubs, &items, scale.movements);
    let volunteers = volunteers(&mut g, &sites.hubs, scale.volunteers);
    shifts(&mut g, &sites, &roles, &volunteers, scale.shifts);
    let requests = requests(&mut g, &sites, scale.requests);
    let offers = offers(&mut g, &sites, scale.offers);
    if requests.len() >= 2 && !offers.is_empty() {
        over_allocation(&mut g, &sites, &requests);
    }
    let last_incident = incidents(&mut g, &sites, &volunteers, scale.incidents);
    expenses(&mut g, &h0, scale.expenses);
    // Accountability.
    if !volunteers.is_empty() {
        grievance(&mut g, &h0);
        after_action(&mut g, &h0, last_incident);
    }
    let mut out = g.out;
    out.shuffle(&mut ChaCha20Rng::seed_from_u64(seed ^ 0x5eed));
    out
}

/// The hubs, founded a month ago, each with its four places.
fn hubs_and_places(g: &mut Gen) -> Sites {
    let founding = g.founding;
    let mut sites = Sites { hubs: Vec::new(), places: Vec::new() };
    for (i, (name, loc, channel)) in HUBS.iter().enumerate() {
        // A hub's record is made at the hub itself: its own id names it.
        let hid = g.id(founding);
        g.out.push(Record {
            meta: Meta {
                id: hid.clone(),
                kind: Kind::Hub,
                created_hub: hid.to_string(),
                created_by: FOUNDER.to_string(),
                created_at: founding,
            },
            body: Body::Hub(HubInfo {
                name: name.to_string(),
                location: loc.to_string(),
                channel: channel.to_string(),
            }),
        });
        sites.hubs.push(hid.clone());
        for (pname, kind) in PLACES {
            let short = name.split(' ').next().unwrap_or(name);
            let p = Place {
                name: format!("{short} {pname}"),
                kind,
                hub: Some(hid.clone()),
                location: String::new(),
                notes: String::new(),
            };
            let pid = g.push(&hid, FOUNDER, founding, Body::Place(p));
            sites.places.push((pid, i));
        }
    }
    sites
}

/// Governance at the first hub: the purchase policy, and the treasurers' and coordinators'
/// role grants.
fn governance(g: &mut Gen, h0: &RecordId) {
    let founding = g.founding;
    g.push(
        h0,
        FOUNDER,
        founding,
        Body::Policy(Policy {
            currency: "EUR".into(),
            limits: vec![
                RoleLimit { role: "coordinator".into(), max_minor: 20_000 },
                RoleLimit { role: "treasurer".into(), max_minor: 500_000 },
            ],
            threshold_minor: 10_000,
            approvals_above_threshold: 2,
            effective: founding,
        }),
    );
    for (handle, role) in [
        ("brave-owl", "treasurer"),
        ("calm-heron", "treasurer"),
        ("quiet-fox", "coordinator"),
        ("kind-wren", "coordinator"),
    ] {
        g.push(
            h0,
            FOUNDER,
            founding,
            Body::RoleGrant(RoleGrant {
                handle: handle.into(),
                role: role.into(),
                revoked: false,
                ..Default::default()
            }),
        );
    }
}

/// The roles that shifts are for: their ids, in the order of [`ROLES`].
fn roles(g: &mut Gen, h0: &RecordId) -> Vec<RecordId> {
    let founding = g.founding;
    let mut roles = Vec::new();
    for (name, skill, outputs, measure) in ROLES {
        let r = Role {
            name: name.into(),
            outputs: outputs.into(),
            success_measure: measure.into(),
            handoff_notes: "Brief the next shift on open cases and stock at your post.".into(),
            skill,
        };
        roles.push(g.push(h0, FOUNDER, founding, Body::Role(r)));
    }
    roles
}

/// Items, each with a home place; food, medicine and water expire.
fn items(g: &mut Gen, sites: &Sites, count: usize) -> Vec<Stocked> {
    let (now, founding) = (g.now, g.founding);
    let mut items = Vec::new();
    for n in 0..count {
        let (name, cat, unit) = ITEMS[n % ITEMS.len()];
        let (place, hub_ix) = sites.places[g.rng.gen_range(0..sites.places.len())].clone();
        let expiry = matches!(cat, Category::Food | Category::Medical | Category::Water)
            .then(|| now.date() + chrono::Duration::days(g.rng.gen_range(-3..240)));
        let batch = n / ITEMS.len();
        let it = Item {
            name: if batch == 0 { name.to_string() } else { format!("{name} (lot {batch})") },
            category: cat,
            unit: unit.into(),
            place: Some(place.clone()),
            expiry,
            condition: Condition::Good,
            reorder_level: if g.rng.gen_bool(0.3) { g.rng.gen_range(5..60) } else { 0 },
            notes: String::new(),
        };
        let at = founding.plus_hours(g.rng.gen_range(0..24 * 20));
        let hub = sites.hubs[hub_ix].clone();
        let id = g.push(&hub, "quiet-fox", at, Body::Item(it));
        items.push((id, place, hub_ix));
    }
    items
}

/// Movements: a receipt for every item first, then issues, discards and receipts that never
/// overdraw.
fn movements(g: &mut Gen, hubs: &[RecordId], items: &[Stocked], count: usize) {
    let founding = g.founding;
    let mut level: Vec<i64> = vec![0; items.len()];
    for n in 0..count {
        let ix = if n < items.len() { n } else { g.rng.gen_range(0..items.len().max(1)) };
        if items.is_empty() {
            break;
        }
        let (item, place, hub_ix) = items[ix].clone();
        let at = if n < items.len() { founding.plus_days(21) } else { g.past(24 * 8) };
        let (kind, q, to) = if level[ix] < 5 || n < items.len() {
            (MovementKind::Receive, g.rng.gen_range(10..120), None)
        } else if g.rng.gen_bool(0.1) {
            (MovementKind::Discard, 1, None)
        } else {
            (MovementKind::Issue, g.rng.gen_range(1..=level[ix].min(10)), None)
        };
        level[ix] += if kind == MovementKind::Receive { q } else { -q };
        let m = Movement { item, kind, quantity: q, place, to_place: to, counted: None, reason: String::new() };
        let hub = hubs[hub_ix].clone();
        g.push(&hub, "steady-otter", at, Body::Movement(m));
    }
}

/// Volunteers, spread over the hubs.
fn volunteers(g: &mut Gen, hubs: &[RecordId], count: usize) -> Vec<RecordId> {
    let founding = g.founding;
    let mut volunteers = Vec::new();
    for n in 0..count {
        let v = volunteer(g, n);
        let hub = hubs[n % 3].clone();
        let at = founding.plus_hours(g.rng.gen_range(0..24 * 25));
        volunteers.push(g.push(&hub, "kind-wren", at, Body::Volunteer(v)));
    }
    volunteers
}

/// The `n`th volunteer: a handle, one or two languages, a trained skill, and translation for
/// those with two languages.
fn volunteer(g: &mut Gen, n: usize) -> Volunteer {
    let handle = format!(
        "{}-{}{}",
        ADJ[n % ADJ.len()],
        ANIMALS[(n / ADJ.len()) % ANIMALS.len()],
        if n < 100 { String::new() } else { format!("-{n}") }
    );
    let mut langs: Vec<String> = vec![LANGS[g.rng.gen_range(0..LANGS.len())].to_string()];
    if g.rng.gen_bool(0.4) {
        let l = LANGS[g.rng.gen_range(0..LANGS.len())].to_string();
        if !langs.contains(&l) {
            langs.push(l);
        }
    }
    let mut sk = vec![Skill {
        skill: SKILLS[n % SKILLS.len()],
        level: SkillLevel::Trained,
        verified_by: Some("quiet-fox".into()),
        languages: vec![],
    }];
    if langs.len() > 1 {
        sk.push(Skill {
            skill: SkillKind::Translation,
            level: SkillLevel::Basic,
            verified_by: None,
            languages: langs.clone(),
        });
    }
    Volunteer {
        handle,
        skills: sk,
        languages: langs,
        availability: ["mornings", "afternoons", "all day", "evenings"][n % 4].into(),
        // Health data is kept with the contact, not in the record (see `Hub::add`).
        access_needs: String::new(),
        consent: Consent { contact: true, photo: n.is_multiple_of(3), share: false },
        contact: None,
        notes: String::new(),
    }
}

/// Shifts today and tomorrow; most filled, every fifth short, one volunteer double-booked.
fn shifts(g: &mut Gen, sites: &Sites, roles: &[RecordId], volunteers: &[RecordId], count: usize) {
    let (now, founding) = (g.now, g.founding);
    let day = Timestamp::parse(&format!("{}T06:00:00Z", now.date())).unwrap_or(now);
    let mut rota = Rota { busy: vec![Vec::new(); volunteers.len()], next: 0 };
    let mut first_assignment: Option<(RecordId, RecordId)> = None;
    for n in 0..count {
        let start = day.plus_hours((n as i64 % 8) * 3 + 24 * ((n as i64 / 8) % 2));
        let (place, hub_ix) = sites.places[n % sites.places.len()].clone();
        let s = Shift {
            role: roles[n % roles.len()].clone(),
            place,
            start,
            end: start.plus_hours(4),
            needed: 2 + (n as u32 % 3),
            notes: String::new(),
        };
        let hub = sites.hubs[hub_ix].clone();
        let sid = g.push(&hub, "kind-wren", founding.plus_days(25), Body::Shift(s.clone()));
        let fill = if n % 5 == 0 { 1 } else { s.needed };
        for k in 0..fill {
            let Some(v) = rota.book(&s) else { break };
            let vid = volunteers[v].clone();
            assign(g, &hub, &sid, vid.clone());
            if first_assignment.is_none() && n == 1 {
                first_assignment = Some((vid.clone(), sid.clone()));
            }
            if start <= now && k == 0 {
                let ci = CheckIn {
                    volunteer: vid,
                    shift: Some(sid.clone()),
                    place: Some(s.place.clone()),
                    checked_in: start,
                    checked_out: None,
                    notes: String::new(),
                };
                g.push(&hub, "kind-wren", start, Body::CheckIn(ci));
            }
        }
        // The shift after the first one overlaps it: book its first volunteer there too.
        if n == 2 {
            if let Some((vid, _)) = first_assignment.take() {
                assign(g, &hub, &sid, vid);
            }
        }
    }
}

/// Assigns `volunteer` to `shift`, four days before now.
fn assign(g: &mut Gen, hub: &RecordId, shift: &RecordId, volunteer: RecordId) {
    let at = g.founding.plus_days(26);
    g.push(hub, "kind-wren", at, Body::Assignment(Assignment { shift: shift.clone(), volunteer, active: true }));
}

/// Who is booked when, to find volunteers free for a whole shift.
struct Rota {
    busy: Vec<Vec<(Timestamp, Timestamp)>>,
    /// Where the search for a free volunteer starts: bookings go round the volunteers.
    next: usize,
}

impl Rota {
    /// Books the next volunteer free for the whole of `s`, if any, and returns their index.
    fn book(&mut self, s: &Shift) -> Option<usize> {
        let all = self.busy.len();
        let v = (0..all)
            .map(|i| (self.next + i) % all)
            .find(|&v| self.busy[v].iter().all(|(a, b)| !(s.start < *b && *a < s.end)))?;
        self.next = v + 1;
        self.busy[v].push((s.start, s.end));
        Some(v)
    }
}

/// Requests for supplies, needed within 30 hours, and every seventh for an interpreter.
fn requests(g: &mut Gen, sites: &Sites, count: usize) -> Vec<RecordId> {
    let now = g.now;
    let mut requests = Vec::new();
    for n in 0..count {
        let (place, hub_ix) = sites.places[g.rng.gen_range(0..sites.places.len())].clone();
        let urg = [Urgency::Low, Urgency::Normal, Urgency::Normal, Urgency::High, Urgency::Critical][n % 5];
        let r = if n % 7 == 3 {
            Request {
                skill: Some(SkillKind::Translation),
                description: "Arabic interpreter at the first aid tent".into(),
                quantity: 1,
                place: Some(place),
                urgency: urg,
                ..Default::default()
            }
        } else {
            let (_, cat, _) = ITEMS[g.rng.gen_range(0..ITEMS.len())];
            Request {
                category: Some(cat),
                description: format!("{cat:?} needed").to_lowercase(),
                quantity: g.rng.gen_range(5..60),
                place: Some(place),
                urgency: urg,
                needed_by: Some(now.plus_hours(g.rng.gen_range(1..30))),
                ..Default::default()
            }
        };
        let hub = sites.hubs[hub_ix].clone();
        let at = g.past(36);
        requests.push(g.push(&hub, "swift-crane", at, Body::Request(r)));
    }
    requests
}

/// Offers of donated supplies, and every sixth of interpreters.
fn offers(g: &mut Gen, sites: &Sites, count: usize) -> Vec<RecordId> {
    let mut offers = Vec::new();
    for n in 0..count {
        let (place, hub_ix) = sites.places[g.rng.gen_range(0..sites.places.len())].clone();
        let o = if n % 6 == 0 {
            Offer {
                skill: Some(SkillKind::Translation),
                description: "Two volunteers offer Arabic and French".into(),
                quantity: 2,
                place: Some(place),
                ..Default::default()
            }
        } else {
            let (name, cat, _) = ITEMS[g.rng.gen_range(0..ITEMS.len())];
            Offer {
                category: Some(cat),
                description: format!("Donation: {name}"),
                quantity: g.rng.gen_range(5..80),
                place: Some(place),
                ..Default::default()
            }
        };
        let hub = sites.hubs[hub_ix].clone();
        let at = g.past(48);
        offers.push(g.push(&hub, "bold-finch", at, Body::Offer(o)));
    }
    offers
}

/// One over-allocation: two hubs promised the same blankets, offered at the central hub, to the
/// first two requests.
fn over_allocation(g: &mut Gen, sites: &Sites, requests: &[RecordId]) {
    let (hubs, now) = (&sites.hubs, g.now);
    let blankets = g.push(
        &hubs[1],
        "bold-finch",
        now.plus_hours(-5),
        Body::Offer(Offer {
            category: Some(Category::Shelter),
            description: "Church donation: 10 wool blankets".into(),
            quantity: 10,
            place: Some(sites.places[4].0.clone()),
            ..Default::default()
        }),
    );
    for (hub, req) in [(&hubs[0], &requests[0]), (&hubs[2], &requests[1])] {
        let a = Allocation { request: req.clone(), offer: Some(blankets.clone()), quantity: 10, ..Default::default() };
        g.push(hub, "swift-crane", now.plus_hours(-3), Body::Allocation(a));
    }
}

/// Incidents, some with follow-ups, and an amendment resolving the last one; returns the last.
fn incidents(g: &mut Gen, sites: &Sites, volunteers: &[RecordId], count: usize) -> Option<RecordId> {
    let mut last_incident = None;
    for n in 0..count {
        let (cat, text) = INCIDENTS[n % INCIDENTS.len()];
        let (place, hub_ix) = sites.places[g.rng.gen_range(0..sites.places.len())].clone();
        let at = if n < 30 { g.past(20) } else { g.past(24 * 60) };
        let i = Incident {
            occurred: at,
            place: Some(place),
            category: cat,
            severity: 1 + (g.rng.gen_range(0..100u32).pow(2) / 2000) as u8 % 5,
            description: text.into(),
            reporter: volunteers
                .get(n % volunteers.len().max(1))
                .map(|_| "gentle-lynx".to_string())
                .unwrap_or_default(),
            status: IncidentStatus::Open,
        };
        let hub = sites.hubs[hub_ix].clone();
        let id = g.push(&hub, "gentle-lynx", at, Body::Incident(i));
        if n % 10 == 2 && n < 100 {
            g.push(
                &hub,
                "gentle-lynx",
                at.plus_hours(1),
                Body::FollowUp(FollowUp {
                    incident: id.clone(),
                    action: "Check on the person at the end of the day".into(),
                    owner: "calm-heron".into(),
                    due: Some(at.plus_hours(8)),
                    done: false,
                }),
            );
        }
        last_incident = Some(id);
    }
    if let Some(inc) = &last_incident {
        let at = g.now.plus_hours(-1);
        g.push(
            &sites.hubs[0],
            "gentle-lynx",
            at,
            Body::Amendment(Amendment {
                target: inc.clone(),
                field: "status".into(),
                value: "resolved".into(),
                reason: "Handled by the medic team".into(),
            }),
        );
    }
    last_incident
}

/// Expenses, most approved; some large ones wait for their second approval.
fn expenses(g: &mut Gen, h0: &RecordId, count: usize) {
    let now = g.now;
    for n in 0..count {
        let amount = [1_250, 4_800, 8_990, 15_000, 32_500][n % 5];
        let (fund, cat, purpose) = [
            ("general", "supplies", "Water and snacks"),
            ("medical", "medical", "First aid restock"),
            ("transport", "fuel", "Van fuel"),
        ][n % 3];
        let e = Expense {
            amount_minor: amount,
            currency: "EUR".into(),
            payee: ["Corner shop", "Pharmacy", "Petrol station"][n % 3].into(),
            purpose: purpose.into(),
            fund: fund.into(),
            category: cat.into(),
            receipt: format!("R-{:04}", n + 1),
            date: now.date(),
        };
        let at = g.past(24 * 3);
        let eid = g.push(h0, "bold-finch", at, Body::Expense(e));
        let approvers: &[&str] = if amount > 10_000 {
            if n % 2 == 0 {
                &["brave-owl", "calm-heron"]
            } else {
                &["brave-owl"]
            }
        } else {
            &["quiet-fox"]
        };
        for who in approvers {
            g.push(
                h0,
                who,
                at.plus_hours(1),
                Body::Approval(Approval {
                    expense: eid.clone(),
                    approver: who.to_string(),
                    decision: Decision::Approve,
                    ..Default::default()
                }),
            );
        }
    }
}

/// A confidential grievance under investigation, with its steps so far.
fn grievance(g: &mut Gen, h0: &RecordId) {
    let now = g.now;
    g.push(
        h0,
        "calm-heron",
        now.plus_hours(-6),
        Body::Grievance(Grievance {
            summary: "Marshal was rude to a wheelchair user".into(),
            details: "Reported at the north gate around noon.".into(),
            confidential: true,
            readers: vec!["calm-heron".into(), "brave-owl".into()],
            involved: vec!["bold-lynx".into()],
            status: GrievanceStatus::Investigating,
            resolution: String::new(),
            facilitator: "calm-heron".into(),
            steps: vec![
                aidmesh_model::GrievanceStep {
                    at: now.plus_hours(-6),
                    by: "calm-heron".into(),
                    note: "Received at the north gate.".into(),
                    status: GrievanceStatus::Received,
                },
                aidmesh_model::GrievanceStep {
                    at: now.plus_hours(-4),
                    by: "calm-heron".into(),
                    note: "Spoke with the person who reported it.".into(),
                    status: GrievanceStatus::Investigating,
                },
            ],
        }),
    );
}

/// An after-action review of `incident`, with its action items.
fn after_action(g: &mut Gen, h0: &RecordId, incident: Option<RecordId>) {
    let at = g.now.plus_hours(-2);
    g.push(
        h0,
        "quiet-fox",
        at,
        Body::AfterAction(AfterAction {
            incident,
            title: "Heat casualties at the stage".into(),
            worked: "Runners brought water within ten minutes.".into(),
            did_not_work: "The first aid tent was hard to find.".into(),
            why: "No signs on the route.".into(),
            actions: "Print signs; put a marshal at the turn.".into(),
            action_items: vec![
                aidmesh_model::ActionItem {
                    action: "Print signs for the first aid tent".into(),
                    owner: "quiet-fox".into(),
                    ..Default::default()
                },
                aidmesh_model::ActionItem {
                    action: "Put a marshal at the turn".into(),
                    owner: "brave-owl".into(),
                    ..Default::default()
                },
            ],
        }),
    );
}

impl crate::Hub {
    /// What the unlocked founder of a demo hub signs after the demo's records are imported: the
    /// newest purchase policy record as the policy in force, and every expense as recorded by
    /// them. Role grants and approvals of the demo name people who have no keys: they stay
    /// records, and count for nothing.
    pub fn sign_demo_authority(&mut self) -> crate::Result<()> {
        let mut policies = self.all(Kind::Policy)?;
        policies.sort_by_key(|r| r.meta.created_at);
        if let Some(p) = policies.last() {
            self.sign_for_record(p)?;
        }
        for e in self.all(Kind::Expense)? {
            self.record_expense(&e)?;
        }
        Ok(())
    }
}
