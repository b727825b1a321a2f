//! The custody domain's operations: protocol values are parsed into the domain's types at this
//! edge, people authenticate with the connection's uid added, and the [`Custody`] facade
//! decides. Its refusals keep their own code (`reason` on the wire).

use std::time::Duration;

use super::access::LazyPcscAccess;
use super::peer::PeerCred;
use super::protocol::{Auth, ErrorCode, Op, Reply, Secret};
use super::state::OpError;
use crate::custody::{
    AccountId, AccountStatus, Credentials, Custody, CustodyError, DeviceRole, Enrolment,
    FactorCode, Location, NewAccount, NewRequest, NewUser, Presented, Provider, ProviderSeed,
    RequestId, Role, SealNumber, Serial, Session, Terminal, UserName, UserPassphrase,
};
use crate::ledger::Passphrase;
use crate::token::oath::CredentialName;

impl From<CustodyError> for OpError {
    fn from(e: CustodyError) -> Self {
        let reason = e.code();
        let code = match reason {
            "invalid_input" | "unknown_task" | "bad_seed" => ErrorCode::BadRequest,
            r if r.starts_with("unknown_") => ErrorCode::NotFound,
            "authentication_failed"
            | "factor_code_reused"
            | "factor_code_required"
            | "locked"
            | "suspended"
            | "wrong_keyring_passphrase"
            | "wrong_uid"
            | "session_expired"
            | "not_an_officer"
            | "role_required"
            | "same_officer_twice"
            | "self_approval"
            | "not_the_requester" => ErrorCode::Forbidden,
            "token_error" | "device_unavailable" | "touch_timeout" => ErrorCode::Token,
            "ledger_unavailable" | "corrupt_record" => ErrorCode::Ledger,
            _ => ErrorCode::Refused,
        };
        OpError {
            code,
            reason: Some(reason.to_owned()),
            message: e.to_string(),
        }
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> OpError {
    OpError::new(ErrorCode::BadRequest, format!("{what}: {e}"))
}

fn user_name(s: &str) -> Result<UserName, OpError> {
    UserName::parse(s).map_err(OpError::from)
}

fn credentials(a: Auth, peer: &PeerCred) -> Result<Credentials, OpError> {
    Ok(Credentials {
        user: user_name(&a.user)?,
        passphrase: UserPassphrase::offered(a.passphrase.into_inner())?,
        factor: match a.factor {
            Some(f) => Some(FactorCode::parse(f.expose())?),
            None => None,
        },
        uid: Some(peer.uid),
    })
}

fn session(c: &mut Custody, a: Auth, peer: &PeerCred) -> Result<Session, OpError> {
    let creds = credentials(a, peer)?;
    Ok(c.authenticate(&creds)?)
}

fn pair(c: &mut Custody, by: Vec<Auth>, peer: &PeerCred) -> Result<(Session, Session), OpError> {
    let mut sessions = Vec::with_capacity(2);
    for a in by {
        sessions.push(session(c, a, peer)?);
    }
    match <[Session; 2]>::try_from(sessions) {
        Ok([a, b]) => Ok((a, b)),
        Err(_) => Err(bad("by", "this operation needs exactly two officers")),
    }
}

fn request_id(s: &str) -> Result<RequestId, OpError> {
    RequestId::parse(s).map_err(OpError::from)
}

/// Authenticates the officer who seals the daemon; answers their name. Refusals (wrong
/// credentials, not an officer) are recorded in the ledger like any other.
pub fn seal_officer(c: &mut Custody, by: Auth, peer: &PeerCred) -> Result<UserName, OpError> {
    let creds = credentials(by, peer)?;
    Ok(c.authenticate_officer(&creds, "seal")?.user().clone())
}

/// Handles one custody operation (the daemon holds the lock and an unsealed service). Devices
/// are opened only in `allowed` readers, and a device that does not answer within
/// `touch_timeout` (nobody touched it) fails the operation with `touch_timeout`.
pub fn handle(
    c: &mut Custody,
    op: Op,
    peer: &PeerCred,
    allowed: &[String],
    touch_timeout: Duration,
) -> Result<Reply, OpError> {
    match op {
        Op::BootstrapOfficer {
            user,
            keyring_passphrase,
            passphrase,
        } => {
            let name = user_name(&user)?;
            let keyring = Passphrase::for_unseal(keyring_passphrase.into_inner())
                .map_err(|e| bad("keyring_passphrase", e))?;
            let pass = UserPassphrase::new_checked(passphrase.into_inner())?;
            let e = c.bootstrap_officer(&name, &keyring, &pass)?;
            Ok(Reply::Factor {
                user,
                uri: Secret::new(e.uri().to_owned().into()),
                base32: Secret::new(e.base32().to_owned().into()),
            })
        }
        Op::UserAdd {
            by,
            name,
            roles,
            uid,
            passphrase,
        } => {
            let mut sessions = Vec::with_capacity(by.len());
            for a in by {
                sessions.push(session(c, a, peer)?);
            }
            let roles = roles
                .iter()
                .map(|r| Role::parse(r))
                .collect::<Result<Vec<_>, _>>()?;
            let new = NewUser {
                name: user_name(&name)?,
                roles,
                uid,
                passphrase: UserPassphrase::new_checked(passphrase.into_inner())?,
            };
            let refs: Vec<&Session> = sessions.iter().collect();
            let factor = c.add_user(&refs, new)?;
            match factor {
                Some(e) => Ok(Reply::Factor {
                    user: name,
                    uri: Secret::new(e.uri().to_owned().into()),
                    base32: Secret::new(e.base32().to_owned().into()),
                }),
                None => Ok(Reply::User(c.user(&user_name(&name)?)?)),
            }
        }
        Op::Users => Ok(Reply::Users(c.users()?)),
        Op::AccountAdd {
            by,
            provider,
            account,
            alias,
            root_email,
            credential,
        } => {
            let s = session(c, by, peer)?;
            let provider = Provider::parse(&provider)?;
            let account: AccountId = provider.parse_account_id(&account)?;
            let new = NewAccount {
                provider,
                account,
                alias: crate::custody::Alias::parse(&alias)?,
                root_email: crate::custody::Email::parse(&root_email)?,
                credential: CredentialName::parse(&credential).map_err(|e| bad("credential", e))?,
            };
            Ok(Reply::Account(c.register_account(&s, new)?))
        }
        Op::Accounts => Ok(Reply::Accounts(c.accounts()?)),
        Op::Devices => Ok(Reply::Devices(c.devices()?)),
        Op::RequestCode {
            by,
            account,
            task,
            ticket,
            reason,
        } => {
            let s = session(c, by, peer)?;
            let account = AccountId::parse(&account)?;
            Ok(Reply::Request(c.create_request(
                &s,
                NewRequest {
                    account,
                    task,
                    ticket,
                    reason,
                },
            )?))
        }
        Op::Requests => Ok(Reply::Requests(c.requests()?)),
        Op::Approve { by, request } => {
            let id = request_id(&request)?;
            let creds = credentials(by, peer)?;
            Ok(Reply::Request(c.approve(&id, &creds)?))
        }
        Op::Deny { by, request, note } => {
            let id = request_id(&request)?;
            let s = session(c, by, peer)?;
            Ok(Reply::Request(c.deny(&s, &id, &note)?))
        }
        Op::Cancel { by, request } => {
            let id = request_id(&request)?;
            let s = session(c, by, peer)?;
            Ok(Reply::Request(c.cancel(&s, &id)?))
        }
        Op::Incidents => Ok(Reply::Incidents(c.incidents()?)),
        Op::DeviceRegister { by, serial, role } => {
            let s = session(c, by, peer)?;
            let role = match role.as_str() {
                "primary" => DeviceRole::Primary,
                "backup" => DeviceRole::Backup,
                other => return Err(bad("role", format!("{other:?} is not primary or backup"))),
            };
            let mut access = LazyPcscAccess::new(allowed.to_vec(), touch_timeout);
            Ok(Reply::Device(c.register_device(
                &s,
                &mut access,
                Serial::new(serial)?,
                role,
            )?))
        }
        Op::Enrol {
            by,
            account,
            primary,
            backup,
            seed,
            overwrite,
        } => {
            let mut sessions = Vec::with_capacity(2);
            for a in by {
                sessions.push(session(c, a, peer)?);
            }
            let [a, b] = sessions.as_slice() else {
                return Err(bad("by", "enrolment needs exactly two officers"));
            };
            let enrolment = Enrolment {
                account: AccountId::parse(&account)?,
                primary: Serial::new(primary)?,
                backup: Serial::new(backup)?,
                seed: ProviderSeed::parse(seed.expose())?,
                overwrite,
            };
            drop(seed);
            let mut access = LazyPcscAccess::new(allowed.to_vec(), touch_timeout);
            let codes = c.enrol(a, b, &mut access, enrolment)?;
            Ok(Reply::Enrolled {
                first: Secret::new(codes.first.as_str().to_owned().into()),
                second: Secret::new(codes.second.as_str().to_owned().into()),
                first_step: codes.first_step,
            })
        }
        Op::Checkout {
            by,
            serial,
            seal,
            request,
        } => {
            let s = session(c, by, peer)?;
            let seal = SealNumber::parse(&seal)?;
            let request = request.as_deref().map(request_id).transpose()?;
            Ok(Reply::Device(c.check_out(
                &s,
                Serial::new(serial)?,
                &seal,
                request.as_ref(),
            )?))
        }
        Op::Checkin {
            by,
            serial,
            seal,
            location,
        } => {
            let s = session(c, by, peer)?;
            let mut access = LazyPcscAccess::new(allowed.to_vec(), touch_timeout);
            Ok(Reply::Device(c.check_in(
                &s,
                &mut access,
                Serial::new(serial)?,
                SealNumber::parse(&seal)?,
                Location::parse(&location)?,
            )?))
        }
        Op::Code { by, request } => {
            let id = request_id(&request)?;
            let s = session(c, by, peer)?;
            let mut access = LazyPcscAccess::new(allowed.to_vec(), touch_timeout);
            let r = c.release_code(&s, &id, &mut access)?;
            Ok(Reply::Code {
                request: r.request.to_string(),
                code: Secret::new(r.code.as_str().to_owned().into()),
                step: r.step,
                seconds_remaining: r.seconds_remaining,
                device: r.device.get(),
            })
        }
        Op::UserSetActive { by, name, active } => {
            let (a, b) = pair(c, by, peer)?;
            Ok(Reply::User(c.set_active(
                &a,
                &b,
                &user_name(&name)?,
                active,
            )?))
        }
        Op::IncidentAck { by, incident, note } => {
            let (a, b) = pair(c, by, peer)?;
            let id = crate::custody::IncidentId::parse(&incident)?;
            Ok(Reply::Incident(c.acknowledge_incident(&a, &b, &id, &note)?))
        }
        Op::DeviceSetTerminal { by, serial, to } => {
            let to = match to.as_str() {
                "retired" => Terminal::Retired,
                "lost" => Terminal::Lost,
                "destroyed" => Terminal::Destroyed,
                other => {
                    return Err(bad(
                        "to",
                        format!("{other:?} is not retired, lost or destroyed"),
                    ))
                }
            };
            let (a, b) = pair(c, by, peer)?;
            Ok(Reply::Device(c.set_terminal(
                &a,
                &b,
                Serial::new(serial)?,
                to,
            )?))
        }
        Op::RequestShow { request } => Ok(Reply::Request(c.request(&request_id(&request)?)?)),
        Op::AccountShow { account } => Ok(Reply::Account(c.account(&AccountId::parse(&account)?)?)),
        Op::DeviceShow { serial } => Ok(Reply::Device(c.device(Serial::new(serial)?)?)),
        Op::UserSetRoles { by, name, roles } => {
            let roles = roles
                .iter()
                .map(|r| Role::parse(r))
                .collect::<Result<Vec<_>, _>>()?;
            let (a, b) = pair(c, by, peer)?;
            Ok(Reply::User(c.set_roles(
                &a,
                &b,
                &user_name(&name)?,
                roles,
            )?))
        }
        Op::AccountSetStatus {
            by,
            account,
            status,
        } => {
            let status = match status.as_str() {
                "active" => AccountStatus::Active,
                "root_credentials_removed" => AccountStatus::RootCredentialsRemoved,
                "closed" => AccountStatus::Closed,
                other => {
                    return Err(bad(
                        "status",
                        format!("{other:?} is not active, root_credentials_removed or closed"),
                    ))
                }
            };
            let account = AccountId::parse(&account)?;
            let (a, b) = pair(c, by, peer)?;
            Ok(Reply::Account(
                c.set_account_status(&a, &b, &account, status)?,
            ))
        }
        Op::Inventory { by, presented } => {
            let presented = presented
                .into_iter()
                .map(|p| {
                    Ok(Presented {
                        serial: Serial::new(p.serial)?,
                        seal: p.seal.as_deref().map(SealNumber::parse).transpose()?,
                    })
                })
                .collect::<Result<Vec<_>, CustodyError>>()?;
            let s = session(c, by, peer)?;
            let mut access = LazyPcscAccess::new(allowed.to_vec(), touch_timeout);
            Ok(Reply::Audit(c.inventory_audit(
                &s,
                &mut access,
                &presented,
            )?))
        }
        Op::Release { by, account } => {
            let account = AccountId::parse(&account)?;
            let (a, b) = pair(c, by, peer)?;
            let mut out = Vec::new();
            let s = c.release_custody(&a, &b, &account, &mut out)?;
            let content = String::from_utf8(out).map_err(|_| {
                OpError::new(ErrorCode::Internal, "the release export is not UTF-8")
            })?;
            Ok(Reply::Export {
                events: s.events,
                seq: s.checkpoint.checkpoint.seq,
                public_key: c.ledger().public_key().to_hex(),
                content,
            })
        }
        other => Err(OpError::new(
            ErrorCode::Internal,
            format!("{} is not a custody operation", other.name()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{TokenError, TransportError};

    #[test]
    fn card_failures_keep_the_token_code_so_the_cli_exits_3() {
        let serial = Serial::new(10_000_001).expect("serial");
        let pulled = CustodyError::Token {
            serial,
            source: Box::new(TokenError::Transport {
                reader: "Yubico YubiKey OTP+FIDO+CCID 00 00".into(),
                ins: 0xA2,
                source: TransportError::ReaderGone {
                    reader: "Yubico YubiKey OTP+FIDO+CCID 00 00".into(),
                },
            }),
        };
        let e = OpError::from(pulled);
        assert_eq!(e.code, ErrorCode::Token);
        assert_eq!(e.reason.as_deref(), Some("token_error"));
        let absent = CustodyError::DeviceUnavailable {
            serial,
            reason: "not present".into(),
        };
        assert_eq!(OpError::from(absent).code, ErrorCode::Token);
    }
}
