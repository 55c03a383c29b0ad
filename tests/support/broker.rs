//! A second, private Kafka broker for tests that stop and restart it (the
//! shared one must stay up for the other tests). Started by the project's own
//! deploy/local/kafka.sh with its own data folder and ports.

use std::path::PathBuf;
use std::process::Command;

pub struct SpareBroker {
    home: PathBuf,
    port: u16,
    controller_port: u16,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_owned()
}

impl SpareBroker {
    /// Starts a broker on loopback ports the OS chooses (kept across restarts), so tests
    /// running side by side, here or in another checkout, never meet on a port.
    pub fn start() -> SpareBroker {
        let [port, controller_port] = crate::process::free_ports();
        let home = std::env::temp_dir().join(format!("parpulse-spare-kafka-{port}-{}", uuid::Uuid::new_v4().simple()));
        let broker = SpareBroker { home, port, controller_port };
        broker.run("start");
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&self) {
        self.run("stop");
    }

    pub fn restart(&self) {
        self.run("start");
    }

    fn run(&self, action: &str) {
        let root = repo_root();
        let shared_home = std::env::var("PARPULSE_HOME").map(PathBuf::from).unwrap_or_else(|_| root.join(".parpulse"));
        let status = Command::new("bash")
            .arg(root.join("deploy/local/kafka.sh"))
            .arg(action)
            .env("PARPULSE_HOME", &self.home)
            .env("PARPULSE_KAFKA_LIBS", shared_home.join("kafka/libs"))
            .env("PARPULSE_LOCAL_KAFKA_PORT", self.port.to_string())
            .env("PARPULSE_LOCAL_KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("PARPULSE_LOCAL_KAFKA_HEAP", "384m")
            .status()
            .expect("running deploy/local/kafka.sh");
        assert!(
            status.success(),
            "deploy/local/kafka.sh {action} failed for the spare broker (see {})",
            self.home.display()
        );
    }
}

impl Drop for SpareBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
