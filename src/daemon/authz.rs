//! Who may read what over the socket. Only `status` (and the unseal, which needs keyring
//! passphrases) is anonymous; every read needs a login session (see [`super::session`]) of a
//! person whose role may see it. Operations that change custody carry their own fresh proof
//! (`by`) and are decided by the custody domain.
//!
//! | reads | roles |
//! |---|---|
//! | `users`, `devices`, `device_show`, `incidents`, `export`, `checkpoint` | officer, auditor |
//! | `accounts`, `account_show` | officer, auditor, operator (to name the account they ask a code for and sign in with its root e-mail) |
//! | `requests`, `request_show` | officer, auditor: all; operator: their own |
//! | `whoami`, `logout`, `cancel` (with a session) | any person with a session |

use super::protocol::RefusalCode;
use super::state::OpError;
use crate::custody::{Role, UserRecord};

/// Officers and auditors: everything, and the export.
pub const AUDIT: &[Role] = &[Role::Officer, Role::Auditor];
/// Any role.
pub const ANY: &[Role] = &[Role::Officer, Role::Auditor, Role::Operator];

/// The roles that may run a read `operation` (the table above).
pub fn roles_for(operation: &str) -> &'static [Role] {
    match operation {
        "users" | "devices" | "device_show" | "incidents" | "export" | "checkpoint" => AUDIT,
        _ => ANY,
    }
}

fn names(roles: &[Role]) -> String {
    match roles {
        [] => "no role".to_owned(),
        [one] => format!("the {} role", one.as_str()),
        more => {
            let list: Vec<&str> = more.iter().map(|r| r.as_str()).collect();
            format!("one of the roles {}", list.join(", "))
        }
    }
}

/// Whether `user` sees every request (officers and auditors), not only their own.
pub fn sees_all_requests(user: &UserRecord) -> bool {
    AUDIT.iter().any(|r| user.has(*r))
}

/// The refusal of an anonymous request for `operation`.
pub fn anonymous(operation: &str) -> OpError {
    OpError::refused(
        RefusalCode::AuthenticationRequired,
        format!(
            "{operation} needs an authenticated user with {}; run custody login first, or pass \
             --as USER",
            names(roles_for(operation))
        ),
    )
}

/// Refuses `user` unless they hold one of `roles` for `operation`.
pub fn require(user: &UserRecord, operation: &str, roles: &[Role]) -> Result<(), OpError> {
    if roles.iter().any(|r| user.has(*r)) {
        return Ok(());
    }
    let held: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
    Err(OpError::refused(
        RefusalCode::RoleRequired,
        format!(
            "{operation} needs {}; {} holds {}",
            names(roles),
            user.name,
            if held.is_empty() {
                "none".to_owned()
            } else {
                held.join(", ")
            }
        ),
    ))
}

/// The refusal of an operator's look at someone else's request.
pub fn not_theirs(operation: &str, user: &UserRecord, request: &str) -> OpError {
    OpError::refused(
        RefusalCode::NotTheRequester,
        format!(
            "{operation}: request {request} is not {}'s; operators see only their own requests \
             (officers and auditors see every request)",
            user.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::UserName;
    use crate::daemon::protocol::ErrorCode;

    fn user(roles: Vec<Role>) -> UserRecord {
        UserRecord {
            name: UserName::parse("oscar").expect("name"),
            roles,
            uid: None,
            active: true,
            failed_attempts: 0,
            locked_until_ms: None,
            last_factor_step: None,
            suspensions: 0,
        }
    }

    #[test]
    fn refusals_name_the_operation_and_the_role_needed() {
        let e = anonymous("users");
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert_eq!(e.reason, Some(RefusalCode::AuthenticationRequired));
        assert!(e.message.contains("users needs"), "{}", e.message);
        assert!(e.message.contains("officer, auditor"), "{}", e.message);
        assert!(e.message.contains("custody login"), "{}", e.message);
        let op = user(vec![Role::Operator]);
        let e = require(&op, "export", roles_for("export")).expect_err("operator");
        assert_eq!(e.reason, Some(RefusalCode::RoleRequired));
        assert!(
            e.message
                .contains("export needs one of the roles officer, auditor; oscar holds operator"),
            "{}",
            e.message
        );
        assert!(require(&op, "accounts", roles_for("accounts")).is_ok());
        assert!(!sees_all_requests(&op));
        assert!(sees_all_requests(&user(vec![Role::Auditor])));
    }
}
