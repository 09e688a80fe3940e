//! Strict field validation (`kubectl apply --validate=strict`): a field of the input that the typed
//! object does not keep is unknown. The typed object is serialized back and compared with the input,
//! key by key, so what counts as known is exactly what the k8s-openapi type has.

use serde::Serialize;
use serde_json::Value;

/// The path (`spec.ports[0].prot`) of the first input field the typed object dropped, if any. Fields
/// set to `null` in the input are not counted (the API server ignores them too).
pub(super) fn first_unknown_field<T: Serialize>(input: &Value, typed: &T) -> Option<String> {
    let back = serde_json::to_value(typed).ok()?;
    first_missing(input, &back, "")
}

fn first_missing(input: &Value, back: &Value, path: &str) -> Option<String> {
    match (input, back) {
        (Value::Object(fields), Value::Object(kept)) => {
            for (key, value) in fields {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept.get(key) {
                    None => return Some(child),
                    Some(kept_value) => {
                        if let Some(found) = first_missing(value, kept_value, &child) {
                            return Some(found);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(items), Value::Array(kept)) => {
            items
                .iter()
                .zip(kept)
                .enumerate()
                .find_map(|(i, (item, kept_item))| {
                    first_missing(item, kept_item, &format!("{path}[{i}]"))
                })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    use super::first_unknown_field;

    #[test]
    fn finds_misspelt_fields_at_any_depth_and_ignores_nulls() {
        let check = |input: serde_json::Value| {
            let service: Service = serde_json::from_value(input.clone()).unwrap();
            first_unknown_field(&input, &service)
        };
        let good = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"any": "label"}},
            "spec": {"ports": [{"port": 80, "targetPort": "http"}], "clusterIP": null}});
        assert_eq!(check(good), None);
        let top = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "sepc": {}});
        assert_eq!(check(top).as_deref(), Some("sepc"));
        let deep = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}, {"port": 81, "prot": "TCP"}]}});
        assert_eq!(check(deep).as_deref(), Some("spec.ports[1].prot"));
    }
}
