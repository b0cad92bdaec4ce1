//! aiodiskdb as an [`Engine`], driven as its users drive it: from tokio tasks, one
//! `add` per item, `flush` to make items durable, `stop` to close (which makes durable
//! what is left in the buffer).

use std::collections::HashMap;
use std::path::Path;

use aiodiskdb::{AioDiskDb, Durability, Event, ItemLocation};
use anyhow::Context as _;
use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;

use crate::engine::{Engine, Layout, Source, Visibility};
use crate::exec::Exec;
use crate::raw::Target;

/// The options the workloads open aiodiskdb with; every one unset is the default.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    /// `max_buffer_items`.
    pub max_buffer_items: Option<usize>,
    /// `max_file_size` and `max_buffer_size`: bytes per data file, header included.
    pub file_size: Option<u64>,
    /// `durability`.
    pub durability: Option<Durability>,
    /// `verify_reads`: whether a read of one indexed item checks its CRC32C.
    pub verify_reads: Option<bool>,
}

impl Engine for AioDiskDb {
    type Loc = ItemLocation;
    type Config = Tuning;
    const EXEC: Exec = Exec::Tasks;
    const CLOSE: &'static str = "stop";
    const DURABLE_ADD: [&'static str; 2] = ["add + flush", "adds + flushes"];

    fn unsynced_config() -> Option<Tuning> {
        Some(Tuning {
            durability: Some(Durability::Os),
            ..Tuning::default()
        })
    }

    async fn open(dir: &Path, config: &Tuning) -> anyhow::Result<Self> {
        let mut builder = AioDiskDb::builder(dir);
        if let Some(n) = config.max_buffer_items {
            builder = builder.max_buffer_items(n);
        }
        if let Some(bytes) = config.file_size {
            builder = builder.max_file_size(bytes).max_buffer_size(bytes);
        }
        if let Some(d) = config.durability {
            builder = builder.durability(d);
        }
        if let Some(yes) = config.verify_reads {
            builder = builder.verify_reads(yes);
        }
        Ok(builder.open().await?)
    }

    async fn bulk<S: Source<ItemLocation>>(
        &self,
        visibility: Visibility,
        items: &mut S,
    ) -> anyhow::Result<()> {
        let immediate = visibility == Visibility::Immediate;
        while let Some(item) = items.next_item() {
            let loc = self.add(item).await?;
            items.added(loc);
            if immediate {
                // Let the concurrent reader task run.
                tokio::task::yield_now().await;
            }
        }
        if immediate {
            self.flush().await?;
        }
        Ok(())
    }

    async fn read<R: Send>(
        &self,
        loc: ItemLocation,
        check: impl FnOnce(&[u8]) -> R + Send,
    ) -> anyhow::Result<Option<R>> {
        Ok(AioDiskDb::read(self, loc).await?.map(|b| check(&b)))
    }

    async fn add_durable(&self, data: Bytes) -> anyhow::Result<()> {
        self.add(data).await?;
        self.flush().await?;
        Ok(())
    }

    /// Counts the `Written` events (one a flush, each synced) until the stop.
    fn count_commits(
        &self,
    ) -> impl std::future::Future<Output = anyhow::Result<Option<u64>>> + Send + 'static {
        let mut events = self.subscribe();
        let counter = tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                match events.recv().await {
                    Ok(Event::Written { .. }) => n += 1,
                    Ok(Event::Stopped { .. }) | Err(RecvError::Closed) => return n,
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => n += missed,
                }
            }
        });
        async move { Ok(Some(counter.await?)) }
    }

    async fn close(self) -> anyhow::Result<()> {
        self.stop().await?;
        Ok(())
    }

    /// From the directory's listing: each file's header size, and the trim offset that
    /// positions are relative to.
    async fn layout(dir: &Path, locs: &[ItemLocation]) -> anyhow::Result<Option<Layout>> {
        let found = AioDiskDb::builder(dir).inspect().await?;
        let mut files = Vec::with_capacity(found.files.len());
        let mut by_index = HashMap::new();
        for f in &found.files {
            // Header bytes: the file's size less the item bytes it holds.
            let header = f.size - (f.end - u64::from(f.trim_offset));
            by_index.insert(f.index, (files.len(), header, f.trim_offset));
            files.push(
                std::fs::File::open(&f.path)
                    .with_context(|| format!("open {}", f.path.display()))?,
            );
        }
        let targets = locs
            .iter()
            .enumerate()
            .map(|(i, loc)| {
                let &(file, header, trim) = by_index
                    .get(&loc.index)
                    .with_context(|| format!("no data file for {loc}"))?;
                Ok(Target {
                    file,
                    offset: header + u64::from(loc.position - trim),
                    tag: (i as u64).to_le_bytes(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Some(Layout { files, targets }))
    }
}
