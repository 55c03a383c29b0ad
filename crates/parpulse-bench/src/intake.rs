//! HTTP intake throughput: batches of NDJSON posted over loopback by a Rust load
//! generator with a few concurrent connections, to a `parpulse ingest http` process.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use parpulse_core::Event;
use sha2::{Digest, Sha256};

use crate::process::{free_port, Deployment};

const BATCH: usize = 1000;
const CONNECTIONS: usize = 4;

/// Events per second accepted (2xx after Kafka's acks), once per repeat.
pub async fn run(deployment: &Deployment, events: &[Event], repeats: usize) -> Result<Vec<f64>> {
    deployment.migrate()?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let digest: String = Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("parpulse-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let tokens = dir.join("tokens.toml");
    std::fs::write(&tokens, format!("[[token]]\nagency = \"HY\"\nsha256 = \"{digest}\"\n"))?;
    let port = free_port();
    let tokens_path = tokens.to_string_lossy().into_owned();
    let listen = format!("127.0.0.1:{port}");
    let _intake = deployment.spawn(&["ingest", "http", "--listen", &listen, "--tokens", &tokens_path])?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build()?;
    let url = format!("http://{listen}/v1/events");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("http://{listen}/healthz")).send().await.is_err() {
        if Instant::now() > deadline {
            bail!("the intake did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies: Vec<String> = events
        .chunks(BATCH)
        .map(|chunk| {
            let mut out = Vec::new();
            parpulse_ingest::ndjson::write_events(&mut out, chunk).expect("writing to memory");
            String::from_utf8(out).expect("UTF-8")
        })
        .collect();
    let bodies = std::sync::Arc::new(bodies);
    let mut rates = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..CONNECTIONS {
            let (client, url, token, bodies, next) =
                (client.clone(), url.clone(), token.clone(), bodies.clone(), next.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { return Ok::<_, anyhow::Error>(()) };
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/x-ndjson")
                        .body(body.clone())
                        .send()
                        .await
                        .context("posting a batch")?;
                    if response.status().as_u16() != 200 {
                        bail!("intake answered {}: {}", response.status(), response.text().await.unwrap_or_default());
                    }
                }
            }));
        }
        for worker in workers {
            worker.await??;
        }
        rates.push(events.len() as f64 / started.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rates)
}
