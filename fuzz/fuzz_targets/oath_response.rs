//! Every public YKOATH parser on arbitrary card answers: errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::token::oath::{self, AccessKey, CredentialName, HashAlgorithm, PutRequest};

fuzz_target!(|data: &[u8]| {
    let _ = oath::parse_select(data);
    let _ = oath::parse_list(data);
    let _ = oath::parse_calculate_truncated(data);
    let _ = oath::parse_calculate_full(data);
    let _ = oath::parse_calculate_all(data);
    let _ = oath::verify_validate(
        &AccessKey::from_bytes([0; 16]),
        HashAlgorithm::Sha1,
        &[0; 8],
        data,
    );
    let _ = oath::dynamic_truncate(data);
    let _ = CredentialName::from_bytes(data);
    // The applet-side decoders read outside bytes too.
    let _ = PutRequest::decode(data);
    let _ = oath::SetCodeRequest::decode(data);
    let _ = oath::ValidateRequest::decode(data);
    let _ = oath::CalculateRequest::decode(data);
    let _ = oath::decode_names("RENAME", data);
});
