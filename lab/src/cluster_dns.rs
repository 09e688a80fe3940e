//! The lab's cluster DNS, set up as kubeadm and the kubelet set it up: the `kube-system/kube-dns`
//! Service at [`DNS_SERVICE_IP`] (no selector: every node's agent answers it itself), and each pod's
//! `/etc/resolv.conf` as the kubelet writes it for `dnsPolicy: ClusterFirst`, which the pod's
//! processes see through a mount namespace of their own ([`crate::process`]).

use std::{net::Ipv4Addr, path::Path};

use crate::LabError;

/// kubeadm's `DefaultClusterDNSIP`: the `kube-dns` Service's ClusterIP, kept for it.
pub const DNS_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// kubeadm's `DefaultServiceDNSDomain`.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Names the built-in Service in apply results and errors.
pub const SOURCE: &str = "<built-in kube-dns>";

/// The `kube-dns` Service of kubeadm's CoreDNS addon (ports `dns` 53/UDP, `dns-tcp` 53/TCP,
/// `metrics` 9153/TCP), without a selector: strait answers it on every node.
pub const KUBE_DNS_SERVICE: &str = r"apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
    kubernetes.io/name: CoreDNS
spec:
  clusterIP: 10.96.0.10
  ports:
    - name: dns
      port: 53
      protocol: UDP
    - name: dns-tcp
      port: 53
      protocol: TCP
    - name: metrics
      port: 9153
      protocol: TCP
";

/// The resolv.conf the kubelet writes for a `ClusterFirst` pod in `namespace`.
pub fn resolv_conf(namespace: &str) -> String {
    format!(
        "nameserver {DNS_SERVICE_IP}\nsearch {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\noptions ndots:5\n"
    )
}

/// Writes the resolv.conf of a pod in `namespace` to `path`.
pub fn write_resolv_conf(path: &Path, namespace: &str) -> Result<(), LabError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
    }
    std::fs::write(path, resolv_conf(namespace))
        .map_err(|e| LabError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_searches_the_pods_namespace_first() {
        assert_eq!(
            resolv_conf("shop"),
            "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
    }

    #[test]
    fn the_built_in_service_parses_and_asks_for_the_dns_address() {
        let loaded =
            crate::manifests::parse_loaded(Path::new(SOURCE), KUBE_DNS_SERVICE).expect("parses");
        let [(_, crate::manifests::Object::Service(service))] = loaded.objects.as_slice() else {
            panic!("one Service expected, got {:?}", loaded.objects);
        };
        let spec = service.spec.as_ref().expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        assert!(spec.selector.is_none());
    }
}
