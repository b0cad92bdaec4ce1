//! Damage after the fact: on a crash image, one byte flipped in the newest state slot, in
//! the head's newest commit slot, or inside an acknowledged item, or a sealed data file cut
//! by a byte. Whatever recovery makes of it, it must say so rather than lose or alter data
//! silently: `open` fails, or a read of the damaged item fails with `Corrupted`; every
//! other acknowledged item reads back exactly, and nothing reads back altered.

use std::path::PathBuf;

use super::crash::{open_store, read_checked, reader, sim_config, Model, St};
use super::sim::SimFs;
use crate::format::{Commit, State, COMMIT_BYTES, HEADER_BYTES, SLOT_BYTES};
use crate::fs::Fs;
use crate::location::ItemLocation;

/// The kinds of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rot {
    /// A byte of the newest state slot.
    StateSlot,
    /// A byte of the newest commit slot of the highest item index.
    CommitSlot,
    /// A byte inside an acknowledged item.
    ItemByte,
    /// The last byte of the lowest data file below the head the state records.
    CutSealed,
}

impl Rot {
    pub(crate) const ALL: [Rot; 4] = [
        Rot::StateSlot,
        Rot::CommitSlot,
        Rot::ItemByte,
        Rot::CutSealed,
    ];
}

fn path(name: &str) -> PathBuf {
    sim_config().path.join(name)
}

fn read_file(fs: &SimFs, name: &str) -> Vec<u8> {
    let f = fs.open_ro(&path(name)).expect("listed");
    let mut out = vec![0u8; usize::try_from(f.len().expect("len")).expect("small")];
    f.read_exact_at(&mut out, 0).expect("read");
    out
}

fn flip(fs: &SimFs, name: &str, at: u64) {
    let f = fs.open_rw(&path(name)).expect("listed");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read");
    f.write_all_at(&[b[0] ^ 0x55], at).expect("write");
}

/// What [`apply`] did.
pub(crate) struct Applied {
    /// The item it altered ([`Rot::ItemByte`]).
    pub(crate) altered: Option<ItemLocation>,
}

/// Applies `rot` to `image`; `None` when the image has nothing it applies to.
pub(crate) fn apply(image: &SimFs, rot: Rot, m: &Model, seed: u64) -> Option<Applied> {
    let cfg = sim_config();
    let mut names = image.names();
    names.sort();
    match rot {
        Rot::StateSlot => {
            let name = cfg.naming.state_file();
            if !names.contains(&name) {
                return None;
            }
            let raw = read_file(image, &name);
            let newest = raw
                .chunks(SLOT_BYTES)
                .take(2)
                .enumerate()
                .filter_map(|(i, s)| State::decode(s).map(|d| (d.state.seq, i)))
                .max();
            let (_, slot) = newest?;
            flip(image, &name, (slot * SLOT_BYTES) as u64 + 13);
        }
        Rot::CommitSlot => {
            let name = names
                .iter()
                .rfind(|n| cfg.naming.parse_index_file(n).is_some())?;
            let raw = read_file(image, name);
            let c = Commit::slots(&raw[..raw.len().min(2 * COMMIT_BYTES)])
                .first()
                .copied()?;
            flip(image, name, c.slot_offset() + 21);
        }
        Rot::ItemByte => {
            let durable: Vec<_> = m.items.iter().filter(|i| i.st == St::Durable).collect();
            if durable.is_empty() {
                return None;
            }
            let it = durable[usize::try_from(seed).unwrap_or(0) % durable.len()];
            let name = cfg.naming.data_file(it.loc.index);
            if !names.contains(&name) {
                return None;
            }
            let raw = read_file(image, &name);
            let Ok(h) =
                crate::format::Header::decode(&raw[..HEADER_BYTES.min(raw.len())], cfg.genesis)
            else {
                return None;
            };
            if it.loc.position < h.trim_offset {
                return None;
            }
            let at = HEADER_BYTES as u64
                + u64::from(it.loc.position - h.trim_offset)
                + u64::from(it.loc.size / 2);
            if at >= raw.len() as u64 {
                return None;
            }
            flip(image, &name, at);
            return Some(Applied {
                altered: Some(it.loc),
            });
        }
        Rot::CutSealed => {
            // A file the state records as sealed (below its head).
            let state_name = cfg.naming.state_file();
            if !names.contains(&state_name) {
                return None;
            }
            let head = State::newest(&read_file(image, &state_name))?.state.head;
            let data: Vec<&String> = names
                .iter()
                .filter(|n| cfg.naming.parse_data_file(n).is_some_and(|i| i < head))
                .collect();
            if data.is_empty() {
                return None;
            }
            let f = image.open_rw(&path(data[0])).expect("listed");
            let len = f.len().expect("len");
            if len <= HEADER_BYTES as u64 {
                return None;
            }
            f.set_len(len - 1).expect("cut");
        }
    }
    Some(Applied { altered: None })
}

/// Recovers a damaged image: an error is a report; an open that succeeds must serve every
/// acknowledged item exactly or fail its read with `Corrupted`, and nothing altered.
///
/// One loss is by design: an item altered in the head's newest batch makes that batch's
/// data differ from the checksums its commit names, which recovery cannot tell from a
/// batch a crash tore, so it falls back to the previous commit (and `check` shows the cut
/// before it happens). The items of that dropped range may be missing.
pub(crate) fn check(
    image: &SimFs,
    m: &Model,
    rot: Rot,
    altered: Option<ItemLocation>,
) -> Result<(), String> {
    let Ok(store) = open_store(image) else {
        return Ok(()); // reported
    };
    let catalog = store.catalog();
    drop(store);
    let cfg = sim_config();
    let (head, end) = (catalog.head(), catalog.head_info().end);
    let dropped = |l: ItemLocation| l.index == head && l.position >= end;
    let tail_dropped = altered.is_some_and(dropped);
    let reader = reader(image, &cfg);
    for it in &m.items {
        if tail_dropped && dropped(it.loc) {
            continue;
        }
        match (read_checked(&reader, &catalog, it.loc), it.st) {
            (Ok(Some(got)), _) if got == it.data => {}
            (Ok(Some(_)), St::Durable | St::Pending | St::MaybeGone) => {
                let idx = cfg.naming.index_file(it.loc.index);
                let entries = image
                    .names()
                    .contains(&idx)
                    .then(|| crate::format::decode_entries(&read_file(image, &idx)[1056..]));
                let state = State::newest(&read_file(image, &cfg.naming.state_file()));
                return Err(format!(
                    "{rot:?}: item {} ({:?}) read back altered (file {:?}, entries {entries:?}, state {state:?}, names {:?})",
                    it.loc,
                    it.st,
                    catalog.get(it.loc.index),
                    image.names()
                ));
            }
            (Ok(None), St::Durable) => {
                let state = State::newest(&read_file(image, &cfg.naming.state_file()));
                return Err(format!(
                    "{rot:?}: acknowledged item {} silently missing (files {:?}, state {state:?}, catalog {catalog:?})",
                    it.loc,
                    image.names()
                ));
            }
            (Err(crate::Error::Corrupted { .. }), _) if rot == Rot::ItemByte => {}
            (Err(e), St::Durable) => {
                return Err(format!("{rot:?}: acknowledged item {}: {e}", it.loc));
            }
            _ => {}
        }
    }
    Ok(())
}
