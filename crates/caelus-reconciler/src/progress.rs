//! Progress while an apply runs: the engine's callbacks become throttled
//! status writes, and the hooks that ran become timeline events.

use crate::Reconciler;
use crate::commit::Commit;
use crate::pass::PassResultOf;
use caelus_core::status::Phase;
use caelus_engine::{ApplyOutcome, ApplyRequest, EngineError, Progress};
use caelus_store::deployments::Deployment;
use caelus_store::now_ms;
use caelus_store::queue::{self, Lease};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Reconciler {
    /// Runs one engine apply while its progress is written to the status, then
    /// records the hooks that ran on the event timeline.
    pub(crate) async fn apply_with_progress(
        &self,
        lease: &Lease,
        d: &Deployment,
        phase: Phase,
        number: i64,
        request: ApplyRequest,
    ) -> PassResultOf<Result<ApplyOutcome, EngineError>> {
        let progress = ProgressWriter::start(self.store.clone(), lease.clone(), phase, number);
        let sender = progress.sender();
        let result = self.engine.apply(request, move |p| sender.send(p)).await;
        let hooks_done = progress.stop().await;
        if !hooks_done.is_empty() {
            let commit = hooks_done.iter().fold(Commit::new(), |c, hook| {
                c.event(
                    "hook.succeeded",
                    format!("revision {number}: {hook}"),
                    json!({"revision": number}),
                )
            });
            self.commit(lease, d, commit).await?;
        }
        Ok(result)
    }
}

/// Turns the engine's progress callbacks into throttled status writes, so
/// `caelus deployment show --wait` sees "objects ready x/y" while a pass runs.
struct ProgressWriter {
    tx: tokio::sync::mpsc::UnboundedSender<Progress>,
    task: tokio::task::JoinHandle<()>,
    /// Hooks that completed, in order, for the event timeline.
    hooks: Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct ProgressSender {
    tx: tokio::sync::mpsc::UnboundedSender<Progress>,
    hooks: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ProgressSender {
    fn send(&self, p: Progress) {
        // Completed hooks are recorded here, synchronously, so none is lost
        // when the status writer stops.
        if let Progress::HookSucceeded { event, kind, name } = &p
            && let Ok(mut hooks) = self.hooks.lock()
        {
            hooks.push(format!("{} hook {kind}/{name} succeeded", event.as_str()));
        }
        let _ = self.tx.send(p);
    }
}

impl ProgressWriter {
    fn start(
        store: caelus_store::Store,
        lease: Lease,
        phase: Phase,
        revision: i64,
    ) -> ProgressWriter {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let hooks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = tokio::spawn(async move {
            let mut last_write = Instant::now() - Duration::from_secs(1);
            let mut pending: Option<String> = None;
            loop {
                let next = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
                match next {
                    Ok(Some(p)) => {
                        let message = match p {
                            Progress::HookStarted { event, kind, name } => format!(
                                "Revision {revision}: running {} hook {kind}/{name}",
                                event.as_str()
                            ),
                            Progress::HookSucceeded { event, kind, name } => format!(
                                "Revision {revision}: {} hook {kind}/{name} succeeded",
                                event.as_str()
                            ),
                            Progress::Applied { done, total, .. } => {
                                format!("Revision {revision}: applied {done}/{total} objects")
                            }
                            Progress::Pruned { object } => format!(
                                "Revision {revision}: pruned {}/{}",
                                object.kind, object.name
                            ),
                            Progress::Kept { object } => format!(
                                "Revision {revision}: kept {}/{} (resource-policy keep)",
                                object.kind, object.name
                            ),
                            Progress::Health { ready, total } => {
                                format!("Revision {revision}: objects ready {ready}/{total}")
                            }
                        };
                        pending = Some(message);
                    }
                    Ok(None) => break,
                    Err(_) => {}
                }
                if let Some(m) = &pending
                    && last_write.elapsed() >= Duration::from_millis(300)
                {
                    if queue::report_progress(&store, &lease, phase, m, None, now_ms())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    pending = None;
                    last_write = Instant::now();
                }
            }
        });
        ProgressWriter { tx, task, hooks }
    }

    fn sender(&self) -> ProgressSender {
        ProgressSender {
            tx: self.tx.clone(),
            hooks: self.hooks.clone(),
        }
    }

    /// Stops writing; returns the hooks that completed, in order.
    async fn stop(self) -> Vec<String> {
        drop(self.tx);
        // The engine's callback may still hold a sender clone; don't wait for it.
        self.task.abort();
        let _ = self.task.await;
        // The task may have been aborted before draining the last messages.
        self.hooks.lock().map(|h| h.clone()).unwrap_or_default()
    }
}
