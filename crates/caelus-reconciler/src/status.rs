//! Conditions written at the end of a pass, Kubernetes style.

use caelus_core::status::{
    CONDITION_READY, CONDITION_STALLED, Condition, ConditionStatus, ReadyReason, set_condition,
};

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Sets one condition; its transition time moves only when its status does.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: i64,
) {
    set_condition(
        conditions,
        Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: now_rfc3339(),
            observed_generation: generation,
        },
    );
}

/// Sets `Ready`, its status derived from the reason.
pub fn set_ready(
    conditions: &mut Vec<Condition>,
    reason: ReadyReason,
    message: &str,
    generation: i64,
) {
    set(
        conditions,
        CONDITION_READY,
        reason.status(),
        reason.as_str(),
        message,
        generation,
    );
}

/// The Stalled condition's generation, if it is True: policy refused that generation.
pub fn stalled_generation(conditions: &[Condition]) -> Option<i64> {
    conditions
        .iter()
        .find(|c| c.type_ == CONDITION_STALLED && c.status == ConditionStatus::True)
        .map(|c| c.observed_generation)
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == ConditionStatus::True)
}

/// Why Ready has its status now, if it is set with a reason Caelus writes.
pub fn ready_reason(conditions: &[Condition]) -> Option<ReadyReason> {
    conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
        .and_then(|c| ReadyReason::parse(&c.reason))
}
