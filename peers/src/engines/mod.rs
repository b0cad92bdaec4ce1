//! One module per peer, each implementing [`aiodiskdb_bench::Engine`] the way the crate's
//! own documentation recommends for the job, with durability equivalent to ours.

pub(crate) mod commitlog;
pub(crate) mod fjall;
pub(crate) mod marble;
pub(crate) mod okaywal;
pub(crate) mod redb;

#[cfg(test)]
mod tests {
    use std::thread;

    use aiodiskdb_bench::{block_on, Bytes, Engine, Source, Visibility};

    /// Item `i` of the tests: its size and bytes vary with `i`.
    fn item(i: usize) -> Vec<u8> {
        let len = 1 + i * 37 % 3000;
        (0..len)
            .map(|j| u8::try_from((i * 31 + j) % 251).unwrap())
            .collect()
    }

    /// Items `next..end` of the tests; checks each is readable at once through `check`
    /// when given, and keeps where each went.
    struct Items<'a, E: Engine> {
        next: usize,
        end: usize,
        check: Option<&'a E>,
        locs: &'a mut Vec<(E::Loc, usize)>,
    }

    impl<E: Engine> Source<E::Loc> for Items<'_, E> {
        fn next_item(&mut self) -> Option<Bytes> {
            let i = self.next;
            self.next += 1;
            (i < self.end).then(|| Bytes::from(item(i)))
        }

        fn added(&mut self, loc: E::Loc) {
            let i = self.next - 1;
            if let Some(db) = self.check {
                let got = block_on(db.read(loc, |b| b == item(i).as_slice())).unwrap();
                assert_eq!(got, Some(true), "item {i} readable at once");
            }
            self.locs.push((loc, i));
        }
    }

    /// Writes through every path (both bulk visibilities, durable adds from several
    /// threads, more bulk after a reopen), then checks every item from a fresh instance.
    async fn round_trip<E: Engine>() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("store");
        let config = E::Config::default();
        let mut locs = Vec::new();
        {
            let db = E::open(&dir, &config).await.unwrap();
            for (visibility, from) in [(Visibility::AtEnd, 0), (Visibility::Immediate, 100)] {
                let check = (visibility == Visibility::Immediate).then_some(&db);
                let mut items = Items::<E> {
                    next: from,
                    end: from + 100,
                    check,
                    locs: &mut locs,
                };
                db.bulk(visibility, &mut items).await.unwrap();
            }
            thread::scope(|s| {
                for _ in 0..4 {
                    let db = db.clone();
                    s.spawn(move || {
                        for _ in 0..5 {
                            block_on(db.add_durable(Bytes::from_static(&[7; 100]))).unwrap();
                        }
                    });
                }
            });
            db.close().await.unwrap();
        }
        {
            // Appends after a reopen go after the data recovered.
            let db = E::open(&dir, &config).await.unwrap();
            let mut items = Items::<E> {
                next: 200,
                end: 250,
                check: None,
                locs: &mut locs,
            };
            db.bulk(Visibility::AtEnd, &mut items).await.unwrap();
            db.close().await.unwrap();
        }
        let db = E::open(&dir, &config).await.unwrap();
        for &(loc, i) in &locs {
            let got = db.read(loc, |b| b == item(i).as_slice()).await.unwrap();
            assert_eq!(got, Some(true), "item {i} after reopen");
        }
        db.close().await.unwrap();
    }

    #[test]
    fn redb_round_trip() {
        block_on(round_trip::<super::redb::Redb>());
    }

    #[test]
    fn fjall_round_trip() {
        block_on(round_trip::<super::fjall::Fjall>());
    }

    #[test]
    fn okaywal_round_trip() {
        block_on(round_trip::<super::okaywal::OkayWal>());
    }

    #[test]
    fn commitlog_round_trip() {
        block_on(round_trip::<super::commitlog::CommitLogEngine>());
    }

    #[test]
    fn marble_round_trip() {
        block_on(round_trip::<super::marble::Marble>());
    }
}
