//! Registry behaviour against a real `docker-registry` and the real library:
//! resolve, pull by digest, caching, and the failures publishing must report.

use caelus_helm::testing::{TestRegistry, push_test_chart};
use caelus_helm::{ChartReference, Digest, HelmEngine, HelmError};

fn engine(dir: &tempfile::TempDir) -> HelmEngine {
    caelus_helm::testing::engine(dir.path()).expect("libhelm_c loads; run scripts/install-helm-lib")
}

fn reference(s: &str) -> ChartReference {
    s.parse().unwrap()
}

/// The chart layer's digest, read from the manifest in registry storage.
fn layer_digest(registry: &TestRegistry, manifest: &Digest) -> Digest {
    let text = std::fs::read_to_string(registry.blob_path(manifest)).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["layers"][0]["digest"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn resolve_tag_gives_manifest_digest_and_pull_by_digest_works() {
    let registry = TestRegistry::start().unwrap();
    let (tagged, pushed_digest) = push_test_chart(&registry, "web", "1.0.0").await.unwrap();
    assert_eq!(tagged, format!("{}/web:1.0.0", registry.repository()));

    let data = tempfile::tempdir().unwrap();
    let engine = engine(&data);
    let resolved = engine.resolve(&reference(&tagged)).await.unwrap();
    assert_eq!(resolved.digest, pushed_digest);
    assert_eq!(
        resolved.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(resolved.size > 0);
    assert_eq!(resolved.reference.tag, None);
    // It is the manifest's digest: the manifest blob is stored under it.
    assert!(registry.blob_path(&resolved.digest).is_file());

    let chart = engine.pull(&resolved.reference).await.unwrap();
    assert_eq!(chart.name(), "web");
    assert_eq!(chart.digest(), Some(&resolved.digest));
    let cached = engine
        .chart_store()
        .path(&resolved.reference.repository_key(), &resolved.digest);
    assert!(cached.is_file(), "archive cached at {}", cached.display());
    assert!(cached.ends_with(format!("sha256/{}.tgz", resolved.digest.hex())));

    // Loaded charts are shared: a second pull is the same chart.
    let again = engine.pull(&resolved.reference).await.unwrap();
    assert!(chart.ptr_eq(&again));

    let info = engine.chart_info(&chart).await.unwrap();
    assert_eq!(info.name, "web");
    assert_eq!(info.version, "1.0.0");
    assert_eq!(info.app_version.as_deref(), Some("1.25.0"));
    assert_eq!(info.default_values["service"]["port"], 80);
    assert!(info.values_schema.is_none());
}

/// Supply chain: a digest is only ever served for a repository that has it.
/// Repository A's chart, cached in memory and on disk, is not what
/// "repository B at A's digest" gets: that pull goes to B, and B's answer
/// (manifest unknown) is the error.
#[tokio::test]
async fn a_digest_is_served_only_for_the_repository_that_has_it() {
    let mut registry = TestRegistry::start().unwrap();
    let (web, digest) = push_test_chart(&registry, "web", "1.0.0").await.unwrap();
    push_test_chart(&registry, "schema", "1.0.0").await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let engine = engine(&data);
    let in_a = reference(&web).with_digest(digest.clone());
    engine.pull(&in_a).await.unwrap();

    let in_b = reference(&format!("{}/schema@{digest}", registry.repository()));
    for err in [
        engine.pull(&in_b).await.unwrap_err(),
        engine.inspect(&in_b).await.unwrap_err(),
    ] {
        assert!(matches!(err, HelmError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("charts/schema"), "names B: {err}");
        assert!(err.is_client_error());
    }
    assert!(
        !engine
            .chart_store()
            .path(&in_b.repository_key(), &digest)
            .exists()
    );

    // Nor from the disk cache of a fresh engine, even with the registry gone:
    // then the registry cannot be asked, and the pull fails as unreachable.
    let fresh = self::engine(&data);
    let err = fresh.pull(&in_b).await.unwrap_err();
    assert!(matches!(err, HelmError::NotFound { .. }), "{err:?}");
    registry.stop();
    let err = fresh.pull(&in_b).await.unwrap_err();
    assert!(
        matches!(err, HelmError::RegistryUnreachable { .. }),
        "{err:?}"
    );
    assert_eq!(
        fresh.pull(&in_a).await.unwrap().name(),
        "web",
        "A's own cache still serves A"
    );
}

#[tokio::test]
async fn disk_cache_serves_pulls_when_registry_is_gone() {
    let mut registry = TestRegistry::start().unwrap();
    let (tagged, digest) = push_test_chart(&registry, "stateful", "1.0.0")
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    {
        let engine = engine(&data);
        let pinned = reference(&tagged).with_digest(digest.clone());
        engine.pull(&pinned).await.unwrap();
    }
    registry.stop();
    // A new engine on the same data dir loads it from disk.
    let engine = engine(&data);
    let pinned = reference(&tagged).with_digest(digest.clone());
    let chart = engine.pull(&pinned).await.unwrap();
    assert_eq!(chart.name(), "stateful");
}

#[tokio::test]
async fn inspect_resolves_pulls_lints_and_reads_metadata() {
    let registry = TestRegistry::start().unwrap();
    let (tagged, digest) = push_test_chart(&registry, "schema", "1.0.0").await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let engine = engine(&data);
    let inspected = engine.inspect(&reference(&tagged)).await.unwrap();
    assert_eq!(inspected.digest, digest);
    assert_eq!(inspected.reference.digest.as_ref(), Some(&digest));
    assert_eq!(inspected.info.name, "schema");
    assert_eq!(inspected.info.version, "1.0.0");
    let schema = inspected
        .info
        .values_schema
        .as_ref()
        .expect("schema chart ships a schema");
    assert_eq!(schema["properties"]["mode"]["enum"][1], "large");
    assert!(!inspected.lint.has_errors());

    // The same by digest.
    let by_digest = format!("{}/schema@{digest}", registry.repository());
    let again = engine.inspect(&reference(&by_digest)).await.unwrap();
    assert_eq!(again.digest, digest);
}

#[tokio::test]
async fn tampered_blob_is_refused() {
    let registry = TestRegistry::start().unwrap();
    let (tagged, digest) = push_test_chart(&registry, "web", "2.0.0").await.unwrap();
    let blob = registry.blob_path(&layer_digest(&registry, &digest));
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();

    let data = tempfile::tempdir().unwrap();
    let engine = engine(&data);
    let err = engine
        .pull(&reference(&tagged).with_digest(digest.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, HelmError::DigestMismatch { .. }), "{err:?}");
    assert!(!err.is_client_error());
    assert!(
        !engine
            .chart_store()
            .path(&reference(&tagged).repository_key(), &digest)
            .exists(),
        "nothing cached"
    );
}

#[tokio::test]
async fn unknown_digest_and_tag_are_not_found() {
    let registry = TestRegistry::start().unwrap();
    push_test_chart(&registry, "web", "1.0.0").await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let engine = engine(&data);

    let unknown = format!("{}/web@sha256:{}", registry.repository(), "0".repeat(64));
    let err = engine.pull(&reference(&unknown)).await.unwrap_err();
    assert!(matches!(err, HelmError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("not found"), "{err}");
    assert!(err.is_client_error());

    let err = engine
        .resolve(&reference(&format!("{}/web:9.9.9", registry.repository())))
        .await
        .unwrap_err();
    assert!(matches!(err, HelmError::NotFound { .. }), "{err:?}");

    let err = engine
        .inspect(&reference(&format!(
            "{}/nothing:1.0.0",
            registry.repository()
        )))
        .await
        .unwrap_err();
    assert!(matches!(err, HelmError::NotFound { .. }), "{err:?}");
    let cached: Vec<_> = std::fs::read_dir(data.path().join("charts/repositories"))
        .unwrap()
        .collect();
    assert!(cached.is_empty(), "nothing stored");
}

#[tokio::test]
async fn stopped_registry_is_unreachable() {
    let mut registry = TestRegistry::start().unwrap();
    let (tagged, digest) = push_test_chart(&registry, "web", "1.0.0").await.unwrap();
    registry.stop();
    let data = tempfile::tempdir().unwrap();
    let engine = engine(&data);

    let err = engine.resolve(&reference(&tagged)).await.unwrap_err();
    assert!(
        matches!(err, HelmError::RegistryUnreachable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&registry.host()), "{err}");
    assert!(!err.is_client_error());

    let err = engine
        .pull(&reference(&tagged).with_digest(digest.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, HelmError::RegistryUnreachable { .. }),
        "{err:?}"
    );
    assert!(
        !engine
            .chart_store()
            .path(&reference(&tagged).repository_key(), &digest)
            .exists()
    );
}

#[tokio::test]
async fn pull_needs_a_digest() {
    let data = tempfile::tempdir().unwrap();
    let engine = engine(&data);
    let err = engine
        .pull(&reference("oci://127.0.0.1:1/charts/web:1.0.0"))
        .await
        .unwrap_err();
    assert!(matches!(err, HelmError::InvalidReference { .. }), "{err:?}");
}

#[tokio::test]
async fn credentials_are_used_for_registries_that_need_them() {
    let registry = TestRegistry::start_with_auth().unwrap();
    let (tagged, digest) = push_test_chart(&registry, "web", "1.0.0").await.unwrap();

    let data = tempfile::tempdir().unwrap();
    let engine = engine(&data);
    // Without credentials: refused.
    let err = engine.resolve(&reference(&tagged)).await.unwrap_err();
    assert!(matches!(err, HelmError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains(&registry.host()), "{err}");

    engine.set_registry(&registry.host(), registry.settings());
    let resolved = engine.resolve(&reference(&tagged)).await.unwrap();
    assert_eq!(resolved.digest, digest);
    let chart = engine.pull(&resolved.reference).await.unwrap();
    assert_eq!(chart.name(), "web");
    // The login went to Caelus's own credentials file, not ~/.config/helm.
    assert!(
        data.path()
            .join("registry")
            .read_dir()
            .unwrap()
            .next()
            .is_some()
    );
}
