//! The custody domain's operations: protocol values are parsed into the domain's types at this
//! edge, people authenticate with the connection's uid added, and the [`Custody`] facade
//! decides. Its refusals keep their own code (`reason` on the wire).

use std::sync::MutexGuard;

use super::authz;
use super::peer::PeerCred;
use super::protocol::{Auth, ErrorCode, Op, Progress, Reply, RequestReply, Secret, SessionReply};
use super::state::{throttled, Daemon, OpError};
use super::throttle::Key as ThrottleKey;
use crate::custody::{
    bootstrap_check, compute_code, identify_device, AccountId, Authenticated, Clock, Credentials,
    CustodyError, Enrolment, FactorCode, Issuing, Location, NewAccount, NewRequest, NewUser,
    PreparedCredential, Presented, Provider, ProviderSeed, RequestId, Role, RootPassword,
    SealNumber, Serial, Session, UserName, UserPassphrase,
};
use crate::ledger::Passphrase;
use crate::token::oath::CredentialName;

impl From<CustodyError> for OpError {
    fn from(e: CustodyError) -> Self {
        OpError::refused(e.refusal(), e.to_string())
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> OpError {
    OpError::new(ErrorCode::BadRequest, format!("{what}: {e}"))
}

fn user_name(s: &str) -> Result<UserName, OpError> {
    UserName::parse(s).map_err(OpError::from)
}

fn factor_code(f: Option<Secret>) -> Result<Option<FactorCode>, OpError> {
    match f {
        Some(f) => Ok(Some(FactorCode::parse(f.expose())?)),
        None => Ok(None),
    }
}

/// Authenticates one person, throttled per (user, peer uid), in one round or two (see
/// [`Auth`]). A first round runs the domain's checks and the record under the service lock
/// and the key derivation between them without it. A right passphrase of a person with a
/// second factor and no code is refused `factor_code_required` with a continuation
/// ([`super::continuation`]): it neither counts as a failure nor forgives earlier ones, and
/// nothing is recorded. The second round brings the continuation and the code; the
/// continuation stands for the proven passphrase (no second key derivation), and a wrong code
/// is a failure like any other.
pub fn session(d: &Daemon, a: Auth, peer: &PeerCred) -> Result<Session, OpError> {
    if a.signed.is_some() {
        return Err(bad(
            "by.signed",
            "only the officers of a two-officer operation prove presence by signature; give \
             the second-factor code (factor) here",
        ));
    }
    let user = user_name(&a.user)?;
    let factor = factor_code(a.factor)?;
    let key = ThrottleKey {
        what: "auth",
        name: user.as_str().to_owned(),
        uid: peer.uid,
    };
    let now = d.clock().now_ms();
    match (a.passphrase, a.continuation) {
        (Some(passphrase), None) => {
            let creds = Credentials {
                user,
                passphrase: UserPassphrase::offered(passphrase.into_inner())?,
                factor,
                uid: Some(peer.uid),
            };
            let (attempt, verdict) = throttled_check(d, &creds, key, now, peer)?;
            judged(d, attempt, verdict, peer)
        }
        (None, Some(continuation)) => {
            let Some(code) = factor else {
                return Err(bad(
                    "by",
                    "a second round brings the continuation together with the second-factor \
                     code (factor)",
                ));
            };
            let attempt = d
                .throttle()
                .begin(key, now)
                .map_err(|r| throttled("authentication", user.as_str(), peer, &r, now))?;
            // Taking the continuation ends it, whatever comes next: it serves one round. A
            // continuation that is not this peer's for this person counts as a failed guess.
            let proven = match d.take_continuation(&continuation, &user, peer) {
                Ok(p) => p,
                Err(e) => {
                    attempt.finish(false);
                    return Err(e);
                }
            };
            drop(continuation);
            let check = match d.with_custody(|c| Ok(c.begin_second_round(&proven, Some(peer.uid))?))
            {
                Ok(c) => c,
                Err(e) => {
                    attempt.finish_uncounted();
                    return Err(e);
                }
            };
            judged(d, attempt, check.verify_factor(&code), peer)
        }
        _ => Err(bad(
            "by",
            "give either the passphrase (a first round) or the continuation custodyd answered \
             with factor_code_required (a second round), not both and not neither",
        )),
    }
}

fn check_seen(seen: &str) -> Result<(), OpError> {
    if seen.len() != 64 || !seen.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            "seen",
            "the digest of the request shown to the officer: 64 hex digits",
        ));
    }
    Ok(())
}

fn signed_proof(
    s: super::protocol::SignedApproval,
) -> Result<crate::custody::SignedProof, OpError> {
    let hex64 =
        |v: &str| v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex64(&s.key_id) {
        return Err(bad("signed.key_id", "the key id: 64 lowercase hex digits"));
    }
    if !hex64(&s.nonce) {
        return Err(bad(
            "signed.nonce",
            "the challenge's nonce: 64 lowercase hex digits (from approval_challenge)",
        ));
    }
    let signature = data_encoding::BASE64
        .decode(s.signature.as_bytes())
        .ok()
        .filter(|sig| (8..=80).contains(&sig.len()))
        .ok_or_else(|| {
            bad(
                "signed.signature",
                "a DER ECDSA P-256 signature in base64 (8 to 80 bytes)",
            )
        })?;
    Ok(crate::custody::SignedProof {
        key_id: s.key_id,
        nonce: s.nonce,
        signature,
    })
}

/// Every user, each officer with the id of their registered approval key (which
/// `custody user key register --generate` checks before it replaces the key on a card).
fn users_with_approval_keys(
    c: &crate::custody::Custody,
) -> Result<Vec<crate::daemon::protocol::UserReply>, OpError> {
    let mut out = Vec::new();
    for u in c.users()? {
        let key = c.officer_key(&u.name)?.map(|k| k.key_id);
        let mut reply = crate::daemon::protocol::UserReply::from(u);
        reply.approval_key = key;
        out.push(reply);
    }
    Ok(out)
}

/// The first round of an authentication by passphrase alone, for an officer who proves the
/// rest by signature: the proof that the passphrase was right. Throttled like every
/// authentication; a second-factor code or continuation here is a bad request.
fn passphrase_proven(
    d: &Daemon,
    a: Auth,
    peer: &PeerCred,
) -> Result<crate::custody::PassphraseProven, OpError> {
    if a.factor.is_some() || a.continuation.is_some() {
        return Err(bad(
            "by",
            "a signed approval and its challenge carry the passphrase only: the YubiKey's \
             signature takes the second factor's place",
        ));
    }
    let Some(passphrase) = a.passphrase else {
        return Err(bad("by", "the officer's passphrase is needed"));
    };
    let user = user_name(&a.user)?;
    let key = ThrottleKey {
        what: "auth",
        name: user.as_str().to_owned(),
        uid: peer.uid,
    };
    let now = d.clock().now_ms();
    let creds = Credentials {
        user,
        passphrase: UserPassphrase::offered(passphrase.into_inner())?,
        factor: None,
        uid: Some(peer.uid),
    };
    let (attempt, verdict) = throttled_check(d, &creds, key, now, peer)?;
    match d.with_custody(|c| Ok(c.finish_authentication_rounds(verdict)))? {
        Ok(Authenticated::FactorRequired(proof)) => {
            attempt.finish_uncounted();
            Ok(proof)
        }
        Ok(Authenticated::Session(s)) => {
            attempt.finish_uncounted();
            Err(CustodyError::NotAnOfficer {
                user: s.user().clone(),
                operation: "approve",
            }
            .into())
        }
        Err(e) => {
            attempt.finish(false);
            Err(e.into())
        }
    }
}

/// Begins a throttled attempt for `key` and checks `creds`: the domain's checks under the
/// service lock, the key derivation without it. The attempt is returned open, for the caller to
/// finish by the outcome.
fn throttled_check<'d>(
    d: &'d Daemon,
    creds: &Credentials,
    key: ThrottleKey,
    now: i64,
    peer: &PeerCred,
) -> Result<(super::throttle::Attempt<'d>, crate::custody::AuthVerdict), OpError> {
    let attempt = d
        .throttle()
        .begin(key, now)
        .map_err(|r| throttled("authentication", creds.user.as_str(), peer, &r, now))?;
    let check = match d.with_custody(|c| Ok(c.begin_authentication(creds)?)) {
        Ok(c) => c,
        Err(e) => {
            // Refused before any secret was checked (unknown, suspended, bound to another
            // uid): no guess was made, so the pair is not slowed, and its earlier failures are
            // not forgiven either.
            attempt.finish_uncounted();
            return Err(e);
        }
    };
    let verdict = check.verify(creds);
    Ok((attempt, verdict))
}

/// Records a verified authentication and ends its throttled attempt by the outcome.
fn judged(
    d: &Daemon,
    attempt: super::throttle::Attempt<'_>,
    verdict: crate::custody::AuthVerdict,
    peer: &PeerCred,
) -> Result<Session, OpError> {
    let matched = verdict.matched();
    let r = d.with_custody(|c| Ok(c.finish_authentication_rounds(verdict)))?;
    match r {
        Ok(Authenticated::Session(s)) => {
            attempt.finish(matched);
            Ok(s)
        }
        Ok(Authenticated::FactorRequired(proof)) => {
            // The passphrase was right: no failure; but no pardon of earlier failures either,
            // or a right passphrase would reset the wait that bounds guesses at the code.
            attempt.finish_uncounted();
            let user = proof.user().clone();
            let token = d.open_continuation(proof, peer)?;
            let mut e = OpError::from(CustodyError::FactorCodeRequired { user });
            e.continuation = Some(token.into_secret());
            Err(e)
        }
        Err(e) => {
            match &e {
                CustodyError::FactorCodeReused { .. } => attempt.finish_uncounted(),
                _ => attempt.finish(false),
            }
            Err(e.into())
        }
    }
}

/// One officer of a two-officer operation: passphrase and second-factor code as [`session`]
/// does, or passphrase and a signature by their registered YubiKey over `intent` (what the
/// operation custodyd received does: [`Op::intent`]), checked by the domain
/// ([`crate::custody::Custody::prove_presence`]).
fn officer_session(
    d: &Daemon,
    mut a: Auth,
    peer: &PeerCred,
    intent: Option<&crate::custody::OperationIntent>,
) -> Result<Session, OpError> {
    let Some(signed) = a.signed.take() else {
        return session(d, a, peer);
    };
    let Some(intent) = intent else {
        return Err(bad(
            "by.signed",
            "only the officers of a two-officer operation prove presence by signature",
        ));
    };
    let proof = signed_proof(signed)?;
    let proven = passphrase_proven(d, a, peer)?;
    d.with_custody(|c| Ok(c.prove_presence(&proven, intent, &proof)?))
}

/// The officers in `by`; signatures ([`officer_session`]) only when there are two of them.
fn sessions(
    d: &Daemon,
    by: Vec<Auth>,
    peer: &PeerCred,
    intent: Option<&crate::custody::OperationIntent>,
) -> Result<Vec<Session>, OpError> {
    let intent = intent.filter(|_| by.len() == 2);
    by.into_iter()
        .map(|a| officer_session(d, a, peer, intent))
        .collect()
}

fn pair(
    d: &Daemon,
    by: Vec<Auth>,
    peer: &PeerCred,
    intent: Option<&crate::custody::OperationIntent>,
) -> Result<(Session, Session), OpError> {
    if by.len() != 2 {
        return Err(bad("by", "this operation needs exactly two officers"));
    }
    match <[Session; 2]>::try_from(sessions(d, by, peer, intent)?) {
        Ok([a, b]) => Ok((a, b)),
        Err(_) => Err(bad("by", "this operation needs exactly two officers")),
    }
}

/// A request as answered to a reader: expired when past its expiry, with its approval
/// window's end ([`crate::custody::Custody::request_as_seen`]).
fn seen_request(c: &crate::custody::Custody, r: crate::custody::RequestRecord) -> RequestReply {
    let (r, until) = c.request_as_seen(r);
    RequestReply {
        approvals_valid_until_ms: until,
        ..RequestReply::from(r)
    }
}

fn request_id(s: &str) -> Result<RequestId, OpError> {
    RequestId::parse(s).map_err(OpError::from)
}

/// Runs `f` holding the locks of the devices with these serials (see
/// [`Daemon::device_locks`]): the card I/O `f` does meets no other operation on those cards.
fn lock_devices<R>(d: &Daemon, serials: &[u32], f: impl FnOnce() -> R) -> R {
    let locks = d.device_locks(serials);
    let guards: Vec<MutexGuard<'_, ()>> = locks
        .iter()
        .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()))
        .collect();
    let r = f();
    drop(guards);
    r
}

/// The daemon clock's time, at which an attestation's certificates must be valid (a clock
/// outside jiff's range fails every certificate's validity instead).
fn attestation_time(d: &Daemon) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(d.clock().now_ms()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Releases a code: the plan under the service lock; then, with no lock but the device's,
/// the wait for a fresh time step, opening and reconciling the card; `code.issuing` under the
/// service lock; the touch and the computation under the device's lock only; `code.released`
/// under the service lock.
fn release_code(
    d: &Daemon,
    s: &Session,
    id: &RequestId,
    access: &mut dyn crate::custody::DeviceAccess,
    notify: &dyn Fn(Progress),
) -> Result<crate::custody::ReleasedCode, OpError> {
    let plan = d.with_custody(|c| Ok(c.plan_release(s, id)?))?;
    let who = s.user().clone();
    let failed = |e: CustodyError| -> OpError {
        match d.with_custody(|c| Ok(c.record_failure(&who, "release_code", e))) {
            Ok(e) => OpError::from(e),
            Err(sealed) => sealed,
        }
    };
    if let Some(t) = plan.not_before_ms() {
        d.clock().wait_until(t);
    }
    lock_devices(d, &[plan.serial().get()], || {
        let mut transport = access
            .open(plan.serial())
            .map_err(|e| CustodyError::DeviceUnavailable {
                serial: plan.serial(),
                reason: e.to_string(),
            })
            .map_err(failed)?;
        let reading = plan.reconcile(&mut *transport).map_err(failed)?;
        let ticket = loop {
            match d.with_custody(|c| Ok(c.begin_issuing(s, &plan, &reading)?))? {
                Issuing::Ready(t) => break t,
                Issuing::NotBefore(t) => d.clock().wait_until(t),
            }
        };
        // The person at the key is told which reader it is in, as it starts to flash.
        notify(Progress::Touch {
            serial: plan.serial().get(),
            reader: transport.reader().to_owned(),
            timeout_secs: d.options().touch_timeout.as_secs(),
        });
        let code = compute_code(&mut *transport, &ticket);
        drop(transport);
        let code = code.map_err(failed)?;
        d.with_custody(|c| Ok(c.finish_release(s, ticket, code)?))
    })
}

/// Handles one custody operation. People authenticate first (see [`session`]); the domain
/// then decides under the service lock. Devices are opened only in allowed readers, under
/// their device locks, and a device that does not answer within the touch timeout (nobody
/// touched it) fails the operation with `touch_timeout`.
pub fn handle(
    d: &Daemon,
    op: Op,
    token: Option<&Secret>,
    peer: &PeerCred,
    notify: &dyn Fn(Progress),
) -> Result<Reply, OpError> {
    // What a two-officer operation does, computed from the operation received: what its
    // officers' signatures must cover.
    let intent = op.intent();
    let intent = intent.as_ref();
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
            // The cheap checks first (a keyring officer not yet enrolled), then the throttle,
            // then both key derivations (the keyring passphrase, and the new passphrase's
            // verifier) without the service lock, then the record.
            let ring = d.with_custody(|c| Ok(c.begin_bootstrap(&name)?))?;
            let now = d.clock().now_ms();
            let key = ThrottleKey {
                what: "bootstrap",
                name: name.as_str().to_owned(),
                uid: peer.uid,
            };
            let attempt = d
                .throttle()
                .begin(key, now)
                .map_err(|r| throttled("bootstrap", name.as_str(), peer, &r, now))?;
            let checked = bootstrap_check(&ring, &name, &keyring);
            drop(keyring);
            let prepared = match checked {
                Ok(()) => Some(PreparedCredential::new(
                    &name,
                    true,
                    &pass,
                    d.options().policy.kdf,
                )?),
                Err(_) => None,
            };
            let r =
                d.with_custody(|c| Ok(c.bootstrap_officer_checked(&name, checked, prepared)))?;
            let wrong = matches!(&r, Err(CustodyError::WrongKeyringPassphrase { .. }));
            attempt.finish(!wrong);
            let e = r?;
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
            let new = NewUser {
                name: user_name(&name)?,
                roles,
                uid,
                passphrase: UserPassphrase::new_checked(passphrase.into_inner())?,
            };
            let sessions = sessions(d, by, peer, intent)?;
            let refs: Vec<&Session> = sessions.iter().collect();
            // The new passphrase's verifier is derived without the service lock, once the
            // officers have proved who they are.
            let prepared = PreparedCredential::new(
                &new.name,
                new.roles.contains(&Role::Officer),
                &new.passphrase,
                d.options().policy.kdf,
            )?;
            let factor = d.with_custody(|c| Ok(c.add_user_prepared(&refs, new, prepared)?))?;
            match factor {
                Some(e) => Ok(Reply::Factor {
                    user: name,
                    uri: Secret::new(e.uri().to_owned().into()),
                    base32: Secret::new(e.base32().to_owned().into()),
                }),
                None => {
                    let name = user_name(&name)?;
                    d.with_custody(|c| Ok(Reply::from(c.user(&name)?)))
                }
            }
        }
        Op::Users => {
            d.reader(token, peer, "users", authz::roles_for("users"))?;
            d.with_custody(|c| Ok(Reply::Users(users_with_approval_keys(c)?)))
        }
        Op::AccountAdd {
            by,
            provider,
            account,
            alias,
            root_email,
            credential,
        } => {
            let provider = Provider::parse(&provider)?;
            let account: AccountId = provider.parse_account_id(&account)?;
            let new = NewAccount {
                provider,
                account,
                alias: crate::custody::Alias::parse(&alias)?,
                root_email: crate::custody::Email::parse(&root_email)?,
                credential: CredentialName::parse(&credential).map_err(|e| bad("credential", e))?,
            };
            let s = session(d, by, peer)?;
            d.with_custody(|c| Ok(Reply::from(c.register_account(&s, new)?)))
        }
        Op::Accounts => {
            d.reader(token, peer, "accounts", authz::roles_for("accounts"))?;
            d.with_custody(|c| Ok(Reply::from(c.accounts()?)))
        }
        Op::Devices => {
            d.reader(token, peer, "devices", authz::roles_for("devices"))?;
            d.with_custody(|c| Ok(Reply::from(c.devices()?)))
        }
        Op::RequestCode {
            by,
            account,
            task,
            ticket,
            reason,
        } => {
            let account = AccountId::parse(&account)?;
            let s = session(d, by, peer)?;
            let new = NewRequest {
                account,
                task,
                ticket,
                reason,
            };
            d.with_custody(|c| Ok(Reply::from(c.create_request(&s, new)?)))
        }
        Op::Requests => {
            let (who, _) = d.reader(token, peer, "requests", authz::roles_for("requests"))?;
            let mut all = d.with_custody(|c| Ok(c.requests()?))?;
            if !authz::sees_all_requests(&who) {
                all.retain(|r| r.requester == who.name);
            }
            let seen =
                d.with_custody(|c| Ok(all.into_iter().map(|r| seen_request(c, r)).collect()))?;
            Ok(Reply::Requests(seen))
        }
        Op::Approve {
            by,
            request,
            seen,
            signed: Some(signed),
        } => {
            let id = request_id(&request)?;
            check_seen(&seen)?;
            let Some(by) = by else {
                return Err(bad(
                    "by",
                    "a signed approval carries the officer's passphrase in by (no factor)",
                ));
            };
            let proof = signed_proof(signed)?;
            let proven = passphrase_proven(d, by, peer)?;
            d.with_custody(|c| {
                Ok(Reply::from(c.approve_signed(
                    &id,
                    &proven,
                    Some(&seen),
                    &proof,
                )?))
            })
        }
        Op::PresenceChallenge { by, digest } => {
            let proven = passphrase_proven(d, by, peer)?;
            let ch = d.with_custody(|c| Ok(c.presence_challenge(&proven, &digest)?))?;
            Ok(Reply::PresenceChallenge {
                officer: ch.officer.to_string(),
                digest: ch.digest,
                key_id: ch.key_id,
                nonce: ch.nonce,
                expires_ms: ch.expires_ms,
            })
        }
        Op::ApprovalChallenge { by, request } => {
            let id = request_id(&request)?;
            let proven = passphrase_proven(d, by, peer)?;
            let ch = d.with_custody(|c| Ok(c.approval_challenge(&proven, &id)?))?;
            Ok(Reply::Challenge {
                request: ch.request.to_string(),
                officer: ch.officer.to_string(),
                key_id: ch.key_id,
                nonce: ch.nonce,
                expires_ms: ch.expires_ms,
            })
        }
        Op::OfficerKeyRegister {
            by,
            serial,
            spki,
            slot_certificate,
            device_certificate,
        } => {
            let der = |what: &str, v: &str| {
                data_encoding::BASE64
                    .decode(v.as_bytes())
                    .map_err(|e| bad(what, format!("base64 DER expected ({e})")))
            };
            let evidence = crate::custody::KeyEvidence {
                serial,
                spki: der("spki", &spki)?,
                slot_cert: der("slot_certificate", &slot_certificate)?,
                device_cert: der("device_certificate", &device_certificate)?,
            };
            let (a, b) = pair(d, by, peer, intent)?;
            let key = d.with_custody(|c| {
                Ok(c.register_officer_key(&a, &b, &evidence, &d.options().attestation_anchors)?)
            })?;
            Ok(Reply::OfficerKey {
                officer: key.officer.to_string(),
                key_id: key.key_id,
                registered: true,
            })
        }
        Op::OfficerKeyRemove { by } => {
            let (a, b) = pair(d, by, peer, intent)?;
            let key_id = d.with_custody(|c| Ok(c.remove_officer_key(&a, &b)?))?;
            Ok(Reply::OfficerKey {
                officer: a.user().to_string(),
                key_id,
                registered: false,
            })
        }
        Op::Approve {
            by,
            request,
            seen,
            signed: None,
        } => {
            let id = request_id(&request)?;
            check_seen(&seen)?;
            // A session serves an approval only when it was opened within the last minute:
            // the domain refuses an older proof (`FRESH_AUTH_MS`).
            let s = match by {
                Some(by) => session(d, by, peer)?,
                None => d.caller(token, peer, "approve")?.1.proof,
            };
            d.with_custody(|c| Ok(Reply::from(c.approve_as(&id, &s, Some(&seen))?)))
        }
        Op::Deny { by, request, note } => {
            let id = request_id(&request)?;
            let s = session(d, by, peer)?;
            d.with_custody(|c| Ok(Reply::from(c.deny(&s, &id, &note)?)))
        }
        Op::Cancel { by, request } => {
            let id = request_id(&request)?;
            // Cancelling one's own request only lowers risk: a login session serves it.
            let s = match by {
                Some(by) => self::session(d, by, peer)?,
                None => d.caller(token, peer, "cancel")?.1.proof,
            };
            d.with_custody(|c| Ok(Reply::from(c.cancel(&s, &id)?)))
        }
        Op::Incidents => {
            d.reader(token, peer, "incidents", authz::roles_for("incidents"))?;
            d.with_custody(|c| Ok(Reply::from(c.incidents()?)))
        }
        Op::DeviceRegister { by, serial, role } => {
            let serial = Serial::new(serial)?;
            let s = session(d, by, peer)?;
            let mut access = d.device_access();
            // The checks under the service lock; the card identified under its device lock
            // only; its new PIV management key sealed under the service lock; GENERATE,
            // ATTEST, the chain's verification and SET MANAGEMENT KEY under the device's lock
            // only; the record under the service lock.
            lock_devices(d, &[serial.get()], || {
                d.with_custody(|c| Ok(c.plan_registration(&s, serial)?))?;
                let seen = identify_device(&mut access, serial);
                let plan = d.with_custody(|c| Ok(c.begin_registration(&s, serial, role, seen)?))?;
                let provisioned = plan.provision_card(
                    &mut access,
                    &d.options().attestation_anchors,
                    attestation_time(d),
                );
                d.with_custody(|c| {
                    Ok(Reply::from(c.finish_registration(
                        &s,
                        &plan,
                        provisioned,
                    )?))
                })
            })
        }
        Op::Enrol {
            by,
            account,
            primary,
            backup,
            seed,
            overwrite,
        } => {
            if by.len() != 2 {
                return Err(bad("by", "enrolment needs exactly two officers"));
            }
            let enrolment = Enrolment {
                account: AccountId::parse(&account)?,
                primary: Serial::new(primary)?,
                backup: Serial::new(backup)?,
                seed: ProviderSeed::parse(seed.expose())?,
                overwrite,
            };
            drop(seed);
            let (a, b) = pair(d, by, peer, intent)?;
            let serials = [enrolment.primary.get(), enrolment.backup.get()];
            let mut access = d.device_access();
            // Plan under the service lock; check and program both keys (touches, and the wait
            // for the next step between the two codes) under their device locks only; record
            // under the service lock.
            let codes = lock_devices(d, &serials, || {
                let Enrolment {
                    account,
                    primary,
                    backup,
                    seed,
                    overwrite,
                } = enrolment;
                let plan = d.with_custody(|c| {
                    Ok(c.plan_enrolment(&a, &b, &account, primary, backup, overwrite)?)
                })?;
                let who = a.user().clone();
                let failed = |e: CustodyError| -> OpError {
                    match d.with_custody(|c| Ok(c.record_failure(&who, "enrol", e))) {
                        Ok(e) => OpError::from(e),
                        Err(sealed) => sealed,
                    }
                };
                let reading = plan.check_cards(&mut access).map_err(failed)?;
                d.with_custody(|c| Ok(c.begin_enrolment(&a, &b, &plan, &reading)?))?;
                let clock = d.clock();
                let codes = plan
                    .program(&mut access, seed, &|t| clock.wait_until(t), clock.now_ms())
                    .map_err(failed)?;
                d.with_custody(|c| Ok(c.finish_enrolment(&a, &b, &plan, codes)?))
            })?;
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
            let seal = SealNumber::parse(&seal)?;
            let request = request.as_deref().map(request_id).transpose()?;
            let serial = Serial::new(serial)?;
            let s = session(d, by, peer)?;
            d.with_custody(|c| {
                Ok(Reply::from(c.check_out(
                    &s,
                    serial,
                    &seal,
                    request.as_ref(),
                )?))
            })
        }
        Op::Checkin {
            by,
            serial,
            seal,
            location,
        } => {
            let serial = Serial::new(serial)?;
            let seal = SealNumber::parse(&seal)?;
            let location = Location::parse(&location)?;
            let s = session(d, by, peer)?;
            let mut access = d.device_access();
            lock_devices(d, &[serial.get()], || {
                let plan = d.with_custody(|c| Ok(c.plan_check_in(&s, serial, &seal)?))?;
                let read = plan.reconcile(&mut access);
                d.with_custody(|c| {
                    Ok(Reply::from(
                        c.finish_check_in(&s, serial, seal, location, read)?,
                    ))
                })
            })
        }
        Op::Code {
            by,
            request,
            touch_prompt,
        } => {
            let id = request_id(&request)?;
            let s = session(d, by, peer)?;
            let mut access = d.device_access();
            let quiet = |_: Progress| {};
            let notify = if touch_prompt { notify } else { &quiet };
            let r = release_code(d, &s, &id, &mut access, notify)?;
            Ok(Reply::Code {
                request: r.request.to_string(),
                code: Secret::new(r.code.as_str().to_owned().into()),
                step: r.step,
                seconds_remaining: r.seconds_remaining,
                device: r.device.get(),
                password: r
                    .password
                    .map(|p| Secret::new(p.expose().to_owned().into())),
            })
        }
        Op::AccountSetPassword {
            by,
            account,
            password,
            generate,
        } => {
            let account = AccountId::parse(&account)?;
            let (a, b) = pair(d, by, peer, intent)?;
            let rec = d.with_custody(|c| Ok(c.account(&account)?))?;
            let pw = match (password, generate) {
                (None, true) => RootPassword::generate()?,
                (Some(p), false) => {
                    RootPassword::parse(zeroize::Zeroizing::new(p.expose().to_owned()), &rec)?
                }
                _ => {
                    return Err(CustodyError::invalid(
                        "root password",
                        "<hidden>",
                        "give either a password or generate, not both and not neither",
                    )
                    .into())
                }
            };
            let rec =
                d.with_custody(|c| Ok(c.set_root_password(&a, &b, &account, &pw, generate)?))?;
            Ok(Reply::PasswordSet {
                account: rec.into(),
                password: generate.then(|| Secret::new(pw.expose().to_owned().into())),
            })
        }
        Op::UserSetActive { by, name, active } => {
            let name = user_name(&name)?;
            let (a, b) = pair(d, by, peer, intent)?;
            d.with_custody(|c| Ok(Reply::from(c.set_active(&a, &b, &name, active)?)))
        }
        Op::UserUnlock { by, name } => {
            let name = user_name(&name)?;
            let (a, b) = pair(d, by, peer, intent)?;
            let user = d.with_custody(|c| Ok(c.unlock_user(&a, &b, &name)?))?;
            d.throttle().forget("auth", name.as_str());
            Ok(Reply::from(user))
        }
        Op::IncidentAck { by, incident, note } => {
            let id = crate::custody::IncidentId::parse(&incident)?;
            let (a, b) = pair(d, by, peer, intent)?;
            d.with_custody(|c| Ok(Reply::from(c.acknowledge_incident(&a, &b, &id, &note)?)))
        }
        Op::DeviceSetTerminal { by, serial, to } => {
            let serial = Serial::new(serial)?;
            let (a, b) = pair(d, by, peer, intent)?;
            let mut access = d.device_access();
            // Plan under the service lock; clear a retired device's access key from its card
            // under its device lock only; record under the service lock.
            lock_devices(d, &[serial.get()], || {
                let plan = d.with_custody(|c| Ok(c.plan_terminal(&a, &b, serial, to)?))?;
                let cleared = plan.clear_access_key(&mut access);
                d.with_custody(|c| Ok(Reply::from(c.finish_terminal(&a, &b, &plan, cleared)?)))
            })
        }
        Op::DeviceLock { by, serial } => {
            let serial = Serial::new(serial)?;
            let (a, b) = pair(d, by, peer, intent)?;
            let mut access = d.device_access();
            // Plan (and seal the new key) under the service lock; SET CODE and VALIDATE under
            // the device's lock only; record under the service lock.
            lock_devices(d, &[serial.get()], || {
                let plan = d.with_custody(|c| Ok(c.plan_lock(&a, &b, serial)?))?;
                let locked = plan.lock_card(&mut access);
                d.with_custody(|c| Ok(Reply::from(c.finish_lock(&a, &b, &plan, locked)?)))
            })
        }
        Op::DeviceAttest { by, serial } => {
            let serial = Serial::new(serial)?;
            let (a, b) = pair(d, by, peer, intent)?;
            let mut access = d.device_access();
            // Plan (and seal the new management key) under the service lock; GENERATE, ATTEST,
            // the chain's verification and SET MANAGEMENT KEY under the device's lock only;
            // record under the service lock.
            lock_devices(d, &[serial.get()], || {
                let plan = d.with_custody(|c| Ok(c.plan_attest(&a, &b, serial)?))?;
                let provisioned = plan.provision_card(
                    &mut access,
                    &d.options().attestation_anchors,
                    attestation_time(d),
                );
                d.with_custody(|c| Ok(Reply::from(c.finish_attest(&a, &b, &plan, provisioned)?)))
            })
        }
        Op::RequestShow { request } => {
            let id = request_id(&request)?;
            let op = "request_show";
            let (who, _) = d.reader(token, peer, op, authz::roles_for(op))?;
            let r = d.with_custody(|c| Ok(c.request(&id)?))?;
            if !authz::sees_all_requests(&who) && r.requester != who.name {
                return Err(authz::not_theirs(op, &who, id.as_str()));
            }
            Ok(Reply::Request(d.with_custody(|c| Ok(seen_request(c, r)))?))
        }
        Op::AccountShow { account } => {
            let id = AccountId::parse(&account)?;
            let op = "account_show";
            d.reader(token, peer, op, authz::roles_for(op))?;
            d.with_custody(|c| Ok(Reply::from(c.account(&id)?)))
        }
        Op::DeviceShow { serial } => {
            let serial = Serial::new(serial)?;
            let op = "device_show";
            d.reader(token, peer, op, authz::roles_for(op))?;
            d.with_custody(|c| Ok(Reply::from(c.device(serial)?)))
        }
        Op::Login { by } => {
            // The same authentication as every operation's `by` (throttled per user and uid,
            // the key derivation outside the lock), kept as a session.
            let proof = self::session(d, by, peer)?;
            let (token, found, user) = d.open_session(proof, peer)?;
            tracing::info!(
                user = user.name.as_str(),
                peer_uid = peer.uid,
                expires_at_ms = found.expires_at_ms,
                "session opened"
            );
            Ok(Reply::Session(session_reply(
                Some(token.into_secret()),
                &user,
                &found,
            )))
        }
        Op::Whoami => {
            let (user, found) = d.caller(token, peer, "whoami")?;
            Ok(Reply::Session(session_reply(None, &user, &found)))
        }
        Op::Logout => {
            let Some(token) = token else {
                return Err(authz::anonymous("logout"));
            };
            let now = d.clock().now_ms();
            let user = d.with_sessions(|_, sessions| {
                sessions
                    .close(token, peer.uid, now)
                    .map_err(super::state::session_error)
            })?;
            tracing::info!(user = user.as_str(), peer_uid = peer.uid, "session closed");
            Ok(Reply::LoggedOut {
                user: user.to_string(),
            })
        }
        Op::UserSetRoles { by, name, roles } => {
            let name = user_name(&name)?;
            let (a, b) = pair(d, by, peer, intent)?;
            d.with_custody(|c| Ok(Reply::from(c.set_roles(&a, &b, &name, roles)?)))
        }
        Op::AccountSetStatus {
            by,
            account,
            status,
        } => {
            let account = AccountId::parse(&account)?;
            let (a, b) = pair(d, by, peer, intent)?;
            d.with_custody(|c| Ok(Reply::from(c.set_account_status(&a, &b, &account, status)?)))
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
            let s = session(d, by, peer)?;
            let serials: Vec<u32> = presented.iter().map(|p| p.serial.get()).collect();
            let mut access = d.device_access();
            // The presented cards are read under their device locks only, between a plan
            // and a record that judges them against the ledger as it is then.
            lock_devices(d, &serials, || {
                let plan = d.with_custody(|c| Ok(c.plan_inventory(&s, &presented)?))?;
                let readings = plan.read(&mut access);
                d.with_custody(|c| Ok(Reply::Audit(c.finish_inventory(&s, &presented, readings)?)))
            })
        }
        Op::Release { by, account } => {
            let account = AccountId::parse(&account)?;
            let (a, b) = pair(d, by, peer, intent)?;
            let serials: Vec<u32> = d.with_custody(|c| {
                Ok(c.devices_of(&account)?
                    .iter()
                    .map(|d| d.serial.get())
                    .collect())
            })?;
            let mut access = d.device_access();
            // Plan (the clearing intents recorded) under the service lock; clear the cards'
            // access keys under their device locks only; record and export under the service
            // lock.
            lock_devices(d, &serials, || {
                let plan = d.with_custody(|c| Ok(c.plan_custody_release(&a, &b, &account)?))?;
                let cleared = plan.clear_access_keys(&mut access);
                d.with_custody(|c| {
                    let mut out = Vec::new();
                    let s = c.finish_custody_release(&a, &b, &plan, cleared, &mut out)?;
                    let content = String::from_utf8(out).map_err(|_| {
                        OpError::new(ErrorCode::Internal, "the release export is not UTF-8")
                    })?;
                    Ok(Reply::Export {
                        events: s.events,
                        seq: s.checkpoint.checkpoint.seq,
                        public_key: c.ledger().public_key().to_hex(),
                        content,
                    })
                })
            })
        }
        Op::UserBindUid { by, name, uid } => {
            let name = user_name(&name)?;
            let (a, b) = pair(d, by, peer, intent)?;
            d.with_custody(|c| Ok(Reply::from(c.bind_uid(&a, &b, &name, uid)?)))
        }
        other => Err(OpError::new(
            ErrorCode::Internal,
            format!("{} is not a custody operation", other.name()),
        )),
    }
}

fn session_reply(
    token: Option<Secret>,
    user: &crate::custody::UserRecord,
    found: &super::session::Found,
) -> SessionReply {
    SessionReply {
        token,
        user: user.name.to_string(),
        roles: user.roles.clone(),
        uid: found.uid,
        idle_expires_at_ms: found.idle_expires_at_ms,
        expires_at_ms: found.expires_at_ms,
        as_of_ms: found.as_of_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::RefusalCode;
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
        assert_eq!(e.reason, Some(RefusalCode::TokenError));
        let absent = CustodyError::DeviceUnavailable {
            serial,
            reason: "not present".into(),
        };
        assert_eq!(OpError::from(absent).code, ErrorCode::Token);
    }
}
