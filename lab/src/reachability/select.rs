//! Which pods a reachability run probes from and to: `ns/pod` globs (`*`, `?`) or namespace globs.

use crate::state::PodRecord;

/// Whether `id` (`ns/pod`) matches a selector: an `ns/pod` glob (`*` any run of characters, `?` one)
/// or, without a `/`, a namespace glob.
pub fn selects(selector: &str, id: &str) -> bool {
    if selector.contains('/') {
        glob(selector.as_bytes(), id.as_bytes())
    } else {
        let namespace = id.split_once('/').map_or(id, |(ns, _)| ns);
        glob(selector.as_bytes(), namespace.as_bytes())
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// The pods `selectors` pick (all when empty), in the lab's order (by namespace and name).
pub(crate) fn pick<'a>(pods: &'a [PodRecord], selectors: &[String]) -> Vec<&'a PodRecord> {
    let mut out: Vec<&PodRecord> = pods
        .iter()
        .filter(|p| selectors.is_empty() || selectors.iter().any(|s| selects(s, &p.id())))
        .collect();
    out.sort_by_key(|p| p.id());
    out
}
