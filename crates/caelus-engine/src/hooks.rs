//! Helm hooks: run in weight order, replaced before creation by default,
//! Jobs and Pods waited to completion, cleaned per their delete policies.

use std::time::Duration;

use caelus_helm::{Hook, HookDeletePolicy, HookEvent};

use crate::Engine;
use crate::apply::{ApplyRequest, Progress, label_as_ours};
use crate::calls::Target;
use crate::error::{EngineError, Result};
use crate::health::{FAILED, HEALTHY, object_health};
use crate::ownership::{OwnedDelete, OwnershipConflict};
use caelus_core::ownership::Owner;

/// A hook that ran: what it created and how it ended.
struct RanHook<'h> {
    hook: &'h Hook,
    target: Target,
    /// The uid of the instance created (`None`: nothing was created).
    uid: Option<String>,
    /// `Err(message)` when the hook failed.
    outcome: std::result::Result<(), String>,
}

/// The result of one `test` hook.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TestResult {
    pub kind: String,
    pub name: String,
    pub passed: bool,
    /// `succeeded`, or why it failed (the Job's or Pod's own message, or a timeout).
    pub message: String,
}

/// The hooks of `event` in the order they run: weight, then name.
pub(crate) fn hooks_for(hooks: &[Hook], event: HookEvent) -> Vec<&Hook> {
    let mut out: Vec<&Hook> = hooks.iter().filter(|h| h.events.contains(&event)).collect();
    out.sort_by(|a, b| (a.weight, &a.name).cmp(&(b.weight, &b.name)));
    out
}

/// Kinds that run to completion and are waited for.
fn waits_for_completion(t: &Target) -> bool {
    matches!(
        (t.oref.group(), t.oref.kind.as_str()),
        ("batch", "Job") | ("", "Pod")
    )
}

impl Engine {
    pub(crate) async fn run_hooks(
        &self,
        req: &ApplyRequest,
        event: HookEvent,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<()> {
        self.run_hook_list(
            &req.namespace,
            &req.deployment_uid,
            &req.hooks,
            event,
            req.health_timeout,
            progress,
        )
        .await
    }

    pub(crate) async fn run_hook_list(
        &self,
        namespace: &str,
        deployment_uid: &str,
        hooks: &[Hook],
        event: HookEvent,
        timeout: Duration,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<()> {
        let mut succeeded = Vec::new();
        for hook in hooks_for(hooks, event) {
            progress(Progress::HookStarted {
                event,
                kind: hook.kind.clone(),
                name: hook.name.clone(),
            });
            let ran = self
                .run_hook(namespace, deployment_uid, hook, event, timeout)
                .await?;
            if let Err(message) = &ran.outcome {
                // As Helm: the hooks that succeeded before go per their
                // `hook-succeeded` policy, the failed one per `hook-failed`.
                self.clean_up(&succeeded).await?;
                self.clean_up(std::slice::from_ref(&ran)).await?;
                return Err(EngineError::HookFailed {
                    event,
                    kind: hook.kind.clone(),
                    name: hook.name.clone(),
                    message: message.clone(),
                });
            }
            progress(Progress::HookSucceeded {
                event,
                kind: hook.kind.clone(),
                name: hook.name.clone(),
            });
            succeeded.push(ran);
        }
        self.clean_up(&succeeded).await
    }

    /// Runs a revision's `test` hooks as `helm test` does, in the
    /// deployment's namespace: each created (labelled as the deployment's),
    /// Pods and Jobs waited until they *terminate* (a test Pod passes only by
    /// `Succeeded`, never by merely running), then all cleaned up per their
    /// delete policies. Unlike `helm test`, which stops at the first failure,
    /// every test runs so the result names each one. `Err` is an engine
    /// failure (API error, an object someone else owns), not a failed test.
    pub async fn run_tests(
        &self,
        namespace: &str,
        deployment_uid: &str,
        hooks: &[Hook],
        timeout: Duration,
    ) -> Result<Vec<TestResult>> {
        let mut ran = Vec::new();
        for hook in hooks_for(hooks, HookEvent::Test) {
            ran.push(
                self.run_hook(namespace, deployment_uid, hook, HookEvent::Test, timeout)
                    .await?,
            );
        }
        self.clean_up(&ran).await?;
        Ok(ran
            .into_iter()
            .map(|r| TestResult {
                kind: r.hook.kind.clone(),
                name: r.hook.name.clone(),
                passed: r.outcome.is_ok(),
                message: match r.outcome {
                    Ok(()) => "succeeded".into(),
                    Err(message) => message,
                },
            })
            .collect())
    }

    /// Deletes what hooks created, last first, where their policy says so
    /// for how they ended. Helm does it once every hook of the event ran, so
    /// a later hook can still use an earlier one (grafana's test Pod runs as
    /// a `hook-succeeded` ServiceAccount of the same test).
    async fn clean_up(&self, ran: &[RanHook<'_>]) -> Result<()> {
        for r in ran.iter().rev() {
            let policy = match r.outcome {
                Ok(()) => HookDeletePolicy::HookSucceeded,
                Err(_) => HookDeletePolicy::HookFailed,
            };
            // Only the instance created here, never whatever has the name now.
            if r.uid.is_some() && r.hook.delete_policies.contains(&policy) {
                self.delete_exact_uid(&r.target, r.uid.clone()).await?;
            }
        }
        Ok(())
    }

    /// One hook: ownership checked, the previous instance replaced per its
    /// policy, created, waited for (Jobs and Pods). Cleanup is the caller's
    /// ([`Engine::clean_up`]).
    async fn run_hook<'h>(
        &self,
        namespace: &str,
        deployment_uid: &str,
        hook: &'h Hook,
        event: HookEvent,
        timeout: Duration,
    ) -> Result<RanHook<'h>> {
        let mut p = self.prepare(namespace, &hook.object).await?;
        label_as_ours(&mut p.body, deployment_uid, &self.config().installation_id);
        let policies = &hook.delete_policies;
        // Ownership first: a same-named object someone else owns (an
        // operator's ClusterRole, another deployment's Job) is neither
        // replaced nor patched. The revision's check did this already for
        // install/upgrade; uninstall's and test hooks come here directly.
        let not_ours = |owner| EngineError::NotOwned {
            conflicts: vec![OwnershipConflict {
                object: p.target.oref.clone(),
                hook: Some(event),
                owner,
            }],
        };
        if policies.contains(&HookDeletePolicy::BeforeHookCreation) {
            match self.delete_owned(&p.target, deployment_uid).await? {
                OwnedDelete::Deleted => {
                    if let Err(e) = self.wait_gone(&p.target, timeout).await {
                        return Ok(RanHook {
                            hook,
                            target: p.target,
                            uid: None,
                            outcome: Err(format!("previous instance not deleted: {e}")),
                        });
                    }
                }
                OwnedDelete::Gone => {}
                OwnedDelete::NotOurs(owner) => return Err(not_ours(owner)),
                // Someone recreated it between the read and the delete.
                OwnedDelete::Replaced => return Err(not_ours(Owner::Unmanaged)),
            }
        } else if let Some(live) = self.live_owner(&p.target, deployment_uid).await?
            && !live.owner.is_this()
        {
            return Err(not_ours(live.owner));
        }
        let created = self.ssa(&p.target, &p.body).await?;
        // Cleanup deletes exactly the instance created here.
        let uid = created["metadata"]["uid"].as_str().map(str::to_string);
        let outcome = if waits_for_completion(&p.target) {
            self.wait_completed(&p.target, timeout, event == HookEvent::Test)
                .await?
        } else {
            Ok(())
        };
        Ok(RanHook {
            hook,
            target: p.target,
            uid,
            outcome,
        })
    }

    /// Waits for a Job or Pod to finish: `Ok(Err(message))` when it failed
    /// or did not finish in time. With `terminated`, a Pod counts only once
    /// it `Succeeded` (test Pods), not when it runs Ready.
    async fn wait_completed(
        &self,
        t: &Target,
        timeout: Duration,
        terminated: bool,
    ) -> Result<std::result::Result<(), String>> {
        let is_pod = t.oref.group().is_empty() && t.oref.kind == "Pod";
        let deadline = tokio::time::Instant::now() + timeout;
        let mut round = 0u32;
        loop {
            let last = match self.get(t).await? {
                None => return Ok(Err("deleted before it completed".into())),
                Some(live) => object_health(&live),
            };
            let running_only = terminated && is_pod && last.message != "Succeeded";
            match last.health.as_str() {
                HEALTHY if !running_only => return Ok(Ok(())),
                FAILED => return Ok(Err(last.message)),
                _ => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Err(format!(
                    "did not complete within {timeout:?} ({})",
                    last.message
                )));
            }
            tokio::time::sleep(self.config().poll_pause(round).min(deadline - now)).await;
            round = round.saturating_add(1);
        }
    }

    /// Waits until a deleted object is really gone (finalizers, graceful
    /// termination), so the next instance can be created.
    pub(crate) async fn wait_gone(&self, t: &Target, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut round = 0;
        while self.get(t).await?.is_some() {
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::Api {
                    context: format!("waiting for {} to be deleted", t.oref),
                    code: 0,
                    message: format!("still exists after {timeout:?}"),
                    transient: true,
                });
            }
            tokio::time::sleep(self.config().poll_pause(round)).await;
            round = round.saturating_add(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook(name: &str, weight: i32, events: Vec<HookEvent>) -> Hook {
        Hook {
            kind: "Job".into(),
            name: name.into(),
            template: "t.yaml".into(),
            events,
            weight,
            delete_policies: vec![HookDeletePolicy::BeforeHookCreation],
            object: json!({}),
        }
    }

    #[test]
    fn hooks_run_by_weight_then_name_for_their_event_only() {
        let hooks = vec![
            hook("b", 5, vec![HookEvent::PreInstall]),
            hook("z", -1, vec![HookEvent::PreInstall, HookEvent::PreUpgrade]),
            hook("a", 5, vec![HookEvent::PreInstall]),
            hook("post", 0, vec![HookEvent::PostInstall]),
        ];
        let names: Vec<&str> = hooks_for(&hooks, HookEvent::PreInstall)
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(names, ["z", "a", "b"]);
        let names: Vec<&str> = hooks_for(&hooks, HookEvent::PreUpgrade)
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(names, ["z"]);
    }
}
