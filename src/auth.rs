//! Who is calling, and what they may do (SPEC §8).
//!
//! Roles are ordered: `read` < `write` < `admin`. A caller is resolved once per request from the
//! `Authorization: Bearer` header (or the WebSocket `connection_init` payload) by
//! [`crate::tokens`]; resolvers only ask [`Caller::require`].

use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name; `local` when the server is open (no tokens configured).
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// The caller of an open server (loopback only, no tokens configured).
    pub fn open() -> Self {
        Caller {
            name: "local".into(),
            role: Role::Admin,
        }
    }

    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the {} role; token {} has {}",
                role.as_str(),
                crate::error::quote(&self.name),
                self.role.as_str()
            )))
        }
    }
}
