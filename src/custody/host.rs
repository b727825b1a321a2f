//! What the custody service records of the host it runs on: the quorum that unsealed it, the
//! officer who sealed it, and the cards that appear in and leave the readers it watches; and
//! the ledger-level writes readers ask for (a checkpoint, a redacted export).

use serde_json::json;

use crate::ledger::{
    export_redacted, ExportFilter, ExportFormat, ExportSummary, LedgerError, OfficerName,
    SignedCheckpoint,
};

use super::error::CustodyError;
use super::ids::Serial;
use super::service::{Custody, Session};

/// Event kinds recorded of the host.
pub mod kinds {
    /// A quorum unsealed the daemon.
    pub const UNSEALED: &str = "daemon.unsealed";
    /// The daemon was sealed.
    pub const SEALED: &str = "daemon.sealed";
    /// A registered device appeared in an allowed reader.
    pub const DEVICE_INSERTED: &str = "token.device_inserted";
    /// A registered device left the reader it was seen in.
    pub const DEVICE_REMOVED: &str = "token.device_removed";
    /// A card the ledger does not know, or could not read, appeared in an allowed reader; it
    /// is never used.
    pub const UNKNOWN_DEVICE: &str = "token.unknown_device";
    /// A card that was not a registered device left an allowed reader.
    pub const CARD_REMOVED: &str = "token.card_removed";
    /// A card appeared in an allowed reader (reader and ATR only; written by earlier versions,
    /// which did not identify the card).
    pub const CARD_INSERTED: &str = "token.card_inserted";
    /// A card appeared in a reader that is not allowed; it is never used.
    pub const UNKNOWN_READER: &str = "token.unknown_reader";
}

/// The actor of reader events: the daemon watching the readers.
const WATCHER: &str = "custodyd";

/// A card seen coming or going, as the reader watch reports it.
#[derive(Clone, Copy, Debug)]
pub enum CardSighting<'a> {
    /// A card appeared in a reader that is not allowed; it is never used.
    InForbiddenReader {
        /// The reader.
        reader: &'a str,
        /// The card's answer to reset.
        atr: &'a [u8],
    },
    /// A card appeared in an allowed reader.
    Inserted {
        /// The reader.
        reader: &'a str,
        /// The serial it answered with (`None`: unreadable, or no serial).
        serial: Option<Serial>,
        /// The OATH device id it answered with.
        device_id: Option<&'a str>,
        /// Why it could not be identified, when it could not.
        problem: Option<&'a str>,
    },
    /// The card last seen in an allowed reader left it.
    Removed {
        /// The reader.
        reader: &'a str,
        /// What was known of the card: its serial, `Some(None)` when it was unreadable,
        /// `None` when it was not identified.
        card: Option<Option<u32>>,
    },
}

/// What was recorded of a [`CardSighting`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SightingRecorded {
    /// The event's kind (one of [`kinds`]).
    pub kind: &'static str,
    /// For a registered device that appeared: whether it answered with the OATH device id
    /// read at its registration.
    pub device_id_matches: Option<bool>,
}

impl Custody {
    /// Records that the quorum `officers` (their keyring names) unsealed the ledger over a
    /// connection from `peer_uid`; answers the event's sequence number.
    pub fn record_unsealed(
        &mut self,
        officers: &[String],
        peer_uid: u32,
    ) -> Result<u64, CustodyError> {
        let who: Vec<OfficerName> = officers
            .iter()
            .filter_map(|n| OfficerName::parse(n).ok())
            .collect();
        let actor = OfficerName::joined_actor(&who).map_err(|e| {
            CustodyError::invalid("officers of the unseal", &officers.join(","), e.to_string())
        })?;
        let body = json!({"officers": officers, "peer_uid": peer_uid});
        let stored = self.append(kinds::UNSEALED, actor.as_str(), body, &[])?;
        Ok(stored.header.seq)
    }

    /// Records that the officer of `session` seals the ledger over a connection from
    /// `peer_uid`, after the refusals still being counted; answers the event's sequence
    /// number. Anyone but an officer is refused (and the refusal recorded).
    pub fn record_sealed(&mut self, session: &Session, peer_uid: u32) -> Result<u64, CustodyError> {
        self.require_officer(session, "seal")?;
        self.record_counted_refusals(self.now(), true);
        let officer = session.user().as_str();
        let body = json!({"officer": officer, "peer_uid": peer_uid});
        let stored = self.append(kinds::SEALED, officer, body, &[])?;
        Ok(stored.header.seq)
    }

    /// Records a card coming or going. A card is named as a registered device only when its
    /// serial is one the ledger holds.
    pub fn record_sighting(
        &mut self,
        sighting: CardSighting<'_>,
    ) -> Result<SightingRecorded, CustodyError> {
        let mut device_id_matches = None;
        let (kind, body) = match sighting {
            CardSighting::InForbiddenReader { reader, atr } => (
                kinds::UNKNOWN_READER,
                json!({"reader": reader, "atr": data_encoding::HEXLOWER.encode(atr)}),
            ),
            CardSighting::Inserted {
                reader,
                serial,
                device_id,
                problem,
            } => {
                let shown = serial.map_or_else(|| "unreadable".to_owned(), |s| s.to_string());
                match self.registered(serial)? {
                    Some(d) => {
                        let matches = device_id == Some(d.device_id.as_str());
                        device_id_matches = Some(matches);
                        (
                            kinds::DEVICE_INSERTED,
                            json!({"serial": shown, "reader": reader, "state": d.state.name(),
                                   "device_id": device_id, "device_id_matches": matches}),
                        )
                    }
                    None => {
                        let mut body = json!({"serial": shown, "reader": reader});
                        if let Some(p) = problem {
                            body["error"] = json!(p);
                        }
                        (kinds::UNKNOWN_DEVICE, body)
                    }
                }
            }
            CardSighting::Removed { reader, card } => {
                let serial = card.flatten().and_then(|s| Serial::new(s).ok());
                match (self.registered(serial)?, card) {
                    (Some(d), _) => (
                        kinds::DEVICE_REMOVED,
                        json!({"serial": d.serial.to_string(), "reader": reader}),
                    ),
                    (None, Some(Some(s))) => (
                        kinds::CARD_REMOVED,
                        json!({"serial": s.to_string(), "reader": reader}),
                    ),
                    (None, Some(None)) => (
                        kinds::CARD_REMOVED,
                        json!({"serial": "unreadable", "reader": reader}),
                    ),
                    (None, None) => (kinds::CARD_REMOVED, json!({"reader": reader})),
                }
            }
        };
        self.append(kind, WATCHER, body, &[])?;
        Ok(SightingRecorded {
            kind,
            device_id_matches,
        })
    }

    /// Signs a checkpoint over the current head.
    pub fn checkpoint(&mut self) -> Result<SignedCheckpoint, LedgerError> {
        let now = crate::ledger::Timestamp(self.clock.now_ms());
        self.ledger.checkpoint_at(now)
    }

    /// Writes the whole ledger to `out` as JSON Lines, with a signed header and closing
    /// checkpoint; users' sealed credentials are redacted (their events stay in the chain).
    pub fn export_redacted(&mut self, out: &mut Vec<u8>) -> Result<ExportSummary, LedgerError> {
        export_redacted(
            &mut self.ledger,
            &ExportFilter::default(),
            ExportFormat::JsonLines,
            super::store::SECRET_ENTITIES,
            out,
        )
    }

    /// The registered device with `serial`, if there is one.
    fn registered(
        &self,
        serial: Option<Serial>,
    ) -> Result<Option<super::records::DeviceRecord>, CustodyError> {
        let Some(s) = serial else {
            return Ok(None);
        };
        match self.device(s) {
            Ok(d) => Ok(Some(d)),
            Err(CustodyError::UnknownDevice { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{serial, World, BACKUP, PRIMARY};
    use super::*;

    /// The last event: its kind, actor and body.
    fn last(w: &World) -> (String, String, serde_json::Value) {
        let head = w.custody.ledger().head().expect("head").expect("an event");
        let mut out = None;
        w.custody
            .ledger()
            .for_each_event(head.seq, head.seq, |e| {
                out = Some((
                    e.header.kind.as_str().to_owned(),
                    e.header.actor.as_str().to_owned(),
                    e.body.to_value(),
                ));
                Ok(())
            })
            .expect("events");
        out.expect("the head event")
    }

    fn inserted<'a>(
        reader: &'a str,
        serial: Option<Serial>,
        device_id: Option<&'a str>,
    ) -> CardSighting<'a> {
        CardSighting::Inserted {
            reader,
            serial,
            device_id,
            problem: None,
        }
    }

    #[test]
    fn cards_are_recorded_as_registered_devices_only_when_the_ledger_holds_them() {
        let mut w = World::new().with_enrolled_account();
        let id = w
            .custody
            .device(serial(PRIMARY))
            .expect("primary")
            .device_id;
        let id = id.as_str();
        let reader = "Yubico YubiKey OTP+FIDO+CCID 00 00";
        let cases: Vec<(CardSighting<'_>, &str, Option<bool>, serde_json::Value)> = vec![
            (
                inserted(reader, Some(serial(PRIMARY)), Some(id)),
                kinds::DEVICE_INSERTED,
                Some(true),
                json!({"serial": PRIMARY.to_string(), "reader": reader, "state": "in_safe",
                       "device_id": id, "device_id_matches": true}),
            ),
            (
                inserted(reader, Some(serial(BACKUP)), Some(id)),
                kinds::DEVICE_INSERTED,
                Some(false),
                json!({"serial": BACKUP.to_string(), "reader": reader, "state": "in_safe",
                       "device_id": id, "device_id_matches": false}),
            ),
            (
                CardSighting::Inserted {
                    reader,
                    serial: None,
                    device_id: None,
                    problem: Some("the card reports no serial"),
                },
                kinds::UNKNOWN_DEVICE,
                None,
                json!({"serial": "unreadable", "reader": reader,
                       "error": "the card reports no serial"}),
            ),
            (
                inserted(reader, Some(serial(10_999_999)), None),
                kinds::UNKNOWN_DEVICE,
                None,
                json!({"serial": "10999999", "reader": reader}),
            ),
            (
                CardSighting::Removed {
                    reader,
                    card: Some(Some(PRIMARY)),
                },
                kinds::DEVICE_REMOVED,
                None,
                json!({"serial": PRIMARY.to_string(), "reader": reader}),
            ),
            (
                CardSighting::Removed {
                    reader,
                    card: Some(Some(10_999_999)),
                },
                kinds::CARD_REMOVED,
                None,
                json!({"serial": "10999999", "reader": reader}),
            ),
            (
                CardSighting::Removed {
                    reader,
                    card: Some(None),
                },
                kinds::CARD_REMOVED,
                None,
                json!({"serial": "unreadable", "reader": reader}),
            ),
            (
                CardSighting::Removed { reader, card: None },
                kinds::CARD_REMOVED,
                None,
                json!({"reader": reader}),
            ),
            (
                CardSighting::InForbiddenReader {
                    reader: "Other Reader 00",
                    atr: &[0x3b, 0x8f],
                },
                kinds::UNKNOWN_READER,
                None,
                json!({"reader": "Other Reader 00", "atr": "3b8f"}),
            ),
        ];
        for (sighting, kind, matches, body) in cases {
            let rec = w.custody.record_sighting(sighting).expect("recorded");
            assert_eq!(rec.kind, kind, "{sighting:?}");
            assert_eq!(rec.device_id_matches, matches, "{sighting:?}");
            assert_eq!(
                last(&w),
                (kind.to_owned(), WATCHER.to_owned(), body),
                "{sighting:?}"
            );
        }
    }

    #[test]
    fn only_an_officer_seals_and_the_counted_refusals_are_recorded_first() {
        let mut w = World::new();
        let operator = w.login("oscar");
        let e = w
            .custody
            .record_sealed(&operator, 1004)
            .expect_err("operator");
        assert_eq!(
            e.refusal(),
            crate::custody::error::RefusalCode::NotAnOfficer
        );
        assert!(!w.kinds().iter().any(|k| k == kinds::SEALED));
        assert_eq!(w.refusals(), ["not_an_officer"], "the refusal is recorded");
        // A refusal that costs nothing, twice: the repeat is counted, not yet recorded.
        for _ in 0..2 {
            let stranger = w.creds("zed");
            assert!(w.custody.authenticate(&stranger).is_err());
        }
        let officer = w.login("alice");
        let before = w.kinds().len();
        let seq = w.custody.record_sealed(&officer, 1001).expect("sealed");
        let kinds_now = w.kinds();
        assert_eq!(
            kinds_now.get(before..),
            Some(
                &[
                    crate::custody::store::kinds::REFUSALS_COUNTED.to_owned(),
                    kinds::SEALED.to_owned()
                ][..]
            ),
            "{kinds_now:?}"
        );
        assert_eq!(u64::try_from(kinds_now.len()).ok(), Some(seq));
        assert_eq!(
            last(&w),
            (
                kinds::SEALED.to_owned(),
                "alice".to_owned(),
                json!({"officer": "alice", "peer_uid": 1001})
            )
        );
    }

    #[test]
    fn the_unseal_names_its_quorum() {
        let mut w = World::new();
        let officers = vec!["alice".to_owned(), "bob".to_owned()];
        let seq = w.custody.record_unsealed(&officers, 0).expect("unsealed");
        let (kind, actor, body) = last(&w);
        assert_eq!(kind, kinds::UNSEALED);
        assert_eq!(actor, "alice+bob");
        assert_eq!(body, json!({"officers": ["alice", "bob"], "peer_uid": 0}));
        assert_eq!(
            w.custody.ledger().head().expect("head").map(|h| h.seq),
            Some(seq)
        );
    }
}
