//! What one sync writes and removes, worked out from the wanted and the present entries alone (no
//! kernel), including the subjects' two steps: relaxed before the allow entries change, tightened
//! after.

use std::collections::BTreeMap;

use super::{
    PolicySubject, SUBJECT_F_AUDIT, SUBJECT_F_EGRESS_ISOLATED, SUBJECT_F_INGRESS_ISOLATED,
};

/// Upserts and removals that make one map hold what is wanted.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Plan<R, V> {
    pub(super) upserts: Vec<(R, V)>,
    pub(super) removals: Vec<R>,
}

impl<R: Ord + Copy, V: PartialEq + Copy> Plan<R, V> {
    pub(super) fn new(wanted: &BTreeMap<R, V>, present: &BTreeMap<R, V>) -> Self {
        Self {
            upserts: wanted
                .iter()
                .filter(|(key, value)| present.get(key) != Some(value))
                .map(|(key, value)| (*key, *value))
                .collect(),
            removals: present
                .keys()
                .filter(|key| !wanted.contains_key(key))
                .copied()
                .collect(),
        }
    }
}

/// The most permissive of two subject entries: isolated only where both isolate, audited where
/// either audits (the identity stays the old one's).
fn relaxed(old: PolicySubject, new: PolicySubject) -> PolicySubject {
    let isolation = SUBJECT_F_INGRESS_ISOLATED | SUBJECT_F_EGRESS_ISOLATED;
    PolicySubject {
        flags: (old.flags & new.flags & isolation) | ((old.flags | new.flags) & SUBJECT_F_AUDIT),
        identity: old.identity,
    }
}

/// The subject writes in their two steps: `relax` before any allow entry changes (entries that lose
/// isolation, and removals), `tighten` after the allow entries are in (new subjects, gained isolation).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SubjectSteps {
    pub(super) relax: Plan<u32, PolicySubject>,
    pub(super) tighten: Vec<(u32, PolicySubject)>,
}

pub(super) fn subject_steps(
    wanted: &BTreeMap<u32, PolicySubject>,
    present: &BTreeMap<u32, PolicySubject>,
) -> SubjectSteps {
    let mut relax = Plan {
        upserts: Vec::new(),
        removals: present
            .keys()
            .filter(|key| !wanted.contains_key(key))
            .copied()
            .collect(),
    };
    let mut tighten = Vec::new();
    for (key, want) in wanted {
        let mut have = present.get(key).copied();
        if let Some(old) = have {
            let between = relaxed(old, *want);
            if between != old {
                relax.upserts.push((*key, between));
                have = Some(between);
            }
        }
        if have != Some(*want) {
            tighten.push((*key, *want));
        }
    }
    SubjectSteps { relax, tighten }
}
