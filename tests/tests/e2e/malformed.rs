//! Malformed frames sent by a pod over its real veth (an AF_PACKET socket inside the pod's namespace):
//! dropped with the right reason, counted, and harmless to everyone else.

use std::{ffi::CString, time::Duration};

use strait_dataplane::netns;
use strait_tests::LabGuard;

use crate::{endpoints, packets, two_pod_lab, who_answers};

/// Sends raw Ethernet `frames` out of `eth0` in the namespace at `ns`.
fn send_raw(ns: &std::path::Path, frames: Vec<Vec<u8>>) {
    netns::run_in(ns, move || {
        let ifname = CString::new("eth0").unwrap();
        // SAFETY: plain socket calls with valid pointers and lengths.
        unsafe {
            let ifindex = libc::if_nametoindex(ifname.as_ptr());
            assert_ne!(ifindex, 0);
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = i32::try_from(ifindex).unwrap();
            addr.sll_halen = 6;
            for frame in &frames {
                let sent = libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const addr).cast(),
                    u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap(),
                );
                assert_eq!(
                    usize::try_from(sent).ok(),
                    Some(frame.len()),
                    "sendto: {}",
                    std::io::Error::last_os_error()
                );
            }
            libc::close(fd);
        }
    })
    .unwrap();
}

fn mac(text: &str) -> Vec<u8> {
    text.split(':')
        .map(|p| u8::from_str_radix(p, 16).unwrap())
        .collect()
}

#[test]
fn truncated_and_malformed_frames_from_a_pod_are_dropped_and_counted() {
    let guard = LabGuard::new("mf");
    let lab = two_pod_lab(&guard.name);
    let node = lab.state.nodes[0].name.clone();
    let client = lab.state.pod("default/client").unwrap().clone();
    let server = lab.state.pod("default/server").unwrap().clone();
    let entry = endpoints(&lab, &node)
        .into_iter()
        .find(|e| e["pod_name"] == "client")
        .unwrap();
    let gateway = mac(entry["host_mac"].as_str().unwrap());
    let own = mac(entry["pod_mac"].as_str().unwrap());

    let mut header = gateway.clone();
    header.extend_from_slice(&own);
    header.extend_from_slice(&[0x08, 0x00]);
    let mut truncated = header.clone();
    truncated.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6]); // 10 of 20 header bytes
    let mut malformed = header.clone();
    malformed.extend_from_slice(&[0x65; 40]); // version 6 behind an IPv4 EtherType

    let truncated_before = packets(&lab, &node, "truncated_ipv4");
    let malformed_before = packets(&lab, &node, "malformed_ipv4");
    send_raw(
        &netns::path(&client.netns),
        vec![truncated.clone(), truncated, malformed],
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(packets(&lab, &node, "truncated_ipv4"), truncated_before + 2);
    assert_eq!(packets(&lab, &node, "malformed_ipv4"), malformed_before + 1);
    let drops = lab.agent_get(&node, "/metrics").unwrap();
    assert!(
        drops.contains("strait_drops_total{")
            && drops.contains("reason=\"truncated_ipv4\",direction=\"egress\"} 2")
    );
    // The sender and everyone else still work.
    assert_eq!(
        who_answers(&lab, "default/client", server.ip, 8080),
        "default/server"
    );
}
