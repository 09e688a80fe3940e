//! The node's own connections and NodePorts: a reply to a connection the node opened from a port that
//! is also a NodePort would be taken by the uplink program for NodePort traffic and never reach the
//! socket. The agent reserves the NodePort range (`--node-port-range`, the API server's default
//! 30000-32767) in the node's `net.ipv4.ip_local_reserved_ports`, so the kernel never picks one.

use std::{
    io::ErrorKind,
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use strait_dataplane::netns;
use strait_lab::cluster::Lab;
use strait_tests::LabGuard;

/// A NodePort Service on the last port of the range; nothing backs it (the data path refuses its
/// traffic at once), so a hijacked reply would show.
const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: edge, namespace: default}
spec:
  type: NodePort
  selector: {app: nobody}
  ports: [{port: 80, nodePort: 32767}]
";

/// The agents' HTTP port: something listening on every node.
const AGENT_PORT: u16 = 9962;

#[test]
fn a_node_never_takes_a_node_port_as_the_source_port_of_its_own_connections() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("npr");
    let mut lab = Lab::up(&guard.name, 2, None).expect("lab up");
    lab.apply_str(Path::new("service"), SERVICE)
        .expect("the service");
    let (a, b) = (lab.state.nodes[0].clone(), lab.state.nodes[1].clone());
    let server = SocketAddr::from((b.ip, AGENT_PORT));
    let node_a = netns::path(&a.netns);

    let reserved = netns::run_in(&node_a, || {
        strait_dataplane::sysctl::read("net.ipv4.ip_local_reserved_ports")
    })
    .unwrap()
    .unwrap();
    assert!(
        strait_dataplane::sysctl::ports_cover(&reserved, 30000, 32767),
        "ip_local_reserved_ports: {reserved:?}"
    );

    let connect = |range: &'static str| {
        netns::run_in(&node_a, move || {
            strait_dataplane::sysctl::write("net.ipv4.ip_local_port_range", range).unwrap();
            TcpStream::connect_timeout(&server, Duration::from_secs(2))
        })
        .unwrap()
    };
    // Only the NodePort to choose from: the kernel refuses to use it.
    let refused = connect("32767 32767").unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::AddrNotAvailable, "{refused}");
    // The NodePort and the port after it: the connection takes the one that is no NodePort, and its
    // reply reaches it.
    let stream = connect("32767 32768").expect("the node's own connection");
    assert_eq!(stream.local_addr().unwrap().port(), 32768);
}
