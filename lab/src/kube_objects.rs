//! Reading a live cluster for the `--kube` commands (`strait policy explain --kube`, `strait policy
//! audit --kube`): the Namespaces, Nodes, Pods and NetworkPolicies the API server holds, listed page
//! by page with the client `kube` infers (the in-cluster service account, else the current kubeconfig
//! context), as the same [`Object`]s the manifest readers produce. Pods that have finished (phase
//! `Succeeded` or `Failed`) are left out: their addresses belong to nobody and may be reused.

use k8s_openapi::api::{
    core::v1::{Namespace, Node, Pod},
    networking::v1::NetworkPolicy,
};
use kube::{Api, Client, Resource, api::ListParams};
use serde::de::DeserializeOwned;
use strait_k8s::{Kind, Object};

use crate::LabError;

/// Items asked for per list request, as `kubectl get` pages.
const PAGE_SIZE: u32 = 500;

/// The objects of `kinds` (Namespace, Node, Pod and NetworkPolicy are read; other kinds are
/// ignored) from the API server of the environment's kubeconfig or service account.
pub fn read_cluster(kinds: &[Kind]) -> Result<Vec<Object>, LabError> {
    runtime()?.block_on(async {
        let client = Client::try_default().await.map_err(|error| {
            LabError::Environment(format!(
                "--kube: no API server to talk to (KUBECONFIG, ~/.kube/config or the in-cluster \
                 service account): {error}"
            ))
        })?;
        read_with(client, kinds).await
    })
}

/// [`read_cluster`] with a given client.
async fn read_with(client: Client, kinds: &[Kind]) -> Result<Vec<Object>, LabError> {
    let mut objects = Vec::new();
    for kind in kinds {
        match kind {
            Kind::Namespace => objects.extend(list::<Namespace>(&client).await?),
            Kind::Node => objects.extend(list::<Node>(&client).await?),
            Kind::Pod => objects.extend(
                list::<Pod>(&client)
                    .await?
                    .into_iter()
                    .filter(|pod| !matches!(pod, Object::Pod(pod) if finished(pod))),
            ),
            Kind::NetworkPolicy => objects.extend(list::<NetworkPolicy>(&client).await?),
            _ => {}
        }
    }
    Ok(objects)
}

/// Every object of `K` in every namespace, following the API server's `continue` tokens.
async fn list<K>(client: &Client) -> Result<Vec<Object>, LabError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    Object: From<K>,
{
    let api: Api<K> = Api::all(client.clone());
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        let page = api.list(&params).await.map_err(|error| {
            LabError::Environment(format!(
                "--kube: listing {} from the API server: {error}",
                K::plural(&())
            ))
        })?;
        items.extend(page.items.into_iter().map(Object::from));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(items);
        }
    }
}

/// A pod whose containers have all stopped for good.
fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn runtime() -> Result<tokio::runtime::Runtime, LabError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| LabError::Io {
            action: "starting the async runtime for --kube".to_owned(),
            error,
        })
}
