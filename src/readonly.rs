//! Read-only opens (SPEC 9): a handle that takes no lock, writes nothing and never
//! recovers, so that other processes can read while one writes.
//!
//! Its view of the directory is what recovery would keep, computed the way `open` computes
//! it (the survey and the pure plan of `recovery/`), with none of the plan's actions carried
//! out. The view follows the writer in two steps:
//!
//! - The state record names the session's head, its manifest and any trim in progress; a
//!   writer rewrites it only for a rollover, a trim, a drop, its first change and its stop.
//!   When its sequence number moved, the whole directory is surveyed again.
//! - Otherwise only the head grew: its item index's commit slots are read, and the newest
//!   commit whose batch matches its checksums (the rule recovery applies) moves the head's
//!   end. The directory is not listed.
//!
//! A read refreshes the view when its location lies past what the view knows (a newer
//! commit, a new head), when its file is gone, and when its CRC32C does not match (the
//! writer cut the head and wrote other items there). A read that no CRC checks (a sub-range,
//! unindexed bytes, or `verify_reads(false)`) is kept only if the state record did not move
//! while it read: a writer records a trim in the state before it cuts a byte. And a view
//! older than [`REFRESH_AFTER`] checks the state record at the next read, so that a trim or
//! a drop is seen within that time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::datafile::{Access, DataFile};
use crate::error::{Error, IoContext, Result};
use crate::format::{Pending, State, SLOT_BYTES};
use crate::fs::{Fs, FsFile};
use crate::index::{verify_head, HeadCommit, IndexFile};
use crate::recovery::survey;
use crate::store::Options;

/// How old a view may get before a read checks the state record again.
pub(crate) const REFRESH_AFTER: Duration = Duration::from_millis(50);

/// What a read-only handle knows of the directory, and how it follows the writer.
#[derive(Debug)]
pub(crate) struct Follower {
    view: Mutex<View>,
    /// The state file, once there is one (a directory only the Python library wrote has
    /// none until a writer of ours opens it).
    state_file: OnceLock<Arc<dyn FsFile>>,
    /// The view's state sequence number (`u64::MAX`: no state record).
    seq: AtomicU64,
    /// When the view last checked the state record, in nanoseconds after `epoch`.
    checked: AtomicU64,
    epoch: Instant,
}

/// The view: the catalog readers use, and the state record it comes from.
#[derive(Debug)]
struct View {
    fs: Arc<dyn Fs>,
    opts: Options,
    state: Option<State>,
    catalog: Catalog,
}

/// What the head's item index says of a session the view follows.
enum Grown {
    /// Nothing new.
    Same,
    /// Newer commits: the catalog with the head's end moved.
    To(Catalog),
    /// The index cannot tell: survey the directory.
    Survey,
}

/// The newest valid state record in `raw` (the state file's bytes).
fn newest(raw: &[u8]) -> Option<State> {
    State::newest(raw).map(|s| s.state)
}

fn seq_of(state: Option<State>) -> u64 {
    state.map_or(u64::MAX, |s| s.seq)
}

impl Follower {
    /// Surveys the directory of `opts` and plans it as `open` would, carrying nothing out.
    ///
    /// # Errors
    /// [`Error::Io`] (`NotFound` when the directory does not exist); the first error of the
    /// plan (committed data missing, a bad header, another format).
    pub(crate) fn open(fs: Arc<dyn Fs>, mut opts: Options) -> Result<Follower> {
        if !fs.dir_exists(&opts.dir).ctx("open directory", &opts.dir)? {
            return Err(Error::io(
                "open directory",
                &opts.dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "directory does not exist"),
            ));
        }
        // Nothing is carried out, so nothing pending is refused: the view is what the
        // writer's recovery will keep.
        opts.clean_stale_data = true;
        let follower = Follower {
            view: Mutex::new(View {
                fs,
                opts,
                state: None,
                catalog: Catalog::new([], 0),
            }),
            state_file: OnceLock::new(),
            seq: AtomicU64::new(u64::MAX),
            checked: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        {
            let mut view = follower.lock();
            let (state, catalog) = view.survey(&follower)?;
            view.state = state;
            view.catalog = catalog;
            follower.seq.store(seq_of(state), Ordering::SeqCst);
        }
        follower.mark_checked();
        Ok(follower)
    }

    fn lock(&self) -> MutexGuard<'_, View> {
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn mark_checked(&self) {
        self.checked.store(self.now(), Ordering::SeqCst);
    }

    /// The catalog of the view.
    pub(crate) fn catalog(&self) -> Catalog {
        self.lock().catalog.clone()
    }

    /// Whether the view is older than [`REFRESH_AFTER`]; the first caller to ask after
    /// that gets `true` (and refreshes), the others go on with the view they have.
    pub(crate) fn claim_stale(&self) -> bool {
        let checked = self.checked.load(Ordering::SeqCst);
        let now = self.now();
        let after = u64::try_from(REFRESH_AFTER.as_nanos()).unwrap_or(u64::MAX);
        now.saturating_sub(checked) > after
            && self
                .checked
                .compare_exchange(checked, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// Brings the view up to the writer's latest commit, and hands the catalog to `adopt`
    /// while the view is still locked (so that two refreshes never hand them over in the
    /// wrong order). Blocking.
    ///
    /// # Errors
    /// As [`Follower::open`].
    pub(crate) fn refresh(&self, adopt: impl FnOnce(Catalog)) -> Result<()> {
        let mut view = self.lock();
        let raw = self.read_state(&view)?;
        let state = newest(&raw);
        self.mark_checked();
        let same_session =
            matches!((state, view.state), (Some(now), Some(was)) if now.seq == was.seq);
        let grown = if same_session {
            // A writer that cuts the head records it in the state before the bytes go, but
            // a read of the head may still meet the cut: the survey, which waits for the
            // state to hold still, settles it (and reports what persists).
            view.grown_head().unwrap_or(Grown::Survey)
        } else {
            Grown::Survey
        };
        let catalog = match grown {
            Grown::To(c) => c,
            Grown::Same => return Ok(()),
            Grown::Survey => {
                let (state, fresh) = view.survey(self)?;
                let changed = [view.catalog.head(), fresh.head()];
                let catalog = view.catalog.carry_over(&fresh, &changed);
                view.state = state;
                catalog
            }
        };
        view.catalog = catalog.clone();
        adopt(catalog);
        // After the catalog is handed over: a token taken before a listing is never newer
        // than the catalog the listing comes from.
        self.seq.store(seq_of(view.state), Ordering::SeqCst);
        Ok(())
    }

    /// Whether the view's state record has an operation pending on data file `index` (a
    /// trim or drop the writer recorded, and may not have carried out yet: the view counts
    /// it as done, as recovery would).
    pub(crate) fn pending_on(&self, index: u32) -> bool {
        self.lock().state.is_some_and(|st| match st.pending {
            Pending::None => false,
            Pending::Ltrim { index: i, .. }
            | Pending::Drop { index: i }
            | Pending::Rtrim { index: i } => i == index,
        })
    }

    /// The view's state token: taken before a caller looks a location up in the catalog,
    /// and given to [`Follower::unchanged_since`] once it has read what it looked up.
    pub(crate) fn token(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Whether the state record is still the one of `token` (taken before the look-up):
    /// bytes read since were not cut by a trim (a writer records a trim before it cuts a
    /// byte of a data file or of its item index). Blocking, but the state file is in the
    /// page cache.
    ///
    /// # Errors
    /// [`Error::Io`] when the state file cannot be read.
    pub(crate) fn unchanged_since(&self, token: u64) -> Result<bool> {
        let seq = token;
        let Some(file) = self.state_file.get() else {
            // No state record: a directory of the Python library, whose appends are
            // judged by the next survey.
            return Ok(seq == u64::MAX);
        };
        let mut raw = vec![0u8; 2 * SLOT_BYTES];
        let n = file
            .read_up_to(&mut raw, 0)
            .ctx("read state file", &self.lock().opts.state_path())?;
        raw.truncate(n);
        Ok(seq_of(newest(&raw)) == seq)
    }

    /// The state file's bytes (empty when there is none).
    fn read_state(&self, view: &View) -> Result<Vec<u8>> {
        let path = view.opts.state_path();
        let file = if let Some(f) = self.state_file.get() {
            f
        } else {
            match view.fs.open_ro(&path) {
                Ok(f) => self.state_file.get_or_init(|| f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(Error::io("open state file", &path, e)),
            }
        };
        survey::read_state(file.as_ref(), &path)
    }
}

impl View {
    /// Surveys and plans the directory until the writer holds still across the survey
    /// (`survey::settled`); the state and the catalog the plan keeps.
    fn survey(&self, follower: &Follower) -> Result<(Option<State>, Catalog)> {
        // Planned as recovery would (not live): the view is what it will keep.
        let (survey, plan) = survey::settled(self.fs.as_ref(), &self.opts, || {
            Ok((follower.read_state(self)?, false))
        })?;
        if let Some(e) = plan.errors.first() {
            return Err(e.clone());
        }
        // Files on object storage: refused as the writer's open refuses them (no tiering,
        // or another prefix), else read through the handle's remote reader.
        crate::recovery::check_remote(&self.opts, &plan)?;
        Ok((survey.state(), plan.catalog()))
    }

    /// The head's newer commits in the same session, read from its item index: the view's
    /// catalog with the head's end moved. A head the index cannot follow (none, or one
    /// that starts after the view) is surveyed instead.
    fn grown_head(&mut self) -> Result<Grown> {
        let Some(state) = self.state else {
            return Ok(Grown::Survey);
        };
        if state.clean || state.pending == (Pending::Rtrim { index: state.head }) {
            // A clean directory does not change under a session; an rtrim of the head
            // in progress is settled by the state's record.
            return Ok(Grown::Same);
        }
        let head = self.catalog.head();
        let info = self.catalog.head_info();
        let fs = self.fs.as_ref();
        let path = self.opts.data_path(head);
        let (data, extent) = match DataFile::open(fs, &path, self.opts.format.genesis, Access::Read)
        {
            Ok(d) => d,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Grown::Survey)
            }
            Err(e) => return Err(e),
        };
        let Some(idx) = IndexFile::open_ro(fs, &self.opts.index_path(head))? else {
            return Ok(Grown::Survey);
        };
        if idx.header().index != head
            || idx.header().genesis != self.opts.format.genesis
            || info.end < idx.header().first.max(extent.trim_offset)
            || info.end > extent.end
            || extent.trim_offset != info.trim_offset
        {
            return Ok(Grown::Survey);
        }
        let baseline = HeadCommit {
            end: info.end,
            entries: info.entries,
        };
        let now = verify_head(&data, extent.end, &idx, baseline, true)?;
        if now == baseline {
            return Ok(Grown::Same);
        }
        let mut catalog = self.catalog.clone();
        catalog.set_head_end(now.end, now.entries);
        Ok(Grown::To(catalog))
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::io;
    use std::path::Path;

    use super::*;
    use crate::fs::RealFs;
    use crate::{AioDiskDb, ItemLocation};

    /// The real file system with every change refused (a directory without write
    /// permission, even for root), and the refusals counted.
    #[derive(Debug, Default)]
    struct NoWrites {
        refused: std::sync::atomic::AtomicUsize,
    }

    impl NoWrites {
        fn refuse<T>(&self) -> io::Result<T> {
            self.refused.fetch_add(1, Ordering::SeqCst);
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "read-only test fs",
            ))
        }
    }

    impl Fs for NoWrites {
        fn create_new(&self, _: &Path) -> io::Result<Arc<dyn FsFile>> {
            self.refuse()
        }
        fn open_rw(&self, _: &Path) -> io::Result<Arc<dyn FsFile>> {
            self.refuse()
        }
        fn open_ro(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
            RealFs.open_ro(path)
        }
        fn open_or_create(&self, _: &Path) -> io::Result<(Arc<dyn FsFile>, bool)> {
            self.refuse()
        }
        fn rename(&self, _: &Path, _: &Path) -> io::Result<()> {
            self.refuse()
        }
        fn remove(&self, _: &Path) -> io::Result<()> {
            self.refuse()
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
            RealFs.list(dir)
        }
        fn sync_dir(&self, _: &Path) -> io::Result<()> {
            self.refuse()
        }
        fn dir_exists(&self, dir: &Path) -> io::Result<bool> {
            RealFs.dir_exists(dir)
        }
        fn create_dir_all(&self, _: &Path) -> io::Result<()> {
            self.refuse()
        }
        fn file_id(&self, path: &Path) -> io::Result<Option<(u64, u64)>> {
            RealFs.file_id(path)
        }
    }

    #[tokio::test]
    async fn a_reader_opens_reads_and_follows_without_one_write() -> crate::Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let w = AioDiskDb::builder(dir.path())
            .max_file_size(124)
            .max_buffer_size(100)
            .open()
            .await?;
        let mut items = Vec::new();
        for tag in 0u8..15 {
            items.push((w.add(vec![tag; 10]).await?, vec![tag; 10]));
        }
        w.flush().await?;
        let fs = Arc::new(NoWrites::default());
        let (cfg, hooks) = AioDiskDb::builder(dir.path()).read_only().validate()?;
        let r = AioDiskDb::start_with(Arc::clone(&fs) as Arc<dyn Fs>, cfg, hooks).await?;
        for tag in 15u8..30 {
            items.push((w.add(vec![tag; 10]).await?, vec![tag; 10]));
        }
        w.flush().await?;
        for (loc, data) in &items {
            assert_eq!(r.read(*loc).await?.as_deref(), Some(&data[..]), "{loc}");
        }
        assert!(r.verify().await?.is_ok());
        assert_eq!(r.locations(2).await?.len(), 10);
        assert!(matches!(r.add(vec![1]).await, Err(crate::Error::ReadOnly)));
        let past = ItemLocation {
            index: 7,
            position: 0,
            size: 1,
        };
        assert_eq!(r.read(past).await?, None);
        r.stop().await?;
        w.stop().await?;
        assert_eq!(
            fs.refused.load(Ordering::SeqCst),
            0,
            "the reader tried to write"
        );
        Ok(())
    }
}
