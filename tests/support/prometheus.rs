//! A Prometheus server of a test's own (Debian's package), on a free port,
//! scraping the given targets every second with parpulse's rules loaded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Prometheus {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (job name, address) and waits until it is ready.
    pub async fn start(targets: &[(&str, std::net::SocketAddr)]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("parpulse-prometheus-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("rules")).expect("temp dir");
        std::fs::copy(repo().join("deploy/prometheus/rules/parpulse.yml"), dir.join("rules/parpulse.yml"))
            .expect("rules");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules/*.yml\nscrape_configs:\n",
        );
        for (job, address) in targets {
            config.push_str(&format!("  - job_name: {job}\n    static_configs:\n      - targets: [\"{address}\"]\n"));
        }
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        // Port 0: Prometheus binds a port the OS chooses, read back from /proc.
        let mut child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log file"))
            .spawn()
            .expect("prometheus not found: `make up` installs the prometheus package");
        let port = crate::process::listening_port(&mut child, Duration::from_secs(30)).await;
        let prometheus = Prometheus { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(prometheus.url("/-/ready")).await {
                if r.status().is_success() {
                    return prometheus;
                }
            }
            assert!(Instant::now() < deadline, "Prometheus not ready in 30 s: {}", prometheus.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Waits until every rule group has been evaluated after `after` (a condition, not a
    /// guess at the evaluation interval): what the rules say then is what they say on
    /// the data Prometheus held at `after`. Fails after `within`.
    pub async fn wait_rules_evaluated_after(&self, after: chrono::DateTime<chrono::Utc>, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let body: serde_json::Value = match reqwest::get(self.url("/api/v1/rules")).await {
                Ok(response) => response.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            let groups = body["data"]["groups"].as_array().cloned().unwrap_or_default();
            let evaluated = |group: &serde_json::Value| {
                group["lastEvaluation"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t > after)
            };
            if !groups.is_empty() && groups.iter().all(evaluated) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not every rule group evaluated within {within:?} after {after}: {groups:?}; log: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs an instant query; Err carries Prometheus' error message.
    pub async fn query(&self, expr: &str) -> Result<serde_json::Value, String> {
        let response = reqwest::Client::new()
            .get(self.url("/api/v1/query"))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }
}

/// Reads a file of the repository.
pub fn read_repo_file(path: impl AsRef<Path>) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
