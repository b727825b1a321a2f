//! What a two-officer operation does, as its officers sign it ([`OperationIntent`]): the
//! operation's name and its parameters as the command line shows them, never a secret (an
//! enrolment's seed, a root password, a new user's passphrase are left out). The officers'
//! screens compute it from the operation they send and custodyd from the operation it
//! received, with this one function, so what was signed is what runs.

use serde::Serialize;

use super::protocol::Op;
use crate::custody::OperationIntent;

fn p(name: &str, value: impl ToString) -> (String, String) {
    (name.to_owned(), value.to_string())
}

/// A value's wire word (`lost`, `root_credentials_removed`, `operator`).
fn word<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The id of an approval key from its SubjectPublicKeyInfo as sent (base64 DER): SHA-256
/// hex, as the registration records it; the text itself when it is not base64.
fn key_id(spki: &str) -> String {
    match data_encoding::BASE64.decode(spki.as_bytes()) {
        Ok(der) => data_encoding::HEXLOWER
            .encode(ring::digest::digest(&ring::digest::SHA256, &der).as_ref()),
        Err(_) => spki.to_owned(),
    }
}

impl Op {
    /// The officers of an operation two of them authenticate (`by: [Auth, Auth]`).
    pub fn officers_mut(&mut self) -> Option<&mut Vec<super::protocol::Auth>> {
        match self {
            Op::UserAdd { by, .. }
            | Op::OfficerKeyRegister { by, .. }
            | Op::OfficerKeyRemove { by }
            | Op::Enrol { by, .. }
            | Op::UserSetActive { by, .. }
            | Op::UserUnlock { by, .. }
            | Op::IncidentAck { by, .. }
            | Op::DeviceSetTerminal { by, .. }
            | Op::DeviceLock { by, .. }
            | Op::DeviceAttest { by, .. }
            | Op::UserSetRoles { by, .. }
            | Op::AccountSetStatus { by, .. }
            | Op::AccountSetPassword { by, .. }
            | Op::Release { by, .. }
            | Op::UserBindUid { by, .. } => Some(by),
            _ => None,
        }
    }

    /// What this operation does, for its officers to sign, when it is one two officers
    /// authenticate (`by: [Auth, Auth]`); none for every other operation.
    pub fn intent(&self) -> Option<OperationIntent> {
        let params = match self {
            Op::UserAdd {
                name, roles, uid, ..
            } => vec![
                p("name", name),
                p(
                    "roles",
                    roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                p("uid", uid.map_or("none".to_owned(), |u| u.to_string())),
            ],
            Op::OfficerKeyRegister {
                by, serial, spki, ..
            } => vec![
                p("officer", by.first().map_or("", |a| a.user.as_str())),
                p("serial", serial),
                p("key_id", key_id(spki)),
            ],
            Op::OfficerKeyRemove { by } => {
                vec![p("officer", by.first().map_or("", |a| a.user.as_str()))]
            }
            Op::Enrol {
                account,
                primary,
                backup,
                overwrite,
                ..
            } => vec![
                p("account", account),
                p("primary", primary),
                p("backup", backup),
                p("overwrite", overwrite),
            ],
            Op::UserSetActive { name, active, .. } => {
                vec![p("name", name), p("active", active)]
            }
            Op::UserUnlock { name, .. } => vec![p("name", name)],
            Op::IncidentAck { incident, note, .. } => {
                vec![p("incident", incident), p("note", note)]
            }
            Op::DeviceSetTerminal { serial, to, .. } => {
                vec![p("serial", serial), p("to", word(to))]
            }
            Op::DeviceLock { serial, .. } | Op::DeviceAttest { serial, .. } => {
                vec![p("serial", serial)]
            }
            Op::UserSetRoles { name, roles, .. } => vec![
                p("name", name),
                p(
                    "roles",
                    roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ],
            Op::AccountSetStatus {
                account, status, ..
            } => vec![p("account", account), p("status", word(status))],
            Op::AccountSetPassword {
                account, generate, ..
            } => vec![p("account", account), p("generate", generate)],
            Op::Release { account, .. } => vec![p("account", account)],
            Op::UserBindUid { name, uid, .. } => vec![p("name", name), p("uid", uid)],
            _ => return None,
        };
        Some(OperationIntent::new(self.name(), params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::{Auth, Secret};
    use zeroize::Zeroizing;

    fn secret(s: &str) -> Secret {
        Secret::new(Zeroizing::new(s.to_owned()))
    }

    #[test]
    fn secrets_are_never_parameters_and_each_parameter_counts() {
        let enrol = |seed: &str, backup: u32| Op::Enrol {
            by: vec![],
            account: "123456789012".into(),
            primary: 1,
            backup,
            seed: secret(seed),
            overwrite: false,
        };
        let a = enrol("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 2)
            .intent()
            .expect("intent");
        let b = enrol("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 2)
            .intent()
            .expect("intent");
        assert_eq!(a, b, "the seed is not a parameter");
        assert!(!format!("{a:?}").contains("GEZDGNBV"));
        assert_ne!(
            a.digest(),
            enrol("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 3)
                .intent()
                .expect("i")
                .digest()
        );
        let pw = |p: &str| Op::AccountSetPassword {
            by: vec![Auth::new("alice", secret("pass"), None)],
            account: "123456789012".into(),
            password: Some(secret(p)),
            generate: false,
        };
        let i = pw("Root-Password-1").intent().expect("intent");
        assert_eq!(i, pw("Other-Password-2").intent().expect("intent"));
        assert!(!format!("{i:?}").contains("Root-Password"));
        assert_eq!(i.operation(), "account_set_password");
        // Who signs is not part of what the operation does, except where it names its
        // subject (the officer whose key it is).
        let active = |v: bool| Op::UserSetActive {
            by: vec![],
            name: "oscar".into(),
            active: v,
        };
        assert_ne!(active(true).intent(), active(false).intent());
        assert_eq!(
            Op::OfficerKeyRemove {
                by: vec![Auth::new("alice", secret("x"), None)]
            }
            .intent()
            .expect("intent")
            .parameters(),
            &[("officer".to_owned(), "alice".to_owned())]
        );
        // One-officer operations and reads are not signed this way.
        assert!(Op::Users.intent().is_none());
        assert!(Op::Deny {
            by: Auth::new("alice", secret("x"), None),
            request: "req-1".into(),
            note: "n".into()
        }
        .intent()
        .is_none());
    }
}
