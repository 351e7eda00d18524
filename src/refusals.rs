//! Whose fault a batch's refusals are: the events' (dead letters) or the setup's (every event the same 401, 403 or 404).
//!
//! A wrong path (404) or missing credentials (401, 403) refuses every event alike; putting
//! them all in the dead letter and recording the day would cost the day. So while no event
//! of a delivery was accepted, the first `PROBE` events refused with the same 401, 403 or
//! 404 (or all of the batch, when it has fewer) are a setup failure: nothing of the batch
//! is dead-lettered or acknowledged, and it goes out again once the target is fixed. Any
//! other answer first (an acceptance, another status) makes every refusal the event's.

/// How many events refused alike, with none accepted, make a setup failure.
pub const PROBE: usize = 5;

/// What to do with a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// Not yet known: keep the event pending (and its refusal in hand) for now.
    Hold,
    /// The event's own: dead-letter it, and the refusals held so far.
    Event,
    /// The setup's: stop; the batch stays pending.
    Setup,
}

/// The refusals of one delivery of a batch, in order.
#[derive(Debug, Default)]
pub struct Refusals {
    /// The status every refusal so far had.
    status: Option<u16>,
    held: usize,
    /// Some answer showed that the target takes events: every refusal is the event's.
    decided: bool,
}

/// The statuses that, for every event alike, mean the target is set up wrong.
pub fn setup_status(status: u16) -> bool {
    matches!(status, 401 | 403 | 404)
}

impl Refusals {
    /// The target refused the next event with `status`.
    pub fn refused(&mut self, status: u16) -> Judged {
        if self.decided {
            return Judged::Event;
        }
        if setup_status(status) && self.status.is_none_or(|s| s == status) {
            self.status = Some(status);
            self.held += 1;
            return if self.held >= PROBE {
                Judged::Setup
            } else {
                Judged::Hold
            };
        }
        self.decided = true;
        Judged::Event
    }

    /// The target accepted the next event: the refusals held so far are the events'.
    pub fn accepted(&mut self) {
        self.decided = true;
    }

    /// The batch ran out: Some(status) when every event of it was refused alike with
    /// `status` (fewer than PROBE): a setup failure too.
    pub fn at_end(&self) -> Option<u16> {
        self.status.filter(|_| !self.decided && self.held > 0)
    }

    /// The refusals are held, still undecided.
    pub fn holding(&self) -> bool {
        !self.decided && self.held > 0
    }
}

/// What the user checks when the target refuses every event with `status`.
pub fn what_to_check(status: u16, target: &str) -> String {
    match status {
        404 => format!("check the path of target {target}"),
        401 => {
            format!("check the credentials target {target} asks for (user:password@ in its URL)")
        }
        _ => format!(
            "check that target {target} lets this connector post (the credentials in its URL, \
             the receiver's access rules)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_refusals_alike_with_none_accepted_are_the_setups() {
        for status in [401, 403, 404] {
            let mut r = Refusals::default();
            for _ in 1..PROBE {
                assert_eq!(r.refused(status), Judged::Hold);
            }
            assert_eq!(r.refused(status), Judged::Setup);
        }
    }

    #[test]
    fn a_short_batch_refused_alike_is_the_setups_at_its_end() {
        let mut r = Refusals::default();
        assert_eq!(r.refused(404), Judged::Hold);
        assert_eq!(r.refused(404), Judged::Hold);
        assert_eq!(r.at_end(), Some(404));
        assert_eq!(Refusals::default().at_end(), None);
    }

    #[test]
    fn any_other_answer_first_makes_every_refusal_the_events() {
        // An acceptance after refusals: those and later ones are the events'.
        let mut r = Refusals::default();
        assert_eq!(r.refused(404), Judged::Hold);
        assert!(r.holding());
        r.accepted();
        assert!(!r.holding());
        for _ in 0..PROBE * 2 {
            assert_eq!(r.refused(404), Judged::Event);
        }
        assert_eq!(r.at_end(), None);
        // Another status, a status that is no setup's (400, 413): the events'.
        for (first, then) in [(404, 403), (401, 400), (413, 404)] {
            let mut r = Refusals::default();
            let _ = r.refused(first);
            assert_eq!(r.refused(then), Judged::Event, "{first} then {then}");
            assert_eq!(r.refused(first), Judged::Event);
            assert_eq!(r.at_end(), None);
        }
    }

    #[test]
    fn the_hint_names_what_to_check() {
        assert!(what_to_check(404, "http://h/x").contains("path of target http://h/x"));
        assert!(what_to_check(401, "http://h/x").contains("credentials"));
        assert!(what_to_check(403, "http://h/x").contains("access rules"));
    }
}
