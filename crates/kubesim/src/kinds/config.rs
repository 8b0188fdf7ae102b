//! ConfigMaps and Secrets: `immutable: true` freezes their data.

use serde_json::{Value, json};

use super::KindBehaviour;
use crate::errors::Cause;
use crate::resources::ResourceInfo;

pub struct ImmutableData;

impl KindBehaviour for ImmutableData {
    fn validate_update(
        &self,
        info: &ResourceInfo,
        old: &Value,
        new: &Value,
        causes: &mut Vec<Cause>,
    ) {
        if old["immutable"] != json!(true) {
            return;
        }
        let msg = "field is immutable when `immutable` is set";
        if old["data"] != new["data"] {
            causes.push(Cause::forbidden("data", msg));
        }
        if old["binaryData"] != new["binaryData"] && info.resource == "configmaps" {
            causes.push(Cause::forbidden("binaryData", msg));
        }
        if old["stringData"] != new["stringData"] && !new["stringData"].is_null() {
            causes.push(Cause::forbidden("data", msg));
        }
        if new["immutable"] != json!(true) {
            causes.push(Cause::forbidden("immutable", msg));
        }
    }
}
