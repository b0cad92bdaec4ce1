//! Tiered storage against an S3-compatible server: writes a few data files, uploads the
//! sealed ones, reads every item back (the remote ones by ranged GETs), and reopens.
//! The store is given as the CLI's `--store` is, `s3://BUCKET/PREFIX`, with the endpoint
//! and keys from the `AWS_*` variables (the README's "Tiered storage" runs it against a
//! local moto server).
//!
//! ```sh
//! moto_server -H 127.0.0.1 -p 9000 &
//! curl -X PUT http://127.0.0.1:9000/archive
//! export AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
//!   AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
//! cargo run --example tiering --features tiering -- /tmp/tiered s3://archive/node-1
//! ```

use aiodiskdb::tiering::Tiering;
use aiodiskdb::AioDiskDb;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(store)) = (args.next(), args.next()) else {
        return Err("usage: tiering DIR s3://BUCKET/PREFIX (endpoint and keys from AWS_*)".into());
    };
    // Uploads by `tier` only, so that the output is the same at every run (by default a
    // background task uploads each file as soon as it is sealed).
    let tiering = Tiering::from_s3_url(&store)?
        .keep_local(1)
        .upload_in_background(false);
    let open = || {
        AioDiskDb::builder(&dir)
            .max_file_size(64 << 10)
            .max_buffer_size(64 << 10)
            .tiering(tiering.clone())
            .open()
    };
    let db = open().await?;
    let mut items = Vec::new();
    for n in 0..100u32 {
        let data = format!("item {n} ").repeat(300);
        items.push((db.add(data.clone()).await?, data));
    }
    db.flush().await?;
    let tiered = db.tier().await?;
    println!(
        "tiered {} files: {:?}",
        tiered.len(),
        tiered.iter().map(|t| t.index).collect::<Vec<_>>()
    );
    for (loc, data) in &items {
        assert_eq!(db.read(*loc).await?.as_deref(), Some(data.as_bytes()));
    }
    db.stop().await?;
    let db = open().await?;
    for (loc, data) in &items {
        assert_eq!(db.read(*loc).await?.as_deref(), Some(data.as_bytes()));
    }
    println!(
        "{} items read back, from disk and from {store}",
        items.len()
    );
    db.stop().await?;
    Ok(())
}
