//! The permission matrix: which role may do what. Written once, here; handlers ask
//! `http::auth::require(...)`, never compare role names.
//!
//! | permission        | owner | admin | staff | billing | readonly | client |
//! |-------------------|:-----:|:-----:|:-----:|:-------:|:--------:|:------:|
//! | ContentRead       |   x   |   x   |   x   |    x    |    x     |        |
//! | ContentWrite      |   x   |   x   |   x   |         |          |        |
//! | FinanceRead       |   x   |   x   |       |    x    |          |        |
//! | FinanceWrite      |   x   |   x   |       |    x    |          |        |
//! | MembersRead       |   x   |   x   |   x   |    x    |    x     |        |
//! | MembersManage     |   x   |   x   |       |         |          |        |
//! | OwnersManage      |   x   |       |       |         |          |        |
//! | AuditRead         |   x   |   x   |       |         |          |        |
//! | SecurityManage    |   x   |       |       |         |          |        |
//! | IntegrationsManage|   x   |   x   |       |         |          |        |
//! | MessagesSend      |   x   |   x   |   x   |         |          |   x    |
//!
//! Break-glass access acts as `readonly`. A `client` (portal) login holds none of these:
//! it reaches only the conversations its contact takes part in, checked per conversation,
//! and may write in those (`MessagesSend`), over HTTP and on its socket alike.

use super::memberships::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read the firm's clients, conversations and documents.
    ContentRead,
    /// Create and change them, send messages.
    ContentWrite,
    FinanceRead,
    FinanceWrite,
    /// See who belongs to the firm.
    MembersRead,
    /// Add, change and deactivate members other than owners.
    MembersManage,
    /// Make, change or remove owners.
    OwnersManage,
    AuditRead,
    /// The firm's security settings and the break-glass grants on it.
    SecurityManage,
    /// Webhook endpoints, and the job queue's dead letters.
    IntegrationsManage,
    /// Post messages in the conversations the caller may see.
    MessagesSend,
}

impl Role {
    pub fn can(self, permission: Permission) -> bool {
        use Permission::*;
        use Role::*;
        match permission {
            ContentRead | MembersRead => !matches!(self, Client),
            ContentWrite => matches!(self, Owner | Admin | Staff),
            FinanceRead | FinanceWrite => matches!(self, Owner | Admin | Billing),
            MembersManage | AuditRead | IntegrationsManage => matches!(self, Owner | Admin),
            OwnersManage | SecurityManage => matches!(self, Owner),
            MessagesSend => matches!(self, Owner | Admin | Staff | Client),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_matches_the_documented_table() {
        let rows: [(Permission, [bool; 6]); 11] = [
            (Permission::ContentRead, [true, true, true, true, true, false]),
            (Permission::ContentWrite, [true, true, true, false, false, false]),
            (Permission::FinanceRead, [true, true, false, true, false, false]),
            (Permission::FinanceWrite, [true, true, false, true, false, false]),
            (Permission::MembersRead, [true, true, true, true, true, false]),
            (Permission::MembersManage, [true, true, false, false, false, false]),
            (Permission::OwnersManage, [true, false, false, false, false, false]),
            (Permission::AuditRead, [true, true, false, false, false, false]),
            (Permission::SecurityManage, [true, false, false, false, false, false]),
            (Permission::IntegrationsManage, [true, true, false, false, false, false]),
            (Permission::MessagesSend, [true, true, true, false, false, true]),
        ];
        for (permission, allowed) in rows {
            for (role, expected) in Role::ALL.into_iter().zip(allowed) {
                assert_eq!(role.can(permission), expected, "{role} {permission:?}");
            }
        }
    }
}
