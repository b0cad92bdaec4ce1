//! Moving a sealed file between the directory and object storage: recording it as remote
//! after its upload was verified, and as local again after its download (feature
//! `tiering` transfers; the records themselves are plain storage and always compiled, so
//! that recovery and the crash enumeration share them).
//!
//! The protocols (`docs/design.md`, "Tiering" and "Hydrate"): the first change of the
//! session marks the state dirty; a new manifest generation records where the file is (with
//! the data checksum the copy was checked against), synced; a state record names it,
//! synced: **that state record is the commit point**. To remote: the local data file is
//! deleted after it, and the directory synced; a crash before leaves the file local (the
//! upload is redone, the object overwritten), after it recovery deletes a local copy still
//! there. To local: the downloaded copy, synced under a temp name, is renamed into place and
//! the directory synced before it; a crash before leaves the file remote (recovery deletes
//! the temp file or the renamed copy, and the object is still there), after it the caller
//! deletes the object. A file trimmed while remote comes back as its logical range only:
//! the object is checked against what the manifest records it holds (its objects section),
//! the local file against the checksum and tail recorded with it.

use crate::error::{Error, IoContext, Result};
use crate::format::{ObjectSpan, Pending, RemoteId, Sealed};
use crate::fs::seeded;

use super::Store;

/// A copy of a sealed file, on the other side: the object (or the downloaded temp file)
/// holds its header (with trim offset `trim_offset`) and its data bytes `[trim_offset,
/// end)`, whose CRC32C is `data_crc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileCopy {
    pub(crate) index: u32,
    pub(crate) trim_offset: u32,
    pub(crate) end: u32,
    pub(crate) data_crc: u32,
    /// The copy's size: the header and the data bytes.
    pub(crate) size: u64,
}

/// Where a record puts a sealed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// On object storage: the copy is the verified object, the local file goes.
    Remote,
    /// In the directory again: the copy is the temp file (`Naming::temp_file`) written
    /// from the object, synced, renamed into place.
    #[cfg_attr(
        not(feature = "tiering"),
        expect(dead_code, reason = "only hydrate downloads files")
    )]
    Local {
        /// What the object held, as downloaded: its range and the CRC32C of its data bytes
        /// (wider than the copy's for a file trimmed while remote).
        object: ObjectSpan,
        /// The 8 bytes before the copy's end (the header's when it holds fewer).
        tail: [u8; 8],
    },
}

#[cfg_attr(
    not(feature = "tiering"),
    expect(dead_code, reason = "only tiering moves files")
)]
impl Store {
    /// Records `copy` at `to` (the key prefix and store `id`, for a remote file), moving
    /// the file (deleting the local copy, or renaming the downloaded one into place).
    /// `Ok(false)`, with nothing changed, when the file is no longer what was copied
    /// (trimmed, dropped, or already at `to` meanwhile).
    ///
    /// # Errors
    /// [`Error::FilesInconsistency`] when the manifest records another checksum for the
    /// file than the copy's (a local copy damaged since it was sealed, which is not tiered),
    /// or another range or checksum for its object than the download's (which is not
    /// recorded), nothing changed but the session's dirty record; [`Error::Io`], after which the handle must be reopened
    /// (recovery finishes or forgets the record).
    pub(crate) fn record_place(
        &mut self,
        copy: &FileCopy,
        to: Place,
        id: &RemoteId,
    ) -> Result<bool> {
        let Some(info) = self.catalog.get(copy.index) else {
            return Ok(false);
        };
        if copy.index >= self.catalog.head()
            || info.remote == (to == Place::Remote)
            || info.trim_offset != copy.trim_offset
            || info.end != copy.end
        {
            return Ok(false);
        }
        let path = self.data_path(copy.index);
        let temp = self
            .dir()
            .join(self.opts.format.naming.temp_file(copy.index));
        if to == Place::Remote && seeded!(self.fs, DeleteLocalBeforeRecord) {
            crate::fs::remove_if_exists(self.fs.as_ref(), &path).ctx("remove data file", &path)?;
            self.sync_dir()?;
        }
        // The manifest lists every sealed file from here on.
        self.mark_dirty()?;
        let Some(rec) = self.manifest.get(copy.index).copied() else {
            return Err(Error::state(format!(
                "{} is sealed but not in the manifest",
                path.display()
            )));
        };
        let record = match to {
            Place::Remote => {
                if let Some(recorded) = rec.data_crc.filter(|c| *c != copy.data_crc) {
                    return Err(Error::FilesInconsistency {
                        path,
                        reason: format!(
                            "its data have CRC32C {:08x}, the manifest records {recorded:08x}: \
                             the local copy is damaged, and is not tiered",
                            copy.data_crc
                        ),
                    });
                }
                Sealed {
                    remote: true,
                    data_crc: Some(copy.data_crc),
                    ..rec
                }
            }
            Place::Local { object, tail } => {
                let recorded = rec.object_span();
                if recorded != Some(object) {
                    let recorded = recorded.map_or("nothing".into(), |o| span(&o));
                    return Err(Error::FilesInconsistency {
                        path: temp,
                        reason: format!(
                            "the object held {}, the manifest records {recorded}: the \
                             downloaded object differs, and is not hydrated",
                            span(&object)
                        ),
                    });
                }
                self.fs
                    .rename(&temp, &path)
                    .ctx("rename temp file", &temp)?;
                self.sync_dir()?;
                // A plain local record: the kept range's checksum and tail, no object.
                let (data_crc, tail) =
                    if rec.object.is_some() && seeded!(self.fs, HydrateStaleRecord) {
                        (rec.data_crc, rec.tail)
                    } else {
                        (Some(copy.data_crc), tail)
                    };
                Sealed {
                    remote: false,
                    data_crc,
                    tail,
                    object: None,
                    ..rec
                }
            }
        };
        let mut next = self.manifest.with(copy.index, Some(record));
        if to == Place::Remote {
            next.remote = Some(id.clone());
        }
        self.publish_manifest(next)?;
        self.write_head_state(false, Pending::None)?;
        self.forget_old_manifest()?;
        if to == Place::Remote {
            crate::fs::remove_if_exists(self.fs.as_ref(), &path).ctx("remove data file", &path)?;
            self.sync_dir()?;
        }
        self.catalog.set_remote(copy.index, to == Place::Remote);
        Ok(true)
    }
}

/// An object's range and checksum, for a message.
fn span(o: &ObjectSpan) -> String {
    format!(
        "positions {}..{} with data CRC32C {:08x}",
        o.trim_offset, o.end, o.data_crc
    )
}
