//! The day summary: a day's line count and exact totals per unit, as one `aws.service.daily.summary` event.

use crate::decimal::Sum;
use crate::event::{Data, ESTIMATED, Event, REVISION};
use std::collections::BTreeMap;

pub const TYPE: &str = "aws.service.daily.summary";

/// What one pull brought of a day.
#[derive(Debug, Default)]
pub struct Day {
    pub lines: u64,
    sums: BTreeMap<String, Sum>,
    pub estimated: bool,
    /// Something of the day goes out in this pull (a first delivery or a revision).
    pub changed: bool,
}

/// Per-day running totals of one pull (a few bytes per unit per day, never the lines).
#[derive(Debug, Default)]
pub struct Totals {
    pub days: BTreeMap<String, Day>,
}

impl Totals {
    /// Counts a pulled line of a day that is delivered or revised; `sent` when it goes out.
    pub fn add(&mut self, data: &Data, estimated: bool, sent: bool) -> Result<(), String> {
        let day = self.days.entry(data.date.clone()).or_default();
        day.lines += 1;
        day.estimated = estimated;
        day.changed |= sent;
        day.sums
            .entry(data.unit.clone())
            .or_default()
            .add(&data.amount)
            .map_err(|e| format!("Cost Explorer sent {} on {}: {e}", data.label(), data.date))
    }

    /// A line of the day went to zero (it vanished): the day changed.
    pub fn vanished(&mut self, date: &str, estimated: bool) {
        let day = self.days.entry(date.to_string()).or_default();
        day.changed = true;
        if day.lines == 0 {
            day.estimated = estimated;
        }
    }
}

/// The summary's data: `{"date","lines","totals","estimated"}`.
pub fn data(date: &str, day: &Day) -> Data {
    // Inserted one by one: collecting would link one more sort just for this map.
    let mut totals = BTreeMap::new();
    for (unit, sum) in &day.sums {
        totals.insert(unit.clone(), sum.to_decimal());
    }
    Data {
        date: date.to_string(),
        lines: Some(day.lines),
        totals: Some(totals),
        estimated: Some(day.estimated),
        ..Data::default()
    }
}

/// The summary event of a day, as revision `revision` when it follows a revision round; its
/// `id` is set by `Event::seal` as it goes out.
pub fn event(data: Data, revision: Option<u32>, time: String) -> Event {
    let mut extensions = BTreeMap::new();
    extensions.insert(ESTIMATED.into(), data.estimated.unwrap_or(false).into());
    if let Some(n) = revision {
        extensions.insert(REVISION.into(), n.into());
    }
    Event {
        specversion: "1.0".into(),
        id: String::new(),
        source: crate::event::SOURCE.into(),
        kind: TYPE.into(),
        datacontenttype: "application/json".into(),
        time,
        extensions,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Line;

    fn line(service: &str, amount: &str, unit: &str) -> Data {
        let line = Line::service("2026-11-20", service, "BlendedCost", amount, unit);
        Event::new(line, String::new()).data
    }

    #[test]
    fn summary_data_is_exact_per_unit_and_has_only_its_four_fields() {
        let mut totals = Totals::default();
        totals
            .add(&line("a", "0.0000000001", "USD"), true, true)
            .unwrap();
        totals.add(&line("b", "-12.5", "USD"), true, false).unwrap();
        totals
            .add(&line("c", "12.294", "USD"), true, false)
            .unwrap();
        totals.add(&line("d", "3.5", "N/A"), true, false).unwrap();
        let day = &totals.days["2026-11-20"];
        assert!(day.changed);
        let mut event = event(data("2026-11-20", day), Some(2), "t".into());
        event.id = "id".into();
        assert_eq!(
            event.to_json(),
            r#"{"specversion":"1.0","id":"id","source":"cloud.aws.billing","type":"aws.service.daily.summary","datacontenttype":"application/json","time":"t","estimated":true,"revision":2,"data":{"date":"2026-11-20","lines":4,"totals":{"N/A":"3.5","USD":"-0.2059999999"},"estimated":true}}"#
        );
        let back: Event = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(back, event, "the spool reads back what it wrote");
    }

    #[test]
    fn a_garbage_amount_is_an_error_naming_it() {
        let mut totals = Totals::default();
        let e = totals
            .add(&line("EC2", "1e5", "USD"), false, true)
            .unwrap_err();
        assert_eq!(
            e,
            r#"Cost Explorer sent "EC2" on 2026-11-20: not a decimal amount: "1e5""#
        );
    }
}
