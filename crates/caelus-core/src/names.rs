//! Names users and admins choose: product slugs, display names, tenant names.

use crate::FieldError;

/// RFC 1123 label as Kubernetes uses it: lowercase alphanumerics and '-',
/// starting and ending alphanumeric, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A product slug appears in URLs and CLI arguments: a DNS-1123 label.
pub fn validate_slug(field: &str, slug: &str) -> Result<(), FieldError> {
    if is_dns1123_label(slug) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "'{slug}' is not a valid slug: use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
            ),
        ))
    }
}

/// The tenant that owns deployments an admin creates without naming one. It is
/// reserved, so no tenant token can ever match it.
pub const SYSTEM_TENANT: &str = "system";

/// Whether `tenant` is reserved for Caelus itself: `admin` and `system` (words the
/// control plane uses for its own actors) and anything beginning `caelus`.
pub fn is_reserved_tenant(tenant: &str) -> bool {
    tenant == "admin" || tenant == SYSTEM_TENANT || tenant.starts_with("caelus")
}

/// Tenant names are DNS-1123 labels too (they show up in labels and filters), and
/// never a reserved name: a tenant called `admin` or `system` must not own, or be
/// confused with, what the control plane owns.
pub fn validate_tenant(field: &str, tenant: &str) -> Result<(), FieldError> {
    if tenant.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if !is_dns1123_label(tenant) {
        return Err(FieldError::new(
            field,
            format!(
                "'{tenant}' is not a valid tenant name: use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
            ),
        ));
    }
    if is_reserved_tenant(tenant) {
        return Err(FieldError::new(
            field,
            format!(
                "'{tenant}' is reserved: 'admin', 'system' and names beginning 'caelus' belong to the control plane"
            ),
        ));
    }
    Ok(())
}

pub const DISPLAY_NAME_MAX: usize = 100;

/// Display names are for people: free text, but trimmed, bounded, printable.
/// They never reach Kubernetes (namespace and release come from the uid).
pub fn validate_display_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if name.trim() != name {
        return Err(FieldError::new(
            field,
            "must not start or end with whitespace",
        ));
    }
    if name.chars().count() > DISPLAY_NAME_MAX {
        return Err(FieldError::new(
            field,
            format!("must be at most {DISPLAY_NAME_MAX} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Free-text descriptions: bounded so rows and pages stay small.
pub fn validate_text(field: &str, text: &str, max: usize) -> Result<(), FieldError> {
    if text.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("wiki"));
        assert!(is_dns1123_label("a-1"));
        assert!(is_dns1123_label(&"a".repeat(63)));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label("Wiki"));
        assert!(!is_dns1123_label("wi_ki"));
        assert!(!is_dns1123_label("wi.ki"));
    }

    #[test]
    fn slug_error_names_field_and_value() {
        let e = validate_slug("slug", "Bad Slug").unwrap_err();
        assert_eq!(e.field, "slug");
        assert!(e.reason.contains("'Bad Slug'"));
    }

    #[test]
    fn tenants_are_non_empty_dns_labels_and_never_reserved() {
        assert!(validate_tenant("tenant", "acme").is_ok());
        assert!(validate_tenant("tenant", "team-7").is_ok());
        assert!(validate_tenant("tenant", "my-caelus").is_ok());
        let e = validate_tenant("tenant", "").unwrap_err();
        assert_eq!(e.reason, "must not be empty");
        assert!(validate_tenant("tenant", "Acme").is_err());
        assert!(validate_tenant("tenant", "a b").is_err());
        for reserved in ["admin", "system", "caelus", "caelus-ops", "caelusx"] {
            let e = validate_tenant("tenant", reserved).unwrap_err();
            assert_eq!(e.field, "tenant");
            assert!(e.reason.contains("reserved"), "{reserved}: {}", e.reason);
        }
        assert!(is_reserved_tenant(SYSTEM_TENANT));
    }

    #[test]
    fn display_names() {
        assert!(validate_display_name("name", "My Wiki (prod)").is_ok());
        assert!(validate_display_name("name", "Ünïcødé ok").is_ok());
        assert!(validate_display_name("name", "").is_err());
        assert!(validate_display_name("name", "   ").is_err());
        assert!(validate_display_name("name", " padded").is_err());
        assert!(validate_display_name("name", "tab\there").is_err());
        assert!(validate_display_name("name", &"x".repeat(101)).is_err());
        assert!(validate_display_name("name", &"x".repeat(100)).is_ok());
    }

    #[test]
    fn text_bound() {
        assert!(validate_text("description", "short", 10).is_ok());
        let e = validate_text("description", &"x".repeat(11), 10).unwrap_err();
        assert_eq!(e.field, "description");
    }
}
