//! Idle workers stay idle: while one long pass is in flight, the other
//! workers (and the free slots of the busy one) sleep instead of polling the
//! queue for the deployment that is leased.

mod harness;

use caelus_core::status::Phase;
use caelus_core::template::Capabilities;
use caelus_store::Backend;
use harness::{Harness, fast_worker};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn idle_workers_do_not_poll_the_queue_while_a_long_pass_runs() {
    let mut worker = fast_worker();
    // The production default: between wake-ups a worker looks at the queue
    // at most every five seconds.
    worker.poll = Duration::from_secs(5);
    worker.concurrency = 4;
    let mut h = Harness::start_with(Backend::Sqlite, worker.clone()).await;
    h.add_worker(worker);
    let t = h
        .publish(
            "web",
            "web",
            "1.0.0",
            &["replicaCount"],
            Capabilities::default(),
        )
        .await;
    // Every apply of a ConfigMap takes three seconds: one long pass.
    h.sim.faults().set(kubesim::FaultConfig {
        latency: vec![kubesim::LatencyFault {
            verb: Some("patch".into()),
            resource: Some("configmaps".into()),
            millis: 3000,
        }],
        ..Default::default()
    });
    let uid = h.create(&t, "slow", json!({})).await;
    h.wait_until(&uid, Duration::from_secs(30), "the pass to start", |d| {
        d.lease_owner.is_some()
    })
    .await;
    let polls_before = caelus_metrics::global().queue_polls();
    h.wait_phase(&uid, Phase::Ready).await;
    let polls = caelus_metrics::global().queue_polls() - polls_before;
    // Two workers, eight slots, a pass of more than three seconds: a worker
    // that treated the leased deployment as due would poll every 10 ms
    // (hundreds of claims); sleeping until the lease could be taken over
    // (capped by the poll interval) costs a handful.
    assert!(
        polls <= 12,
        "{polls} claim queries while one pass ran: idle workers spin"
    );
    h.sim.faults().clear();
    h.stop().await;
}
