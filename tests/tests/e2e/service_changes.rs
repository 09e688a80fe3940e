//! Services changed while they serve, as upstream's Services conformance tests change them: the type
//! (ClusterIP, ExternalName, NodePort and back: frontends come and go, DNS answers A or CNAME, and
//! the CNAME follows a new externalName),
//! `sessionAffinity` switched on and off (ClusterIP from a pod, NodePort from outside), a protocol
//! removed from a port, and one Service whose two ports are backed by different pods through
//! different named ports.

use std::{collections::BTreeSet, path::Path, time::Duration};

use strait_lab::cluster::Lab;
use strait_tests::LabGuard;

use crate::{dns::dig, examples};

const WAIT: Duration = Duration::from_secs(2);

fn apply(lab: &mut Lab, text: &str) {
    lab.apply_str(Path::new("change"), text)
        .unwrap_or_else(|e| panic!("applying {text}: {e}"));
}

/// Service `name` selecting the `web` pods (port 80 to `http`) with the given spec lines.
fn web_service(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{spec}  \
         selector: {{app: web}}\n  ports: [{{name: http, port: 80, targetPort: http}}]\n"
    )
}

fn spec(lab: &Lab, service: &str) -> k8s_openapi::api::core::v1::ServiceSpec {
    lab.state.services[service].spec.clone().unwrap()
}

fn node_port(lab: &Lab, service: &str) -> i32 {
    spec(lab, service).ports.unwrap()[0]
        .node_port
        .expect("a node port")
}

/// The distinct answers of `times` probes of `target` from `from`.
fn answers(lab: &Lab, from: &str, target: &str, udp: bool, times: usize) -> BTreeSet<String> {
    (0..times)
        .map(|_| match lab.probe(from, target, udp, WAIT).unwrap() {
            Ok(who) => who,
            Err(why) => format!("failed: {why}"),
        })
        .collect()
}

fn is_web(who: &str) -> bool {
    who.starts_with("default/web-")
}

#[test]
fn services_change_type_affinity_and_ports_while_serving() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("chg");
    let mut lab = Lab::up(&guard.name, 2, Some(&examples())).expect("lab up");
    type_changes(&mut lab, &guard.name);
    affinity_switches(&mut lab);
    a_protocol_removed(&mut lab);
    ports_backed_by_different_pods(&mut lab);
}

/// Applies `changer` as a ClusterIP Service: its ClusterIP serves the web pods and DNS answers its A
/// record. Returns the address.
fn to_cluster_ip(lab: &mut Lab, name: &str, fqdn: &str) -> String {
    apply(lab, &web_service("changer", "  type: ClusterIP\n"));
    let ip = spec(lab, "default/changer").cluster_ip.unwrap();
    let answered = answers(lab, "default/client", &format!("{ip}:80"), false, 3);
    assert!(answered.iter().all(|w| is_web(w)), "{answered:?}");
    assert_eq!(
        dig(name, "default/client", &[fqdn]),
        [format!("{fqdn}. 30 IN A {ip}")]
    );
    ip
}

/// ClusterIP -> ExternalName -> ClusterIP -> NodePort -> ExternalName.
fn type_changes(lab: &mut Lab, name: &str) {
    let fqdn = "changer.default.svc.cluster.local";
    let ip = to_cluster_ip(lab, name, fqdn);

    let external = "apiVersion: v1\nkind: Service\nmetadata: {name: changer, namespace: default}\n\
                    spec: {type: ExternalName, externalName: www.example.com}\n";
    apply(lab, external);
    assert_eq!(spec(lab, "default/changer").cluster_ip, None);
    assert!(
        lab.probe("default/client", &format!("{ip}:80"), false, WAIT)
            .unwrap()
            .is_err(),
        "the released ClusterIP serves nothing"
    );
    assert_eq!(
        dig(name, "default/client", &[fqdn]),
        [format!("{fqdn}. 30 IN CNAME www.example.com.")]
    );
    // Another externalName: the CNAME follows.
    apply(
        lab,
        &external.replace("www.example.com", "other.example.org"),
    );
    assert_eq!(
        dig(name, "default/client", &[fqdn]),
        [format!("{fqdn}. 30 IN CNAME other.example.org.")]
    );

    to_cluster_ip(lab, name, fqdn);

    apply(lab, &web_service("changer", "  type: NodePort\n"));
    let node_ip = lab.state.nodes[0].ip;
    let at_node = format!("{node_ip}:{}", node_port(lab, "default/changer"));
    let answered = answers(lab, "external", &at_node, false, 3);
    assert!(answered.iter().all(|w| is_web(w)), "{answered:?}");

    apply(lab, external);
    let after = lab.probe("external", &at_node, false, WAIT).unwrap();
    assert!(
        after.as_ref().is_err_and(|e| e.contains("refused")),
        "the node port is gone with the type: {after:?}"
    );
    assert_eq!(
        dig(name, "default/client", &[fqdn]),
        [format!("{fqdn}. 30 IN CNAME www.example.com.")]
    );
}

/// sessionAffinity ClientIP -> None -> ClientIP, on a NodePort Service: from a pod to its ClusterIP
/// (socket hooks) and from outside to its node port (per-packet path).
fn affinity_switches(lab: &mut Lab) {
    let sticky = "  type: NodePort\n  sessionAffinity: ClientIP\n";
    apply(lab, &web_service("sticky", sticky));
    let ip = spec(lab, "default/sticky").cluster_ip.unwrap();
    let cluster = format!("{ip}:80");
    let at_node = format!(
        "{}:{}",
        lab.state.nodes[0].ip,
        node_port(lab, "default/sticky")
    );
    let both = |lab: &Lab| {
        (
            answers(lab, "default/client", &cluster, false, 12),
            answers(lab, "external", &at_node, false, 12),
        )
    };
    let (inside, outside) = both(lab);
    assert_eq!(inside.len(), 1, "ClientIP sticks (ClusterIP): {inside:?}");
    assert_eq!(outside.len(), 1, "ClientIP sticks (NodePort): {outside:?}");

    apply(lab, &web_service("sticky", "  type: NodePort\n"));
    let (inside, outside) = both(lab);
    assert!(
        inside.len() > 1,
        "no affinity spreads (ClusterIP): {inside:?}"
    );
    assert!(
        outside.len() > 1,
        "no affinity spreads (NodePort): {outside:?}"
    );

    apply(lab, &web_service("sticky", sticky));
    let (inside, outside) = both(lab);
    assert_eq!(
        inside.len(),
        1,
        "ClientIP sticks again (ClusterIP): {inside:?}"
    );
    assert_eq!(
        outside.len(),
        1,
        "ClientIP sticks again (NodePort): {outside:?}"
    );
}

/// Port 80 over TCP and UDP, then over TCP only.
fn a_protocol_removed(lab: &mut Lab) {
    let service = |ports: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: dual, namespace: default}}\n\
             spec: {{selector: {{app: server}}, ports: {ports}}}\n"
        )
    };
    let tcp = "{name: tcp, port: 80, targetPort: 8080, protocol: TCP}";
    let udp = "{name: udp, port: 80, targetPort: 5353, protocol: UDP}";
    apply(lab, &service(&format!("[{tcp}, {udp}]")));
    let target = format!("{}:80", spec(lab, "default/dual").cluster_ip.unwrap());
    let server = BTreeSet::from(["default/server".to_owned()]);
    assert_eq!(answers(lab, "default/client", &target, false, 2), server);
    assert_eq!(answers(lab, "default/client", &target, true, 2), server);
    apply(lab, &service(&format!("[{tcp}]")));
    assert_eq!(answers(lab, "default/client", &target, false, 2), server);
    assert!(
        lab.probe("default/client", &target, true, WAIT)
            .unwrap()
            .is_err(),
        "UDP 80 is gone from the Service"
    );
}

/// Ports 80 and 81 to the named ports `svc1` and `svc2`, which only one pod each declares.
fn ports_backed_by_different_pods(lab: &mut Lab) {
    let pod = |name: &str, port_name: &str, port: u16| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: multi}}}}\n\
             spec: {{containers: [{{name: c, image: agnhost, ports: [{{name: {port_name}, containerPort: {port}}}]}}]}}\n"
        )
    };
    let pod1 = pod("multi1", "svc1", 100);
    let service = "---\napiVersion: v1\nkind: Service\nmetadata: {name: multi, namespace: default}\n\
                   spec:\n  selector: {app: multi}\n  ports: [{name: portname1, port: 80, targetPort: svc1}, \
                   {name: portname2, port: 81, targetPort: svc2}]\n";
    apply(lab, &(pod1.clone() + &pod("multi2", "svc2", 101) + service));
    let ip = spec(lab, "default/multi").cluster_ip.unwrap();
    let (port80, port81) = (format!("{ip}:80"), format!("{ip}:81"));
    let only = |pod: &str| BTreeSet::from([pod.to_owned()]);
    assert_eq!(
        answers(lab, "default/client", &port80, false, 4),
        only("default/multi1")
    );
    assert_eq!(
        answers(lab, "default/client", &port81, false, 4),
        only("default/multi2")
    );
    lab.delete_str(Path::new("pod"), &pod1)
        .expect("multi1 deleted");
    let refused = lab.probe("default/client", &port80, false, WAIT).unwrap();
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("refused")),
        "port 80 has no endpoint left: {refused:?}"
    );
    assert_eq!(
        answers(lab, "default/client", &port81, false, 2),
        only("default/multi2")
    );
}
