//! The fuzz targets' shared reading of their input as APDUs: split at each `0xFF 0xFF` pair,
//! and the frame's promise about every answer.

/// The APDUs in `bytes`, split at each `0xFF 0xFF` pair (the pair itself is dropped).
pub fn apdus(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes).filter(|b| !b.is_empty());
    std::iter::from_fn(move || {
        let r = rest?;
        let end = r
            .windows(2)
            .position(|w| w == [0xFF, 0xFF])
            .unwrap_or(r.len());
        let (apdu, tail) = r.split_at(end);
        rest = tail.get(2..).filter(|t| !t.is_empty());
        Some(apdu)
    })
}

/// Every answer ends with a status word and carries at most 256 data bytes (longer answers are
/// chunked with `61xx`).
pub fn check_answer(answer: &[u8]) {
    assert!(answer.len() >= 2, "every answer ends with a status word");
    assert!(answer.len() <= 258, "answers are chunked to 256 data bytes");
}
