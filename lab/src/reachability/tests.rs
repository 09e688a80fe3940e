//! Truth tables: rendering, JSON shape, comparison, selectors.

use super::*;

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn model() -> (Vec<String>, Vec<(u16, Protocol)>) {
    (
        ids(&["x/a", "x/b", "y/a"]),
        vec![(80, Protocol::Tcp), (81, Protocol::Udp)],
    )
}

#[test]
fn tables_render_as_the_upstream_suite_prints_them() {
    let (pods, cases) = model();
    // Only x/a is blocked from y/a on 80/TCP.
    let table = Reachability::from_fn(&pods, &pods, &cases, |f, t, port, _| {
        !(f == "y/a" && t == "x/a" && port == 80)
    });
    let text = table.render();
    assert_eq!(
        text,
        "80/TCP: 8 of 9 allowed\n\
         -   x/a x/b y/a\n\
         x/a .   .   .\n\
         x/b .   .   .\n\
         y/a X   .   .\n\
         \n\
         81/UDP: 9 of 9 allowed\n\
         -   x/a x/b y/a\n\
         x/a .   .   .\n\
         x/b .   .   .\n\
         y/a .   .   .\n\n"
    );
    assert_eq!(table.counts(), (17, 18));
    // A cell nobody probed shows as `?`.
    let mut partial = Reachability {
        from: ids(&["x/a"]),
        to: ids(&["x/b"]),
        cases: vec![(80, Protocol::Tcp)],
        ..Reachability::default()
    };
    assert!(partial.render().contains("x/a ?"), "{}", partial.render());
    partial.set("x/a", "x/b", 80, Protocol::Tcp, false);
    assert!(partial.render().contains("x/a X"));
}

#[test]
fn json_lists_one_object_per_cell() {
    let (pods, cases) = model();
    let table = Reachability::from_fn(&pods[..2], &pods[1..2], &cases[..1], |f, _, _, _| {
        f == "x/a"
    });
    assert_eq!(
        table.to_json(),
        serde_json::json!([
            {"from": "x/a", "to": "x/b", "port": 80, "protocol": "TCP", "allowed": true},
            {"from": "x/b", "to": "x/b", "port": 80, "protocol": "TCP", "allowed": false},
        ])
    );
}

#[test]
fn comparison_lists_every_wrong_cell() {
    let (pods, cases) = model();
    let expected = Reachability::from_fn(&pods, &pods, &cases, |_, t, _, _| t != "y/a");
    let mut probed = Reachability::from_fn(&pods, &pods, &cases, |_, t, _, _| t != "y/a");
    assert!(probed.compare(&expected).is_empty());
    probed.set("x/a", "y/a", 81, Protocol::Udp, true);
    probed.set("x/b", "x/a", 80, Protocol::Tcp, false);
    probed.reasons.insert(
        ("x/b".into(), "x/a".into(), 80, Protocol::Tcp),
        "connect timed out".into(),
    );
    let wrong = probed.compare(&expected);
    let lines: Vec<String> = wrong.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "x/b -> x/a 80/TCP: expected allowed, got blocked (connect timed out)",
            "x/a -> y/a 81/UDP: expected blocked, got allowed",
        ]
    );
    let text = probed.render_comparison(&expected);
    assert!(text.contains("x/b X   .   .\n"), "{text}");
    assert!(text.ends_with("got allowed\n"), "{text}");
    // A cell only one side has is wrong too.
    let smaller = Reachability::from_fn(&pods[..1], &pods, &cases, |_, t, _, _| t != "y/a");
    let extra = expected.compare(&smaller);
    assert_eq!(extra.len(), 12, "{extra:?}");
    assert!(
        extra
            .iter()
            .all(|m| m.expected.is_none() && m.observed == Some(m.to != "y/a"))
    );
}

#[test]
fn selectors_are_globs_or_namespaces() {
    assert!(selects("x/*", "x/a"));
    assert!(selects("x", "x/a"));
    assert!(!selects("x", "xy/a"));
    assert!(selects("*/a", "y/a"));
    assert!(selects("x/?", "x/b"));
    assert!(!selects("x/?", "x/bb"));
    assert!(selects("x*", "xy/a"));
    assert!(selects("*", "z/c"));
    assert!(!selects("y/a", "y/ab"));
    assert_eq!(service_name("x", "a"), "s-x-a");
}

#[test]
fn batch_answers_round_trip_as_json_lines() {
    for result in [
        Ok("x/a\n10.244.1.2:4000".to_owned()),
        Err("refused".to_owned()),
    ] {
        let line = serde_json::to_string(&BatchAnswer::from_result(result.clone())).unwrap();
        assert!(!line.contains('\n'));
        let back: BatchAnswer = serde_json::from_str(&line).unwrap();
        assert_eq!(back.into_result(), result);
    }
}
