//! Tiered storage against an S3-compatible server: writes a few data files, uploads the
//! sealed ones, reads every item back (the remote ones by ranged GETs), and reopens.
//!
//! ```sh
//! moto_server -H 127.0.0.1 -p 9321 &
//! curl -X PUT http://127.0.0.1:9321/archive
//! AWS_ENDPOINT=http://127.0.0.1:9321 AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
//! AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
//!   cargo run --example tiering --features tiering -- /tmp/tiered archive
//! ```

use std::sync::Arc;

use aiodiskdb::tiering::Tiering;
use aiodiskdb::AioDiskDb;
use object_store::aws::AmazonS3Builder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(bucket)) = (args.next(), args.next()) else {
        return Err("usage: tiering DIR BUCKET (endpoint and keys from AWS_*)".into());
    };
    let s3 = AmazonS3Builder::from_env()
        .with_bucket_name(&bucket)
        .build()?;
    let tiering = Tiering::new(Arc::new(s3), "example").keep_local(1);
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
        "{} items read back, from disk and from s3://{bucket}/example",
        items.len()
    );
    db.stop().await?;
    Ok(())
}
