use aiodiskdb::{AioDiskDb, Event};

#[tokio::test]
async fn smoke() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(1000)
        .max_buffer_size(100)
        .overwrite(true)
        .open()
        .await?;
    let mut ev = db.subscribe();
    let mut locs = vec![];
    for i in 0..50u8 {
        let data = vec![i; 1 + i as usize];
        locs.push((db.add(data.clone()).await?, data));
    }
    for (l, d) in &locs {
        assert_eq!(db.read(*l).await?.as_deref(), Some(&d[..]), "{l}");
    }
    db.flush().await?;
    for (l, d) in &locs {
        assert_eq!(db.read(*l).await?.as_deref(), Some(&d[..]), "{l}");
    }
    let mut tx = db.transaction();
    tx.add(vec![7u8; 900])?;
    tx.add(vec![8u8; 10])?;
    let tl = tx.commit().await?;
    println!("{tl:?}");
    assert_eq!(db.read(tl[0]).await?.unwrap(), vec![7u8; 900]);
    let n = db.ltrim(0, 100, &[]).await?;
    println!("ltrim {n}");
    let n = db.rtrim(1, 10, &[]).await?;
    println!("rtrim {n}");
    let n = db.drop_index(2).await?;
    println!("drop {n}");
    db.stop().await?;
    while let Ok(e) = ev.try_recv() {
        println!("{e:?}");
        if matches!(e, Event::Stopped { .. }) {
            break;
        }
    }
    for e in std::fs::read_dir(dir.path())? {
        let e = e?;
        println!("{:?} {}", e.file_name(), e.metadata()?.len());
    }
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(1000)
        .max_buffer_size(100)
        .open()
        .await?;
    for (l, d) in &locs {
        let got = db.read(*l).await?;
        if l.index == 0 && l.position < 100 {
            assert_eq!(got, None);
        } else if l.index == 1 && l.end() > 10 {
            assert_eq!(got, None)
        } else if l.index == 2 {
            assert_eq!(got, None)
        } else {
            assert_eq!(got.as_deref(), Some(&d[..]), "{l}");
        }
    }
    db.stop().await?;
    Ok(())
}
