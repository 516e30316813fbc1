//! A hub's use of metered links (the internet) over a day, sans-IO: counted in memory as
//! connections carry bytes, kept in the store now and then (`Hub::keep_metered`), and weighed
//! against the day's budget (`Hub::metered_budget`, read again every few seconds). The driver
//! (`net.rs`) does the reading and keeping; a failed read or write changes nothing here, so a
//! full disk neither lifts the budget nor flips sessions in and out of it.

use aidmesh_model::Timestamp;

/// How often the count is kept in the store while it grows (and at each session's end).
pub const KEEP_EVERY_MS: i64 = 10_000;
/// How often the budget is read again (a coordinator may change it at any time).
pub const READ_BUDGET_EVERY_MS: i64 = 2_000;

/// The day's use of metered links and the budget it is weighed against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meter {
    /// The day counted (UTC, `YYYY-MM-DD`) and what it used.
    day: String,
    used: u64,
    /// What the store holds, and when it was written.
    kept: u64,
    kept_at: i64,
    budget: Option<u64>,
    budget_read_at: Option<i64>,
}

impl Meter {
    /// Goes on from what the store kept: `day` and what it used.
    pub fn from_kept(day: String, used: u64) -> Meter {
        Meter { day, used, kept: used, ..Meter::default() }
    }

    /// Counts `bytes` more at `now`; the day's use so far. A new day starts from nothing; a
    /// clock set back (a laptop without a clock battery, before it learns the time) counts onto
    /// the day counted last, so the count never goes back.
    pub fn count(&mut self, now: Timestamp, bytes: u64) -> u64 {
        let today = now.date().to_string();
        if today > self.day {
            self.day = today;
            self.used = 0;
            self.kept = u64::MAX;
        }
        self.used = self.used.saturating_add(bytes);
        self.used
    }

    /// Whether the budget is due to be read again.
    pub fn budget_due(&self, now: Timestamp) -> bool {
        self.budget_read_at.is_none_or(|at| now.millis() - at >= READ_BUDGET_EVERY_MS)
    }

    /// The budget as read at `now`.
    pub fn set_budget(&mut self, budget: Option<u64>, now: Timestamp) {
        self.budget = budget;
        self.budget_read_at = Some(now.millis());
    }

    /// Whether the day's budget is spent.
    pub fn over(&self) -> bool {
        self.budget.is_some_and(|b| self.used >= b)
    }

    /// What to keep in the store now (the day and its use), if it changed and is due, or
    /// `now` whatever the time (`force`: a session ends).
    pub fn to_keep(&self, now: Timestamp, force: bool) -> Option<(String, u64)> {
        let due = force || now.millis() - self.kept_at >= KEEP_EVERY_MS;
        (due && self.used != self.kept && !self.day.is_empty()).then(|| (self.day.clone(), self.used))
    }

    /// The store now holds `used` for the day.
    pub fn kept(&mut self, used: u64, now: Timestamp) {
        self.kept = used;
        self.kept_at = now.millis();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn a_day_counts_until_midnight_utc_and_the_count_never_goes_back() {
        let mut m = Meter::from_kept("2026-12-04".into(), 900);
        m.set_budget(Some(1_000), at("2026-12-04T10:00:00Z"));
        assert!(!m.over());
        assert_eq!(m.count(at("2026-12-04T10:00:01Z"), 100), 1_000);
        assert!(m.over(), "the budget is spent at its last byte");
        // A new day starts from nothing.
        assert_eq!(m.count(at("2026-12-05T00:00:00Z"), 10), 10);
        assert!(!m.over());
        // The clock set back a day counts onto the day counted last.
        assert_eq!(m.count(at("2026-12-04T23:00:00Z"), 5), 15);
        // Lifted: never over.
        m.set_budget(None, at("2026-12-05T00:00:02Z"));
        m.count(at("2026-12-05T00:00:03Z"), u64::MAX);
        assert!(!m.over());
    }

    #[test]
    fn the_count_is_kept_every_few_seconds_and_at_a_sessions_end() {
        let t0 = at("2026-12-04T10:00:00Z");
        let mut m = Meter::from_kept("2026-12-04".into(), 0);
        assert_eq!(m.to_keep(t0, true), None, "nothing new to keep");
        m.count(t0, 50);
        assert_eq!(m.to_keep(t0, false), Some(("2026-12-04".into(), 50)));
        m.kept(50, t0);
        m.count(t0, 10);
        assert_eq!(m.to_keep(Timestamp::from_millis(t0.millis() + KEEP_EVERY_MS - 1), false), None, "not due yet");
        assert_eq!(
            m.to_keep(Timestamp::from_millis(t0.millis() + 1), true),
            Some(("2026-12-04".into(), 60)),
            "a session ended"
        );
        assert_eq!(
            m.to_keep(Timestamp::from_millis(t0.millis() + KEEP_EVERY_MS), false),
            Some(("2026-12-04".into(), 60))
        );
        // A failed write is tried again: nothing was marked kept.
        assert!(m.to_keep(Timestamp::from_millis(t0.millis() + KEEP_EVERY_MS + 1), false).is_some());
        // The budget is read every few seconds.
        assert!(m.budget_due(t0));
        m.set_budget(Some(5), t0);
        assert!(!m.budget_due(Timestamp::from_millis(t0.millis() + READ_BUDGET_EVERY_MS - 1)));
        assert!(m.budget_due(Timestamp::from_millis(t0.millis() + READ_BUDGET_EVERY_MS)));
    }
}
