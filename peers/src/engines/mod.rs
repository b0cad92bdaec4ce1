//! One module per peer, each implementing [`crate::engine::Engine`] the way the crate's
//! own documentation recommends for the job, with durability equivalent to ours.

pub(crate) mod commitlog;
pub(crate) mod fjall;
pub(crate) mod marble;
pub(crate) mod okaywal;
pub(crate) mod redb;

#[cfg(test)]
mod tests {
    use std::thread;

    use crate::engine::{Engine, Handle as _, Visibility};

    /// Item `i` of the tests: its size and bytes vary with `i`.
    fn item(i: usize) -> Vec<u8> {
        let len = 1 + i * 37 % 3000;
        (0..len)
            .map(|j| u8::try_from((i * 31 + j) % 251).unwrap())
            .collect()
    }

    /// Writes through every path (both bulk visibilities, durable adds from several
    /// threads, more bulk after a reopen), then checks every item from a fresh instance.
    fn round_trip<E: Engine>() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("store");
        let mut locs = Vec::new();
        {
            let db = E::open(&dir).unwrap();
            for (visibility, from) in [(Visibility::AtEnd, 0), (Visibility::Immediate, 100)] {
                let handle = db.handle();
                db.bulk(visibility, |add| {
                    for i in from..from + 100 {
                        let loc = add(&item(i))?;
                        if visibility == Visibility::Immediate {
                            let got = handle.read(loc, |b| b == item(i).as_slice())?;
                            assert_eq!(got, Some(true), "item {i} readable at once");
                        }
                        locs.push((loc, i));
                    }
                    Ok(())
                })
                .unwrap();
            }
            thread::scope(|s| {
                for _ in 0..4 {
                    let handle = db.handle();
                    s.spawn(move || {
                        for _ in 0..5 {
                            handle.add_durable(&[7; 100]).unwrap();
                        }
                    });
                }
            });
            db.close().unwrap();
        }
        {
            // Appends after a reopen go after the data recovered.
            let db = E::open(&dir).unwrap();
            db.bulk(Visibility::AtEnd, |add| {
                for i in 200..250 {
                    locs.push((add(&item(i))?, i));
                }
                Ok(())
            })
            .unwrap();
            db.close().unwrap();
        }
        let db = E::open(&dir).unwrap();
        let handle = db.handle();
        for &(loc, i) in &locs {
            let got = handle.read(loc, |b| b == item(i).as_slice()).unwrap();
            assert_eq!(got, Some(true), "item {i} after reopen");
        }
        drop(handle);
        db.close().unwrap();
    }

    #[test]
    fn redb_round_trip() {
        round_trip::<super::redb::Redb>();
    }

    #[test]
    fn fjall_round_trip() {
        round_trip::<super::fjall::Fjall>();
    }

    #[test]
    fn okaywal_round_trip() {
        round_trip::<super::okaywal::OkayWal>();
    }

    #[test]
    fn commitlog_round_trip() {
        round_trip::<super::commitlog::CommitLogEngine>();
    }

    #[test]
    fn marble_round_trip() {
        round_trip::<super::marble::Marble>();
    }
}
