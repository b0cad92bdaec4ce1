//! Tiering under test (feature `tiering`):
//! - [`SimStore`], an in-memory object store whose every request is also an operation of a
//!   [`SimFs`], so that the crash enumeration falls between any two steps of either; the
//!   request a crash interrupts may or may not land (its answer is lost either way); and
//!   it can corrupt puts on the way, silently, to prove that uploads are verified; and its
//!   listings lag (the last puts missing, the last deletes still listed);
//! - [`FaultStore`], an object store that fails its n-th call (once or from then on) with
//!   a timeout, an HTTP 500, a 403, or a truncated body;
//! - the crash enumeration of tiering workloads (adds, flushes, `tier`, drops of local and
//!   remote indexes, rtrims and ltrims of remote indexes with right and wrong safety
//!   checks, reopens, and `hydrate` in the second mix), checked against the model: every
//!   acknowledged item reads back exactly, from the directory or from the object store,
//!   after recovery, no item an acknowledged trim or drop removed reads back, and no temp
//!   file is left; then a new session finishes the tiering and everything still reads back
//!   (the trimmed items still `None`; in the hydrate mix it also hydrates: no object is
//!   left, and the directory opens and reads back without tiering);
//! - the seeded bugs of tiering, each caught;
//! - the fault countdown over every request of the store.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::crash::{judge, read_checked, reader, Item, St};
use super::sim::{Bug, Damage, SimFs};
use crate::catalog::Catalog;
use crate::config::{Builder, Config};
use crate::db::AioDiskDb;
use crate::events::{Event, Hooks};
use crate::fs::Fs;
use crate::location::ItemLocation;
use crate::reader::ReadCache;
use crate::tiering::{Remote, Tiering};

/// The key prefix of every simulated tiering.
pub(crate) const PREFIX: &str = "node-1/blocks";

fn crash_error() -> object_store::Error {
    object_store::Error::Generic {
        store: "SimStore",
        source: "simulated crash: the client machine is gone".into(),
    }
}

/// How far a listing of [`SimStore`] lags: an object written by one of its last
/// `LIST_LAG` puts is not listed yet, and one removed by one of its last `LIST_LAG`
/// deletions is listed still (S3's listings were eventually consistent for years, and
/// some S3-compatible servers' still are). Nothing of ours may depend on a current listing.
const LIST_LAG: usize = 3;

/// The latest changes a listing of [`SimStore`] does not show yet.
#[derive(Debug, Default)]
struct Lag {
    puts: VecDeque<ObjectPath>,
    deletes: VecDeque<ObjectPath>,
}

impl Lag {
    fn note(queue: &mut VecDeque<ObjectPath>, key: ObjectPath) {
        queue.push_back(key);
        if queue.len() > LIST_LAG {
            queue.pop_front();
        }
    }
}

/// An in-memory object store whose requests are crash points of `fs`.
#[derive(Debug)]
pub(crate) struct SimStore {
    inner: Arc<InMemory>,
    fs: SimFs,
    puts: AtomicU64,
    /// `(k, r)`: the puts numbered `r` modulo `k` land with one byte flipped, and report
    /// success (a corruption on the way that only reading the object back shows).
    corrupt_puts: Option<(u64, u64)>,
    lag: Arc<Mutex<Lag>>,
}

impl fmt::Display for SimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimStore")
    }
}

impl SimStore {
    pub(crate) fn new(fs: SimFs, corrupt_puts: Option<(u64, u64)>) -> SimStore {
        SimStore {
            inner: Arc::new(InMemory::new()),
            fs,
            puts: AtomicU64::new(0),
            corrupt_puts,
            lag: Arc::default(),
        }
    }

    /// The objects themselves, reached without the crash (the object store outlives the
    /// client machine).
    pub(crate) fn backing(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner) as Arc<dyn ObjectStore>
    }

    /// `Ok(true)` for the request the crash interrupts.
    fn gate(&self) -> object_store::Result<bool> {
        self.fs.external_op().map_err(|_| crash_error())
    }
}

fn flip_middle(payload: PutPayload) -> PutPayload {
    let mut b = Bytes::from(payload).to_vec();
    let at = b.len() / 2;
    if let Some(x) = b.get_mut(at) {
        *x ^= 0x40;
    }
    PutPayload::from(b)
}

#[async_trait]
impl ObjectStore for SimStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let interrupted = self.gate()?;
        let n = self.puts.fetch_add(1, Ordering::SeqCst);
        let payload = match self.corrupt_puts {
            Some((k, r)) if n % k == r => flip_middle(payload),
            _ => payload,
        };
        // The interrupted put lands or not, by the parity of its number.
        if interrupted && n % 2 == 1 {
            return Err(crash_error());
        }
        let r = self.inner.put_opts(location, payload, opts).await;
        if r.is_ok() {
            Lag::note(&mut self.lag.lock().expect("lag").puts, location.clone());
        }
        if interrupted {
            return Err(crash_error());
        }
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if self.gate()? {
            return Err(crash_error());
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if self.gate()? {
            return Err(crash_error());
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        let lag = Arc::clone(&self.lag);
        let noted = move |r: &object_store::Result<ObjectPath>| {
            if let Ok(key) = r {
                Lag::note(&mut lag.lock().expect("lag").deletes, key.clone());
            }
        };
        match self.gate() {
            Ok(false) => self
                .inner
                .delete_stream(locations)
                .inspect(move |r| noted(r))
                .boxed(),
            Ok(true) => {
                // The deletions land; the answer is lost.
                let inner = Arc::clone(&self.inner);
                futures_util::stream::once(async move {
                    let done = inner.delete_stream(locations).collect::<Vec<_>>().await;
                    done.iter().for_each(noted);
                    Err(crash_error())
                })
                .boxed()
            }
            Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
        }
    }

    // A ghost's `last_modified` is `chrono`'s `DateTime`, not a dependency of ours to name.
    #[allow(clippy::default_trait_access)]
    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.gate() {
            Ok(false) => {
                // As of a little while ago: the latest puts not yet listed, the latest
                // deletions listed still.
                let (hidden, ghosts) = {
                    let lag = self.lag.lock().expect("lag");
                    (lag.puts.clone(), lag.deletes.clone())
                };
                let ghosts: Vec<object_store::Result<ObjectMeta>> = ghosts
                    .into_iter()
                    .filter(|key| prefix.is_none_or(|p| key.prefix_matches(p)))
                    .map(|location| {
                        Ok(ObjectMeta {
                            location,
                            last_modified: Default::default(),
                            size: 0,
                            e_tag: None,
                            version: None,
                        })
                    })
                    .collect();
                self.inner
                    .list(prefix)
                    .filter(move |r| {
                        let listed = !matches!(r, Ok(m) if hidden.contains(&m.location));
                        async move { listed }
                    })
                    .chain(futures_util::stream::iter(ghosts))
                    .boxed()
            }
            Ok(true) | Err(_) => futures_util::stream::once(async { Err(crash_error()) }).boxed(),
        }
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        if self.gate()? {
            return Err(crash_error());
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        if self.gate()? {
            return Err(crash_error());
        }
        self.inner.copy_opts(from, to, options).await
    }
}

/// What [`FaultStore`] fails a call with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreFault {
    /// The request times out.
    Timeout,
    /// HTTP 500.
    ServerError,
    /// HTTP 403.
    Forbidden,
    /// A GET's body ends early; a put lands cut in half and reports success.
    Truncated,
}

impl StoreFault {
    pub(crate) const ALL: [StoreFault; 4] = [
        StoreFault::Timeout,
        StoreFault::ServerError,
        StoreFault::Forbidden,
        StoreFault::Truncated,
    ];

    fn error(self, location: &ObjectPath) -> object_store::Error {
        match self {
            StoreFault::Timeout => object_store::Error::Generic {
                store: "FaultStore",
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request timed out",
                )),
            },
            StoreFault::ServerError | StoreFault::Truncated => object_store::Error::Generic {
                store: "FaultStore",
                source: "HTTP 500 Internal Server Error".into(),
            },
            StoreFault::Forbidden => object_store::Error::PermissionDenied {
                path: location.to_string(),
                source: "HTTP 403 Forbidden".into(),
            },
        }
    }
}

/// An object store that fails its n-th call (counted from 0), once or from then on.
#[derive(Debug)]
pub(crate) struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    calls: AtomicU64,
    /// `(n, kind, persistent)`.
    fault: Mutex<Option<(u64, StoreFault, bool)>>,
    fired: AtomicU64,
    /// Counts only, fails nothing.
    quiet: AtomicBool,
    /// Armed: the next ranged GET waits, after notifying the first, until the second
    /// gives a permit (`FaultStore::gate_next_ranged_get`).
    gate: Mutex<Option<(Arc<tokio::sync::Notify>, Arc<tokio::sync::Semaphore>)>>,
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

impl FaultStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> FaultStore {
        FaultStore {
            inner,
            calls: AtomicU64::new(0),
            fault: Mutex::new(None),
            fired: AtomicU64::new(0),
            quiet: AtomicBool::new(false),
            gate: Mutex::new(None),
        }
    }

    /// Holds the next ranged GET: `entered` is notified when it arrives, and it goes on
    /// once `release` has a permit.
    pub(crate) fn gate_next_ranged_get(
        &self,
    ) -> (Arc<tokio::sync::Notify>, Arc<tokio::sync::Semaphore>) {
        let gate = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Semaphore::new(0)),
        );
        *self.gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    /// Fails call `n` from now (counted from 0) with `kind`, and every later one too when
    /// `persistent`.
    pub(crate) fn fail(&self, n: u64, kind: StoreFault, persistent: bool) {
        self.calls.store(0, Ordering::SeqCst);
        *self.fault.lock().unwrap() = Some((n, kind, persistent));
        self.quiet.store(false, Ordering::SeqCst);
    }

    /// Fails nothing from now on.
    pub(crate) fn heal(&self) {
        self.quiet.store(true, Ordering::SeqCst);
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn fired(&self) -> u64 {
        self.fired.load(Ordering::SeqCst)
    }

    /// The fault for this call, if it fails.
    fn check(&self) -> Option<StoreFault> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.quiet.load(Ordering::SeqCst) {
            return None;
        }
        let (at, kind, persistent) = (*self.fault.lock().unwrap())?;
        let hit = if persistent { n >= at } else { n == at };
        if hit {
            self.fired.fetch_add(1, Ordering::SeqCst);
        }
        hit.then_some(kind)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match self.check() {
            Some(StoreFault::Truncated) => {
                let b = Bytes::from(payload);
                let half = b.slice(..b.len() / 2);
                self.inner.put_opts(location, half.into(), opts).await
            }
            Some(k) => Err(k.error(location)),
            None => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        match self.check() {
            Some(k) => Err(k.error(location)),
            None => self.inner.put_multipart_opts(location, opts).await,
        }
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let gate = if options.range.is_some() && !options.head {
            self.gate.lock().unwrap().take()
        } else {
            None
        };
        if let Some((entered, release)) = gate {
            entered.notify_one();
            let _ = release.acquire().await;
        }
        match self.check() {
            Some(StoreFault::Truncated) => {
                let got = self.inner.get_opts(location, options).await?;
                let (meta, range, attributes, extensions) = (
                    got.meta.clone(),
                    got.range.clone(),
                    got.attributes.clone(),
                    got.extensions.clone(),
                );
                let body = got.bytes().await?;
                let cut = body.slice(..body.len() / 2);
                Ok(GetResult {
                    payload: GetResultPayload::Stream(
                        futures_util::stream::once(async move { Ok(cut) }).boxed(),
                    ),
                    meta,
                    range,
                    attributes,
                    extensions,
                })
            }
            Some(k) => Err(k.error(location)),
            None => self.inner.get_opts(location, options).await,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        match self.check() {
            Some(k) => {
                let e = k.error(&ObjectPath::from("delete"));
                futures_util::stream::once(async move { Err(e) }).boxed()
            }
            None => self.inner.delete_stream(locations),
        }
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.check() {
            Some(k) => {
                let e = k.error(&ObjectPath::from("list"));
                futures_util::stream::once(async move { Err(e) }).boxed()
            }
            None => self.inner.list(prefix),
        }
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        match self.check() {
            Some(k) => Err(k.error(&ObjectPath::from("list"))),
            None => self.inner.list_with_delimiter(prefix).await,
        }
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        match self.check() {
            Some(k) => Err(k.error(from)),
            None => self.inner.copy_opts(from, to, options).await,
        }
    }
}

/// The simulated configuration (`crash::sim_config`'s sizes) with tiering to `store`:
/// every sealed file but the newest is uploaded, only when `tier` is called (so that the
/// enumeration is deterministic) unless `background`.
pub(crate) fn tier_config(store: Arc<dyn ObjectStore>, background: bool) -> Config {
    Builder::new("/db")
        .max_file_size(1024)
        .max_buffer_size(1000)
        .max_buffer_items(1_000_000)
        .flush_interval(Duration::from_secs(3600))
        .overwrite(true)
        .tiering(
            Tiering::new(store, PREFIX)
                .keep_local(1)
                .cache_size(4096)
                .upload_in_background(background)
                .retry_backoff(Duration::from_millis(5)),
        )
        .validate()
        .expect("valid")
        .0
}

/// The simulated configuration without tiering (what a hydrated directory opens with).
fn plain_config() -> Config {
    Builder::new("/db")
        .max_file_size(1024)
        .max_buffer_size(1000)
        .validate()
        .expect("valid")
        .0
}

/// Which operations a tiering workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mix {
    /// Adds, flushes, `tier`, drops, stops and reopens; it ends with a `tier`.
    Tier,
    /// The same with `hydrate` among them (in place of some `tier`s); it ends with a
    /// `tier` and a `hydrate`.
    Hydrate,
}

/// What a tiering workload was told.
#[derive(Debug, Default, Clone)]
pub(crate) struct TierModel {
    pub(crate) items: Vec<Item>,
    /// Files the workload saw tiered.
    pub(crate) tiered: u64,
    /// Files the workload saw hydrated.
    pub(crate) hydrated: u64,
    /// Trims of remote indexes acknowledged (wrong safety checks refused not counted).
    pub(crate) remote_trims: u64,
    /// The remote indexes trimmed since their upload: whether rtrimmed, whether ltrimmed.
    pub(crate) trimmed: BTreeMap<u32, (bool, bool)>,
    /// Files the workload saw hydrated that were rtrimmed, and ltrimmed, while remote.
    pub(crate) hydrated_trimmed: (u64, u64),
}

impl TierModel {
    fn settle(&mut self, from: St, to: St) {
        for i in &mut self.items {
            if i.st == from {
                i.st = to;
            }
        }
    }
}

fn payload(rng: &mut StdRng) -> Vec<u8> {
    let n = rng.gen_range(1..=400);
    (0..n).map(|_| rng.gen()).collect()
}

/// A drop of the oldest index the workload asks for (local or remote): its items go (or
/// may go, when it fails). `None` when there is no file below the head.
async fn drop_oldest(db: &AioDiskDb, m: &mut TierModel) -> Option<bool> {
    let (index, _) = db.handle_catalog().older().into_iter().next()?;
    let outcome = db.drop_index(index).await;
    let st = if outcome.is_ok() {
        St::Gone
    } else {
        St::MaybeGone
    };
    for i in m.items.iter_mut().filter(|i| i.loc.index == index) {
        i.st = st;
    }
    Some(outcome.is_ok())
}

/// A trim of a remote index the workload asks for: `rtrim` from an item's start or `ltrim`
/// to an item's end (`rtrim`: which one; `None`: either, at random), with a safety check
/// of 0 to 8 of its bytes, one in four wrong. Asked for one kind, it picks an item the
/// trim leaves some bytes before (after), so that the file stays, trimmed. The model's
/// items it removes go (or may go, when it fails); a wrong check must be refused with
/// nothing changed. `None` when no remote file has such an item.
async fn remote_trim(
    db: &AioDiskDb,
    m: &mut TierModel,
    rng: &mut StdRng,
    rtrim: Option<bool>,
) -> Option<bool> {
    let catalog = db.handle_catalog();
    let stored: Vec<usize> = (0..m.items.len())
        .filter(|&k| {
            let i = &m.items[k];
            catalog.get(i.loc.index).is_some_and(|f| {
                let keeps = match rtrim {
                    None => true,
                    Some(true) => i.loc.position > f.trim_offset,
                    Some(false) => i.loc.end() < u64::from(f.end),
                };
                f.remote && i.st == St::Durable && f.holds(i.loc.position, i.loc.end()) && keeps
            })
        })
        .collect();
    let pick = m.items[*stored.get(rng.gen_range(0..stored.len().max(1)))?].clone();
    let index = pick.loc.index;
    let right = rtrim.unwrap_or_else(|| rng.gen_bool(0.5));
    let n = rng.gen_range(0..=8).min(pick.data.len());
    let mut check = if right {
        pick.data[..n].to_vec()
    } else {
        pick.data[pick.data.len() - n..].to_vec()
    };
    let wrong = n > 0 && rng.gen_range(0..4) == 0;
    if wrong {
        check[n / 2] ^= 0x20;
    }
    // The items it takes: those from `from` on, or those before `to`.
    let (outcome, from, to) = if right {
        let from = pick.loc.position;
        (db.rtrim(index, from, &check).await, from, 0)
    } else {
        let to = u32::try_from(pick.loc.end()).expect("within a file");
        (db.ltrim(index, to, &check).await, u32::MAX, u64::from(to))
    };
    let taken = |i: &Item| i.loc.position >= from || i.loc.end() <= to;
    let st = match outcome {
        Err(crate::Error::InvalidTrimCommand { .. }) if wrong => return Some(true),
        Ok(_) if wrong => panic!("a wrong safety check was accepted: {index} {pick:?}"),
        Ok(_) => St::Gone,
        Err(_) => St::MaybeGone,
    };
    for i in m
        .items
        .iter_mut()
        .filter(|i| i.loc.index == index && i.st == St::Durable && taken(i))
    {
        i.st = st;
    }
    if st == St::Gone {
        m.remote_trims += 1;
        let t = m.trimmed.entry(index).or_default();
        *t = (t.0 || right, t.1 || !right);
    }
    Some(st == St::Gone)
}

/// Runs one seeded tiering workload of `mix` on `fs` and `store` until its end or its
/// first failure: adds, flushes, `tier`, drops (of remote and local indexes), rtrims and
/// ltrims of remote indexes, stop and reopen; `hydrate`.
pub(crate) async fn tier_workload(
    fs: SimFs,
    store: Arc<dyn ObjectStore>,
    seed: u64,
    steps: usize,
    mix: Mix,
) -> TierModel {
    let cfg = tier_config(store, false);
    let open = || {
        AioDiskDb::start_with(
            Arc::new(fs.clone()) as Arc<dyn Fs>,
            cfg.clone(),
            Hooks::default(),
        )
    };
    let mut m = TierModel::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let Ok(mut db) = open().await else {
        return m;
    };
    let mut events = db.subscribe();
    let mut pending = 0usize;
    for _ in 0..steps {
        let r = rng.gen_range(0..100);
        let ok = if r < 56 && pending < 800 {
            let data = payload(&mut rng);
            match db.add(data.clone()).await {
                Ok(loc) => {
                    pending += data.len();
                    m.items.push(Item {
                        loc,
                        data,
                        st: St::Pending,
                    });
                    true
                }
                Err(_) => false,
            }
        } else if r < 68 {
            pending = 0;
            match db.flush().await {
                Ok(()) => {
                    m.settle(St::Pending, St::Durable);
                    true
                }
                Err(_) => false,
            }
        } else if r < 82 {
            move_files(&db, &mut m, mix == Mix::Hydrate && r >= 77).await
        } else if r < 95 {
            // Flush first, so that the model knows which items a drop or trim takes.
            pending = 0;
            if db.flush().await.is_err() {
                return m;
            }
            m.settle(St::Pending, St::Durable);
            let done = if r < 85 {
                drop_oldest(&db, &mut m).await
            } else {
                remote_trim(&db, &mut m, &mut rng, None).await
            };
            match done {
                Some(ok) => ok,
                None => continue,
            }
        } else {
            pending = 0;
            match db.stop().await {
                Ok(()) => {
                    m.settle(St::Pending, St::Durable);
                    match open().await {
                        Ok(d) => {
                            m.tiered += count_tiered(&mut events);
                            db = d;
                            events = db.subscribe();
                            true
                        }
                        Err(_) => return m,
                    }
                }
                Err(_) => false,
            }
        };
        m.tiered += count_tiered(&mut events);
        if !ok {
            return m;
        }
    }
    // Sealed files enough that the last `tier` (keep_local 1) leaves two remote, for the
    // trims and the hydrate below.
    if mix == Mix::Hydrate && !seal_files(&db, &mut m, &mut rng, 3).await {
        return m;
    }
    if db.flush().await.is_ok() {
        m.settle(St::Pending, St::Durable);
        move_files(&db, &mut m, false).await;
        if mix == Mix::Hydrate {
            // Remote files trimmed before the hydrate brings them back.
            remote_trim(&db, &mut m, &mut rng, Some(true)).await;
            remote_trim(&db, &mut m, &mut rng, Some(false)).await;
            move_files(&db, &mut m, true).await;
        }
        let _ = db.stop().await;
    }
    m.tiered += count_tiered(&mut events);
    m
}

/// Adds and flushes items until `files` files are below the head; whether it got there.
async fn seal_files(db: &AioDiskDb, m: &mut TierModel, rng: &mut StdRng, files: usize) -> bool {
    while db.handle_catalog().older().len() < files {
        let data = payload(rng);
        let Ok(loc) = db.add(data.clone()).await else {
            return false;
        };
        m.items.push(Item {
            loc,
            data,
            st: St::Pending,
        });
        if db.flush().await.is_err() {
            return false;
        }
        m.settle(St::Pending, St::Durable);
    }
    true
}

/// `tier`, or `hydrate`; whether the workload goes on (the object store failing changes
/// nothing).
async fn move_files(db: &AioDiskDb, m: &mut TierModel, hydrate: bool) -> bool {
    if hydrate {
        match db.hydrate().await {
            Ok(files) => {
                m.hydrated += files.len() as u64;
                for f in files {
                    let (r, l) = m.trimmed.remove(&f.index).unwrap_or_default();
                    m.hydrated_trimmed.0 += u64::from(r);
                    m.hydrated_trimmed.1 += u64::from(l);
                }
                true
            }
            Err(e) => matches!(e, crate::Error::Remote { .. }),
        }
    } else {
        matches!(db.tier().await, Ok(_) | Err(crate::Error::Remote { .. }))
    }
}

/// How many `Tiered` events wait in `rx`.
fn count_tiered(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> u64 {
    let mut n = 0;
    while let Ok(e) = rx.try_recv() {
        n += u64::from(matches!(e, Event::Tiered { .. }));
    }
    n
}

/// Reads `loc` after recovery to `catalog`: from the image (through `reader`, one per
/// checked catalog), or from the object store.
fn read_any(
    rt: &tokio::runtime::Runtime,
    reader: &ReadCache,
    remote: &Remote,
    catalog: &Catalog,
    loc: ItemLocation,
) -> crate::Result<Option<Vec<u8>>> {
    let Some(info) = catalog.get(loc.index) else {
        return Ok(None);
    };
    if !info.remote {
        return read_checked(reader, catalog, loc);
    }
    if loc.size == 0 || !info.holds(loc.position, loc.end()) {
        return Ok(None);
    }
    rt.block_on(remote.read(reader.files(), true, loc, info))
        .map(|b| b.map(|b| b.to_vec()))
}

/// Recovers `image` (tiering configured) and checks every item of the model, local or
/// remote, and that no temp file is left.
pub(crate) fn check_tiered(
    image: &SimFs,
    backing: &Arc<dyn ObjectStore>,
    m: &TierModel,
) -> Result<(), String> {
    let cfg = tier_config(Arc::clone(backing), false);
    let store = crate::recovery::open(Arc::new(image.clone()), cfg.store_options())
        .map_err(|e| format!("recovery failed: {e}"))?;
    let catalog = store.catalog();
    drop(store);
    if let Some(temp) = image.names().iter().find(|n| n.starts_with(".tmp.")) {
        return Err(format!("temp file {temp} left after recovery"));
    }
    let remote = Remote::new(cfg.tiering.clone().expect("tiering"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reader = reader(image, &cfg);
    for it in &m.items {
        let got = read_any(&rt, &reader, &remote, &catalog, it.loc)
            .map_err(|e| format!("read {}: {e}", it.loc))?;
        judge(it, got.as_deref()).map_err(|e| {
            let place = if catalog.get(it.loc.index).is_some_and(|f| f.remote) {
                "remote"
            } else {
                "local"
            };
            format!("{e} ({place})")
        })?;
    }
    Ok(())
}

/// A new session on the recovered image finishes the tiering (uploads redone, local
/// copies deleted) and every acknowledged item still reads back, through the handle. In
/// the hydrate mix it then hydrates: every file is local, no object is left under the
/// prefix, and after a stop the directory opens without tiering and reads back.
pub(crate) fn check_redo(
    image: &SimFs,
    backing: &Arc<dyn ObjectStore>,
    m: &TierModel,
    mix: Mix,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = tier_config(Arc::clone(backing), false);
        let db = AioDiskDb::start_with(Arc::new(image.clone()), cfg, Hooks::default())
            .await
            .map_err(|e| format!("reopen failed: {e}"))?;
        db.tier()
            .await
            .map_err(|e| format!("tier after recovery failed: {e}"))?;
        for it in m.items.iter().filter(|i| i.st == St::Durable) {
            let got = db
                .read(it.loc)
                .await
                .map_err(|e| format!("read {} after redo: {e}", it.loc))?;
            if got.as_deref() != Some(&it.data[..]) {
                return Err(format!("acknowledged item {} lost after redo", it.loc));
            }
        }
        for it in m.items.iter().filter(|i| i.st == St::Gone) {
            let got = db
                .read(it.loc)
                .await
                .map_err(|e| format!("read {} after redo: {e}", it.loc))?;
            if got.is_some() {
                return Err(format!(
                    "trimmed or dropped item {} read after redo",
                    it.loc
                ));
            }
        }
        let local = db
            .handle_catalog()
            .older()
            .iter()
            .filter(|(_, f)| !f.remote)
            .count();
        if local > 1 {
            return Err(format!(
                "{local} sealed files still local after tier (keep_local 1)"
            ));
        }
        if mix == Mix::Hydrate {
            db.hydrate()
                .await
                .map_err(|e| format!("hydrate after recovery failed: {e}"))?;
            if let Some((index, _)) = db.handle_catalog().older().iter().find(|(_, f)| f.remote) {
                return Err(format!("index {index} still remote after hydrate"));
            }
            let left: Vec<_> = backing
                .list(Some(&ObjectPath::from(PREFIX)))
                .map(|o| o.map(|o| o.location.to_string()))
                .collect::<Vec<_>>()
                .await;
            if !left.is_empty() {
                return Err(format!("objects left after hydrate: {left:?}"));
            }
        }
        db.stop()
            .await
            .map_err(|e| format!("stop after redo failed: {e}"))?;
        if mix == Mix::Hydrate {
            check_plain(image, m).await?;
        }
        Ok(())
    })
}

/// After a hydrate and a stop: the directory opens without tiering, every acknowledged item
/// reads back, every one a trim or drop removed is `None`, and `verify` is clean.
async fn check_plain(image: &SimFs, m: &TierModel) -> Result<(), String> {
    let db = AioDiskDb::start_with(Arc::new(image.clone()), plain_config(), Hooks::default())
        .await
        .map_err(|e| format!("open without tiering after hydrate failed: {e}"))?;
    for it in &m.items {
        let got = db
            .read(it.loc)
            .await
            .map_err(|e| format!("read {} without tiering: {e}", it.loc))?;
        match it.st {
            St::Durable if got.as_deref() != Some(&it.data[..]) => {
                return Err(format!("acknowledged item {} lost after hydrate", it.loc));
            }
            St::Gone if got.is_some() => {
                return Err(format!(
                    "trimmed or dropped item {} read after hydrate",
                    it.loc
                ));
            }
            St::Pending | St::MaybeGone if got.as_ref().is_some_and(|g| g[..] != it.data[..]) => {
                return Err(format!("item {} altered after hydrate", it.loc));
            }
            _ => {}
        }
    }
    let v = db
        .verify()
        .await
        .map_err(|e| format!("verify without tiering failed: {e}"))?;
    if !v.is_ok() || v.remote_files > 0 {
        return Err(format!("verify after hydrate: {v:?}"));
    }
    db.stop()
        .await
        .map_err(|e| format!("stop without tiering failed: {e}"))
}

/// Counters for the report.
#[derive(Debug, Default)]
pub(crate) struct TierTally {
    pub(crate) states: AtomicU64,
    pub(crate) runs: AtomicU64,
    pub(crate) tiered: AtomicU64,
    pub(crate) hydrated: AtomicU64,
    pub(crate) remote_trims: AtomicU64,
    /// Files hydrated after an rtrim, and after an ltrim, while remote.
    pub(crate) hydrated_rtrimmed: AtomicU64,
    pub(crate) hydrated_ltrimmed: AtomicU64,
}

/// The object store of one run: corrupting one put in four silently.
fn sim_store(fs: &SimFs) -> SimStore {
    SimStore::new(fs.clone(), Some((4, 1)))
}

/// Enumerates every crash point (of the file system and of the object store) of one
/// tiering workload of `mix`. Returns the first violation.
pub(crate) fn enumerate_tiering(
    seed: u64,
    steps: usize,
    bug: Option<Bug>,
    mix: Mix,
    tally: &TierTally,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let full = SimFs::new();
    full.set_bug(bug);
    let store = Arc::new(sim_store(&full));
    rt.block_on(tier_workload(full.clone(), store, seed, steps, mix));
    let total = full.ops();
    for n in 0..=total {
        let fs = SimFs::new();
        fs.set_bug(bug);
        fs.freeze_at(n);
        let store = Arc::new(sim_store(&fs));
        let backing = store.backing();
        let m = rt.block_on(tier_workload(fs.clone(), store, seed, steps, mix));
        tally.runs.fetch_add(1, Ordering::Relaxed);
        tally.tiered.fetch_add(m.tiered, Ordering::Relaxed);
        tally.hydrated.fetch_add(m.hydrated, Ordering::Relaxed);
        tally
            .remote_trims
            .fetch_add(m.remote_trims, Ordering::Relaxed);
        tally
            .hydrated_rtrimmed
            .fetch_add(m.hydrated_trimmed.0, Ordering::Relaxed);
        tally
            .hydrated_ltrimmed
            .fetch_add(m.hydrated_trimmed.1, Ordering::Relaxed);
        for (v, damage) in Damage::ALL.into_iter().enumerate() {
            let image = fs.crash_image(damage, seed ^ n.rotate_left(17) ^ v as u64);
            tally.states.fetch_add(1, Ordering::Relaxed);
            check_tiered(&image.crash_image(Damage::All, 0), &backing, &m)
                .map_err(|e| format!("seed {seed} crash at op {n} ({damage:?}): {e}"))?;
        }
        // What only the synced state holds: crash again at every step of its recovery,
        // recover again; then a session finishes the tiering (which changes the objects:
        // last).
        let image = fs.crash_image(Damage::SyncedOnly, seed ^ n.rotate_left(17));
        let cfg = tier_config(Arc::clone(&backing), false);
        let probe = image.crash_image(Damage::All, 0);
        let _ = crate::recovery::open(Arc::new(probe.clone()), cfg.store_options());
        for k in 0..probe.ops() {
            let again = image.crash_image(Damage::All, 0);
            again.freeze_at(k);
            let _ = crate::recovery::open(Arc::new(again.clone()), cfg.store_options());
            let twice = again.crash_image(Damage::SyncedOnly, seed ^ k);
            tally.states.fetch_add(1, Ordering::Relaxed);
            check_tiered(&twice, &backing, &m).map_err(|e| {
                format!("seed {seed} crash at op {n}, again at recovery op {k}: {e}")
            })?;
        }
        check_redo(&image.crash_image(Damage::All, 0), &backing, &m, mix)
            .map_err(|e| format!("seed {seed} crash at op {n}, then a session: {e}"))?;
    }
    Ok(())
}

/// Every `Tiered` event in `events`.
pub(crate) fn tiered_events(events: &[Event]) -> Vec<(u32, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Tiered { index, size, .. } => Some((*index, *size)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulated store's listings lag: of six objects put, the last `LIST_LAG` are
    /// missing; of two deleted, both are still listed; the objects themselves are current.
    #[test]
    fn listings_lag_behind_puts_and_deletes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = sim_store(&SimFs::new());
            let key = |k: u32| ObjectPath::from(format!("{PREFIX}/data{k:05}.dat"));
            for k in 0..6 {
                store
                    .put_opts(&key(k), vec![1u8; 3].into(), PutOptions::default())
                    .await
                    .unwrap();
            }
            for k in [0, 1] {
                crate::tiering::delete(&store, &key(k)).await.unwrap();
            }
            let mut listed: Vec<String> = store
                .list(Some(&ObjectPath::from(PREFIX)))
                .map(|m| m.unwrap().location.to_string())
                .collect()
                .await;
            listed.sort();
            let want: Vec<String> = [0, 1, 2].into_iter().map(|k| key(k).to_string()).collect();
            assert_eq!(
                listed, want,
                "puts 3..6 not listed yet, deletes of 0 and 1 listed"
            );
            let exists = |k: u32| {
                let store = &store;
                async move { store.get_opts(&key(k), GetOptions::default()).await.is_ok() }
            };
            assert!(!exists(0).await, "the object itself is gone");
            assert!(exists(5).await, "and this one is there");
        });
    }

    #[test]
    fn tiering_workload_runs_clean_without_crash() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut tiered = 0;
        let mut dropped = 0;
        let mut remote_trims = 0;
        for seed in 0..4 {
            let fs = SimFs::new();
            let store = Arc::new(sim_store(&fs));
            let backing = store.backing();
            let m = rt.block_on(tier_workload(fs.clone(), store, seed, 120, Mix::Tier));
            assert!(
                m.items
                    .iter()
                    .all(|i| i.st != St::Pending && i.st != St::MaybeGone),
                "seed {seed}: the workload ran to its end"
            );
            dropped += m.items.iter().filter(|i| i.st == St::Gone).count();
            tiered += m.tiered;
            remote_trims += m.remote_trims;
            eprintln!(
                "seed {seed}: {} tiered, {} remote trims",
                m.tiered, m.remote_trims
            );
            check_tiered(&fs.crash_image(Damage::SyncedOnly, 1), &backing, &m).unwrap();
            check_redo(
                &fs.crash_image(Damage::SyncedOnly, 1),
                &backing,
                &m,
                Mix::Tier,
            )
            .unwrap();
        }
        assert!(tiered >= 8, "files were tiered: {tiered}");
        assert!(dropped > 0, "drops ran");
        assert!(remote_trims >= 4, "remote trims ran: {remote_trims}");
    }

    /// Scale knob: `AIODISKDB_CRASH_SEEDS` workloads (default 3).
    fn seeds() -> u64 {
        std::env::var("AIODISKDB_CRASH_SEEDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
    }

    #[test]
    fn every_tiering_crash_point_recovers_to_the_model() {
        let tally = TierTally::default();
        let n = seeds();
        for seed in 0..n {
            let before = tally.tiered.load(Ordering::Relaxed);
            enumerate_tiering(seed, 60, None, Mix::Tier, &tally).unwrap();
            let tiered = tally.tiered.load(Ordering::Relaxed) - before;
            assert!(tiered > 0, "seed {seed}: the crash runs tiered files");
        }
        let remote_trims = tally.remote_trims.load(Ordering::Relaxed);
        assert!(remote_trims > 0, "the crash runs trimmed remote indexes");
        eprintln!(
            "tiering crash enumeration: {n} workloads, {} workload runs ({} files tiered, \
             {remote_trims} remote trims), {} crash states checked, 0 violations",
            tally.runs.load(Ordering::Relaxed),
            tally.tiered.load(Ordering::Relaxed),
            tally.states.load(Ordering::Relaxed),
        );
    }

    #[test]
    fn every_hydrate_crash_point_recovers_to_the_model() {
        let tally = TierTally::default();
        let n = seeds();
        for seed in 0..n {
            let before = tally.hydrated.load(Ordering::Relaxed);
            enumerate_tiering(seed, HYDRATE_STEPS, None, Mix::Hydrate, &tally).unwrap();
            let hydrated = tally.hydrated.load(Ordering::Relaxed) - before;
            assert!(hydrated > 0, "seed {seed}: the crash runs hydrated files");
        }
        let trimmed = (
            tally.hydrated_rtrimmed.load(Ordering::Relaxed),
            tally.hydrated_ltrimmed.load(Ordering::Relaxed),
        );
        assert!(
            trimmed.0 > 0 && trimmed.1 > 0,
            "the crash runs hydrated files rtrimmed and ltrimmed while remote: {trimmed:?}"
        );
        eprintln!(
            "hydrate crash enumeration: {n} workloads, {} workload runs ({} files tiered, {} \
             remote trims, {} hydrated of which {} rtrimmed and {} ltrimmed while remote), {} \
             crash states checked, 0 violations",
            tally.runs.load(Ordering::Relaxed),
            tally.tiered.load(Ordering::Relaxed),
            tally.remote_trims.load(Ordering::Relaxed),
            tally.hydrated.load(Ordering::Relaxed),
            trimmed.0,
            trimmed.1,
            tally.states.load(Ordering::Relaxed),
        );
    }

    /// The steps of a hydrate workload (shorter than a tier workload's: every crash state
    /// also hydrates in its redo).
    const HYDRATE_STEPS: usize = 40;

    #[test]
    fn tiering_harness_catches_seeded_bugs() {
        let bugs = Bug::TIERING
            .map(|b| (b, Mix::Tier, 60))
            .into_iter()
            .chain(Bug::HYDRATE.map(|b| (b, Mix::Hydrate, HYDRATE_STEPS)));
        for (bug, mix, steps) in bugs {
            let tally = TierTally::default();
            let found = (0..6)
                .find_map(|seed| enumerate_tiering(seed, steps, Some(bug), mix, &tally).err());
            eprintln!("{bug:?}: {found:?}");
            assert!(found.is_some(), "seeded bug {bug:?} was not caught");
        }
    }

    /// A handle on `fs` tiering to `store` (no background uploads unless `background`).
    async fn open_tiered(
        fs: &SimFs,
        store: Arc<dyn ObjectStore>,
        background: bool,
    ) -> crate::Result<AioDiskDb> {
        AioDiskDb::start_with(
            Arc::new(fs.clone()) as Arc<dyn Fs>,
            tier_config(store, background),
            Hooks::default(),
        )
        .await
    }

    /// Adds items of 300 bytes until `files` data files are sealed, flushing each; returns
    /// them.
    async fn fill(db: &AioDiskDb, files: u32, tag: u8) -> Vec<(ItemLocation, Vec<u8>)> {
        let mut items = Vec::new();
        let mut k = 0u32;
        loop {
            let data: Vec<u8> = (0..300u32)
                .map(|i| (i ^ k).to_le_bytes()[0] ^ tag)
                .collect();
            let loc = db.add(data.clone()).await.unwrap();
            db.flush().await.unwrap();
            items.push((loc, data));
            k += 1;
            if db.handle_catalog().older().len() >= files as usize {
                return items;
            }
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Every request of a tier pass and of remote reads, failed in turn with each kind of
    /// fault, once and for ever: a typed `Error::Remote` naming the key, the local copy
    /// kept (nothing recorded that was not verified), appends and local reads going on,
    /// remote reads failing typed and never returning other bytes; once the store is back,
    /// everything is tiered and reads back, also after a reopen.
    #[test]
    fn store_faults_are_typed_and_keep_local_copies() {
        let rt = rt();
        let mut injected = 0;
        let mut typed = 0;
        for kind in StoreFault::ALL {
            for persistent in [false, true] {
                for n in 0..14 {
                    rt.block_on(async {
                        let fs = SimFs::new();
                        let faults = Arc::new(FaultStore::new(Arc::new(InMemory::new())));
                        let db = open_tiered(&fs, faults.clone(), false).await.unwrap();
                        let mut items = fill(&db, 2, 0).await;
                        // One file remote already, for the reads.
                        let first = db.tier().await.unwrap();
                        assert_eq!(first.len(), 1);
                        items.extend(fill(&db, 4, 1).await);
                        faults.fail(n, kind, persistent);
                        let fired_before = faults.fired();
                        match db.tier().await {
                            Ok(_) => {}
                            Err(crate::Error::Remote { key, cause }) => {
                                typed += 1;
                                assert!(key.starts_with(PREFIX), "{key}");
                                assert!(!cause.is_empty());
                            }
                            Err(e) => panic!("{kind:?} at {n}: untyped tier error {e:?}"),
                        }
                        for (loc, data) in &items {
                            match db.read(*loc).await {
                                Ok(Some(b)) => assert_eq!(&b[..], &data[..], "{kind:?} at {n}"),
                                Err(crate::Error::Remote { key, .. }) => {
                                    typed += 1;
                                    assert!(key.ends_with(&format!("data{:05}.dat", loc.index)));
                                    assert!(db.handle_catalog().get(loc.index).unwrap().remote);
                                }
                                other => panic!("{kind:?} at {n}: read {loc}: {other:?}"),
                            }
                        }
                        injected += faults.fired() - fired_before;
                        // Appends and local reads go on.
                        let loc = db.add(&b"after the fault"[..]).await.unwrap();
                        db.flush().await.unwrap();
                        assert_eq!(
                            db.read(loc).await.unwrap().as_deref(),
                            Some(&b"after the fault"[..])
                        );
                        faults.heal();
                        db.tier().await.unwrap();
                        let local = db
                            .handle_catalog()
                            .older()
                            .iter()
                            .filter(|(_, f)| !f.remote)
                            .count();
                        assert!(local <= 1, "{kind:?} at {n}: {local} sealed files local");
                        for (loc, data) in &items {
                            assert_eq!(db.read(*loc).await.unwrap().as_deref(), Some(&data[..]));
                        }
                        db.stop().await.unwrap();
                        let db = open_tiered(&fs, faults.clone(), false).await.unwrap();
                        for (loc, data) in &items {
                            assert_eq!(db.read(*loc).await.unwrap().as_deref(), Some(&data[..]));
                        }
                        db.stop().await.unwrap();
                    });
                }
            }
        }
        eprintln!("store faults: {injected} injected, {typed} typed Error::Remote, 0 panics");
        assert!(injected > 50 && typed > 50, "{injected} {typed}");
    }

    #[test]
    fn a_directory_with_remote_files_needs_its_tiering() {
        let rt = rt();
        rt.block_on(async {
            let fs = SimFs::new();
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let db = open_tiered(&fs, Arc::clone(&store), false).await.unwrap();
            fill(&db, 3, 0).await;
            assert_eq!(db.tier().await.unwrap().len(), 2);
            db.stop().await.unwrap();
            let names = fs.names();
            assert!(!names.contains(&"data00000.dat".to_string()), "{names:?}");
            assert!(names.contains(&"data00000.idx".to_string()), "{names:?}");
            let plain = Builder::new("/db")
                .max_file_size(1024)
                .max_buffer_size(1000)
                .validate()
                .unwrap()
                .0;
            let e = AioDiskDb::start_with(Arc::new(fs.clone()), plain.clone(), Hooks::default())
                .await
                .unwrap_err();
            let msg = e.to_string();
            assert!(
                matches!(e, crate::Error::InvalidConfiguration { .. }),
                "{e:?}"
            );
            for want in [
                "InMemory",
                PREFIX,
                "data00000.dat",
                "data00001.dat",
                "--store s3://BUCKET/node-1/blocks",
            ] {
                assert!(msg.contains(want), "{want} in {msg}");
            }
            // Inspected: where each index lives; with the tiering, each object checked.
            let opts = plain.store_options();
            let ins = crate::inspect::inspect_with(&fs, &opts).unwrap();
            assert!(ins.is_sound(), "{:?}", ins.problems);
            let remote: Vec<(u32, &str)> = ins
                .remote_files
                .iter()
                .map(|f| (f.index, f.key.as_str()))
                .collect();
            assert_eq!(
                remote,
                [
                    (0, "node-1/blocks/data00000.dat"),
                    (1, "node-1/blocks/data00001.dat")
                ]
            );
            assert!(ins.files.iter().all(|f| f.index >= 2), "{:?}", ins.files);
            let at = ins.remote_store.clone().unwrap();
            assert_eq!(
                (at.store.as_str(), at.prefix.as_str(), at.url.as_str()),
                ("InMemory", PREFIX, "s3://BUCKET/node-1/blocks")
            );
            let tiering = Tiering::new(Arc::clone(&store), PREFIX);
            let checked = crate::tiering::check_objects(ins.clone(), &tiering, &opts).await;
            assert!(checked.is_sound(), "{:?}", checked.problems);
            let key1 = ObjectPath::from(format!("{PREFIX}/data00001.dat"));
            let kept = get_object(&store, &key1).await;
            crate::tiering::delete(store.as_ref(), &key1).await.unwrap();
            let checked = crate::tiering::check_objects(ins.clone(), &tiering, &opts).await;
            assert_eq!(checked.problems.len(), 1, "{:?}", checked.problems);
            assert!(checked.problems[0].path.ends_with("data00001.dat"));
            assert!(checked.problems[0].message.contains("is missing"));
            put_object(&store, &key1, kept[..30].to_vec()).await;
            let checked = crate::tiering::check_objects(ins, &tiering, &opts).await;
            assert!(
                checked.problems[0].message.contains("30 bytes long"),
                "{:?}",
                checked.problems
            );
            put_object(&store, &key1, kept).await;
            let other = Builder::new("/db")
                .max_file_size(1024)
                .max_buffer_size(1000)
                .tiering(Tiering::new(Arc::clone(&store), "elsewhere"))
                .validate()
                .unwrap()
                .0;
            let e = AioDiskDb::start_with(Arc::new(fs.clone()), other, Hooks::default())
                .await
                .unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("elsewhere") && msg.contains(PREFIX), "{msg}");
            // Nothing was changed by the refusals: the right configuration opens.
            let db = open_tiered(&fs, store, false).await.unwrap();
            db.stop().await.unwrap();
        });
    }

    async fn get_object(store: &Arc<dyn ObjectStore>, key: &ObjectPath) -> Vec<u8> {
        let got = store.get_opts(key, GetOptions::default()).await.unwrap();
        got.bytes().await.unwrap().to_vec()
    }

    async fn put_object(store: &Arc<dyn ObjectStore>, key: &ObjectPath, bytes: Vec<u8>) {
        store
            .put_opts(key, bytes.into(), PutOptions::default())
            .await
            .unwrap();
    }

    /// `hydrate`: refused with the background uploader on and on a read-only handle; an
    /// object of the wrong length or whose data differ from the manifest's checksum is
    /// `Error::Remote` naming the key, the file stays remote, no temp file stays; then every
    /// file comes back (the sizes of their objects), every object under the prefix that
    /// names a file of ours goes (one planted for a local file too, not one of another
    /// name), every item reads back, and after a stop the directory opens without tiering.
    #[test]
    fn hydrate_brings_every_file_back_and_ends_tiering() {
        let rt = rt();
        rt.block_on(async {
            let fs = SimFs::new();
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let db = open_tiered(&fs, Arc::clone(&store), true).await.unwrap();
            let e = db.hydrate().await.unwrap_err();
            assert!(
                matches!(e, crate::Error::InvalidConfiguration { option, .. } if option.contains("upload_in_background")),
                "{e:?}"
            );
            db.stop().await.unwrap();
            let db = open_tiered(&fs, Arc::clone(&store), false).await.unwrap();
            let items = fill(&db, 4, 5).await;
            let tiered = db.tier().await.unwrap();
            assert_eq!(tiered.len(), 3);
            let key = |i: u32| ObjectPath::from(format!("{PREFIX}/data{i:05}.dat"));
            // Index 1's object altered, then cut short: refused, typed, nothing moves.
            let good = get_object(&store, &key(1)).await;
            let mut bad = good.clone();
            bad[30] ^= 1;
            for (object, want) in [(bad, "CRC32C"), (good[..40].to_vec(), "bytes long")] {
                put_object(&store, &key(1), object).await;
                match db.hydrate().await {
                    Err(crate::Error::Remote { key: k, cause }) => {
                        assert_eq!(k, key(1).to_string());
                        assert!(cause.contains(want), "{cause}");
                    }
                    r => panic!("{r:?}"),
                }
                let catalog = db.handle_catalog();
                assert!(catalog.get(1).unwrap().remote && catalog.get(2).unwrap().remote);
                assert!(!catalog.get(0).unwrap().remote, "index 0 came back before");
                assert!(fs.names().iter().all(|n| !n.starts_with(".tmp.")), "{:?}", fs.names());
            }
            put_object(&store, &key(1), good).await;
            // Orphans: an object for local index 3 (nothing names it: deleted), and a key of
            // another name (kept).
            put_object(&store, &key(3), b"orphan".to_vec()).await;
            let other = ObjectPath::from(format!("{PREFIX}/notes.txt"));
            put_object(&store, &other, b"not ours".to_vec()).await;
            let hydrated = db.hydrate().await.unwrap();
            assert_eq!(
                hydrated.iter().map(|h| (h.index, h.size)).collect::<Vec<_>>(),
                tiered
                    .iter()
                    .filter(|t| t.index != 0)
                    .map(|t| (t.index, t.size))
                    .collect::<Vec<_>>()
            );
            assert!(db.handle_catalog().older().iter().all(|(_, f)| !f.remote));
            let left: Vec<String> = store
                .list(Some(&ObjectPath::from(PREFIX)))
                .map(|o| o.unwrap().location.to_string())
                .collect()
                .await;
            assert_eq!(left, vec![other.to_string()]);
            for (loc, data) in &items {
                assert_eq!(db.read(*loc).await.unwrap().as_deref(), Some(&data[..]));
            }
            // Spawned (its future is `Send`): nothing left to do.
            let again = tokio::spawn({
                let db = db.clone();
                async move { db.hydrate().await }
            });
            assert!(again.await.unwrap().unwrap().is_empty());
            let loc = db.add(&b"after hydrate"[..]).await.unwrap();
            db.stop().await.unwrap();
            let ro = Builder::new("/db")
                .read_only()
                .tiering(Tiering::new(Arc::clone(&store), PREFIX).upload_in_background(false))
                .validate()
                .unwrap()
                .0;
            let reader = AioDiskDb::start_with(Arc::new(fs.clone()), ro, Hooks::default())
                .await
                .unwrap();
            assert!(matches!(reader.hydrate().await, Err(crate::Error::ReadOnly)));
            reader.stop().await.unwrap();
            let db = AioDiskDb::start_with(Arc::new(fs.clone()), plain_config(), Hooks::default())
                .await
                .unwrap();
            for (loc, data) in &items {
                assert_eq!(db.read(*loc).await.unwrap().as_deref(), Some(&data[..]));
            }
            assert_eq!(db.read(loc).await.unwrap().as_deref(), Some(&b"after hydrate"[..]));
            db.stop().await.unwrap();
        });
    }

    /// A read-only handle on a tiered directory: refused without tiering (the writer's
    /// error), and with it every item read, local or remote, also files the writer tiers
    /// and drops while the handle is open; `tier` refused with `ReadOnly`.
    #[test]
    fn a_read_only_handle_reads_remote_files() {
        let rt = rt();
        rt.block_on(async {
            let fs = SimFs::new();
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let db = open_tiered(&fs, Arc::clone(&store), false).await.unwrap();
            let mut items = fill(&db, 3, 3).await;
            assert_eq!(db.tier().await.unwrap().len(), 2);
            let plain = Builder::new("/db").read_only().validate().unwrap().0;
            let e = AioDiskDb::start_with(Arc::new(fs.clone()), plain, Hooks::default())
                .await
                .unwrap_err();
            assert!(
                matches!(e, crate::Error::InvalidConfiguration { .. }),
                "{e:?}"
            );
            assert!(e.to_string().contains("data00000.dat"), "{e}");
            let ro = Builder::new("/db")
                .read_only()
                .tiering(Tiering::new(Arc::clone(&store), PREFIX))
                .validate()
                .unwrap()
                .0;
            let reader = AioDiskDb::start_with(Arc::new(fs.clone()), ro, Hooks::default())
                .await
                .unwrap();
            for (loc, data) in &items {
                assert_eq!(reader.read(*loc).await.unwrap().as_deref(), Some(&data[..]));
            }
            assert!(matches!(reader.tier().await, Err(crate::Error::ReadOnly)));
            // The writer seals and tiers more while the reader is open.
            let before = db.handle_catalog().head();
            loop {
                let more = fill(&db, 1, 9).await;
                items.extend(more);
                if db.handle_catalog().head() >= before + 2 {
                    break;
                }
            }
            assert!(!db.tier().await.unwrap().is_empty());
            for (loc, data) in &items {
                assert_eq!(reader.read(*loc).await.unwrap().as_deref(), Some(&data[..]));
            }
            // A remote index the writer drops reads None.
            db.drop_index(1).await.unwrap();
            tokio::time::sleep(crate::readonly::REFRESH_AFTER * 2).await;
            for (loc, data) in &items {
                let want = (loc.index != 1).then_some(&data[..]);
                assert_eq!(reader.read(*loc).await.unwrap().as_deref(), want, "{loc}");
            }
            reader.stop().await.unwrap();
            db.stop().await.unwrap();
        });
    }

    #[test]
    fn remote_reads_are_checked_cached_and_dropped_with_their_object() {
        let rt = rt();
        rt.block_on(async {
            let fs = SimFs::new();
            let backing: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let counting = Arc::new(FaultStore::new(Arc::clone(&backing)));
            let db = open_tiered(&fs, counting.clone(), false).await.unwrap();
            let mut rx = db.subscribe();
            let items = fill(&db, 3, 7).await;
            let tiered = db.tier().await.unwrap();
            assert_eq!(
                tiered.iter().map(|t| t.index).collect::<Vec<_>>(),
                vec![0, 1]
            );
            let mut events = Vec::new();
            while let Ok(e) = rx.try_recv() {
                events.push(e);
            }
            assert_eq!(
                tiered_events(&events),
                tiered.iter().map(|t| (t.index, t.size)).collect::<Vec<_>>()
            );
            let (loc, data) = items.iter().find(|(l, _)| l.index == 0).unwrap().clone();
            // One ranged GET, then the cache.
            let before = counting.calls();
            assert_eq!(db.read(loc).await.unwrap().as_deref(), Some(&data[..]));
            assert_eq!(counting.calls(), before + 1);
            assert_eq!(db.read(loc).await.unwrap().as_deref(), Some(&data[..]));
            assert_eq!(counting.calls(), before + 1, "served from the cache");
            // A byte flipped in the object: the item is reported corrupt, never returned.
            let (other, _) = items
                .iter()
                .find(|(l, _)| l.index == 0 && l.position != loc.position)
                .unwrap()
                .clone();
            let key = ObjectPath::from(format!("{PREFIX}/data00000.dat"));
            let mut object = backing
                .get_opts(&key, GetOptions::default())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec();
            object[24 + other.position as usize] ^= 1;
            backing
                .put_opts(&key, object.into(), PutOptions::default())
                .await
                .unwrap();
            match db.read(other).await {
                Err(crate::Error::Corrupted { location, reason }) => {
                    assert_eq!(location, other);
                    assert!(reason.contains("remote copy"), "{reason}");
                }
                r => panic!("{r:?}"),
            }
            // A drop of a remote index deletes its object, and its items read None.
            db.enable_overwrite();
            db.drop_index(1).await.unwrap();
            let key1 = ObjectPath::from(format!("{PREFIX}/data00001.dat"));
            assert!(matches!(
                backing.get_opts(&key1, GetOptions::default()).await,
                Err(object_store::Error::NotFound { .. })
            ));
            for (l, _) in items.iter().filter(|(l, _)| l.index == 1) {
                assert_eq!(db.read(*l).await.unwrap(), None);
            }
            assert_eq!(db.read(loc).await.unwrap().as_deref(), Some(&data[..]));
            let v = db.verify().await.unwrap();
            assert_eq!(v.remote_files, 1);
            assert!(v.is_ok(), "{v:?}");
            // Its object gone: a problem of the file, by HEAD (nothing downloaded).
            let object = get_object(&backing, &key).await;
            crate::tiering::delete(backing.as_ref(), &key)
                .await
                .unwrap();
            let v = db.verify().await.unwrap();
            assert_eq!(v.problems.len(), 1, "{v:?}");
            let d = &v.problems[0];
            assert_eq!(
                (d.index, d.location, d.kind),
                (0, None, crate::DamageKind::Missing)
            );
            assert!(d.message.contains("data00000.dat"), "{}", d.message);
            put_object(&backing, &key, object).await;
            assert_eq!(
                db.locations(0).await.unwrap().len(),
                items.iter().filter(|(l, _)| l.index == 0).count()
            );
            db.stop().await.unwrap();
        });
    }

    /// rtrim and ltrim of remote indexes: validated and safety-checked (the check's bytes
    /// read from the object), recorded in the manifest without touching the object, read
    /// as trimmed (`None`) by the handle, after a reopen and by a read-only handle; the
    /// object keeps its bytes and its trim offset; trims that reach every byte drop the
    /// index and its object.
    #[test]
    #[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
    fn remote_trims_are_recorded_and_read_as_trimmed() {
        let end_of = |l: ItemLocation| u32::try_from(l.end()).unwrap();
        let rt = rt();
        rt.block_on(async {
            let fs = SimFs::new();
            let backing: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let counting = Arc::new(FaultStore::new(Arc::clone(&backing)));
            let db = open_tiered(&fs, counting.clone(), false).await.unwrap();
            db.enable_overwrite();
            // Items of 100 bytes: 10 a file.
            let mut items = Vec::new();
            for k in 0..35u8 {
                let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(k) ^ k).collect();
                items.push((db.add(data.clone()).await.unwrap(), data));
            }
            db.flush().await.unwrap();
            assert_eq!(db.tier().await.unwrap().len(), 2);
            let of = |index: u32| -> Vec<(ItemLocation, Vec<u8>)> {
                items
                    .iter()
                    .filter(|(l, _)| l.index == index)
                    .cloned()
                    .collect()
            };
            let zero = of(0);
            assert_eq!(zero.len(), 10);
            let key = ObjectPath::from(format!("{PREFIX}/data00000.dat"));
            let object = backing
                .get_opts(&key, GetOptions::default())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let end = db.handle_catalog().get(0).unwrap().end;
            let (last, last_data) = zero.last().unwrap().clone();
            let trim = |r: crate::Result<u64>| match r {
                Err(crate::Error::InvalidTrimCommand { reason, .. }) => reason,
                other => panic!("{other:?}"),
            };
            // A wrong safety check (read from the object) changes nothing.
            let before = counting.calls();
            let why = trim(db.rtrim(0, last.position, b"wrong").await);
            assert!(why.contains("safety check failed"), "{why}");
            assert!(
                counting.calls() > before,
                "the check was read from the object"
            );
            let why = trim(db.rtrim(0, end - 2, b"past").await);
            assert!(why.contains("outside the stored range"), "{why}");
            assert!(trim(db.rtrim(0, end + 1, &[]).await).contains("past the end"));
            assert_eq!(
                db.read(last).await.unwrap().as_deref(),
                Some(&last_data[..])
            );
            // rtrim with a right check: the last item goes.
            let got = db.rtrim(0, last.position, &last_data[..7]).await.unwrap();
            assert_eq!(got, u64::from(end - last.position));
            assert_eq!(db.read(last).await.unwrap(), None);
            // ltrim with a right check: the first item goes; then one without a check.
            let (first, first_data) = zero[0].clone();
            let tail = &first_data[first_data.len() - 9..];
            let why = trim(db.ltrim(0, end_of(first), b"not these").await);
            assert!(why.contains("safety check failed"), "{why}");
            assert!(trim(db.ltrim(0, 0, &[]).await).contains("above the current trim offset"));
            assert_eq!(
                db.ltrim(0, end_of(first), tail).await.unwrap(),
                u64::from(first.size)
            );
            let (second, _) = zero[1].clone();
            assert_eq!(db.ltrim(0, second.position + 10, &[]).await.unwrap(), 10);
            let check = |db: AioDiskDb| {
                let zero = zero.clone();
                async move {
                    for (i, (loc, data)) in zero.iter().enumerate() {
                        let kept = i >= 2 && i + 1 < zero.len();
                        let want = kept.then_some(&data[..]);
                        assert_eq!(db.read(*loc).await.unwrap().as_deref(), want, "{loc}");
                    }
                    // The rest of the item the ltrim cut is stored, unindexed.
                    let cut = ItemLocation {
                        index: 0,
                        position: second.position + 10,
                        size: second.size - 10,
                    };
                    assert_eq!(
                        db.read(cut).await.unwrap().as_deref(),
                        Some(&zero[1].1[10..])
                    );
                    let listed = db.locations(0).await.unwrap();
                    let mut want = vec![cut];
                    want.extend(zero[2..zero.len() - 1].iter().map(|(l, _)| *l));
                    assert_eq!(listed, want);
                    let info = db.handle_catalog().get(0).unwrap();
                    assert!(info.remote);
                    assert_eq!((info.trim_offset, info.end), (cut.position, last.position));
                    assert_eq!(info.object_trim_offset, 0);
                    db
                }
            };
            let db = check(db).await;
            let v = db.verify().await.unwrap();
            assert!(v.is_ok(), "{v:?}");
            assert_eq!(v.remote_files, 2);
            db.stop().await.unwrap();
            // The object is as uploaded.
            let now = backing
                .get_opts(&key, GetOptions::default())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(now, object);
            // Reopened, and beside it a read-only handle: the same.
            let db = check(open_tiered(&fs, counting.clone(), false).await.unwrap()).await;
            let ro = Builder::new("/db")
                .read_only()
                .tiering(Tiering::new(counting.clone(), PREFIX))
                .validate()
                .unwrap()
                .0;
            let reader = AioDiskDb::start_with(Arc::new(fs.clone()), ro, Hooks::default())
                .await
                .unwrap();
            let reader = check(reader).await;
            // A second rtrim of the trimmed file, then trims that reach every byte drop
            // the indexes and their objects.
            db.enable_overwrite();
            let (third, third_data) = zero[2].clone();
            assert_eq!(
                db.rtrim(0, end_of(third), &[]).await.unwrap(),
                u64::from(last.position - end_of(third))
            );
            assert_eq!(
                db.read(third).await.unwrap().as_deref(),
                Some(&third_data[..])
            );
            // The read-only handle sees it at its next refresh.
            tokio::time::sleep(crate::readonly::REFRESH_AFTER * 2).await;
            assert_eq!(reader.read(zero[3].0).await.unwrap(), None);
            assert_eq!(
                reader.read(third).await.unwrap().as_deref(),
                Some(&third_data[..])
            );
            let mut rx = db.subscribe();
            assert_eq!(
                db.ltrim(0, end_of(third), &third_data[third_data.len() - 3..])
                    .await
                    .unwrap(),
                u64::from(end_of(third) - second.position - 10)
            );
            assert!(matches!(
                rx.try_recv(),
                Ok(Event::IndexDropped { index: 0, .. })
            ));
            let one = of(1);
            assert!(db.rtrim(1, 0, &one[0].1[..4]).await.unwrap() > 0);
            for index in [0, 1] {
                let key = ObjectPath::from(format!("{PREFIX}/data0000{index}.dat"));
                assert!(matches!(
                    backing.get_opts(&key, GetOptions::default()).await,
                    Err(object_store::Error::NotFound { .. })
                ));
            }
            for (loc, _) in &items {
                if loc.index < 2 {
                    assert_eq!(db.read(*loc).await.unwrap(), None);
                }
            }
            tokio::time::sleep(crate::readonly::REFRESH_AFTER * 2).await;
            assert_eq!(reader.read(third).await.unwrap(), None);
            reader.stop().await.unwrap();
            db.stop().await.unwrap();
        });
    }

    /// The safety check of a remote trim read from a store that fails (`Error::Remote`) or
    /// from a damaged object (`Error::Corrupted`, the item's CRC32C): the trim fails, typed,
    /// with nothing changed and the handle not poisoned; once the store answers, it runs.
    #[test]
    fn a_remote_safety_check_that_cannot_be_read_changes_nothing() {
        let rt = rt();
        rt.block_on(async {
            let fs = SimFs::new();
            let backing: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let faults = Arc::new(FaultStore::new(Arc::clone(&backing)));
            let db = open_tiered(&fs, faults.clone(), false).await.unwrap();
            db.enable_overwrite();
            let items = fill(&db, 2, 1).await;
            assert_eq!(db.tier().await.unwrap().len(), 1);
            let zero: Vec<_> = items
                .iter()
                .filter(|(l, _)| l.index == 0)
                .cloned()
                .collect();
            let (loc, data) = zero[1].clone();
            let unchanged = || async {
                for (l, d) in &items {
                    assert_eq!(db.read(*l).await.unwrap().as_deref(), Some(&d[..]), "{l}");
                }
            };
            for kind in StoreFault::ALL {
                faults.fail(0, kind, false);
                match db.rtrim(0, loc.position, &data[..4]).await {
                    Err(crate::Error::Remote { key, .. }) => {
                        assert!(key.ends_with("data00000.dat"), "{key}");
                    }
                    other => panic!("{kind:?}: {other:?}"),
                }
                faults.heal();
                unchanged().await;
            }
            // A byte flipped in the object, inside the item the check reads.
            let key = ObjectPath::from(format!("{PREFIX}/data00000.dat"));
            let object = backing
                .get_opts(&key, GetOptions::default())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let mut bad = object.to_vec();
            bad[24 + loc.position as usize + 100] ^= 1;
            backing
                .put_opts(&key, bad.into(), PutOptions::default())
                .await
                .unwrap();
            match db
                .ltrim(0, u32::try_from(loc.end()).unwrap(), &data[296..])
                .await
            {
                Err(crate::Error::Corrupted { location, reason }) => {
                    assert_eq!(location, loc);
                    assert!(reason.contains("remote copy"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
            backing
                .put_opts(&key, object.into(), PutOptions::default())
                .await
                .unwrap();
            unchanged().await;
            let end = db.handle_catalog().get(0).unwrap().end;
            assert_eq!(
                db.rtrim(0, loc.position, &data[..4]).await.unwrap(),
                u64::from(end - loc.position)
            );
            assert_eq!(db.read(loc).await.unwrap(), None);
            db.stop().await.unwrap();
        });
    }

    /// The background uploader tiers sealed files as they appear, appends never wait
    /// for it, the disk holds no more than `keep_local` sealed files once it caught up, and
    /// a stop in the middle of it leaves a directory that reopens with everything.
    #[test]
    fn the_background_uploader_tiers_as_files_are_sealed() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let fs = SimFs::new();
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let db = open_tiered(&fs, Arc::clone(&store), true).await.unwrap();
            let mut rx = db.subscribe();
            let items = fill(&db, 6, 3).await;
            let mut seen = std::collections::BTreeSet::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while seen.len() < 5 {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Ok(Event::Tiered { index, .. })) => {
                        seen.insert(index);
                    }
                    Ok(Ok(_)) => {}
                    other => panic!("no Tiered event: {other:?}, seen {seen:?}"),
                }
            }
            assert_eq!(seen, (0..5).collect());
            let data_files = fs
                .names()
                .iter()
                .filter(|n| {
                    std::path::Path::new(n)
                        .extension()
                        .is_some_and(|e| e == "dat")
                })
                .count();
            assert_eq!(data_files, 2, "keep_local 1 and the head: {:?}", fs.names());
            for (loc, data) in &items {
                assert_eq!(db.read(*loc).await.unwrap().as_deref(), Some(&data[..]));
            }
            // More files, and a stop while the uploader may be busy with them.
            let more = fill(&db, 9, 4).await;
            db.stop().await.unwrap();
            let db = open_tiered(&fs, store, false).await.unwrap();
            for (loc, data) in items.iter().chain(&more) {
                assert_eq!(db.read(*loc).await.unwrap().as_deref(), Some(&data[..]));
            }
            db.tier().await.unwrap();
            db.stop().await.unwrap();
        });
    }

    /// Remote trims, hydrate and the 8-byte tails, scenario by scenario (from a review
    /// that tried to break them; the racing read is the one it broke).
    mod remote_trims {
        use super::*;

        /// One step of a scenario.
        #[derive(Debug, Clone, Copy)]
        enum Op {
            Tier,
            Hydrate,
            /// ltrim(index, to) with a safety check of the last 4 bytes (fewer if not stored).
            L(u32, u32),
            /// rtrim(index, from) with a safety check of the first 4 bytes.
            R(u32, u32),
            Drop(u32),
            Reopen,
            Check,
        }

        /// What the scenario expects: per index, its logical range (`None`: dropped), and the
        /// bytes of every position.
        struct RModel {
            files: BTreeMap<u32, Option<(u32, u32)>>,
            bytes: BTreeMap<u32, Vec<u8>>,
            items: Vec<(ItemLocation, Vec<u8>)>,
        }

        async fn check_trimmed(db: &AioDiskDb, m: &RModel, label: &str, errs: &mut Vec<String>) {
            let catalog = db.handle_catalog();
            for (&index, &range) in &m.files {
                let got = catalog.get(index).map(|f| (f.trim_offset, f.end));
                if got != range {
                    errs.push(format!(
                        "{label}: catalog of {index}: {got:?}, want {range:?}"
                    ));
                }
                let Some((trim, end)) = range else {
                    continue;
                };
                let bytes = &m.bytes[&index];
                if end > trim {
                    let loc = ItemLocation {
                        index,
                        position: trim,
                        size: end - trim,
                    };
                    match db.read(loc).await {
                        Ok(Some(b)) if b[..] == bytes[trim as usize..end as usize] => {}
                        other => errs.push(format!(
                            "{label}: whole range {loc}: {:?}",
                            other.map(|o| o.map(|b| b.len()))
                        )),
                    }
                }
                if trim > 0 {
                    let loc = ItemLocation {
                        index,
                        position: trim - 1,
                        size: 1,
                    };
                    match db.read(loc).await {
                        Ok(None) => {}
                        other => errs.push(format!("{label}: below trim {loc}: {other:?}")),
                    }
                }
                if index < catalog.head() {
                    let loc = ItemLocation {
                        index,
                        position: end,
                        size: 1,
                    };
                    match db.read(loc).await {
                        Ok(None) => {}
                        other => errs.push(format!("{label}: past end {loc}: {other:?}")),
                    }
                }
                match db.locations(index).await {
                    Ok(locs) => {
                        let mut at = trim;
                        for l in &locs {
                            if l.position != at {
                                errs.push(format!(
                                    "{label}: locations of {index}: gap at {at}: {locs:?}"
                                ));
                                break;
                            }
                            at = l.position + l.size;
                            match db.read(*l).await {
                                Ok(Some(b)) if b[..] == bytes[l.position as usize..at as usize] => {
                                }
                                other => errs.push(format!("{label}: location {l}: {other:?}")),
                            }
                        }
                        if at != end {
                            errs.push(format!(
                                "{label}: locations of {index} end at {at}, want {end}: {locs:?}"
                            ));
                        }
                    }
                    Err(e) => errs.push(format!("{label}: locations({index}): {e:?}")),
                }
            }
            for (loc, data) in &m.items {
                let want = match m.files.get(&loc.index).copied().flatten() {
                    Some((trim, end)) => {
                        (loc.position >= trim && loc.end() <= u64::from(end)).then_some(&data[..])
                    }
                    None => None,
                };
                match db.read(*loc).await {
                    Ok(got) if got.as_deref() == want => {}
                    other => errs.push(format!(
                        "{label}: item {loc}: {:?}, want {:?}",
                        other.map(|o| o.map(|b| b.len())),
                        want.map(<[u8]>::len)
                    )),
                }
            }
            match db.verify().await {
                Ok(v) if v.is_ok() => {}
                other => errs.push(format!("{label}: verify: {other:?}")),
            }
        }

        fn read_only_config(store: Arc<dyn ObjectStore>) -> Config {
            Builder::new("/db")
                .read_only()
                .tiering(Tiering::new(store, PREFIX).upload_in_background(false))
                .validate()
                .unwrap()
                .0
        }

        /// Runs `ops`, then checks; reopens and checks; a read-only handle checks; hydrates,
        /// checks, reopens (tiering) and checks; reopens without tiering twice and checks.
        /// Returns what went wrong.
        #[allow(clippy::too_many_lines)]
        async fn run_scenario(ops: &[Op]) -> Vec<String> {
            let mut errs = Vec::new();
            let fs = SimFs::new();
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let open = || open_tiered(&fs, Arc::clone(&store), false);
            let mut db = open().await.unwrap();
            let mut m = RModel {
                files: BTreeMap::new(),
                bytes: BTreeMap::new(),
                items: Vec::new(),
            };
            for k in 0..35u32 {
                let data: Vec<u8> = (0..100u32)
                    .map(|i| (i.wrapping_mul(31) ^ k.wrapping_mul(97) ^ (i * k)).to_le_bytes()[0])
                    .collect();
                let loc = db.add(data.clone()).await.unwrap();
                let b = m.bytes.entry(loc.index).or_default();
                assert_eq!(u32::try_from(b.len()).unwrap(), loc.position);
                b.extend_from_slice(&data);
                m.files
                    .insert(loc.index, Some((0, loc.position + loc.size)));
                m.items.push((loc, data));
            }
            db.flush().await.unwrap();
            assert_eq!(db.handle_catalog().head(), 3);
            let ops: Vec<Op> = ops
                .iter()
                .copied()
                .chain([Op::Check, Op::Reopen, Op::Check])
                .collect();
            for (n, op) in ops.iter().enumerate() {
                let label = format!("op {n} {op:?}");
                match *op {
                    Op::Tier => {
                        if let Err(e) = db.tier().await {
                            errs.push(format!("{label}: {e:?}"));
                        }
                    }
                    Op::Hydrate => match db.hydrate().await {
                        Ok(_) => {
                            if db.handle_catalog().older().iter().any(|(_, f)| f.remote) {
                                errs.push(format!("{label}: a file is still remote"));
                            }
                        }
                        Err(e) => errs.push(format!("{label}: {e:?}")),
                    },
                    Op::L(index, to) => {
                        let (trim, end) = m.files[&index].unwrap();
                        let len = 4.min(to - trim) as usize;
                        let check = m.bytes[&index][to as usize - len..to as usize].to_vec();
                        match db.ltrim(index, to, &check).await {
                            Ok(n) if u64::from(to - trim) == n => {
                                m.files.insert(index, (to < end).then_some((to, end)));
                            }
                            other => errs.push(format!("{label}: {other:?}")),
                        }
                    }
                    Op::R(index, from) => {
                        let (trim, end) = m.files[&index].unwrap();
                        let len = if from >= trim {
                            4.min(end - from) as usize
                        } else {
                            0
                        };
                        let check = m.bytes[&index][from as usize..from as usize + len].to_vec();
                        let new_end = from.max(trim);
                        match db.rtrim(index, from, &check).await {
                            Ok(n) if from == 0 || u64::from(end - new_end) == n => {
                                m.files.insert(index, (from > 0).then_some((trim, new_end)));
                            }
                            other => errs.push(format!("{label}: {other:?}")),
                        }
                    }
                    Op::Drop(index) => match db.drop_index(index).await {
                        Ok(_) => {
                            m.files.insert(index, None);
                        }
                        Err(e) => errs.push(format!("{label}: {e:?}")),
                    },
                    Op::Reopen => {
                        if let Err(e) = db.stop().await {
                            errs.push(format!("{label}: stop: {e:?}"));
                        }
                        match open().await {
                            Ok(d) => db = d,
                            Err(e) => {
                                errs.push(format!("{label}: reopen: {e:?}"));
                                return errs;
                            }
                        }
                    }
                    Op::Check => check_trimmed(&db, &m, &label, &mut errs).await,
                }
                if !errs.is_empty() {
                    return errs;
                }
            }
            // A read-only handle beside the writer.
            match AioDiskDb::start_with(
                Arc::new(fs.clone()) as Arc<dyn Fs>,
                read_only_config(Arc::clone(&store)),
                Hooks::default(),
            )
            .await
            {
                Ok(ro) => {
                    check_trimmed(&ro, &m, "read-only", &mut errs).await;
                    ro.stop().await.unwrap();
                }
                Err(e) => errs.push(format!("read-only open: {e:?}")),
            }
            if let Err(e) = db.hydrate().await {
                errs.push(format!("final hydrate: {e:?}"));
                return errs;
            }
            check_trimmed(&db, &m, "after hydrate", &mut errs).await;
            db.stop().await.unwrap();
            match open().await {
                Ok(d) => {
                    check_trimmed(&d, &m, "hydrated, reopened tiered", &mut errs).await;
                    d.stop().await.unwrap();
                }
                Err(e) => errs.push(format!("hydrated, reopen tiered: {e:?}")),
            }
            for n in 0..2 {
                match AioDiskDb::start_with(
                    Arc::new(fs.clone()) as Arc<dyn Fs>,
                    plain_config(),
                    Hooks::default(),
                )
                .await
                {
                    Ok(d) => {
                        check_trimmed(&d, &m, &format!("plain open {n}"), &mut errs).await;
                        d.stop().await.unwrap();
                    }
                    Err(e) => errs.push(format!("plain open {n}: {e:?}")),
                }
            }
            errs
        }

        #[test]
        fn scenarios() {
            use Op::{Check, Drop, Hydrate, Reopen, Tier, L, R};
            let scenarios: Vec<(&str, Vec<Op>)> = vec![
                ("ltrim remote keep 3", vec![Tier, L(0, 997)]),
                ("ltrim remote keep 1", vec![Tier, L(0, 999)]),
                (
                    "ltrim remote keep 7 then 4",
                    vec![Tier, L(0, 993), L(0, 996)],
                ),
                ("ltrim remote keep 8", vec![Tier, L(0, 992)]),
                ("rtrim remote 500", vec![Tier, R(0, 500)]),
                ("rtrim remote 3", vec![Tier, R(0, 3)]),
                ("rtrim remote mid item", vec![Tier, R(0, 550)]),
                ("ltrim then rtrim keep 2", vec![Tier, L(0, 350), R(0, 352)]),
                (
                    "ltrim then rtrim below trim",
                    vec![Tier, L(0, 300), R(0, 200)],
                ),
                ("ltrim then rtrim at trim", vec![Tier, L(0, 300), R(0, 300)]),
                ("rtrim then ltrim keep 3", vec![Tier, R(0, 500), L(0, 497)]),
                (
                    "local ltrim, tier, remote ltrim keep 3",
                    vec![L(0, 500), Tier, L(0, 997)],
                ),
                ("local ltrim keep 3, tier", vec![L(0, 997), Tier]),
                (
                    "local ltrim keep 3, tier, rtrim",
                    vec![L(0, 997), Tier, R(0, 998)],
                ),
                (
                    "local ltrim keep 5, tier, ltrim keep 2",
                    vec![L(0, 995), Tier, L(0, 998)],
                ),
                ("remote ltrim then drop", vec![Tier, L(0, 997), Drop(0)]),
                (
                    "remote rtrim then drop via ltrim",
                    vec![Tier, R(0, 500), L(0, 500)],
                ),
                (
                    "hydrate, tier again",
                    vec![Tier, L(0, 997), R(1, 450), Hydrate, Check, Tier, Check],
                ),
                (
                    "hydrate then local ltrim keep 1",
                    vec![Tier, R(0, 550), Hydrate, L(0, 549)],
                ),
                (
                    "reopen between trims",
                    vec![Tier, L(0, 997), Reopen, R(0, 998), Reopen, L(1, 995)],
                ),
                (
                    "hydrate mid, reopen",
                    vec![Tier, L(0, 999), Hydrate, Reopen, Check],
                ),
                (
                    "both remote trimmed",
                    vec![Tier, L(0, 999), L(1, 998), R(1, 999)],
                ),
                ("rtrim remote 1", vec![Tier, R(0, 1)]),
                ("local file 2 trims too", vec![Tier, L(2, 997), L(0, 997)]),
                ("empty local file tiered", vec![L(0, 300), R(0, 200), Tier]),
                (
                    "empty remote file dropped",
                    vec![Tier, L(0, 300), R(0, 300), Drop(0)],
                ),
                (
                    "local keep 5, tier, rtrim keep 2",
                    vec![L(0, 995), Tier, R(0, 997)],
                ),
                (
                    "hydrate, tier, trim again",
                    vec![Tier, L(0, 550), Hydrate, Tier, R(0, 553), L(0, 552), Reopen],
                ),
            ];
            let rt = rt();
            let mut failed = Vec::new();
            for (name, ops) in scenarios {
                let errs = rt.block_on(run_scenario(&ops));
                if errs.is_empty() {
                    eprintln!("ok: {name}");
                } else {
                    eprintln!("FAILED: {name}: {errs:#?}");
                    failed.push(name);
                }
            }
            assert!(failed.is_empty(), "failed: {failed:?}");
        }

        /// A deterministic workload for the crash enumeration: 35 items of 100 bytes (three
        /// sealed files), a local ltrim of index 1 keeping 5 bytes, `tier` (indexes 0 and 1),
        /// a remote ltrim of index 0 keeping 3 bytes, a remote rtrim of index 1 keeping 3, a
        /// `hydrate`, a local ltrim of index 1 keeping 1, a stop.
        #[allow(clippy::too_many_lines)]
        async fn few_bytes_workload(fs: SimFs, store: Arc<dyn ObjectStore>) -> TierModel {
            // Each trim: the items of `index` it takes (by position) go.
            async fn trim(
                db: &AioDiskDb,
                m: &mut TierModel,
                index: u32,
                left: bool,
                at: u32,
                check: Vec<u8>,
            ) -> bool {
                let r = if left {
                    db.ltrim(index, at, &check).await
                } else {
                    db.rtrim(index, at, &check).await
                };
                let st = if r.is_ok() { St::Gone } else { St::MaybeGone };
                for it in m.items.iter_mut().filter(|i| {
                    i.loc.index == index
                        && i.st == St::Durable
                        && if left {
                            u64::from(at) > u64::from(i.loc.position)
                        } else {
                            i.loc.end() > u64::from(at)
                        }
                }) {
                    it.st = st;
                }
                r.is_ok()
            }
            let cfg = tier_config(store, false);
            let mut m = TierModel::default();
            let Ok(db) =
                AioDiskDb::start_with(Arc::new(fs.clone()) as Arc<dyn Fs>, cfg, Hooks::default())
                    .await
            else {
                return m;
            };
            for k in 0..35u32 {
                let data: Vec<u8> = (0..100u32)
                    .map(|i| (i.wrapping_mul(31) ^ k.wrapping_mul(97) ^ (i * k)).to_le_bytes()[0])
                    .collect();
                let Ok(loc) = db.add(data.clone()).await else {
                    return m;
                };
                m.items.push(Item {
                    loc,
                    data,
                    st: St::Pending,
                });
            }
            if db.flush().await.is_err() {
                return m;
            }
            m.settle(St::Pending, St::Durable);
            let bytes_of = |m: &TierModel, index: u32, from: u32, to: u32| -> Vec<u8> {
                let mut v = Vec::new();
                for it in m.items.iter().filter(|i| i.loc.index == index) {
                    v.extend_from_slice(&it.data);
                }
                v[from as usize..to as usize].to_vec()
            };
            let check = bytes_of(&m, 1, 991, 995);
            if !trim(&db, &mut m, 1, true, 995, check).await {
                return m;
            }
            let mut tiered = false;
            for _ in 0..8 {
                match db.tier().await {
                    Ok(_) => {
                        tiered = true;
                        break;
                    }
                    Err(crate::Error::Remote { .. }) => {}
                    Err(_) => return m,
                }
            }
            if !tiered {
                let _ = db.stop().await;
                return m;
            }
            let check = bytes_of(&m, 0, 993, 997);
            if !trim(&db, &mut m, 0, true, 997, check).await {
                return m;
            }
            let check = bytes_of(&m, 1, 998, 1000);
            if !trim(&db, &mut m, 1, false, 998, check).await {
                return m;
            }
            let mut hydrated = false;
            for _ in 0..8 {
                match db.hydrate().await {
                    Ok(_) => {
                        hydrated = true;
                        break;
                    }
                    Err(crate::Error::Remote { .. }) => {}
                    Err(_) => return m,
                }
            }
            if hydrated {
                m.hydrated = 1;
                let check = bytes_of(&m, 1, 995, 997);
                if !trim(&db, &mut m, 1, true, 997, check).await {
                    return m;
                }
            }
            let _ = db.stop().await;
            m
        }

        /// `enumerate_tiering` of `few_bytes_workload`.
        fn enumerate_few_bytes(seed: u64, tally: &TierTally) -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let full = SimFs::new();
            let store = Arc::new(sim_store(&full));
            let m = rt.block_on(few_bytes_workload(full.clone(), store));
            assert_eq!(
                m.hydrated,
                1,
                "{:?}",
                m.items.iter().map(|i| i.st).collect::<Vec<_>>()
            );
            let total = full.ops();
            for n in 0..=total {
                let fs = SimFs::new();
                fs.freeze_at(n);
                let store = Arc::new(sim_store(&fs));
                let backing = store.backing();
                let m = rt.block_on(few_bytes_workload(fs.clone(), store));
                for (v, damage) in Damage::ALL.into_iter().enumerate() {
                    let image = fs.crash_image(damage, seed ^ n.rotate_left(17) ^ v as u64);
                    tally.states.fetch_add(1, Ordering::Relaxed);
                    check_tiered(&image.crash_image(Damage::All, 0), &backing, &m)
                        .map_err(|e| format!("seed {seed} crash at op {n} ({damage:?}): {e}"))?;
                }
                let image = fs.crash_image(Damage::SyncedOnly, seed ^ n.rotate_left(17));
                check_redo(
                    &image.crash_image(Damage::All, 0),
                    &backing,
                    &m,
                    Mix::Hydrate,
                )
                .map_err(|e| format!("seed {seed} crash at op {n}, then a session: {e}"))?;
            }
            eprintln!("{total} ops");
            Ok(())
        }

        #[test]
        fn few_bytes_kept_at_every_crash_point() {
            let tally = TierTally::default();
            for seed in 0..2 {
                enumerate_few_bytes(seed, &tally).unwrap();
            }
            eprintln!("{} states", tally.states.load(Ordering::Relaxed));
        }

        /// Files of 17 MiB (three 8 MiB parts of the download), remote trims that cut at and
        /// around the parts' boundaries, hydrate, verify, reopen without tiering.
        #[test]
        #[allow(clippy::too_many_lines)]
        fn multipart_hydrate_of_trimmed_files() {
            const MIB: u32 = 1 << 20;
            let part = 8 * MIB;
            // Object offsets o: logical p = o - 24 (trim offset 0).
            let cases: Vec<(&str, Vec<(bool, u32)>)> = vec![
                ("ltrim at a part boundary", vec![(true, part - 24)]),
                ("ltrim one before", vec![(true, part - 25)]),
                ("ltrim one after", vec![(true, part - 23)]),
                ("rtrim at a part boundary", vec![(false, 2 * part - 24)]),
                ("rtrim one after", vec![(false, 2 * part - 23)]),
                (
                    "both, keeping 3 bytes across a boundary",
                    vec![(true, part - 25), (false, part - 22)],
                ),
                (
                    "both, keeping 3 bytes past a boundary",
                    vec![(true, 2 * part - 24), (false, 2 * part - 21)],
                ),
                ("ltrim keep 5 at the end", vec![(true, 17 * MIB - 5)]),
            ];
            let rt = rt();
            let mut failed = Vec::new();
            for (name, trims) in cases {
                let errs = rt.block_on(async {
                    let mut errs = Vec::new();
                    let fs = SimFs::new();
                    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
                    let cfg = |tiering: bool| {
                        let b = Builder::new("/db")
                            .max_file_size(24 + u64::from(17 * MIB))
                            .max_buffer_size(4 << 20)
                            .overwrite(true);
                        let b = if tiering {
                            b.tiering(
                                Tiering::new(Arc::clone(&store), PREFIX)
                                    .keep_local(0)
                                    .concurrency(3)
                                    .upload_in_background(false),
                            )
                        } else {
                            b
                        };
                        b.validate().unwrap().0
                    };
                    let db = AioDiskDb::start_with(
                        Arc::new(fs.clone()) as Arc<dyn Fs>,
                        cfg(true),
                        Hooks::default(),
                    )
                    .await
                    .unwrap();
                    let mut all = Vec::new();
                    for k in 0..18u32 {
                        let data: Vec<u8> = (0..MIB)
                            .map(|i| {
                                (i.wrapping_mul(2_654_435_761) ^ k.wrapping_mul(97)).to_le_bytes()
                                    [1]
                            })
                            .collect();
                        let loc = db.add(data.clone()).await.unwrap();
                        db.flush().await.unwrap();
                        if loc.index == 0 {
                            all.extend_from_slice(&data);
                        }
                    }
                    assert_eq!(db.tier().await.unwrap().len(), 1);
                    let (mut trim, mut end) = (0u32, 17 * MIB);
                    for (left, at) in trims {
                        let r = if left {
                            db.ltrim(0, at, &all[at as usize - 4..at as usize]).await
                        } else {
                            db.rtrim(0, at, &all[at as usize..at as usize + 4]).await
                        };
                        if let Err(e) = r {
                            errs.push(format!("trim {left} {at}: {e:?}"));
                            return errs;
                        }
                        if left {
                            trim = at;
                        } else {
                            end = at;
                        }
                    }
                    let check = |db: AioDiskDb, label: &'static str| {
                        let all = &all;
                        async move {
                            let mut errs = Vec::new();
                            let loc = ItemLocation {
                                index: 0,
                                position: trim,
                                size: end - trim,
                            };
                            match db.read(loc).await {
                                Ok(Some(b)) if b[..] == all[trim as usize..end as usize] => {}
                                other => errs.push(format!(
                                    "{label}: read {loc}: {:?}",
                                    other.map(|o| o.map(|b| b.len()))
                                )),
                            }
                            match db.verify().await {
                                Ok(v) if v.is_ok() => {}
                                other => errs.push(format!("{label}: verify {other:?}")),
                            }
                            (db, errs)
                        }
                    };
                    let (db, mut e) = check(db, "remote").await;
                    errs.append(&mut e);
                    match db.hydrate().await {
                        Ok(h) => {
                            let want = 24 + u64::from(end - trim);
                            if h.len() != 1 || h[0].size != want {
                                errs.push(format!("hydrated {h:?}, want size {want}"));
                            }
                        }
                        Err(e) => {
                            errs.push(format!("hydrate: {e:?}"));
                            return errs;
                        }
                    }
                    let (db, mut e) = check(db, "hydrated").await;
                    errs.append(&mut e);
                    db.stop().await.unwrap();
                    match AioDiskDb::start_with(
                        Arc::new(fs.clone()) as Arc<dyn Fs>,
                        cfg(false),
                        Hooks::default(),
                    )
                    .await
                    {
                        Ok(db) => {
                            let (db, mut e) = check(db, "plain").await;
                            errs.append(&mut e);
                            db.stop().await.unwrap();
                        }
                        Err(e) => errs.push(format!("plain open: {e:?}")),
                    }
                    errs
                });
                if errs.is_empty() {
                    eprintln!("ok: {name}");
                } else {
                    eprintln!("FAILED: {name}: {errs:#?}");
                    failed.push(name);
                }
            }
            assert!(failed.is_empty(), "failed: {failed:?}");
        }

        /// Random sequences of ops (valid trims at random positions, some inside items
        /// keeping 1 to 9 bytes), each checked by `run_scenario`.
        #[test]
        fn random_sequences() {
            let rt = rt();
            let mut failed = Vec::new();
            for seed in 0..400u64 {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut files: BTreeMap<u32, Option<(u32, u32)>> =
                    (0..3).map(|i| (i, Some((0, 1000)))).collect();
                let mut ops = Vec::new();
                for _ in 0..rng.gen_range(2..10) {
                    let r = rng.gen_range(0..100);
                    let live: Vec<u32> = files.iter().filter_map(|(i, f)| f.map(|_| *i)).collect();
                    if r < 15 {
                        ops.push(Op::Tier);
                    } else if r < 22 {
                        ops.push(Op::Hydrate);
                    } else if r < 30 {
                        ops.push(Op::Reopen);
                    } else if r < 33 && !live.is_empty() {
                        let i = live[rng.gen_range(0..live.len())];
                        files.insert(i, None);
                        ops.push(Op::Drop(i));
                    } else if !live.is_empty() {
                        let i = live[rng.gen_range(0..live.len())];
                        let (trim, end) = files[&i].unwrap();
                        if end <= trim + 1 {
                            continue;
                        }
                        let left = rng.gen_bool(0.5);
                        // Near the end (few bytes kept), near the start, or anywhere.
                        let at = match rng.gen_range(0..3) {
                            0 if left => end - rng.gen_range(1..=9.min(end - trim - 1)),
                            0 => trim + rng.gen_range(1..=9.min(end - trim - 1)),
                            _ => rng.gen_range(trim + 1..end),
                        };
                        if left {
                            files.insert(i, Some((at, end)));
                            ops.push(Op::L(i, at));
                        } else {
                            files.insert(i, Some((trim, at)));
                            ops.push(Op::R(i, at));
                        }
                    }
                }
                let errs = rt.block_on(run_scenario(&ops));
                if !errs.is_empty() {
                    eprintln!("FAILED seed {seed}: {ops:?}: {errs:#?}");
                    failed.push(seed);
                }
            }
            assert!(failed.is_empty(), "failed: {failed:?}");
        }

        /// A stop while `hydrate` downloads a file: its record step finds the handle
        /// stopped (`NotRunning`), and the download's temp file goes too. Left behind, it
        /// made the next open with `clean_stale_data(false)` refuse the cleanly stopped
        /// directory as one that needs recovery.
        #[test]
        fn hydrate_ended_by_a_stop_leaves_no_temp_file() {
            let rt = rt();
            rt.block_on(async {
                let fs = SimFs::new();
                let backing: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
                let gated = Arc::new(FaultStore::new(Arc::clone(&backing)));
                let db = open_tiered(&fs, gated.clone(), false).await.unwrap();
                let items = fill(&db, 2, 9).await;
                assert!(!db.tier().await.unwrap().is_empty());
                let (entered, release) = gated.gate_next_ranged_get();
                let hydrate = tokio::spawn({
                    let db = db.clone();
                    async move { db.hydrate().await }
                });
                entered.notified().await;
                // The stop does not wait for the hydrate's download.
                db.stop().await.unwrap();
                release.add_permits(1);
                let got = hydrate.await.unwrap();
                assert!(matches!(got, Err(crate::Error::NotRunning)), "{got:?}");
                assert!(
                    fs.names().iter().all(|n| !n.starts_with(".tmp.")),
                    "{:?}",
                    fs.names()
                );
                let mut cfg = tier_config(Arc::clone(&backing), false);
                cfg.clean_stale_data = false;
                let db = AioDiskDb::start_with(
                    Arc::new(fs.clone()) as Arc<dyn Fs>,
                    cfg,
                    Hooks::default(),
                )
                .await
                .unwrap();
                for (loc, data) in &items {
                    assert_eq!(db.read(*loc).await.unwrap().as_deref(), Some(&data[..]));
                }
                db.stop().await.unwrap();
            });
        }

        /// A read of a remote item that gets its catalog entry before a hydrate and a new
        /// `tier` of its file, and its ranged GET after: the new object has the file's new
        /// trim offset in its header (the file was ltrimmed while remote, and hydrate wrote its
        /// logical range only), so the object trim offset the read maps positions with is no
        /// longer the object's, and the read returns other bytes than the location's (a range
        /// no CRC32C covers), or fails as corrupted (a whole item). By the writer's handle, and
        /// by a read-only handle.
        #[test]
        fn a_remote_read_racing_hydrate_and_tier_never_returns_other_bytes() {
            let rt = rt();
            rt.block_on(async {
                let mut failures = Vec::new();
                for read_only in [false, true] {
                    let fs = SimFs::new();
                    let backing: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
                    let gated = Arc::new(FaultStore::new(Arc::clone(&backing)));
                    let db = open_tiered(&fs, gated.clone(), false).await.unwrap();
                    let mut items = Vec::new();
                    for k in 0..35u8 {
                        let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(k) ^ k).collect();
                        items.push((db.add(data.clone()).await.unwrap(), data));
                    }
                    db.flush().await.unwrap();
                    assert_eq!(db.tier().await.unwrap().len(), 2);
                    // Index 0 ltrimmed while remote: its object keeps trim offset 0.
                    db.ltrim(0, 50, &[]).await.unwrap();
                    let reader = if read_only {
                        AioDiskDb::start_with(
                            Arc::new(fs.clone()) as Arc<dyn Fs>,
                            read_only_config(gated.clone()),
                            Hooks::default(),
                        )
                        .await
                        .unwrap()
                    } else {
                        db.clone()
                    };
                    let (item5, data5) = items[5].clone();
                    assert_eq!((item5.index, item5.position), (0, 500));
                    let mut round = 0;
                    for (loc, want) in [
                        // Half of item 5 (no CRC32C covers it), then the whole item.
                        (ItemLocation { size: 50, ..item5 }, data5[..50].to_vec()),
                        (item5, data5.clone()),
                    ] {
                        round += 1;
                        // Index 0 ltrimmed while remote (again): its object keeps the trim
                        // offset of its upload.
                        db.ltrim(0, 100 * round, &[]).await.unwrap();
                        let (entered, release) = gated.gate_next_ranged_get();
                        let read = tokio::spawn({
                            let reader = reader.clone();
                            async move { reader.read(loc).await }
                        });
                        entered.notified().await;
                        // Meanwhile: hydrate (index 0 comes back with trim offset 100 * round),
                        // tier again (its new object starts there).
                        let hydrated = db.hydrate().await.unwrap();
                        assert!(hydrated.iter().any(|h| h.index == 0));
                        db.tier().await.unwrap();
                        assert!(db.handle_catalog().get(0).unwrap().remote);
                        release.add_permits(1);
                        let got = read.await.unwrap();
                        let label = format!(
                            "{} read {loc} racing hydrate and tier (round {round})",
                            if read_only { "read-only" } else { "writer" }
                        );
                        match &got {
                            Ok(Some(b)) if b[..] == want[..] => {}
                            Ok(Some(b)) => failures.push(format!(
                                "{label}: other bytes {:?}, want {:?} (item 6 starts with {:?})",
                                &b[..8],
                                &want[..8],
                                &items[6].1[..8]
                            )),
                            other => failures.push(format!("{label}: {other:?}")),
                        }
                        // Read again: right.
                        let again = reader.read(loc).await.unwrap();
                        if again.as_deref() != Some(&want[..]) {
                            failures.push(format!(
                                "{label}, read again: {:?}",
                                again.map(|b| b[..8].to_vec())
                            ));
                        }
                    }
                    // Once the view is refreshed, every item of index 0 reads right.
                    tokio::time::sleep(crate::readonly::REFRESH_AFTER * 2).await;
                    for (loc, data) in items
                        .iter()
                        .filter(|(l, _)| l.index == 0 && l.position >= 200)
                    {
                        for (loc, want) in [
                            (ItemLocation { size: 50, ..*loc }, &data[..50]),
                            (*loc, &data[..]),
                        ] {
                            let got = reader.read(loc).await;
                            if !matches!(&got, Ok(Some(b)) if b[..] == want[..]) {
                                failures.push(format!(
                                    "{} read {loc} later: {:?}",
                                    if read_only { "read-only" } else { "writer" },
                                    got.map(|g| g.map(|b| b[..8].to_vec()))
                                ));
                            }
                        }
                    }
                    if read_only {
                        reader.stop().await.unwrap();
                    }
                    db.stop().await.unwrap();
                }
                assert!(failures.is_empty(), "{failures:#?}");
            });
        }
    }
}
