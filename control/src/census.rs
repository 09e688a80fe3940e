//! Takes the data path's census (every map's entries and capacity, the links running each program)
//! at start and every [`CENSUS_INTERVAL`] on a blocking thread, and publishes the latest for
//! `/metrics` and `/maps`. Counting walks every hash map's keys, so it is done here, off the scrape.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use strait_dataplane::census::{Census, MapFill, ProgramLinks};

/// How often the census is taken.
pub const CENSUS_INTERVAL: Duration = Duration::from_secs(10);

/// One census.
#[derive(Clone, Debug)]
pub struct CensusSnapshot {
    pub maps: Vec<MapFill>,
    pub programs: Vec<ProgramLinks>,
    /// How long counting took.
    pub took: Duration,
}

impl CensusSnapshot {
    /// The JSON `/maps` answers for `node`: each map (name, kind, capacity, entries, fill) and each
    /// program's links.
    pub fn to_json(&self, node: &str) -> serde_json::Value {
        let maps: Vec<serde_json::Value> = self
            .maps
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name,
                    "kind": m.kind.label(),
                    "capacity": m.capacity,
                    "entries": m.entries,
                    "fill": m.ratio(),
                })
            })
            .collect();
        let programs: Vec<serde_json::Value> = self
            .programs
            .iter()
            .map(|p| serde_json::json!({"program": p.program, "links": p.links}))
            .collect();
        serde_json::json!({
            "node": node,
            "census_seconds": self.took.as_secs_f64(),
            "maps": maps,
            "programs": programs,
        })
    }
}

/// The latest census, shared between the task and the HTTP server.
#[derive(Clone, Debug, Default)]
pub struct CensusBoard {
    latest: Arc<RwLock<Option<Arc<CensusSnapshot>>>>,
}

impl CensusBoard {
    /// The latest census; `None` before the first.
    pub fn latest(&self) -> Option<Arc<CensusSnapshot>> {
        self.latest
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn publish(&self, snapshot: CensusSnapshot) {
        *self
            .latest
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(snapshot));
    }
}

/// Takes a census now, then every [`CENSUS_INTERVAL`], until aborted.
pub async fn run(census: Census, board: CensusBoard) {
    let census = Arc::new(census);
    let mut ticker = tokio::time::interval(CENSUS_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let counting = Arc::clone(&census);
        let taken = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let maps = counting.count();
            let programs = counting.program_links();
            CensusSnapshot {
                maps,
                programs,
                took: started.elapsed(),
            }
        })
        .await;
        match taken {
            Ok(snapshot) => {
                for full in snapshot
                    .maps
                    .iter()
                    .filter(|m| m.kind.has_keys() && m.ratio() >= 0.9)
                {
                    tracing::warn!(
                        map = %full.name,
                        entries = full.entries,
                        capacity = full.capacity,
                        "a map is at least 90% full; raise its capacity"
                    );
                }
                let entries: u64 = snapshot
                    .maps
                    .iter()
                    .filter(|m| m.kind.has_keys())
                    .map(|m| m.entries)
                    .sum();
                tracing::debug!(took_ms = snapshot.took.as_millis(), entries, "census taken");
                board.publish(snapshot);
            }
            // The last census stays published; the next tick tries again.
            Err(error) => tracing::error!(%error, "the census failed; retrying at the next tick"),
        }
    }
}
