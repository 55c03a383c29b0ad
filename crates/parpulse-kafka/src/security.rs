//! How a parpulse client authenticates to Kafka and protects the connection.
//!
//! Plaintext by default (the local broker); for deployments, TLS (`ssl`) or SASL over
//! TLS (`sasl_ssl`, SCRAM-SHA-512 unless told otherwise), with the brokers' certificates
//! checked against the system's roots or a CA file, and the host name verified.
//!
//! The password is read from the environment (`PARPULSE_KAFKA_SASL_PASSWORD`) or a file
//! (`PARPULSE_KAFKA_SASL_PASSWORD_FILE`), never from a flag, and never printed: it is
//! kept in a [`Password`] whose `Debug` is redacted and which has no `Display`; error
//! messages name where it came from, never what it is. (rdkafka's own `ClientConfig`
//! `Debug` leaves `sasl.password` out as well.)

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// The environment variable holding the SASL password.
pub const PASSWORD_ENV: &str = "PARPULSE_KAFKA_SASL_PASSWORD";
/// The environment variable naming a file that holds the SASL password.
pub const PASSWORD_FILE_ENV: &str = "PARPULSE_KAFKA_SASL_PASSWORD_FILE";

/// librdkafka's `security.protocol`, as far as parpulse allows it (SASL without TLS
/// is not offered: credentials and events would cross the network in the clear).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    /// TLS, the brokers' certificates verified; no client authentication.
    Ssl,
    /// SASL authentication inside TLS.
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslSsl => "sasl_ssl",
        }
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "" | "plaintext" => Ok(Self::Plaintext),
            "ssl" | "tls" => Ok(Self::Ssl),
            "sasl_ssl" => Ok(Self::SaslSsl),
            "sasl_plaintext" => Err("sasl_plaintext is not supported: use sasl_ssl (SASL inside TLS)".into()),
            other => Err(format!("unknown Kafka security protocol {other:?}: plaintext, ssl or sasl_ssl")),
        }
    }
}

/// The SASL mechanisms parpulse passes to librdkafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaslMechanism {
    #[default]
    ScramSha512,
    ScramSha256,
    /// The password itself goes to the broker (inside TLS): for brokers that offer nothing else.
    Plain,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::Plain => "PLAIN",
        }
    }
}

impl std::fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SaslMechanism {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_uppercase().replace('_', "-").as_str() {
            "" | "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "PLAIN" => Ok(Self::Plain),
            other => Err(format!("unsupported SASL mechanism {other:?}: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN")),
        }
    }
}

/// A secret that never prints: `Debug` shows `<redacted>`, there is no `Display`,
/// and the only way to the text is [`Password::expose`].
#[derive(Clone)]
pub struct Password(Arc<str>);

impl Password {
    pub fn new(text: &str) -> Self {
        Self(text.into())
    }

    /// The secret itself, for the one place that hands it to librdkafka.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// SASL credentials.
#[derive(Debug, Clone)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Password,
}

/// Kafka connection security (plaintext unless configured).
#[derive(Debug, Clone, Default)]
pub struct KafkaSecurity {
    protocol: SecurityProtocol,
    /// PEM CA certificate(s) the brokers' certificates are checked against (with TLS);
    /// None: the system's trusted roots.
    ca_file: Option<PathBuf>,
    /// With `sasl_ssl` only.
    sasl: Option<SaslCredentials>,
}

/// What the operator configured, before it is checked and the password read.
#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    pub protocol: SecurityProtocol,
    pub mechanism: SaslMechanism,
    pub username: Option<String>,
    /// Where the password is: the text itself (from `PARPULSE_KAFKA_SASL_PASSWORD`).
    pub password: Option<Password>,
    /// Or a file holding it (its first line).
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

/// A security configuration that cannot work. The messages name variables and files,
/// never a password.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("PARPULSE_KAFKA_SECURITY_PROTOCOL={protocol} needs {what}")]
    Missing { protocol: SecurityProtocol, what: &'static str },
    #[error("both {PASSWORD_ENV} and {PASSWORD_FILE_ENV} are set: use one")]
    TwoPasswords,
    #[error("{what} is set but PARPULSE_KAFKA_SECURITY_PROTOCOL={protocol} does not use it")]
    Unused { protocol: SecurityProtocol, what: &'static str },
    #[error("Kafka SASL password file {}: {reason}", path.display())]
    PasswordFile { path: PathBuf, reason: String },
    #[error("Kafka CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn read_password_file(path: &Path) -> Result<Password, SecurityError> {
    let bad = |reason: String| SecurityError::PasswordFile { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    // The first line, without its line ending: files written by `echo` or an editor end with one.
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(bad("it is empty".into()));
    }
    Ok(Password::new(line))
}

fn check_ca_file(path: &Path) -> Result<(), SecurityError> {
    let bad = |reason: String| SecurityError::CaFile { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(())
}

impl SecuritySettings {
    /// The non-secret settings from the environment, and the password from
    /// `PARPULSE_KAFKA_SASL_PASSWORD` or the file `PARPULSE_KAFKA_SASL_PASSWORD_FILE` names.
    pub fn from_env() -> Result<Self, SecurityError> {
        let protocol = env("PARPULSE_KAFKA_SECURITY_PROTOCOL").as_deref().unwrap_or("").parse();
        let mechanism = env("PARPULSE_KAFKA_SASL_MECHANISM").as_deref().unwrap_or("").parse();
        Ok(Self {
            protocol: protocol.map_err(SecurityError::Invalid)?,
            mechanism: mechanism.map_err(SecurityError::Invalid)?,
            username: env("PARPULSE_KAFKA_SASL_USERNAME"),
            password: None,
            password_file: env(PASSWORD_FILE_ENV).map(PathBuf::from),
            ca_file: env("PARPULSE_KAFKA_CA_FILE").map(PathBuf::from),
        }
        .with_password_from_env())
    }

    /// Adds the password from `PARPULSE_KAFKA_SASL_PASSWORD`, if set (the one place it is read).
    pub fn with_password_from_env(mut self) -> Self {
        // Not trimmed: a password may end in a space. An empty one counts as unset.
        self.password = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()).map(|p| Password::new(&p));
        self
    }

    /// Checks the combination, reads the password file and checks the CA file.
    pub fn resolve(self) -> Result<KafkaSecurity, SecurityError> {
        let protocol = self.protocol;
        let unused = |what| Err(SecurityError::Unused { protocol, what });
        if protocol == SecurityProtocol::Plaintext && self.ca_file.is_some() {
            return unused("PARPULSE_KAFKA_CA_FILE");
        }
        let sasl = match protocol {
            SecurityProtocol::Plaintext | SecurityProtocol::Ssl => {
                if self.username.is_some() {
                    return unused("PARPULSE_KAFKA_SASL_USERNAME");
                }
                if self.password.is_some() {
                    return unused(PASSWORD_ENV);
                }
                if self.password_file.is_some() {
                    return unused(PASSWORD_FILE_ENV);
                }
                None
            }
            SecurityProtocol::SaslSsl => {
                let username =
                    self.username.ok_or(SecurityError::Missing { protocol, what: "PARPULSE_KAFKA_SASL_USERNAME" })?;
                let password = match (self.password, &self.password_file) {
                    (Some(_), Some(_)) => return Err(SecurityError::TwoPasswords),
                    (Some(password), None) => password,
                    (None, Some(path)) => read_password_file(path)?,
                    (None, None) => {
                        return Err(SecurityError::Missing {
                            protocol,
                            what: "a password: PARPULSE_KAFKA_SASL_PASSWORD or PARPULSE_KAFKA_SASL_PASSWORD_FILE",
                        })
                    }
                };
                Some(SaslCredentials { mechanism: self.mechanism, username, password })
            }
        };
        if let Some(path) = &self.ca_file {
            check_ca_file(path)?;
        }
        Ok(KafkaSecurity { protocol, ca_file: self.ca_file, sasl })
    }
}

impl KafkaSecurity {
    /// No TLS, no authentication.
    pub fn plaintext() -> Self {
        Self::default()
    }

    /// The configuration from the `PARPULSE_KAFKA_*` environment variables.
    pub fn from_env() -> Result<Self, SecurityError> {
        SecuritySettings::from_env()?.resolve()
    }

    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    pub fn sasl(&self) -> Option<&SaslCredentials> {
        self.sasl.as_ref()
    }

    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Adds the security settings to a librdkafka configuration.
    pub fn apply(&self, config: &mut ClientConfig) {
        config.set("security.protocol", self.protocol.as_str());
        if self.protocol == SecurityProtocol::Plaintext {
            return;
        }
        // librdkafka's default since 2.0, set anyway: the broker's name must match its certificate.
        config.set("ssl.endpoint.identification.algorithm", "https");
        if let Some(ca_file) = &self.ca_file {
            config.set("ssl.ca.location", ca_file.to_string_lossy());
        }
        if let Some(sasl) = &self.sasl {
            config.set("sasl.mechanism", sasl.mechanism.as_str());
            config.set("sasl.username", &sasl.username);
            config.set("sasl.password", sasl.password.expose());
        }
    }

    /// What this configuration is, for logs and errors (no secret in it).
    pub fn describe(&self) -> String {
        match &self.sasl {
            Some(sasl) => format!("{} as {} ({})", self.protocol, sasl.username, sasl.mechanism),
            None => self.protocol.to_string(),
        }
    }
}

/// Why the brokers could not be reached: for the first connection a process makes, so
/// a wrong password or certificate stops it at once with words an operator can act on
/// (librdkafka itself would retry without end).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("Kafka at {brokers} refused the credentials ({security}): {reason}; check PARPULSE_KAFKA_SASL_USERNAME and the password (PARPULSE_KAFKA_SASL_PASSWORD or PARPULSE_KAFKA_SASL_PASSWORD_FILE)")]
    Authentication { brokers: String, security: String, reason: String },
    #[error("TLS with Kafka at {brokers} failed ({security}): {reason}; check PARPULSE_KAFKA_CA_FILE and that the brokers' certificates name the host in PARPULSE_KAFKA_BROKERS")]
    Tls { brokers: String, security: String, reason: String },
    #[error("Kafka at {brokers} ({security}) did not answer within {seconds} s: {reason}; is it running and is PARPULSE_KAFKA_SECURITY_PROTOCOL the listener's protocol?")]
    Unreachable { brokers: String, security: String, seconds: u64, reason: String },
    #[error("Kafka at {brokers}: {source}")]
    Client {
        brokers: String,
        #[source]
        source: KafkaError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Authentication,
    Tls,
    /// Any other connection failure: kept to explain a timeout.
    Other,
}

impl Failure {
    /// What librdkafka's words say went wrong (its error events carry a code, but it
    /// does not raise one for every failed attempt; every attempt is logged).
    fn of(text: &str) -> Failure {
        if text.contains("SASL authentication error") || text.contains("Authentication failed") {
            Failure::Authentication
        } else if text.contains("SSL handshake failed") || text.contains("certificate verify failed") {
            Failure::Tls
        } else {
            Failure::Other
        }
    }
}

/// Records what librdkafka says about failed connections: the first authentication or
/// TLS failure, else the latest other one.
#[derive(Default, Clone)]
struct ProbeContext {
    failure: Arc<Mutex<Option<(Failure, String)>>>,
}

impl ProbeContext {
    fn record(&self, failure: Failure, reason: &str) {
        let mut recorded = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*recorded, Some((Failure::Authentication | Failure::Tls, _))) {
            *recorded = Some((failure, reason.to_owned()));
        }
    }
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "FAIL" {
            self.record(Failure::of(log_message), log_message);
        }
        DefaultClientContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let failure = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Authentication) => Failure::Authentication,
            Some(RDKafkaErrorCode::SSL) => Failure::Tls,
            _ => Failure::of(reason),
        };
        self.record(failure, reason);
    }
}

// A producer because librdkafka hands a producer's errors to the context with their
// words (a consumer's come back from poll() as a bare code); it never produces.
impl ProducerContext for ProbeContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Connects once with `config` (a client configuration from
/// `KafkaConnection::client_config`) and reads the cluster's metadata; a refused
/// password, a certificate that does not verify or brokers that do not answer within
/// `timeout` become a [`ConnectError`] saying which. Blocking: call it from
/// `spawn_blocking` in async code.
pub fn probe(
    config: &ClientConfig,
    brokers: &str,
    security: &KafkaSecurity,
    timeout: Duration,
) -> Result<(), ConnectError> {
    let context = ProbeContext::default();
    let mut config = config.clone();
    // Failed connections are logged at error level: the probe reads them whatever PARPULSE_LOG says.
    if (config.log_level as i32) < (RDKafkaLogLevel::Error as i32) {
        config.set_log_level(RDKafkaLogLevel::Error);
    }
    let producer: BaseProducer<ProbeContext> = config
        .create_with_context(context.clone())
        .map_err(|source| ConnectError::Client { brokers: brokers.to_owned(), source })?;
    // In steps, serving librdkafka's events between them, so that an authentication or
    // TLS failure ends the wait early.
    let deadline = std::time::Instant::now() + timeout;
    let step = Duration::from_millis(500);
    loop {
        let result = producer.client().fetch_metadata(None, step);
        producer.poll(Duration::ZERO);
        let failure = context.failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (brokers, security) = (brokers.to_owned(), security.describe());
        match (result, failure) {
            (Ok(_), _) => return Ok(()),
            (Err(_), Some((Failure::Authentication, reason))) => {
                return Err(ConnectError::Authentication { brokers, security, reason })
            }
            (Err(_), Some((Failure::Tls, reason))) => return Err(ConnectError::Tls { brokers, security, reason }),
            (Err(error), other) if std::time::Instant::now() >= deadline => {
                let seconds = timeout.as_secs();
                let reason = other.map_or_else(|| error.to_string(), |(_, reason)| reason);
                return Err(ConnectError::Unreachable { brokers, security, seconds, reason });
            }
            (Err(_), _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(protocol: SecurityProtocol) -> SecuritySettings {
        SecuritySettings { protocol, ..Default::default() }
    }

    fn conf_map(security: &KafkaSecurity) -> Vec<(String, String)> {
        let mut config = ClientConfig::new();
        security.apply(&mut config);
        let keys = [
            "security.protocol",
            "sasl.mechanism",
            "sasl.username",
            "sasl.password",
            "ssl.ca.location",
            "ssl.endpoint.identification.algorithm",
        ];
        keys.iter().filter_map(|k| config.get(k).map(|v| (k.to_string(), v.to_owned()))).collect()
    }

    #[test]
    fn protocols_and_mechanisms_parse_as_operators_write_them() {
        assert_eq!("SASL_SSL".parse(), Ok(SecurityProtocol::SaslSsl));
        assert_eq!("sasl-ssl".parse(), Ok(SecurityProtocol::SaslSsl));
        assert_eq!("ssl".parse(), Ok(SecurityProtocol::Ssl));
        assert_eq!("".parse(), Ok(SecurityProtocol::Plaintext));
        assert!("sasl_plaintext".parse::<SecurityProtocol>().unwrap_err().contains("sasl_ssl"));
        assert!("kerberos".parse::<SecurityProtocol>().is_err());
        assert_eq!("scram-sha-512".parse(), Ok(SaslMechanism::ScramSha512));
        assert_eq!("SCRAM_SHA_256".parse(), Ok(SaslMechanism::ScramSha256));
        assert_eq!("PLAIN".parse(), Ok(SaslMechanism::Plain));
        assert!("GSSAPI".parse::<SaslMechanism>().is_err());
    }

    #[test]
    fn plaintext_sets_only_the_protocol() {
        let security = settings(SecurityProtocol::Plaintext).resolve().unwrap();
        assert_eq!(conf_map(&security), vec![("security.protocol".into(), "plaintext".into())]);
    }

    #[test]
    fn sasl_ssl_sets_credentials_and_the_ca() {
        let ca = std::env::temp_dir().join(format!("parpulse-kafka-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
        let security = SecuritySettings {
            username: Some("parpulse".into()),
            password: Some(Password::new("s3cr3t-pw")),
            ca_file: Some(ca.clone()),
            ..settings(SecurityProtocol::SaslSsl)
        }
        .resolve()
        .unwrap();
        std::fs::remove_file(&ca).unwrap();
        let map = conf_map(&security);
        let get = |k: &str| map.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(get("sasl.username"), Some("parpulse"));
        assert_eq!(get("sasl.password"), Some("s3cr3t-pw"));
        assert_eq!(get("ssl.ca.location"), Some(ca.to_str().unwrap()));
        assert_eq!(get("ssl.endpoint.identification.algorithm"), Some("https"));
        assert_eq!(security.describe(), "sasl_ssl as parpulse (SCRAM-SHA-512)");
    }

    #[test]
    fn nothing_prints_the_password() {
        let security = SecuritySettings {
            username: Some("parpulse".into()),
            password: Some(Password::new("s3cr3t-pw")),
            ..settings(SecurityProtocol::SaslSsl)
        }
        .resolve()
        .unwrap();
        let mut config = ClientConfig::new();
        security.apply(&mut config);
        for text in
            [format!("{security:?}"), format!("{config:?}"), security.describe(), format!("{:?}", security.sasl())]
        {
            assert!(!text.contains("s3cr3t-pw"), "{text}");
        }
    }

    #[test]
    fn the_password_file_gives_its_first_line() {
        let path = std::env::temp_dir().join(format!("parpulse-kafka-pw-{}", std::process::id()));
        std::fs::write(&path, "from-a-file\n").unwrap();
        let security = SecuritySettings {
            username: Some("parpulse".into()),
            password_file: Some(path.clone()),
            ..settings(SecurityProtocol::SaslSsl)
        }
        .resolve()
        .unwrap();
        std::fs::write(&path, "\n").unwrap();
        let empty = SecuritySettings {
            username: Some("parpulse".into()),
            password_file: Some(path.clone()),
            ..settings(SecurityProtocol::SaslSsl)
        }
        .resolve()
        .unwrap_err()
        .to_string();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(security.sasl().unwrap().password.expose(), "from-a-file");
        assert!(empty.contains("is empty") && empty.contains(path.to_str().unwrap()), "{empty}");
    }

    #[test]
    fn incomplete_or_contradictory_settings_are_refused_without_the_password() {
        let no_user = SecuritySettings { password: Some(Password::new("pw-1")), ..settings(SecurityProtocol::SaslSsl) };
        let no_password = SecuritySettings { username: Some("u".into()), ..settings(SecurityProtocol::SaslSsl) };
        let two = SecuritySettings {
            username: Some("u".into()),
            password: Some(Password::new("pw-2")),
            password_file: Some("/run/secrets/kafka".into()),
            ..settings(SecurityProtocol::SaslSsl)
        };
        let unused = SecuritySettings { password: Some(Password::new("pw-3")), ..settings(SecurityProtocol::Ssl) };
        let ca_plaintext =
            SecuritySettings { ca_file: Some("/ca.pem".into()), ..settings(SecurityProtocol::Plaintext) };
        let missing_ca =
            SecuritySettings { ca_file: Some("/nonexistent/ca.pem".into()), ..settings(SecurityProtocol::Ssl) };
        let cases = [
            (no_user, "PARPULSE_KAFKA_SASL_USERNAME"),
            (no_password, "PARPULSE_KAFKA_SASL_PASSWORD_FILE"),
            (two, "use one"),
            (unused, "does not use it"),
            (ca_plaintext, "PARPULSE_KAFKA_CA_FILE"),
            (missing_ca, "/nonexistent/ca.pem"),
        ];
        for (settings, expected) in cases {
            let message = settings.resolve().unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("pw-"), "{message}");
        }
    }
}
