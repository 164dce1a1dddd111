//! What a field may hold: the same rules on both databases.

use hookspecs::ApiError;

/// Text fields: at most `max` characters, and no NUL (which PostgreSQL
/// cannot store), so both databases accept exactly the same values.
pub(super) fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not contain NUL characters"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// The longest values of the text fields, in characters.
pub mod limits {
    /// `username`.
    pub const USERNAME: usize = 64;
    /// `email`.
    pub const EMAIL: usize = 254;
    /// `display_name`.
    pub const DISPLAY_NAME: usize = 200;
    /// A space's `name`.
    pub const SPACE_NAME: usize = 200;
}

pub(super) fn check_username(name: &str) -> Result<(), ApiError> {
    check_text("username", name, limits::USERNAME)?;
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "username",
            "username must be 1 to 64 characters without spaces",
        ));
    }
    Ok(())
}

pub(super) fn check_email(email: &str) -> Result<(), ApiError> {
    check_text("email", email, limits::EMAIL)?;
    let valid = email
        .split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && host.contains('.') && !host.ends_with('.'));
    if !valid {
        return Err(ApiError::invalid(
            "email",
            "email must look like name@example.org",
        ));
    }
    Ok(())
}

pub(super) fn check_display_name(name: Option<&str>) -> Result<(), ApiError> {
    name.map_or(Ok(()), |n| {
        check_text("display_name", n, limits::DISPLAY_NAME)
    })
}

pub(super) fn check_space_name(name: &str) -> Result<(), ApiError> {
    check_text("name", name, limits::SPACE_NAME)?;
    if name.trim().is_empty() {
        return Err(ApiError::invalid(
            "name",
            "name must be 1 to 200 characters",
        ));
    }
    Ok(())
}
