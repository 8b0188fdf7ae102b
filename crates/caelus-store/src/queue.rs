//! The work queue: deployments are due at `due_at`; a worker claims one with a
//! lease, and every status write it makes is fenced by that lease, so a worker
//! that lost its lease (it stalled, the lease expired, another took over)
//! cannot overwrite newer state.

use crate::error::to_json;
use crate::{Backend, Conn, Result, Store, StoreError};
use caelus_core::remediation::FailureRecord;
use caelus_core::status::{Condition, ObjectHealth, Phase};
use sqlx::Row;

/// A claimed deployment: only the holder of `lease_owner` may write its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub uid: String,
    pub owner: String,
    pub generation: i64,
}

/// Claims the deployment that has been due longest, if any, for `lease_ms`.
/// A lease that has expired (its worker crashed or stalled) is taken over.
pub async fn claim_one(
    store: &Store,
    owner: &str,
    now: i64,
    lease_ms: i64,
) -> Result<Option<Lease>> {
    // PostgreSQL: SKIP LOCKED lets several workers claim different rows at once.
    // SQLite: one process and one connection, so the statement is already exclusive.
    let lock = match store.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE deployments SET lease_owner = $1, lease_expires_at = $2
         WHERE uid = (
            SELECT uid FROM deployments
            WHERE due_at IS NOT NULL AND due_at <= $3
              AND (lease_expires_at IS NULL OR lease_expires_at < $3)
            ORDER BY due_at, uid LIMIT 1 {lock})
           AND (lease_expires_at IS NULL OR lease_expires_at < $3)
         RETURNING uid, generation"
    );
    let row = sqlx::query(crate::dynamic(sql))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(store.pool())
        .await?;
    Ok(match row {
        Some(r) => Some(Lease {
            uid: r.try_get("uid")?,
            owner: owner.to_string(),
            generation: r.try_get("generation")?,
        }),
        None => None,
    })
}

/// When the next deployment falls due (for sleeping until then).
pub async fn next_due_at(conn: &mut Conn) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT MIN(due_at) AS next FROM deployments WHERE due_at IS NOT NULL")
        .fetch_one(conn)
        .await?;
    Ok(row.try_get("next")?)
}

/// When a worker could next claim something: the earliest due time among
/// deployments nobody holds, or the expiry of a lease on a due deployment
/// (it is taken over then if its holder stops renewing). A deployment in
/// flight is not "due now" for the others, or idle workers would poll it in
/// a tight loop for as long as its pass runs.
pub async fn next_claimable_at(conn: &mut Conn, now: i64) -> Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT MIN(CASE WHEN lease_expires_at IS NOT NULL AND lease_expires_at >= $1
                              AND lease_expires_at > due_at
                         THEN lease_expires_at + 1 ELSE due_at END) AS next
         FROM deployments WHERE due_at IS NOT NULL",
    )
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get("next")?)
}

/// What [`make_due`] did with each deployment it was asked about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MadeDue {
    /// Due now (or already was).
    pub due: Vec<String>,
    /// A pass holds them: asked again once it ends, since the pass may
    /// have read the cluster before the change.
    pub in_flight: Vec<String>,
}

/// Makes deployments due now because something changed in the cluster
/// (watch events): one transaction. Unknown and deleted deployments are
/// skipped; a deployment due earlier keeps its time.
pub async fn make_due(store: &Store, uids: &[String], now: i64) -> Result<MadeDue> {
    let mut out = MadeDue::default();
    let mut tx = store.begin().await?;
    for uid in uids {
        let row = sqlx::query(
            "SELECT lease_expires_at FROM deployments WHERE uid = $1 AND deleted_at IS NULL",
        )
        .bind(uid)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { continue };
        let lease: Option<i64> = row.try_get("lease_expires_at")?;
        if lease.is_some_and(|at| at >= now) {
            out.in_flight.push(uid.clone());
            continue;
        }
        sqlx::query(
            "UPDATE deployments SET due_at = $1
             WHERE uid = $2 AND (due_at IS NULL OR due_at > $1)",
        )
        .bind(now)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        out.due.push(uid.clone());
    }
    tx.commit().await?;
    Ok(out)
}

fn lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost(lease.uid.clone())
}

/// Extends a lease during a long pass.
pub async fn renew(store: &Store, lease: &Lease, expires_at: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE deployments SET lease_expires_at = $1 WHERE uid = $2 AND lease_owner = $3",
    )
    .bind(expires_at)
    .bind(&lease.uid)
    .bind(&lease.owner)
    .execute(store.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(lost(lease));
    }
    Ok(())
}

/// Gives a lease back without a result (graceful shutdown): due again at once.
pub async fn release(store: &Store, lease: &Lease) -> Result<()> {
    sqlx::query("UPDATE deployments SET lease_owner = NULL, lease_expires_at = NULL WHERE uid = $1 AND lease_owner = $2")
        .bind(&lease.uid)
        .bind(&lease.owner)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Status shown while a pass runs (phase, message, per-object health).
pub async fn report_progress(
    store: &Store,
    lease: &Lease,
    phase: Phase,
    message: &str,
    health: Option<&[ObjectHealth]>,
    now: i64,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE deployments SET phase = $1, message = $2, object_health = COALESCE($3, object_health), updated_at = $4
         WHERE uid = $5 AND lease_owner = $6",
    )
    .bind(phase.as_str())
    .bind(message)
    .bind(health.map(to_json))
    .bind(now)
    .bind(&lease.uid)
    .bind(&lease.owner)
    .execute(store.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(lost(lease));
    }
    Ok(())
}

/// Status shown while a pass runs, conditions included (a drift found and
/// being corrected leaves Ready before the correction is applied).
pub async fn report_status(
    conn: &mut Conn,
    lease: &Lease,
    phase: Phase,
    message: &str,
    conditions: &[Condition],
    now: i64,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE deployments SET phase = $1, message = $2, conditions = $3, updated_at = $4
         WHERE uid = $5 AND lease_owner = $6",
    )
    .bind(phase.as_str())
    .bind(message)
    .bind(to_json(conditions))
    .bind(now)
    .bind(&lease.uid)
    .bind(&lease.owner)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(lost(lease));
    }
    Ok(())
}

/// The outcome of one pass.
#[derive(Debug, Clone)]
pub struct PassResult {
    pub phase: Phase,
    pub message: String,
    pub conditions: Vec<Condition>,
    pub object_health: Vec<ObjectHealth>,
    /// The generation this pass worked on.
    pub observed_generation: i64,
    pub current_revision: Option<i64>,
    pub last_error: Option<String>,
    pub attempts: i64,
    /// When to look again; `None` waits for the next change.
    pub next_due: Option<i64>,
    /// Set when the deployment is gone from the cluster: the row stays as a tombstone.
    pub deleted: bool,
    /// The failure of `observed_generation`, if the pass ended in one (or kept it).
    pub failure: Option<FailureRecord>,
}

/// Writes a pass's result and releases the lease, in one fenced statement.
/// If the generation moved on during the pass, the deployment stays due now
/// (with a fresh retry count) rather than waiting for `next_due`.
pub async fn finish(conn: &mut Conn, lease: &Lease, r: &PassResult, now: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE deployments SET phase = $1, message = $2, conditions = $3, object_health = $4,
            observed_generation = $5, current_revision = $6, last_error = $7,
            attempts = CASE WHEN generation = $5 THEN $8 ELSE 0 END,
            due_at = CASE WHEN generation = $5 THEN $9 ELSE $10 END,
            deleted_at = CASE WHEN $11 = 1 THEN $10 ELSE deleted_at END,
            lease_owner = NULL, lease_expires_at = NULL, updated_at = $10, failure = $14
         WHERE uid = $12 AND lease_owner = $13",
    )
    .bind(r.phase.as_str())
    .bind(&r.message)
    .bind(to_json(&r.conditions))
    .bind(to_json(&r.object_health))
    .bind(r.observed_generation)
    .bind(r.current_revision)
    .bind(r.last_error.as_deref())
    .bind(r.attempts)
    .bind(r.next_due)
    .bind(now)
    .bind(i64::from(r.deleted))
    .bind(&lease.uid)
    .bind(&lease.owner)
    .bind(r.failure.as_ref().map(to_json))
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(lost(lease));
    }
    Ok(())
}

/// Asks PostgreSQL workers in other processes to look at the queue now.
pub async fn notify_workers(conn: &mut Conn, backend: Backend) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify('caelus_work', '')")
            .execute(conn)
            .await?;
    }
    Ok(())
}

pub const NOTIFY_CHANNEL: &str = "caelus_work";

/// Inside a transaction: proves the lease is still held and locks the row until
/// commit, so the writes that follow belong to the lease holder.
pub async fn hold(conn: &mut Conn, lease: &Lease) -> Result<()> {
    let done = sqlx::query(
        "UPDATE deployments SET updated_at = updated_at WHERE uid = $1 AND lease_owner = $2",
    )
    .bind(&lease.uid)
    .bind(&lease.owner)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(lost(lease));
    }
    Ok(())
}
