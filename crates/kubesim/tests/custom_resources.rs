//! Custom resources against their CRD's structural schema, as the API server
//! treats them: unknown fields pruned (refused under `fieldValidation=Strict`,
//! kubectl's default), defaults applied, values validated with 422 causes
//! naming the field.

mod common;

use serde_json::{Value, json};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              mode: {type: string, enum: [fast, safe], default: safe}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              ready: {type: boolean}
"#;

fn gizmo(spec: &str) -> String {
    format!("apiVersion: example.com/v1\nkind: Gizmo\nmetadata: {{name: g}}\nspec: {spec}\n")
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_are_pruned_defaulted_and_validated() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(CRD)).await;

    // kubectl validates strictly by default: the unknown field is refused.
    let out = s
        .kubectl(
            &["create", "-f", "-"],
            Some(&gizmo("{size: 2, colour: red}")),
        )
        .await;
    assert!(
        !out.ok
            && out
                .stderr
                .contains(r#"strict decoding error: unknown field "spec.colour""#),
        "{}",
        out.stderr
    );
    let out = s
        .kubectl(
            &["apply", "--server-side", "-f", "-"],
            Some(&gizmo("{size: 2, colour: red}")),
        )
        .await;
    assert!(
        !out.ok
            && out
                .stderr
                .contains(".spec.colour: field not declared in schema"),
        "{}",
        out.stderr
    );
    // Without validation the field is pruned, the default lands, and what
    // the schema preserves stays.
    let out = s
        .kubectl(
            &["create", "--validate=false", "-f", "-"],
            Some(&gizmo("{size: 2, colour: red, extra: {any: {thing: 1}}}")),
        )
        .await;
    assert!(out.ok, "{}", out.stderr);
    let g = json_of(
        &s.kubectl_ok(&["get", "gizmo", "g", "-o", "json"], None)
            .await,
    );
    assert_eq!(
        g["spec"],
        json!({"size": 2, "mode": "safe", "extra": {"any": {"thing": 1}}})
    );

    // Values the schema refuses: 422 with one cause per field.
    let out = s
        .kubectl(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&gizmo("{size: big, mode: slow}")),
        )
        .await;
    assert!(!out.ok, "a bad value was stored");
    assert!(
        out.stderr.contains(r#"spec.size: Invalid value: "string": spec.size in body must be of type integer: "string""#)
            && out.stderr.contains(r#"spec.mode: Unsupported value: "slow": supported values: "fast", "safe""#),
        "{}",
        out.stderr
    );
    let out = s
        .kubectl(
            &[
                "patch",
                "gizmo",
                "g",
                "--type=merge",
                "-p",
                r#"{"spec":{"size":11}}"#,
            ],
            None,
        )
        .await;
    assert!(
        !out.ok
            && out.stderr.contains(
                "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"
            ),
        "{}",
        out.stderr
    );
    let out = s
        .kubectl(
            &[
                "patch",
                "gizmo",
                "g",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/spec/size"}]"#,
            ],
            None,
        )
        .await;
    assert!(
        !out.ok && out.stderr.contains("spec.size: Required value"),
        "{}",
        out.stderr
    );
    let g = json_of(
        &s.kubectl_ok(&["get", "gizmo", "g", "-o", "json"], None)
            .await,
    );
    assert_eq!(g["spec"]["size"], 2, "refused writes stored nothing");

    // The status subresource is checked against the schema too.
    let out = s
        .kubectl(
            &[
                "patch",
                "gizmo",
                "g",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"ready":"yes"}}"#,
            ],
            None,
        )
        .await;
    assert!(
        !out.ok
            && out
                .stderr
                .contains("status.ready in body must be of type boolean"),
        "{}",
        out.stderr
    );
    s.sim.shutdown().await;
}
