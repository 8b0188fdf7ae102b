//! Conditions written at the end of a pass, Kubernetes style.

use caelus_core::status::{Condition, ConditionStatus, set_condition};

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn cond(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: i64,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: now_rfc3339(),
        observed_generation: generation,
    }
}

/// Sets one condition on a copy of `current`.
pub fn with(
    mut current: Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: i64,
) -> Vec<Condition> {
    set_condition(
        &mut current,
        cond(type_, status, reason, message, generation),
    );
    current
}

/// The Stalled condition's generation, if it is True: policy refused that generation.
pub fn stalled_generation(conditions: &[Condition]) -> Option<i64> {
    conditions
        .iter()
        .find(|c| {
            c.type_ == caelus_core::status::CONDITION_STALLED && c.status == ConditionStatus::True
        })
        .map(|c| c.observed_generation)
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == ConditionStatus::True)
}
