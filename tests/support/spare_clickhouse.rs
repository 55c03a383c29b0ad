//! A second, private ClickHouse server for tests that stop and restart it (the
//! shared one must stay up for the other tests), started by the project's own
//! deploy/local/clickhouse.sh with its own data folder and ports.

use std::path::PathBuf;
use std::process::Command;

pub struct SpareClickHouse {
    home: PathBuf,
    http_port: u16,
    tcp_port: u16,
}

impl SpareClickHouse {
    /// Starts a server with HTTP and the native protocol on loopback ports the OS chooses
    /// (kept across restarts), so tests running side by side never meet on a port.
    pub fn start() -> SpareClickHouse {
        let [http_port, tcp_port] = crate::process::free_ports();
        let home = std::env::temp_dir()
            .join(format!("parpulse-spare-clickhouse-{http_port}-{}", uuid::Uuid::new_v4().simple()));
        let server = SpareClickHouse { home, http_port, tcp_port };
        server.run("start");
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn stop(&self) {
        self.run("stop");
    }

    pub fn restart(&self) {
        self.run("start");
    }

    fn run(&self, action: &str) {
        let root = super::prometheus::repo();
        let status = Command::new("bash")
            .arg(root.join("deploy/local/clickhouse.sh"))
            .arg(action)
            .env("PARPULSE_HOME", &self.home)
            .env("PARPULSE_LOCAL_CLICKHOUSE_HTTP_PORT", self.http_port.to_string())
            .env("PARPULSE_LOCAL_CLICKHOUSE_TCP_PORT", self.tcp_port.to_string())
            .status()
            .expect("running deploy/local/clickhouse.sh");
        assert!(status.success(), "deploy/local/clickhouse.sh {action} failed (see {})", self.home.display());
    }
}

impl Drop for SpareClickHouse {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
