//! parpulse processes started by tests: killed and reaped when dropped, with their
//! memory read from /proc.

use std::process::Child;
use std::time::Duration;

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves none behind.
pub struct Reaped(pub Child);

impl Reaped {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Panics if the process has exited, saying how.
    pub fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.0.try_wait().expect("child status") {
            panic!("{what} exited by itself: {status}");
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of a process: now (VmRSS) and its peak (VmHWM), in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

/// Reads /proc/`pid`/status (Linux).
pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    Memory { rss_kib: field("VmRSS:"), peak_kib: field("VmHWM:") }
}

/// A free loopback port chosen by the OS, released before the caller's process binds it
/// (another process may take it in between): prefer [`listening_port`].
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `n` distinct free loopback ports chosen by the OS, for services that are not parpulse
/// (a spare Kafka or ClickHouse, which must be told their ports and keep them across a
/// restart). All are held until every one is chosen, then released for the service to
/// take: a parpulse process is better started with `--listen 127.0.0.1:0` and asked
/// with [`listening_port`], which leaves no moment where another process can take it.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [std::net::TcpListener; N] =
        std::array::from_fn(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"));
    listeners.map(|l| l.local_addr().expect("address").port())
}

/// The loopback TCP port `child` listens on, read from /proc (Linux) once it has bound
/// one: start it with `--listen 127.0.0.1:0`, so the port is chosen by the OS and bound
/// by the child in one step. Fails if the child exits, listens on several ports, or
/// binds none within `within`.
pub async fn listening_port(child: &mut Child, within: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            panic!("the process whose port is awaited exited: {status}");
        }
        let ports = listening_ports(child.id());
        match ports[..] {
            [port] => return port,
            [] => assert!(tokio::time::Instant::now() < deadline, "no listening port within {within:?}"),
            _ => panic!("the process listens on several ports: {ports:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ports of the listening IPv4 TCP sockets process `pid` holds.
fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let inodes: std::collections::BTreeSet<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    let mut ports: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            (*state == "0A" && inodes.contains(*inode))
                .then(|| u16::from_str_radix(local.rsplit(':').next()?, 16).ok())
                .flatten()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Waits until `url` answers 200, failing after `within`.
pub async fn wait_http_ok(url: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(response) = reqwest::get(url).await {
            if response.status().is_success() {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{url} did not answer 200 within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
