//! The Prometheus Operator's ServiceMonitor for the agents. It is a custom resource (no k8s-openapi
//! type), so its fields are typed here from the operator's `monitoring.coreos.com/v1` API, with
//! unknown fields refused when it is read back.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::agent::pod_labels;
use super::services::METRICS_SERVICE;
use super::{InstallValues, namespaced};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceMonitor {
    pub api_version: String,
    pub kind: String,
    pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    pub spec: ServiceMonitorSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceMonitorSpec {
    pub selector: MatchLabels,
    pub namespace_selector: NamespaceSelector,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchLabels {
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSelector {
    pub match_names: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// The Service port's name.
    pub port: String,
    pub path: String,
    pub interval: String,
}

pub fn service_monitor(values: &InstallValues) -> ServiceMonitor {
    let mut metadata = namespaced(METRICS_SERVICE, &values.namespace);
    metadata.labels = Some(pod_labels());
    ServiceMonitor {
        api_version: "monitoring.coreos.com/v1".into(),
        kind: "ServiceMonitor".into(),
        metadata,
        spec: ServiceMonitorSpec {
            selector: MatchLabels {
                match_labels: pod_labels(),
            },
            namespace_selector: NamespaceSelector {
                match_names: vec![values.namespace.clone()],
            },
            endpoints: vec![Endpoint {
                port: "metrics".into(),
                path: "/metrics".into(),
                interval: "15s".into(),
            }],
        },
    }
}
