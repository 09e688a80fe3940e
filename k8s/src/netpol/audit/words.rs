//! Policies' parts in the words findings use: selectors as kubectl writes them (`app=web,tier in
//! (a,b),!legacy`), directions, and lists of names cut short.

use crate::selector::{Requirement, Selector};

use super::super::rules::{Policy, Rule};

/// Which rules of a policy a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub(super) const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    pub(super) fn word(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// The policy's rules for this direction; `None` when it does not apply to it.
    pub(super) fn rules(self, policy: &Policy) -> Option<&[Rule]> {
        match self {
            Direction::Ingress => policy.ingress.as_deref(),
            Direction::Egress => policy.egress.as_deref(),
        }
    }
}

/// A selector as kubectl prints one; `{}` for the empty selector.
pub(super) fn selector(selector: &Selector) -> String {
    if selector.is_empty() {
        return "{}".to_owned();
    }
    let parts: Vec<String> = selector
        .requirements()
        .iter()
        .map(|r| match r {
            Requirement::In(key, values) if values.len() == 1 => format!("{key}={}", values[0]),
            Requirement::In(key, values) => format!("{key} in ({})", values.join(",")),
            Requirement::NotIn(key, values) => format!("{key} notin ({})", values.join(",")),
            Requirement::Exists(key) => key.clone(),
            Requirement::DoesNotExist(key) => format!("!{key}"),
        })
        .collect();
    parts.join(",")
}

/// At most five names, then how many more.
pub(super) fn list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    if names.len() <= SHOWN {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..SHOWN].join(", "),
        names.len() - SHOWN
    )
}

/// `1 pod`, `3 pods`.
pub(super) fn pods(n: usize) -> String {
    if n == 1 {
        "1 pod".to_owned()
    } else {
        format!("{n} pods")
    }
}
