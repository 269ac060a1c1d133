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
//! | ConversationsRead |   x   |   x   |   x   |    x    |    x     |   x    |
//! | OwnAccount        |   x   |   x   |   x   |    x    |    x     |   x    |
//!
//! Break-glass access acts as `readonly`. A `client` (portal) login holds only the last three:
//! `ConversationsRead` reaches just the conversations its contact takes part in (members
//! see all of the firm's), checked per conversation, and it may write in those
//! (`MessagesSend`), over HTTP and on its socket alike. `OwnAccount` is everyone's own
//! sign-in: who they are, their session, second factor and password.

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
    /// Read the conversations the caller may see: a member every one of the firm's, a
    /// portal user those of its own contact.
    ConversationsRead,
    /// The caller's own sign-in: `/me`, signing out, their second factor and password.
    OwnAccount,
}

impl Permission {
    pub const ALL: [Permission; 13] = [
        Permission::ContentRead,
        Permission::ContentWrite,
        Permission::FinanceRead,
        Permission::FinanceWrite,
        Permission::MembersRead,
        Permission::MembersManage,
        Permission::OwnersManage,
        Permission::AuditRead,
        Permission::SecurityManage,
        Permission::IntegrationsManage,
        Permission::MessagesSend,
        Permission::ConversationsRead,
        Permission::OwnAccount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ContentRead => "content_read",
            Permission::ContentWrite => "content_write",
            Permission::FinanceRead => "finance_read",
            Permission::FinanceWrite => "finance_write",
            Permission::MembersRead => "members_read",
            Permission::MembersManage => "members_manage",
            Permission::OwnersManage => "owners_manage",
            Permission::AuditRead => "audit_read",
            Permission::SecurityManage => "security_manage",
            Permission::IntegrationsManage => "integrations_manage",
            Permission::MessagesSend => "messages_send",
            Permission::ConversationsRead => "conversations_read",
            Permission::OwnAccount => "own_account",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// Who may hear of a live event: the members whose role holds a permission (payments for
/// finance roles, a disabled webhook for those who manage integrations, ...), or everyone
/// who may see one conversation (its firm's readers, and portal users taking part in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Members(Permission),
    Conversation(uuid::Uuid),
}

/// The members a firm-wide event is for, by its topic's family (`payment.received` ->
/// `payment`): one rule for every emitter, so none can send a payment to a role that may
/// not see payments. Events about one conversation go to [`Audience::Conversation`].
pub fn audience_of(topic: &str) -> Audience {
    match topic.split('.').next().unwrap_or_default() {
        "payment" | "invoice" | "credit_note" | "refund" => Audience::Members(Permission::FinanceRead),
        "webhook" | "job" | "mailbox" => Audience::Members(Permission::IntegrationsManage),
        "break_glass" | "security" => Audience::Members(Permission::SecurityManage),
        "member" | "invitation" => Audience::Members(Permission::MembersManage),
        _ => Audience::Members(Permission::ContentRead),
    }
}

impl Audience {
    /// Whether a member of `role` (not a portal user) hears it.
    pub fn admits_member(self, role: Role) -> bool {
        match self {
            Audience::Members(permission) => role.can(permission),
            Audience::Conversation(_) => role.can(Permission::ContentRead),
        }
    }
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
            ConversationsRead | OwnAccount => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_matches_the_documented_table() {
        let rows: [(Permission, [bool; 6]); 13] = [
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
            (Permission::ConversationsRead, [true, true, true, true, true, true]),
            (Permission::OwnAccount, [true, true, true, true, true, true]),
        ];
        for (permission, allowed) in rows {
            for (role, expected) in Role::ALL.into_iter().zip(allowed) {
                assert_eq!(role.can(permission), expected, "{role} {permission:?}");
            }
        }
    }
}

#[cfg(test)]
mod audience_tests {
    use super::*;

    #[test]
    fn permissions_round_trip_by_name_and_audiences_follow_the_matrix() {
        for permission in Permission::ALL {
            assert_eq!(Permission::parse(permission.as_str()), Some(permission));
        }
        assert_eq!(Permission::parse("everything"), None);
        let payments = Audience::Members(Permission::FinanceRead);
        assert!(payments.admits_member(Role::Billing) && payments.admits_member(Role::Owner));
        assert!(!payments.admits_member(Role::Readonly) && !payments.admits_member(Role::Staff));
        assert_eq!(audience_of("payment.received"), payments);
        assert_eq!(audience_of("webhook.disabled"), Audience::Members(Permission::IntegrationsManage));
        assert_eq!(audience_of("break_glass.activated"), Audience::Members(Permission::SecurityManage));
        assert_eq!(audience_of("email.received"), Audience::Members(Permission::ContentRead));
        let conversation = Audience::Conversation(uuid::Uuid::nil());
        assert!(conversation.admits_member(Role::Readonly) && !conversation.admits_member(Role::Client));
    }
}
