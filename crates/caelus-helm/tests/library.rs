//! Finding and loading the library. Runs in its own test binary: a process
//! can load libhelm_c only once.

use caelus_helm::{
    EXPECTED_HELM_C_VERSION, EXPECTED_HELM_SDK_VERSION, EngineConfig, HelmEngine, HelmError,
    LibraryLoading,
};

#[test]
fn missing_library_names_the_file_and_the_install_command() {
    let data = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(data.path());
    config.library_path = Some(data.path().join("nowhere/libhelm_c.so"));
    let err = HelmEngine::load(config).unwrap_err();
    assert!(matches!(err, HelmError::LibraryMissing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("nowhere/libhelm_c.so"), "{msg}");
    assert!(msg.contains("scripts/install-helm-lib"), "{msg}");

    // The real one loads, with the expected versions.
    let engine = caelus_helm::testing::engine(data.path()).unwrap();
    let lib = engine.library().unwrap();
    assert_eq!(lib.c_version(), EXPECTED_HELM_C_VERSION);
    assert_eq!(lib.sdk_version(), EXPECTED_HELM_SDK_VERSION);
    assert_eq!(engine.open_handles(), 0);

    // A different file once one is loaded is refused (one Go runtime per process).
    let other = data.path().join("other.so");
    std::fs::copy(lib.path(), &other).unwrap();
    let mut config = EngineConfig::new(data.path());
    config.library_path = Some(other);
    let err = HelmEngine::load(config).unwrap_err();
    assert!(err.to_string().contains("already loaded"), "{err}");
}

#[test]
fn a_file_that_is_not_libhelm_c_is_refused() {
    // Loading must happen before any other load in this process; this test
    // only checks the pure message shape when run after the other one.
    let err = HelmError::VersionMismatch {
        path: "/x/libhelm_c.so".into(),
        found_c: "0.3.0".into(),
        found_sdk: "v4.3.0".into(),
        expected_c: EXPECTED_HELM_C_VERSION,
        expected_sdk: EXPECTED_HELM_SDK_VERSION,
    };
    let msg = err.to_string();
    assert!(
        msg.contains("0.3.0")
            && msg.contains(EXPECTED_HELM_C_VERSION)
            && msg.contains("install-helm-lib"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_library_loaded_on_first_use_loads_at_the_first_call_that_needs_it() {
    let data = tempfile::tempdir().unwrap();
    let real = caelus_helm::locate_library(None);

    // A missing file is still refused at start, not at the first request.
    let mut config = EngineConfig::new(data.path());
    config.library_loading = LibraryLoading::OnFirstUse;
    config.library_path = Some(data.path().join("nowhere/libhelm_c.so"));
    let err = HelmEngine::load(config).unwrap_err();
    assert!(matches!(err, HelmError::LibraryMissing { .. }), "{err:?}");

    let mut config = EngineConfig::new(data.path());
    config.library_loading = LibraryLoading::OnFirstUse;
    config.library_path = Some(real);
    let engine = HelmEngine::load(config).unwrap();
    assert!(!engine.library_loaded(), "nothing needed the library yet");
    assert_eq!(engine.open_handles(), 0);

    let chart = engine
        .load_path(&caelus_helm::testing::chart_dir("web", "1.0.0"))
        .await
        .unwrap();
    assert!(engine.library_loaded(), "loading a chart loads the library");
    assert_eq!(engine.chart_info(&chart).await.unwrap().name, "web");
    assert_eq!(
        engine.library().unwrap().c_version(),
        EXPECTED_HELM_C_VERSION
    );
}
