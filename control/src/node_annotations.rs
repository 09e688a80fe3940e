//! Publishing this node's end of the overlay through the API server (`--kube`), as flanneld does: the
//! Flannel annotations on this node's Node object (backend type `vxlan`, `backend-data` with the VNI and
//! VTEP MAC, `public-ip`, `kube-subnet-manager`), written with a JSON merge patch that touches nothing
//! else. Flannel nodes learn strait nodes from them, as strait nodes learn Flannel nodes.

use std::{collections::BTreeMap, net::Ipv4Addr, time::Duration};

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use strait_k8s::flannel::flannel_annotations;

/// The patch that sets `annotations` on a Node (and nothing else).
pub fn annotation_patch(annotations: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::json!({ "metadata": { "annotations": annotations } })
}

/// Sets this node's Flannel annotations once.
pub async fn publish(
    client: Client,
    node: &str,
    node_ip: Ipv4Addr,
    vtep_mac: [u8; 6],
    vni: u32,
) -> Result<(), kube::Error> {
    let annotations: BTreeMap<String, String> = flannel_annotations(node_ip, vtep_mac, vni)
        .into_iter()
        .collect();
    let nodes: Api<Node> = Api::all(client);
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(annotation_patch(&annotations)),
        )
        .await
        .map(drop)
}

/// Publishes until it succeeds, retrying every `retry` (the Node may not exist yet, the API server may
/// be away); logs the first failure and the success.
pub async fn publish_until_done(
    client: Client,
    node: String,
    node_ip: Ipv4Addr,
    vtep_mac: [u8; 6],
    vni: u32,
    retry: Duration,
) {
    let mut failures = 0u32;
    loop {
        match publish(client.clone(), &node, node_ip, vtep_mac, vni).await {
            Ok(()) => {
                tracing::info!(%node, "Flannel annotations published on the Node");
                return;
            }
            Err(error) => {
                if failures == 0 {
                    tracing::warn!(%node, %error, "publishing the Flannel annotations failed; retrying");
                }
                failures += 1;
                tokio::time::sleep(retry).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use tower_test::mock;

    #[tokio::test]
    async fn the_node_gets_a_merge_patch_of_the_flannel_annotations_only() {
        let (service, mut handle) = mock::pair::<Request<kube::client::Body>, Response<String>>();
        let client = Client::new(service, "default");
        let publishing = tokio::spawn(publish(
            client,
            "node-1",
            Ipv4Addr::new(172, 30, 0, 11),
            [0x0e, 0x53, 172, 30, 0, 11],
            1,
        ));
        let (request, respond) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(request.uri().path(), "/api/v1/nodes/node-1");
        assert_eq!(
            request.headers()["content-type"],
            "application/merge-patch+json"
        );
        let body = http_body_util::BodyExt::collect(request.into_body())
            .await
            .unwrap()
            .to_bytes();
        let patch: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            patch,
            serde_json::json!({"metadata": {"annotations": {
                "flannel.alpha.coreos.com/backend-type": "vxlan",
                "flannel.alpha.coreos.com/backend-data": "{\"VNI\":1,\"VtepMAC\":\"0e:53:ac:1e:00:0b\"}",
                "flannel.alpha.coreos.com/public-ip": "172.30.0.11",
                "flannel.alpha.coreos.com/kube-subnet-manager": "true"
            }}})
        );
        let node =
            serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}});
        respond.send_response(Response::new(node.to_string()));
        publishing.await.unwrap().expect("published");
    }
}
