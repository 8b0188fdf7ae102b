//! The protobuf wire format at the HTTP level: `k8s\0` envelopes in
//! requests, protobuf answers (objects, lists, Status) for clients that
//! accept only protobuf, and DeleteOptions bodies.

mod common;

use http::Request;
use kubesim::wire::protobuf::{CONTENT_TYPE, decode_object, encode_object};
use serde_json::{Value, json};

async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Vec<u8>,
    accept: &str,
) -> (u16, String, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", CONTENT_TYPE)
        .header("accept", accept)
        .body(kube::client::Body::from(body))
        .unwrap();
    let resp = client.send(req).await.expect("request sent");
    let code = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body read")
        .to_bytes()
        .to_vec();
    (code, ct, bytes)
}

fn pb(v: &Value) -> Vec<u8> {
    encode_object(v).unwrap().expect("a built-in kind")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_create_get_list_delete() {
    let s = common::start(kubesim::Config::default()).await;
    let c = s.client().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "pb", "labels": {"via": "protobuf"}}, "data": {"k": "v"}});
    let (code, ct, body) = send(
        &c,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        pb(&cm),
        CONTENT_TYPE,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(ct, CONTENT_TYPE);
    let created = decode_object(&body).unwrap();
    assert_eq!(created["data"]["k"], "v");
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());

    // JSON clients see the same object.
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::default_namespaced(c.clone());
    let got = api.get("pb").await.unwrap();
    assert_eq!(got.metadata.labels.unwrap()["via"], "protobuf");

    let (code, ct, body) = send(
        &c,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        vec![],
        CONTENT_TYPE,
    )
    .await;
    assert_eq!((code, ct.as_str()), (200, CONTENT_TYPE));
    let list = decode_object(&body).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["metadata"]["name"] == "pb")
    );

    // A client that also accepts JSON gets JSON.
    let (_, ct, _) = send(
        &c,
        "GET",
        "/api/v1/namespaces/default/configmaps/pb",
        vec![],
        "application/vnd.kubernetes.protobuf, */*",
    )
    .await;
    assert_eq!(ct, "application/json");

    // DeleteOptions in protobuf: a precondition on a wrong uid is refused.
    let opts = json!({"apiVersion": "v1", "kind": "DeleteOptions",
        "preconditions": {"uid": "not-the-uid"}});
    let (code, ct, body) = send(
        &c,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/pb",
        pb(&opts),
        CONTENT_TYPE,
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(ct, CONTENT_TYPE);
    let status = decode_object(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(status["code"], 409);

    let opts =
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"});
    let (code, _, body) = send(
        &c,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/pb",
        pb(&opts),
        CONTENT_TYPE,
    )
    .await;
    assert_eq!(code, 200, "{:?}", decode_object(&body));
    let (code, _, body) = send(
        &c,
        "GET",
        "/api/v1/namespaces/default/configmaps/pb",
        vec![],
        CONTENT_TYPE,
    )
    .await;
    assert_eq!(code, 404);
    let status = decode_object(&body).unwrap();
    assert_eq!(status["message"], "configmaps \"pb\" not found");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_refusals() {
    let s = common::start(kubesim::Config::default()).await;
    let c = s.client().await;
    // A body without the k8s\0 magic is a bad request, not stored.
    let (code, _, body) = send(
        &c,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        b"{\"metadata\":{\"name\":\"x\"}}".to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(code, 400);
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["reason"], "BadRequest");

    // Custom resources have no protobuf form: 406 for protobuf-only clients.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let (code, ct, body) = send(
        &c,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        pb(&crd),
        CONTENT_TYPE,
    )
    .await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ct, CONTENT_TYPE);
    let got = decode_object(&body).unwrap();
    assert_eq!(
        got["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    let (code, _, _) = send(
        &c,
        "GET",
        "/apis/example.com/v1/namespaces/default/widgets",
        vec![],
        CONTENT_TYPE,
    )
    .await;
    assert_eq!(code, 406);
    s.sim.shutdown().await;
}
