//! Events: `{at, data, message}` records, the 1000-entry ring the `events`
//! command reads, and the JSON line each one becomes on the daemon's stdout.

use std::collections::VecDeque;

use serde_json::{Map, Value};

use crate::timefmt::iso_now;

/// How many events the daemon keeps.
pub const EVENT_CAPACITY: usize = 1000;

/// Event data: an object whose keys keep insertion order (process events
/// put `processId` and `releaseId` first, as the original merges them).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Data(Map<String, Value>);

impl Data {
    pub fn new() -> Data {
        Data(Map::new())
    }

    /// Adds (or replaces, keeping the position) one member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Data {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub at: String,
    pub data: Data,
    pub message: String,
}

impl Event {
    pub fn new(message: impl Into<String>, data: Data) -> Event {
        Event {
            at: iso_now(),
            data,
            message: message.into(),
        }
    }

    /// The compact JSON line (without newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// The newest [`EVENT_CAPACITY`] events, oldest first.
#[derive(Debug, Clone)]
pub struct EventRing {
    events: VecDeque<Event>,
    capacity: usize,
}

impl Default for EventRing {
    fn default() -> Self {
        EventRing::new(EVENT_CAPACITY)
    }
}

impl EventRing {
    pub fn new(capacity: usize) -> EventRing {
        EventRing {
            events: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, event: Event) {
        while self.events.len() >= self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// `events.limit` rules: `None`, non-finite, <= 0 or >= the number held
    /// -> everything; otherwise the newest `ceil(limit)` (oldest first).
    pub fn select(&self, limit: Option<f64>) -> Vec<&Event> {
        let n = self.events.len();
        let take = match limit {
            Some(l) if l.is_finite() && l > 0.0 && l < n as f64 => l.ceil() as usize,
            _ => n,
        };
        self.events.iter().skip(n - take.min(n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize) -> EventRing {
        let mut r = EventRing::default();
        for i in 0..n {
            r.push(Event::new(format!("e{i}"), Data::new()));
        }
        r
    }

    fn names(v: Vec<&Event>) -> Vec<String> {
        v.into_iter().map(|e| e.message.clone()).collect()
    }

    #[test]
    fn ring_holds_the_newest_thousand() {
        let r = ring(1005);
        assert_eq!(r.len(), 1000);
        assert_eq!(r.select(None)[0].message, "e5");
    }

    #[test]
    fn limit_takes_the_newest_oldest_first() {
        assert_eq!(names(ring(5).select(Some(2.0))), ["e3", "e4"]);
    }

    #[test]
    fn limit_zero_negative_or_too_large_means_all() {
        let r = ring(3);
        assert_eq!(r.select(Some(0.0)).len(), 3);
        assert_eq!(r.select(Some(-1.0)).len(), 3);
        assert_eq!(r.select(Some(3.0)).len(), 3);
        assert_eq!(r.select(Some(f64::INFINITY)).len(), 3);
    }

    #[test]
    fn fractional_limit_rounds_up() {
        assert_eq!(names(ring(5).select(Some(2.5))), ["e2", "e3", "e4"]);
    }

    #[test]
    fn data_keeps_insertion_order() {
        let d = Data::new()
            .with("processId", "w")
            .with("code", 1)
            .with("id", "w");
        let e = Event {
            at: "t".into(),
            data: d,
            message: "process exited".into(),
        };
        assert_eq!(
            e.to_json(),
            r#"{"at":"t","data":{"processId":"w","code":1,"id":"w"},"message":"process exited"}"#
        );
    }
}
