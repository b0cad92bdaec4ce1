//! Recording a sealed file as remote, after its upload was verified (feature `tiering`
//! uploads; the record itself is plain storage and always compiled, so that recovery and
//! the crash enumeration share it).
//!
//! The protocol (`docs/design.md`, "Tiering"): the first change of the session marks the
//! state dirty; a new manifest generation records the file as remote (with the data
//! checksum the upload was verified against), synced; a state record names it, synced:
//! **that state record is the commit point**; then the local data file is deleted and the
//! directory synced. A crash before the commit point leaves the file local (the upload is
//! redone, the object overwritten); after it, recovery deletes a local copy still there.

use crate::error::{Error, IoContext, Result};
use crate::format::{Pending, RemoteId, Sealed};
use crate::fs::seeded;

use super::Store;

/// A sealed file uploaded and verified: the object holds its header and its data bytes
/// `[trim_offset, end)`, whose CRC32C is `data_crc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Uploaded {
    pub(crate) index: u32,
    pub(crate) trim_offset: u32,
    pub(crate) end: u32,
    pub(crate) data_crc: u32,
    /// The object's size: the header and the data bytes.
    pub(crate) size: u64,
}

impl Store {
    /// Records `up` as remote under `id` and deletes the local copy. `Ok(false)`, with
    /// nothing changed, when the file is no longer what was uploaded (trimmed, dropped or
    /// already remote meanwhile).
    ///
    /// # Errors
    /// [`Error::FilesInconsistency`] when the manifest records another checksum for the
    /// file than the upload's (the local copy is damaged: it is not tiered, and `verify`
    /// reports it), nothing changed; [`Error::Io`], after which the handle must be
    /// reopened (recovery finishes or forgets the record).
    #[cfg_attr(
        not(feature = "tiering"),
        expect(dead_code, reason = "only tiering uploads files")
    )]
    pub(crate) fn record_remote(&mut self, up: &Uploaded, id: &RemoteId) -> Result<bool> {
        let Some(info) = self.catalog.get(up.index) else {
            return Ok(false);
        };
        if up.index >= self.catalog.head()
            || info.remote
            || info.trim_offset != up.trim_offset
            || info.end != up.end
        {
            return Ok(false);
        }
        let path = self.data_path(up.index);
        if seeded!(self.fs, DeleteLocalBeforeRecord) {
            crate::fs::remove_if_exists(self.fs.as_ref(), &path).ctx("remove data file", &path)?;
            self.sync_dir()?;
        }
        // The manifest lists every sealed file from here on.
        self.mark_dirty()?;
        let Some(rec) = self.manifest.get(up.index).copied() else {
            return Err(Error::state(format!(
                "{} is sealed but not in the manifest",
                path.display()
            )));
        };
        if rec.data_crc.is_some_and(|c| c != up.data_crc) {
            return Err(Error::FilesInconsistency {
                path,
                reason: format!(
                    "its data have CRC32C {:08x}, the manifest records {:08x}: the local copy \
                     is damaged, and is not tiered",
                    up.data_crc,
                    rec.data_crc.unwrap_or_default()
                ),
            });
        }
        let mut next = self.manifest.with(
            up.index,
            Some(Sealed {
                remote: true,
                data_crc: Some(up.data_crc),
                ..rec
            }),
        );
        next.remote = Some(id.clone());
        self.publish_manifest(next)?;
        self.write_head_state(false, Pending::None)?;
        self.forget_old_manifest()?;
        crate::fs::remove_if_exists(self.fs.as_ref(), &path).ctx("remove data file", &path)?;
        self.sync_dir()?;
        self.catalog.set_remote(up.index, true);
        Ok(true)
    }
}
