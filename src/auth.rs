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
    /// The name of [`Caller::open`]. No token can have it (`tokens` reserves it), so it tells the
    /// open caller from a token's.
    pub const OPEN_NAME: &'static str = "local";

    /// The caller of an open server (loopback only, no tokens configured).
    pub fn open() -> Self {
        Caller {
            name: Self::OPEN_NAME.into(),
            role: Role::Admin,
        }
    }

    /// Whether this is the caller of an open server rather than the holder of a token.
    pub fn is_open(&self) -> bool {
        self.name == Self::OPEN_NAME
    }

    /// Like [`Caller::require`] with [`Role::Admin`], and the caller must hold a real admin
    /// token: an open server's caller is refused (SPEC §8: the first token comes from the
    /// command line, so any local process cannot lock the others out by minting one).
    pub fn require_admin_token(&self, what: &str) -> Result<(), AppError> {
        if self.is_open() {
            return Err(AppError::Forbidden(format!(
                "{what} needs an admin token, and this server has none yet: create the first one with \
                 `leadcache token create --name N --role admin`, then send it as Authorization: Bearer <token>"
            )));
        }
        self.require(Role::Admin)
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
