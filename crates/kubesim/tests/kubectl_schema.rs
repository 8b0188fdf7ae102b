//! Built-in schemas with the real kubectl: `explain`, field validation
//! (`--validate=strict|warn|ignore`, server-side apply), and the request
//! options the API server refuses.

mod common;

use http::Request;

const WITH_UNKNOWN_FIELD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  foo: bar
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, colour: red}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_the_real_schemas() {
    let s = common::start(kubesim::Config::default()).await;
    let out = s.kubectl_ok(&["explain", "deployment.spec"], None).await;
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(out.contains("replicas\t<integer>"), "{out}");
    assert!(
        out.contains("template\t<PodTemplateSpec> -required-"),
        "{out}"
    );
    let out = s
        .kubectl_ok(&["explain", "pods.spec.containers.ports"], None)
        .await;
    assert!(out.contains("containerPort\t<integer> -required-"), "{out}");
    let out = s.kubectl(&["explain", "deployment.spec.nope"], None).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("field \"nope\" does not exist"),
        "{}",
        out.stderr
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_field_validation_refuses_unknown_fields() {
    let s = common::start(kubesim::Config::default()).await;
    // kubectl's default is --validate=strict (fieldValidation=Strict).
    let out = s
        .kubectl(&["apply", "-f", "-"], Some(WITH_UNKNOWN_FIELD))
        .await;
    assert!(!out.ok, "an unknown field is refused");
    assert!(
        out.stderr.contains(
            r#"strict decoding error: unknown field "spec.foo", unknown field "spec.template.spec.containers[0].colour""#
        ),
        "{}",
        out.stderr
    );
    assert!(!s.kubectl(&["get", "deployment", "web"], None).await.ok);

    let out = s
        .kubectl(
            &["apply", "--server-side", "-f", "-"],
            Some(WITH_UNKNOWN_FIELD),
        )
        .await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains(".spec.foo: field not declared in schema"),
        "{}",
        out.stderr
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_and_ignore_field_validation_store_the_object() {
    let s = common::start(kubesim::Config::default()).await;
    let out = s
        .kubectl(
            &["create", "--validate=warn", "-f", "-"],
            Some(WITH_UNKNOWN_FIELD),
        )
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr.contains(r#"Warning: unknown field "spec.foo""#),
        "{}",
        out.stderr
    );
    s.kubectl_ok(&["delete", "deployment", "web"], None).await;
    let out = s
        .kubectl(
            &["create", "--validate=false", "-f", "-"],
            Some(WITH_UNKNOWN_FIELD),
        )
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(!out.stderr.contains("Warning"), "{}", out.stderr);
    s.sim.shutdown().await;
}

async fn raw(
    s: &common::Sim,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let c = s.client().await;
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .unwrap();
    let resp = c.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_request_options_are_refused_and_persist_nothing() {
    let s = common::start(kubesim::Config::default()).await;
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"}}"#;
    let (code, status) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/default/configmaps?dryRun=Bogus",
        "application/json",
        cm,
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Bogus"}: supported values: "All""#
    );
    assert!(
        !s.kubectl(&["get", "configmap", "cm"], None).await.ok,
        "dryRun=Bogus persisted nothing"
    );

    let (code, status) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Loose",
        "application/json",
        cm,
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(status["details"]["causes"][0]["field"], "fieldValidation");

    let (code, status) = raw(
        &s,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/cm",
        "application/apply-patch+yaml",
        cm,
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    s.sim.shutdown().await;
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, nullable: true}
"#;

async fn get_with_accept(s: &common::Sim, uri: &str, accept: &str) -> (u16, Vec<u8>) {
    let c = s.client().await;
    let req = Request::builder()
        .uri(uri)
        .header("accept", accept)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = c.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, bytes.to_vec())
}

/// `/openapi/v2`: one Swagger 2.0 document of every served kind, built from
/// the same schemas as v3 (CRDs included). JSON only: a protobuf-only
/// `Accept` gets kube-openapi's 406 (README, "Deliberately not simulated").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_v2_serves_the_schemas_in_swagger_form() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(WIDGET_CRD)).await;
    let (code, body) = get_with_accept(&s, "/openapi/v2", "application/json").await;
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["swagger"], "2.0");
    let deploy = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deploy["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    // v2 references: `#/definitions/`, the description beside the `$ref`.
    assert_eq!(
        deploy["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );
    assert!(deploy["properties"]["spec"]["description"].is_string());
    assert!(
        doc["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["required"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("template"))
    );
    assert_eq!(
        doc["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
        "int-or-string"
    );
    assert!(!text.contains("#/components/"), "v3 references left");
    let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
    assert!(
        op["consumes"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("application/strategic-merge-patch+json"))
    );
    // The CRD's kind, its schema without v3's `nullable`.
    let widget = doc["definitions"]
        .as_object()
        .unwrap()
        .values()
        .find(|d| d["x-kubernetes-group-version-kind"][0]["kind"] == "Widget")
        .expect("the CRD's definition");
    assert_eq!(
        widget["properties"]["spec"]["properties"]["size"],
        serde_json::json!({"type": "integer"})
    );
    assert!(doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets"].is_object());
    // What client-go's OpenAPISchema() asks for.
    let (code, body) = get_with_accept(
        &s,
        "/openapi/v2",
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    )
    .await;
    assert_eq!((code, body.len()), (406, 0));
    s.sim.shutdown().await;
}
