//! Connecting to ClickHouse, adapted to the server's version.
//!
//! The `clickhouse` crate validates rows with the `RowBinaryWithNamesAndTypes`
//! format by default; ClickHouse 18.16 (Debian's package) predates it, so
//! validation is switched off for servers older than [`VALIDATION_MIN_MAJOR`].
//!
//! HTTPS: an `https://` URL is verified against the system's trusted roots, plus
//! the certificates of [`ClickHouseConfig::ca_file`] when one is given (a private CA).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clickhouse::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use crate::{Result, StoreError};

/// First ClickHouse major version on which the client's schema validation is used.
pub const VALIDATION_MIN_MAJOR: u32 = 24;

/// Where and as whom to connect. The password never appears in logs or `Debug`.
#[derive(Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A cluster name for multi-node ClickHouse (crate::cluster); None: a single node.
    pub cluster: Option<String>,
    /// PEM file of the CA certificate(s) that signed the server's HTTPS certificate,
    /// trusted besides the system's roots; only with an `https://` URL.
    pub ca_file: Option<PathBuf>,
}

impl ClickHouseConfig {
    /// A single node without credentials (local services, tests, benchmarks).
    pub fn local(url: &str, database: &str) -> Self {
        Self {
            url: url.to_owned(),
            database: database.to_owned(),
            user: None,
            password: None,
            cluster: None,
            ca_file: None,
        }
    }
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("cluster", &self.cluster)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// A connected client, for one database.
#[derive(Clone)]
pub struct Store {
    client: Client,
    url: String,
    server_version: String,
    database: String,
    cluster: Option<String>,
}

pub(crate) fn valid_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// Parses "18.16.1" / "26.3.1.2" into the major number.
pub fn major_version(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

// As the clickhouse crate's own client: TCP keep-alive, and idle connections closed
// before the server's keep-alive timeout (3 s on old servers) closes them.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// An HTTPS connector that trusts the system's roots and the CA certificates in `ca_file`.
fn https_with_ca(ca_file: &Path) -> std::result::Result<hyper_tls::HttpsConnector<HttpConnector>, String> {
    let pem = std::fs::read(ca_file).map_err(|e| format!("cannot read it: {e}"))?;
    let certificates =
        native_tls::Certificate::stack_from_pem(&pem).map_err(|e| format!("not PEM certificates: {e}"))?;
    if certificates.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    let mut tls = native_tls::TlsConnector::builder();
    for certificate in certificates {
        tls.add_root_certificate(certificate);
    }
    let tls = tls.build().map_err(|e| format!("TLS set-up failed: {e}"))?;
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.enforce_http(false);
    Ok(hyper_tls::HttpsConnector::from((http, tls.into())))
}

fn base_client(config: &ClickHouseConfig) -> Result<Client> {
    let client = match &config.ca_file {
        None => Client::default(),
        Some(ca_file) => {
            let bad = |reason: String| StoreError::CaFile { path: ca_file.clone(), reason };
            if !config.url.starts_with("https://") {
                return Err(bad(format!("given for {}, which is not an https:// URL", config.url)));
            }
            let http = HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .build(https_with_ca(ca_file).map_err(bad)?);
            Client::with_http_client(http)
        }
    };
    let mut client = client.with_url(&config.url).with_validation(false);
    if let Some(user) = &config.user {
        client = client.with_user(user);
    }
    if let Some(password) = &config.password {
        client = client.with_password(password);
    }
    Ok(client)
}

impl Store {
    /// Connects, creates the database if needed, and reads the server version.
    pub async fn connect(config: &ClickHouseConfig) -> Result<Store> {
        if !valid_database_name(&config.database) {
            return Err(StoreError::BadDatabaseName(config.database.clone()));
        }
        if let Some(cluster) = config.cluster.as_deref().filter(|c| !valid_database_name(c)) {
            return Err(StoreError::BadDatabaseName(cluster.to_owned()));
        }
        let bare = base_client(config)?;
        let err = |doing| {
            let url = config.url.clone();
            move |source| StoreError::Query { url, doing, source }
        };
        let server_version: String =
            bare.query("SELECT version()").fetch_one().await.map_err(err("reading the server version"))?;
        // The names were checked above: identifiers cannot be bound as values in 18.16.
        let on_cluster = config.cluster.as_ref().map_or_else(String::new, |c| format!(" ON CLUSTER {c}"));
        bare.query(&format!("CREATE DATABASE IF NOT EXISTS {}{on_cluster}", config.database))
            .execute()
            .await
            .map_err(err("creating the database"))?;
        let validation = major_version(&server_version).is_some_and(|major| major >= VALIDATION_MIN_MAJOR);
        let mut client = bare.with_database(&config.database).with_validation(validation);
        if config.cluster.is_some() {
            // Rows must be on their shards before the checkpoint row is (crate::cluster).
            client = client.with_setting("insert_distributed_sync", "1");
        }
        tracing::info!(url = %config.url, database = %config.database, server_version = %server_version, validation, "connected to ClickHouse");
        Ok(Store {
            client,
            url: config.url.clone(),
            server_version,
            database: config.database.clone(),
            cluster: config.cluster.clone(),
        })
    }

    /// Drops the database and everything in it (demo resets and test clean-up); on a
    /// cluster, on every server.
    pub async fn drop_database(config: &ClickHouseConfig) -> Result<()> {
        if !valid_database_name(&config.database) {
            return Err(StoreError::BadDatabaseName(config.database.clone()));
        }
        if let Some(cluster) = config.cluster.as_deref().filter(|c| !valid_database_name(c)) {
            return Err(StoreError::BadDatabaseName(cluster.to_owned()));
        }
        let on_cluster = config.cluster.as_ref().map_or_else(String::new, |c| format!(" ON CLUSTER {c}"));
        base_client(config)?
            .query(&format!("DROP DATABASE IF EXISTS {}{on_cluster}", config.database))
            .execute()
            .await
            .map_err(|source| StoreError::Query { url: config.url.clone(), doing: "dropping the database", source })
    }

    /// The names of the server's databases (`config`'s own need not exist): a clean-up
    /// finds what a run left behind.
    pub async fn databases(config: &ClickHouseConfig) -> Result<Vec<String>> {
        base_client(config)?
            .query("SELECT name FROM system.databases")
            .fetch_all()
            .await
            .map_err(|source| StoreError::Query { url: config.url.clone(), doing: "listing the databases", source })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The cluster the tables are replicated and distributed on, if any.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// Wraps a client error with what was being done.
    pub(crate) fn error(&self, doing: &'static str) -> impl FnOnce(clickhouse::error::Error) -> StoreError + '_ {
        move |source| StoreError::Query { url: self.url.clone(), doing, source }
    }

    /// Inserts `rows` into `table` in one statement (RowBinary); nothing when empty.
    pub(crate) async fn insert_rows<T>(&self, table: &'static str, rows: &[T], doing: &'static str) -> Result<()>
    where
        T: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self.client.insert::<T>(table).await.map_err(self.error(doing))?;
        for row in rows {
            insert.write(row).await.map_err(self.error(doing))?;
        }
        insert.end().await.map_err(self.error(doing))
    }

    /// Cheap liveness probe used by readiness checks.
    pub async fn ping(&self) -> Result<()> {
        let _: u8 = self.client.query("SELECT 1").fetch_one().await.map_err(self.error("pinging"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_to_their_major() {
        assert_eq!(major_version("18.16.1"), Some(18));
        assert_eq!(major_version("26.3.1.2"), Some(26));
        assert_eq!(major_version("garbage"), None);
    }

    #[test]
    fn only_plain_identifiers_are_database_names() {
        assert!(valid_database_name("parpulse"));
        assert!(valid_database_name("parpulse_test_1"));
        for bad in ["", "1abc", "a;DROP", "a b", "a`b", "sở"] {
            assert!(!valid_database_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let config = ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            database: "parpulse".into(),
            user: Some("writer".into()),
            password: Some("hunter2".into()),
            cluster: None,
            ca_file: None,
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    fn with_ca(url: &str, ca_file: &str) -> ClickHouseConfig {
        ClickHouseConfig { ca_file: Some(ca_file.into()), ..ClickHouseConfig::local(url, "parpulse") }
    }

    #[test]
    fn a_ca_file_needs_an_https_url() {
        let error = base_client(&with_ca("http://127.0.0.1:8123", "/etc/ssl/certs/ca-certificates.crt")).err();
        let message = error.expect("http URL with a CA file refused").to_string();
        assert!(message.contains("not an https:// URL"), "{message}");
    }

    #[test]
    fn a_missing_or_non_pem_ca_file_is_refused_with_its_path() {
        let message = base_client(&with_ca("https://127.0.0.1:8443", "/nonexistent/ca.pem")).err().unwrap().to_string();
        assert!(message.contains("/nonexistent/ca.pem") && message.contains("cannot read"), "{message}");
        let not_pem = std::env::temp_dir().join(format!("parpulse-not-pem-{}.txt", std::process::id()));
        std::fs::write(&not_pem, "hello").unwrap();
        let message =
            base_client(&with_ca("https://127.0.0.1:8443", not_pem.to_str().unwrap())).err().unwrap().to_string();
        std::fs::remove_file(&not_pem).unwrap();
        assert!(message.contains("no PEM certificate") || message.contains("not PEM"), "{message}");
    }
}
