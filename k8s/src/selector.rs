//! Label selectors as Kubernetes evaluates them: `matchLabels` and `matchExpressions` (`In`, `NotIn`,
//! `Exists`, `DoesNotExist`), ANDed together, as NetworkPolicy pod and namespace selectors and
//! Deployment selectors use them; and the plain `key: value` map of a Service selector.
//!
//! An empty selector (`{}`) selects everything, as in NetworkPolicy's `podSelector: {}`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Labels as objects carry them.
pub type Labels = BTreeMap<String, String>;

/// One requirement on one label key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// The label is present and its value is one of these (`matchLabels` entries are `In` one value).
    In(String, Vec<String>),
    /// The label is absent, or present with a value that is none of these.
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// Why a `LabelSelector` is invalid; `index` is the position in `matchExpressions`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    #[error(
        "matchExpressions[{index}].operator: must be In, NotIn, Exists or DoesNotExist, got {operator:?}"
    )]
    Operator { index: usize, operator: String },
    #[error("matchExpressions[{index}].values: must be non-empty for {operator}")]
    ValuesRequired { index: usize, operator: String },
    #[error("matchExpressions[{index}].values: must be empty for {operator}")]
    ValuesForbidden { index: usize, operator: String },
}

/// A parsed selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses a `LabelSelector`, refusing what the API server refuses.
    pub fn new(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
            .collect();
        for (index, expression) in selector.match_expressions.iter().flatten().enumerate() {
            let key = expression.key.clone();
            let values = expression.values.clone().unwrap_or_default();
            let operator = expression.operator.clone();
            let requirement = match operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(SelectorError::ValuesRequired { index, operator });
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(SelectorError::ValuesForbidden { index, operator });
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                _ => return Err(SelectorError::Operator { index, operator }),
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// A Service's `spec.selector`: every `key: value` must be present.
    pub fn from_map(labels: &Labels) -> Self {
        Self {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
                .collect(),
        }
    }

    /// True when the selector has no requirement (it selects everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, in order (`matchLabels` first).
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The first requirement `labels` fails, for error messages.
    pub fn first_unmet(&self, labels: &Labels) -> Option<&Requirement> {
        self.requirements.iter().find(|r| !r.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let selector = Selector::new(&LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                expression("tier", "In", &["front", "edge"]),
                expression("env", "NotIn", &["prod"]),
                expression("team", "Exists", &[]),
                expression("legacy", "DoesNotExist", &[]),
            ]),
        })
        .unwrap();
        let base = [("app", "web"), ("tier", "edge"), ("team", "a")];
        assert!(selector.matches(&labels(&base)));
        assert!(selector.matches(&labels(&[("env", "dev"), base[0], base[1], base[2]])));
        assert!(!selector.matches(&labels(&[("env", "prod"), base[0], base[1], base[2]])));
        assert!(!selector.matches(&labels(&[("legacy", "1"), base[0], base[1], base[2]])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "back"), ("team", "a")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert_eq!(
            selector.first_unmet(&labels(&[("app", "api")])),
            Some(&Requirement::In("app".into(), vec!["web".into()]))
        );
    }

    #[test]
    fn empty_selects_everything_and_bad_expressions_are_refused() {
        let all = Selector::new(&LabelSelector::default()).unwrap();
        assert!(all.is_empty() && all.matches(&labels(&[])) && all.matches(&labels(&[("a", "b")])));
        let bad = |e| {
            Selector::new(&LabelSelector {
                match_expressions: Some(vec![e]),
                ..LabelSelector::default()
            })
            .unwrap_err()
        };
        assert!(matches!(
            bad(expression("a", "Equals", &["b"])),
            SelectorError::Operator { .. }
        ));
        assert!(matches!(
            bad(expression("a", "In", &[])),
            SelectorError::ValuesRequired { .. }
        ));
        assert!(matches!(
            bad(expression("a", "Exists", &["b"])),
            SelectorError::ValuesForbidden { .. }
        ));
        let service = Selector::from_map(&labels(&[("app", "web")]));
        assert!(service.matches(&labels(&[("app", "web"), ("x", "y")])));
        assert!(!service.matches(&labels(&[("app", "db")])));
    }
}
