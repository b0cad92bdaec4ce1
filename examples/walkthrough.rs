//! The README's walk-through, end to end: start, add, read, events, transactions,
//! trimming, configuration, signals. Run with `cargo run --example walkthrough`.

use std::time::Duration;

use aiodiskdb::{AioDiskDb, Event, ItemLocation, WriteEvent};

#[tokio::main]
async fn main() -> aiodiskdb::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");

    // 16 MiB files, persisted every 1 MiB OR every 100 items OR every minute.
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(16 << 20)
        .max_buffer_size(1 << 20)
        .max_buffer_items(100)
        .flush_interval(Duration::from_secs(60))
        .on_write(|at, ev: WriteEvent| async move {
            println!(
                "{at:?}: {} bytes at {}:{} persisted",
                ev.size, ev.index, ev.position
            );
        })
        .on_index_drop(|_at, index, size| async move {
            println!("index {index} dropped ({size} bytes)");
        })
        .open()
        .await?;
    let _signals = db.stop_on_signals();
    let mut events = db.subscribe();

    // Add and read.
    let location: ItemLocation = db.add(&b"data"[..]).await?;
    assert_eq!(db.read(location).await?.as_deref(), Some(&b"data"[..]));
    let stored = ItemLocation::from_bytes(&location.to_bytes())?;
    println!(
        "stored at {stored} (12 bytes: {:02x?})",
        location.to_bytes()
    );

    // Durability.
    db.flush().await?;
    db.wait_persisted(location).await?;
    while let Ok(event) = events.try_recv() {
        if let Event::Written { event, .. } = event {
            println!("event: {event:?}");
        }
    }

    // Transactions.
    let mut transaction = db.transaction();
    transaction.add(&b"cafe"[..])?;
    transaction.add(&b"babe"[..])?;
    transaction.add(&b"deadbeef"[..])?;
    let locations = transaction.commit().await?;
    println!("transaction stored at {locations:?}");

    // Trimming.
    db.enable_overwrite();
    let trimmed = db.ltrim(0, locations[1].position, b"cafe").await?;
    println!(
        "ltrim removed {trimmed} bytes; {:?} is gone",
        db.read(location).await?
    );
    assert_eq!(
        db.read(locations[2]).await?.as_deref(),
        Some(&b"deadbeef"[..])
    );
    db.disable_overwrite();

    db.stop().await?;
    assert!(!db.is_running());
    Ok(())
}
