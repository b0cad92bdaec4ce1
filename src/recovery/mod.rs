//! Opening a directory: lock it, survey it without changing anything (`survey.rs`), plan
//! the recovery (`plan.rs`, pure), carry the plan out, and hand the store its files.
//!
//! Every action is idempotent, so a crash during recovery is recovered by running it
//! again. Nothing changes before the whole directory has been checked: a bad header, a
//! link, committed data missing or a Python checkpoint that does not match fail `open`
//! with the directory as it was.

mod checks;
pub(crate) mod plan;
pub(crate) mod survey;

use std::sync::Arc;

use crate::datafile::{Access, DataFile};
use crate::error::{Error, IoContext, Result};
use crate::format::{State, SLOT_LEN};
#[cfg(test)]
use crate::fs::seeded;
use crate::fs::{Fs, FsFile};
use crate::index::IndexFile;
use crate::store::{Head, Options, PyCheckpoint, StateFile, Store};
use plan::{Action, Plan};

/// How often and how far apart `open` tries the directory lock.
const LOCK_ATTEMPTS: u32 = 20;
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(5);

/// Opens (creating if allowed), locks and recovers the directory of `opts`.
///
/// # Errors
/// As `Builder::open`: the first error of the plan, [`Error::Locked`], [`Error::Io`].
pub(crate) fn open(fs: Arc<dyn Fs>, opts: Options) -> Result<Store> {
    ensure_dir(fs.as_ref(), &opts)?;
    let (path, file) = lock_state(fs.as_ref(), &opts)?;
    let raw = survey::read_state(file.as_ref(), &path)?;
    let survey = survey::survey(fs.as_ref(), &opts.dir, &opts.format, &raw)?;
    let plan = plan::plan(&opts, &survey, false);
    if let Some(e) = plan.errors.first() {
        return Err(e.clone());
    }
    check_remote(&opts, &plan)?;
    for w in &plan.warnings {
        tracing::warn!(warning = %w, "aiodiskdb: opening with damage (`aiodiskdb check` lists it)");
    }
    #[cfg(test)]
    let plan = if seeded!(fs, TrustFileLength) {
        plan.trusting_file_length(&survey)
    } else {
        plan
    };
    execute(fs.as_ref(), &opts, &plan)?;
    // The plan has the head's trim offset from its header (or created it), under the lock.
    let head_file = DataFile::open_checked(
        fs.as_ref(),
        &opts.data_path(plan.head),
        plan.files.get(&plan.head).map_or(0, |f| f.0),
    )?;
    let head_idx = if plan.head_indexed {
        IndexFile::open(fs.as_ref(), &opts.index_path(plan.head))?
    } else {
        None
    };
    let head_seq = match &head_idx {
        Some(idx) => idx.commits()?.first().map_or(0, |c| c.seq),
        None => 0,
    };
    let catalog = plan.catalog();
    let py_checkpoint = match plan.keep_checkpoint {
        Some(id) => Some(PyCheckpoint::adopt(fs.as_ref(), &opts, id, plan.head)?),
        None => None,
    };
    let head_end = catalog.head_info().end;
    let state = survey.state().unwrap_or(State {
        seq: 0,
        clean: false,
        head: plan.head,
        head_end,
        pending: crate::format::Pending::None,
        checkpoint: 0,
        head_entries: 0,
        manifest: 0,
    });
    let head = Head {
        file: head_file,
        idx: head_idx,
        seq: head_seq,
    };
    Store::new(
        fs,
        opts,
        StateFile { path, file, state },
        head,
        catalog,
        plan.manifest,
        py_checkpoint,
    )
}

/// Refuses a directory whose manifest records files on object storage when tiering is not
/// configured, or configured with another key prefix or another S3 bucket: never read as
/// missing data, or as another database's.
pub(crate) fn check_remote(opts: &Options, plan: &Plan) -> Result<()> {
    if plan.remote.is_empty() {
        return Ok(());
    }
    let recorded = plan.manifest.remote.clone().unwrap_or_default();
    let files = plan
        .remote
        .iter()
        .map(|&i| format!("{i} ({})", opts.format.naming.data_file(i)))
        .collect::<Vec<_>>()
        .join(", ");
    let whereabouts = format!(
        "index(es) {files} are on object storage {} under prefix {:?}",
        recorded.store, recorded.prefix
    );
    let url = store_url(&recorded);
    match &opts.remote {
        None => Err(Error::config(
            "tiering",
            &"none",
            format!(
                "{whereabouts}: open with Builder::tiering(Tiering::new(store, {:?})); with the \
                 CLI, give --store {url}",
                recorded.prefix
            ),
        )),
        Some(ours) if ours.prefix != recorded.prefix => Err(Error::config(
            "tiering prefix",
            &format!("{:?}", ours.prefix),
            format!("{whereabouts}: open with that prefix; with the CLI, give --store {url}"),
        )),
        Some(ours) => match (s3_bucket(&ours.store), s3_bucket(&recorded.store)) {
            // Another bucket holds none of these files, or another database's under the
            // same keys: a read would fail or (unverified) return its bytes, and a `tier`
            // would split the directory's files over two buckets.
            (Some(given), Some(bucket)) if given != bucket => Err(Error::config(
                "tiering store",
                &store_url(ours),
                format!(
                    "{whereabouts}, not in bucket {given:?}: open with that store; with the \
                     CLI, give --store {url}"
                ),
            )),
            // Only an S3 store's name says where it is; other names are for messages.
            _ => Ok(()),
        },
    }
}

/// The bucket of an S3 store's name (`AmazonS3(bucket)`, as `object_store` names one).
fn s3_bucket(store: &str) -> Option<&str> {
    store
        .strip_prefix("AmazonS3(")
        .and_then(|b| b.strip_suffix(')'))
}

/// The `s3://bucket/prefix` URL of the remote files of a manifest, as the CLI's `--store`
/// takes it: the bucket from the store's name (`AmazonS3(bucket)`, as `object_store`
/// names an S3 store), else `BUCKET`.
pub(crate) fn store_url(id: &crate::format::RemoteId) -> String {
    let bucket = s3_bucket(&id.store).unwrap_or("BUCKET");
    if id.prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{}", id.prefix)
    }
}

/// Carries out the plan's actions in order, then syncs the directory if a name changed.
fn execute(fs: &dyn Fs, opts: &Options, plan: &Plan) -> Result<()> {
    let remove = |path: &std::path::Path, op| fs.remove(path).ctx(op, path);
    for action in &plan.actions {
        match action {
            Action::FinishLtrim { index, temp } => {
                let temp = opts.dir.join(temp);
                fs.rename(&temp, &opts.data_path(*index))
                    .ctx("rename temp file", &temp)?;
            }
            Action::FinishDrop { index } | Action::RemoveUncommitted { index } => {
                remove(&opts.data_path(*index), "remove data file")?;
            }
            Action::RemoveCheckpoint { name } => {
                remove(&opts.dir.join(name), "remove python checkpoint")?;
            }
            Action::ApplyCheckpoint { name, cuts } => {
                for &(index, len) in cuts {
                    let path = opts.data_path(index);
                    let f = fs.open_rw(&path).ctx("open data file", &path)?;
                    f.set_len(len).ctx("truncate data file", &path)?;
                    if opts.sync {
                        f.sync_data().ctx("sync data file", &path)?;
                    }
                }
                remove(&opts.dir.join(name), "remove python checkpoint")?;
            }
            Action::RemoveTemp { name } => {
                crate::fs::remove_if_exists(fs, &opts.dir.join(name))
                    .ctx("remove temp file", &opts.dir.join(name))?;
            }
            Action::TruncateHead { index, to, .. } => {
                let path = opts.data_path(*index);
                let (f, _) = DataFile::open(fs, &path, opts.format.genesis, Access::Write)?;
                f.truncate(*to).ctx("truncate head file", &path)?;
                if opts.sync {
                    f.sync().ctx("sync head file", &path)?;
                }
            }
            Action::FinishRtrim { index, to } => {
                let path = opts.data_path(*index);
                let (f, _) = DataFile::open(fs, &path, opts.format.genesis, Access::Write)?;
                f.truncate(*to).ctx("truncate data file", &path)?;
                if opts.sync {
                    f.sync().ctx("sync data file", &path)?;
                }
            }
            Action::TruncateIndex { index, entries } => {
                if let Some(idx) = IndexFile::open(fs, &opts.index_path(*index))? {
                    idx.truncate(*entries)
                        .ctx("truncate index file", idx.path())?;
                    if opts.sync {
                        idx.sync().ctx("sync index file", idx.path())?;
                    }
                }
            }
            Action::CutIndex { index, end } => {
                let path = opts.data_path(*index);
                let (data, _) = DataFile::open(fs, &path, opts.format.genesis, Access::Read)?;
                if let Some(idx) = IndexFile::open(fs, &opts.index_path(*index))? {
                    crate::index::cut(&idx, &data, None, *end)?;
                    if opts.sync {
                        idx.sync().ctx("sync index file", idx.path())?;
                    }
                }
            }
            Action::RemoveIndex { index } => {
                let path = opts.index_path(*index);
                crate::fs::remove_if_exists(fs, &path).ctx("remove index file", &path)?;
            }
            Action::RemoveManifest { generation } => {
                let path = opts.manifest_path(*generation);
                crate::fs::remove_if_exists(fs, &path).ctx("remove manifest", &path)?;
            }
            Action::RemoveLocalCopy { index } => {
                let path = opts.data_path(*index);
                crate::fs::remove_if_exists(fs, &path).ctx("remove data file", &path)?;
            }
            Action::CreateHead { index } => create_head(fs, opts, *index)?,
        }
    }
    if plan.changes_names() && opts.sync {
        fs.sync_dir(&opts.dir).ctx("sync directory", &opts.dir)?;
    }
    Ok(())
}

/// Creates the missing head file. Outside a dirty state nothing would remove a torn
/// file, so the header is written to a temp file, synced, and renamed into place.
fn create_head(fs: &dyn Fs, opts: &Options, index: u32) -> Result<()> {
    let temp = opts.dir.join(opts.format.naming.temp_file(index));
    crate::fs::remove_if_exists(fs, &temp).ctx("remove temp file", &temp)?;
    DataFile::create(fs, &temp, opts.format.genesis, 0, opts.sync)?;
    fs.rename(&temp, &opts.data_path(index))
        .ctx("rename temp file", &temp)?;
    if opts.sync {
        fs.sync_dir(&opts.dir).ctx("sync directory", &opts.dir)?;
    }
    Ok(())
}

fn ensure_dir(fs: &dyn Fs, opts: &Options) -> Result<()> {
    let dir = &opts.dir;
    match fs.dir_exists(dir) {
        Ok(true) => Ok(()),
        Ok(false) if opts.create_if_missing => fs.create_dir_all(dir).ctx("create directory", dir),
        Ok(false) => Err(Error::io(
            "open directory",
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "directory does not exist (create_if_missing is false)",
            ),
        )),
        Err(e) => Err(Error::io("open directory", dir, e)),
    }
}

/// Opens (creating if missing) and locks the state file.
fn lock_state(fs: &dyn Fs, opts: &Options) -> Result<(std::path::PathBuf, Arc<dyn FsFile>)> {
    let path = opts.state_path();
    let (file, created) = fs.open_or_create(&path).ctx("open state file", &path)?;
    // A handle of this process: `Locked` at once if running, waited for if closing.
    let file = crate::registry::claim(fs, &path, file, opts.lock_wait)?;
    // A lock held for a moment by someone else's fork (a child process inherits our
    // descriptor until it execs) is not a competing writer: retry briefly before
    // reporting `Locked`.
    let mut attempts = 0;
    while !file.try_lock().ctx("lock state file", &path)? {
        attempts += 1;
        if attempts >= LOCK_ATTEMPTS {
            return Err(Error::Locked { path });
        }
        std::thread::sleep(LOCK_RETRY);
    }
    if created {
        file.set_len(2 * SLOT_LEN).ctx("size state file", &path)?;
        if opts.sync {
            file.sync_data().ctx("sync state file", &path)?;
            fs.sync_dir(&opts.dir).ctx("sync directory", &opts.dir)?;
        }
    }
    Ok((path, file))
}
