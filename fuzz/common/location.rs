//! The `location` fuzz target: [`ItemLocation::from_bytes`] and `str::parse` on arbitrary
//! input never panic, refuse bad input with `InvalidLocation`, and round-trip what they
//! accept.
//!
//! Shared by `fuzz/fuzz_targets/location.rs` and `tests/it/fuzz_replay.rs`.

use aiodiskdb::{Error, ItemLocation};

/// Runs one input. `Err` describes a violated property.
///
/// # Errors
/// A description of the violated property.
pub(crate) fn run(data: &[u8]) -> Result<(), String> {
    match ItemLocation::from_bytes(data) {
        Ok(loc) if data.len() == ItemLocation::ENCODED_LEN => {
            if loc.to_bytes()[..] != *data {
                return Err(format!(
                    "from_bytes({data:02x?}) = {loc:?} does not re-encode"
                ));
            }
            text_round_trip(loc)?;
        }
        Ok(loc) => {
            return Err(format!(
                "from_bytes accepted {} bytes as {loc:?}",
                data.len()
            ))
        }
        Err(Error::InvalidLocation { .. }) if data.len() != ItemLocation::ENCODED_LEN => {}
        Err(e) => return Err(format!("from_bytes({data:02x?}) failed with {e:?}")),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let model = model_parse(text);
        match text.parse::<ItemLocation>() {
            Ok(loc) => {
                if model != Some(loc) {
                    return Err(format!("parse({text:?}) = {loc:?}, expected {model:?}"));
                }
                text_round_trip(loc)?;
                let back = ItemLocation::from_bytes(&loc.to_bytes())
                    .map_err(|e| format!("from_bytes(to_bytes({loc:?})) failed: {e}"))?;
                if back != loc {
                    return Err(format!("bytes round trip of {loc:?} gave {back:?}"));
                }
            }
            Err(Error::InvalidLocation { .. }) if model.is_none() => {}
            Err(e) => {
                return Err(format!(
                    "parse({text:?}) failed with {e:?}, expected {model:?}"
                ))
            }
        }
    }
    Ok(())
}

/// What `index:position:size` means: three `u32`s of decimal digits only, as `Display`
/// prints them (no sign, no whitespace; leading zeros are allowed).
fn model_parse(text: &str) -> Option<ItemLocation> {
    let parts: Vec<&str> = text.split(':').collect();
    let [index, position, size] = parts.as_slice() else {
        return None;
    };
    let num = |p: &str| -> Option<u32> {
        let digits = p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty();
        digits.then(|| p.parse().ok()).flatten()
    };
    Some(ItemLocation {
        index: num(index)?,
        position: num(position)?,
        size: num(size)?,
    })
}

fn text_round_trip(loc: ItemLocation) -> Result<(), String> {
    let text = loc.to_string();
    match text.parse::<ItemLocation>() {
        Ok(back) if back == loc => Ok(()),
        other => Err(format!(
            "{loc:?} displays as {text:?}, which parses as {other:?}"
        )),
    }
}
