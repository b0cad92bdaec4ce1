//! Where the workload runs of one invocation go: `--dir`, which must be empty or missing,
//! or a temporary directory removed afterwards.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use tempfile::TempDir;

/// The directory the runs of one invocation go under.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    /// The temporary directory, removed when dropped; `None` for `--dir`.
    temp: Option<TempDir>,
}

impl Root {
    /// `dir`, which must be empty or missing (else the error says `--dir ... is not empty;
    /// {why}`), or a new temporary directory.
    ///
    /// # Errors
    /// `dir` is not empty or cannot be listed, or no temporary directory can be created.
    pub fn new(dir: Option<&Path>, why: &str) -> anyhow::Result<Root> {
        let Some(d) = dir else {
            let temp = tempfile::tempdir().context("create a temporary directory")?;
            return Ok(Root {
                path: temp.path().to_path_buf(),
                temp: Some(temp),
            });
        };
        if d.exists()
            && std::fs::read_dir(d)
                .with_context(|| format!("list {}", d.display()))?
                .next()
                .is_some()
        {
            bail!("--dir {} is not empty; {why}", d.display());
        }
        Ok(Root {
            path: d.to_path_buf(),
            temp: None,
        })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it is a temporary directory.
    #[must_use]
    pub fn is_temp(&self) -> bool {
        self.temp.is_some()
    }

    /// After a run in `dir` (under the root): removes it if the root is temporary, to make
    /// room for the next run; under `--dir` it is kept.
    ///
    /// # Errors
    /// `dir` could not be removed.
    pub fn done(&self, dir: &Path) -> anyhow::Result<()> {
        if self.is_temp() {
            std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
        }
        Ok(())
    }
}
