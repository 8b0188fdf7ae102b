//! Every API operation the CLI calls, with the command that calls it.
//!
//! The client builds each request from this table by operation id, and a test checks
//! the table against the server's OpenAPI document both ways: every operation has a
//! command, and every command's method and path are what the server serves.

pub struct Operation {
    pub id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    /// The CLI command (space-separated subcommands) that performs it.
    pub command: &'static str,
}

pub const OPERATIONS: &[Operation] = &[
    Operation {
        id: "healthz",
        method: "GET",
        path: "/healthz",
        command: "status",
    },
    Operation {
        id: "readyz",
        method: "GET",
        path: "/readyz",
        command: "status",
    },
    Operation {
        id: "create_product",
        method: "POST",
        path: "/api/v1/products",
        command: "product create",
    },
    Operation {
        id: "list_products",
        method: "GET",
        path: "/api/v1/products",
        command: "product list",
    },
    Operation {
        id: "get_product",
        method: "GET",
        path: "/api/v1/products/{product}",
        command: "product show",
    },
    Operation {
        id: "create_template_version",
        method: "POST",
        path: "/api/v1/products/{product}/versions",
        command: "template create",
    },
    Operation {
        id: "list_template_versions",
        method: "GET",
        path: "/api/v1/products/{product}/versions",
        command: "template list",
    },
    Operation {
        id: "get_template_version",
        method: "GET",
        path: "/api/v1/products/{product}/versions/{version}",
        command: "template show",
    },
    Operation {
        id: "update_template_version",
        method: "PATCH",
        path: "/api/v1/products/{product}/versions/{version}",
        command: "template update",
    },
    Operation {
        id: "publish_template_version",
        method: "POST",
        path: "/api/v1/products/{product}/versions/{version}/publish",
        command: "template publish",
    },
    Operation {
        id: "deprecate_template_version",
        method: "POST",
        path: "/api/v1/products/{product}/versions/{version}/deprecate",
        command: "template deprecate",
    },
    Operation {
        id: "retire_template_version",
        method: "POST",
        path: "/api/v1/products/{product}/versions/{version}/retire",
        command: "template retire",
    },
    Operation {
        id: "render_template_version",
        method: "POST",
        path: "/api/v1/products/{product}/versions/{version}/render",
        command: "template render",
    },
    Operation {
        id: "certify_template_version",
        method: "POST",
        path: "/api/v1/products/{product}/versions/{version}/certify",
        command: "template certify",
    },
    Operation {
        id: "test_deployment",
        method: "POST",
        path: "/api/v1/deployments/{uid}/test",
        command: "deployment test",
    },
    Operation {
        id: "create_deployment",
        method: "POST",
        path: "/api/v1/deployments",
        command: "deployment create",
    },
    Operation {
        id: "list_deployments",
        method: "GET",
        path: "/api/v1/deployments",
        command: "deployment list",
    },
    Operation {
        id: "get_deployment",
        method: "GET",
        path: "/api/v1/deployments/{uid}",
        command: "deployment show",
    },
    Operation {
        id: "update_deployment",
        method: "PATCH",
        path: "/api/v1/deployments/{uid}",
        command: "deployment update",
    },
    Operation {
        id: "delete_deployment",
        method: "DELETE",
        path: "/api/v1/deployments/{uid}",
        command: "deployment delete",
    },
    Operation {
        id: "list_deployment_revisions",
        method: "GET",
        path: "/api/v1/deployments/{uid}/revisions",
        command: "deployment history",
    },
    Operation {
        id: "list_deployment_events",
        method: "GET",
        path: "/api/v1/deployments/{uid}/events",
        command: "deployment events",
    },
    Operation {
        id: "get_deployment_notes",
        method: "GET",
        path: "/api/v1/deployments/{uid}/notes",
        command: "deployment notes",
    },
    Operation {
        id: "get_deployment_endpoints",
        method: "GET",
        path: "/api/v1/deployments/{uid}/endpoints",
        command: "deployment endpoints",
    },
    Operation {
        id: "get_deployment_connection",
        method: "GET",
        path: "/api/v1/deployments/{uid}/connection",
        command: "deployment connection",
    },
    Operation {
        id: "get_deployment_diff",
        method: "GET",
        path: "/api/v1/deployments/{uid}/diff",
        command: "deployment diff",
    },
    Operation {
        id: "upgrade_deployment",
        method: "POST",
        path: "/api/v1/deployments/{uid}/upgrade",
        command: "deployment upgrade",
    },
    Operation {
        id: "list_upgrade_targets",
        method: "GET",
        path: "/api/v1/deployments/{uid}/upgrades",
        command: "deployment upgrades",
    },
    Operation {
        id: "rollback_deployment",
        method: "POST",
        path: "/api/v1/deployments/{uid}/rollback",
        command: "deployment rollback",
    },
    Operation {
        id: "retry_deployment",
        method: "POST",
        path: "/api/v1/deployments/{uid}/retry",
        command: "deployment retry",
    },
    Operation {
        id: "purge_deployment",
        method: "POST",
        path: "/api/v1/deployments/{uid}/purge",
        command: "deployment purge",
    },
    Operation {
        id: "restore_deployment",
        method: "POST",
        path: "/api/v1/deployments/{uid}/restore",
        command: "deployment restore",
    },
    Operation {
        id: "adopt_object",
        method: "POST",
        path: "/api/v1/deployments/{uid}/adopt",
        command: "deployment adopt",
    },
    Operation {
        id: "create_token",
        method: "POST",
        path: "/api/v1/tokens",
        command: "token create",
    },
    Operation {
        id: "list_tokens",
        method: "GET",
        path: "/api/v1/tokens",
        command: "token list",
    },
    Operation {
        id: "revoke_token",
        method: "DELETE",
        path: "/api/v1/tokens/{id}",
        command: "token revoke",
    },
    Operation {
        id: "list_events",
        method: "GET",
        path: "/api/v1/events",
        command: "events list",
    },
    Operation {
        id: "scan_orphans",
        method: "GET",
        path: "/api/v1/orphans",
        command: "orphans scan",
    },
    Operation {
        id: "clean_orphans",
        method: "POST",
        path: "/api/v1/orphans/clean",
        command: "orphans clean",
    },
];

pub fn find(id: &str) -> &'static Operation {
    OPERATIONS
        .iter()
        .find(|o| o.id == id)
        .unwrap_or_else(|| panic!("operation {id} is not in the CLI's operation table"))
}
