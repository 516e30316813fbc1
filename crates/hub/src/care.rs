//! The accountability and roster loops: a grievance's dated steps, an after-action review's
//! actions tracked to done, and a handoff acknowledged by the next shift. The rules live here,
//! for every face: steps are only ever added (each move of a grievance's status adds one),
//! an action is stamped when it is marked done, and an acknowledgement is an amendment, as a
//! handoff is append-only.

use aidmesh_model::{Body, FieldError, GrievanceStatus, GrievanceStep, Kind, Record};
use serde_json::{Map, Value};

use crate::{Error, Hub, Result};

impl Hub {
    /// Records a dated step in handling a grievance, as the person acting here, and the status
    /// it leaves (the current one if `status` is none). Only its readers may. A step that
    /// resolves or dismisses it with no note takes the resolution as its note.
    pub fn grievance_step(&mut self, id: &str, note: &str, status: Option<GrievanceStatus>) -> Result<Record> {
        let rec = self.get(id)?;
        let Body::Grievance(g) = &rec.body else {
            return Err(Error::invalid(rec.kind().name(), vec![FieldError::new("id", "is not a grievance")]));
        };
        let me = self.person_or_handle();
        if !g.readable_by(&me) {
            return Err(Error::invalid(
                "grievance",
                vec![FieldError::new("", format!("{me} may not read this grievance, so adds no step to it"))],
            ));
        }
        let note = note.trim();
        if note.is_empty() && status.is_none_or(|s| s == g.status) {
            return Err(Error::invalid(
                "grievance step",
                vec![FieldError::new("note", "say what was done, or move the grievance to another status")],
            ));
        }
        let status = status.unwrap_or(g.status);
        let mut steps = g.steps.clone();
        let note = step_note(note, status, &g.resolution);
        steps.push(GrievanceStep { at: self.now(), by: me, note, status });
        let mut patch = Map::new();
        patch.insert("steps".into(), to_value(&steps)?);
        patch.insert("status".into(), to_value(&status)?);
        self.update_as(id, patch, true)
    }

    /// Marks a handoff read by the next shift, as the person acting here (an amendment: a
    /// handoff is append-only). Refused if someone already did.
    pub fn acknowledge_handoff(&mut self, id: &str) -> Result<Record> {
        let rec = self.amended_record(&self.get(id)?)?;
        let Body::Handoff(h) = &rec.body else {
            return Err(Error::invalid(rec.kind().name(), vec![FieldError::new("id", "is not a handoff")]));
        };
        if let Some(by) = &h.acknowledged_by {
            return Err(Error::invalid(
                "handoff",
                vec![FieldError::new("acknowledged_by", format!("{by} already acknowledged it"))],
            ));
        }
        let by = self.person_or_handle();
        // (`care_new` holds the rule for every face: the amendment names who acknowledges.)
        self.amend(id, "acknowledged_by", Value::String(by), "acknowledged by the next shift")?;
        self.amended_record(&self.get(id)?)
    }

    /// Closes a record of a kind that one later event closes ([`Kind::closing_field`]): checks
    /// a volunteer out now, or marks a follow-up done, by an amendment (both kinds are
    /// append-only). Refused if it is closed already, and for records of other kinds.
    pub fn close(&mut self, id: &str) -> Result<Record> {
        let rec = self.amended_record(&self.get(id)?)?;
        let kind = rec.kind();
        let Some(field) = kind.closing_field() else {
            let why = format!("is a {kind}: only check-ins (checked out) and follow-ups (done) are closed");
            return Err(Error::invalid(kind.name(), vec![FieldError::new("id", why)]));
        };
        // A check-in closes with the time of its check-out; a follow-up with `done`.
        let (value, reason) = match kind {
            Kind::CheckIn => (to_value(&self.now())?, "checked out"),
            _ => (Value::Bool(true), "done"),
        };
        match rec.body.to_fields().get(field) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::String(at)) => {
                let why = format!("was checked out already, at {at}: correct it with an amendment");
                return Err(Error::invalid(kind.name(), vec![FieldError::new(field, why)]));
            }
            Some(_) => return Err(Error::invalid(kind.name(), vec![FieldError::new(field, "is done already")])),
        }
        self.amend(id, field, value, reason)?;
        self.amended_record(&self.get(id)?)
    }

    /// The rules a new record of these kinds follows, from any face: a grievance starts with no
    /// steps (they are added one by one), an action is stamped if it is recorded as done, a
    /// handoff starts unacknowledged, and the only amendment of `acknowledged_by` is the next
    /// shift's own acknowledgement, once.
    pub(crate) fn care_new(&self, rec: &mut Record) -> Result<()> {
        let now = self.now();
        match &mut rec.body {
            Body::Grievance(g) if !g.steps.is_empty() => Err(Error::invalid(
                Kind::Grievance.name(),
                vec![FieldError::new(
                    "steps",
                    "are added one at a time once the grievance is recorded (aidmesh grievance-step ID NOTE)",
                )],
            )),
            Body::AfterAction(a) => {
                for item in &mut a.action_items {
                    item.done_at = item.done.then_some(now);
                }
                Ok(())
            }
            Body::Handoff(h) if h.acknowledged_by.is_some() => Err(Error::invalid(
                Kind::Handoff.name(),
                vec![FieldError::new(
                    "acknowledged_by",
                    "is set by the next shift acknowledging it (aidmesh acknowledge ID)",
                )],
            )),
            Body::Amendment(a) if a.field == "acknowledged_by" => {
                let me = self.person_or_handle();
                if a.value.as_str() != Some(me.as_str()) {
                    return Err(Error::invalid(
                        Kind::Amendment.name(),
                        vec![FieldError::new(
                            "value",
                            format!("a handoff is acknowledged by whoever reads it: {me}, not another name"),
                        )],
                    ));
                }
                match self.amended_record(&self.get(a.target.as_str())?)?.body {
                    Body::Handoff(h) => match h.acknowledged_by {
                        Some(by) => Err(Error::invalid(
                            "handoff",
                            vec![FieldError::new("acknowledged_by", format!("{by} already acknowledged it"))],
                        )),
                        None => Ok(()),
                    },
                    _ => Err(Error::invalid(
                        Kind::Amendment.name(),
                        vec![FieldError::new("field", "only a handoff is acknowledged")],
                    )),
                }
            }
            _ => Ok(()),
        }
    }

    /// Who a step or an acknowledgement is by: the unlocked person, else the hub's handle.
    fn person_or_handle(&self) -> String {
        self.acting().map(|p| p.handle.clone()).unwrap_or_else(|| self.handle.clone())
    }

    /// The rules a plain update of these kinds follows; `before` is the record as stored.
    /// A grievance's steps are only added through [`Hub::grievance_step`], and a move of its
    /// status adds one; an action marked done is stamped, and unstamped when reopened.
    pub(crate) fn care_rules(&self, before: &Record, after: &mut Record, by_flow: bool) -> Result<()> {
        match (&before.body, &mut after.body) {
            (Body::Grievance(old), Body::Grievance(new)) if !by_flow => {
                if new.steps != old.steps {
                    return Err(Error::invalid(
                        Kind::Grievance.name(),
                        vec![FieldError::new(
                            "steps",
                            "are only ever added, one at a time (aidmesh grievance-step ID NOTE)",
                        )],
                    ));
                }
                if new.status != old.status {
                    let note = step_note("", new.status, &new.resolution);
                    new.steps.push(GrievanceStep {
                        at: self.now(),
                        by: self.person_or_handle(),
                        note,
                        status: new.status,
                    });
                }
            }
            (Body::AfterAction(old), Body::AfterAction(new)) => {
                let now = self.now();
                for (i, a) in new.action_items.iter_mut().enumerate() {
                    let was = old.action_items.get(i);
                    match (a.done, was.map(|w| w.done)) {
                        (true, Some(true)) => a.done_at = was.and_then(|w| w.done_at),
                        (true, _) => a.done_at = Some(now),
                        (false, _) => a.done_at = None,
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A step's note: what the person wrote, or for a step that closes a grievance with nothing
/// written, its resolution.
fn step_note(note: &str, status: GrievanceStatus, resolution: &str) -> String {
    match (note.trim(), status) {
        ("", GrievanceStatus::Resolved | GrievanceStatus::Dismissed) => resolution.trim().to_string(),
        (note, _) => note.to_string(),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Corrupt(e.to_string()))
}
