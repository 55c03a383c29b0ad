//! Kafka and ClickHouse security as a deployment uses them, with the processes an
//! operator runs. A private broker with a SASL_SSL listener (SCRAM-SHA-512) and an SSL
//! listener, and a private ClickHouse serving HTTPS with a password, both with
//! certificates of a throwaway CA (deploy/local/tls.sh), started by the project's own
//! scripts on free loopback ports; the test fails, never skips, when either cannot start.
//!
//! With the right settings: `parpulse migrate` creates the topics and tables, `ingest
//! file` and `ingest http` produce over SASL_SSL and `ingest file` over SSL, `aggregate`
//! consumes over SASL_SSL into ClickHouse over HTTPS, and every KPI equals the recount
//! of the events. With a wrong password, or without the CA, each process stops at once
//! with an error that says what is wrong and does not contain the password. No output
//! of any process (logging at debug level) contains either password.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parpulse_clickhouse::{ClickHouseConfig, Store};
use parpulse_kafka::security::{Password, SecurityProtocol, SecuritySettings};
use parpulse_kafka::KafkaConnection;
use parpulse_tests::process::{free_ports, listening_port};
use parpulse_tests::{parpulse_bin, recount, PROVINCE_TOKEN};

const SCRAM_USER: &str = "parpulse-test";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_owned()
}

/// Writes `text` to a file only its owner can read.
fn write_secret(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("creating a secret file");
    writeln!(file, "{text}").expect("writing a secret file");
}

/// The private broker and ClickHouse, stopped and deleted on drop.
struct SecureServices {
    dir: PathBuf,
    kafka_env: Vec<(&'static str, String)>,
    clickhouse_env: Vec<(&'static str, String)>,
    sasl_ssl: String,
    ssl: String,
    clickhouse_url: String,
    ca_file: PathBuf,
    kafka_password: String,
    kafka_password_file: PathBuf,
    clickhouse_password: String,
}

impl SecureServices {
    fn start() -> SecureServices {
        let dir = std::env::temp_dir().join(format!("parpulse-security-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("creating the test folder");
        let [kafka, controller, sasl_ssl, ssl, http, tcp, https] = free_ports();
        let kafka_password = format!("kafka-pw-{}", uuid::Uuid::new_v4().simple());
        let clickhouse_password = format!("clickhouse-pw-{}", uuid::Uuid::new_v4().simple());
        let kafka_password_file = dir.join("kafka-password");
        write_secret(&kafka_password_file, &kafka_password);
        let clickhouse_password_file = dir.join("clickhouse-password");
        write_secret(&clickhouse_password_file, &clickhouse_password);
        let tls = dir.join("tls");
        let shared_home =
            std::env::var("PARPULSE_HOME").map(PathBuf::from).unwrap_or_else(|_| repo().join(".parpulse"));
        let kafka_env = vec![
            ("PARPULSE_HOME", dir.join("home").display().to_string()),
            ("PARPULSE_KAFKA_LIBS", shared_home.join("kafka/libs").display().to_string()),
            ("PARPULSE_LOCAL_KAFKA_PORT", kafka.to_string()),
            ("PARPULSE_LOCAL_KAFKA_CONTROLLER_PORT", controller.to_string()),
            ("PARPULSE_LOCAL_KAFKA_SASL_SSL_PORT", sasl_ssl.to_string()),
            ("PARPULSE_LOCAL_KAFKA_SSL_PORT", ssl.to_string()),
            ("PARPULSE_LOCAL_KAFKA_SCRAM_USER", SCRAM_USER.to_owned()),
            ("PARPULSE_LOCAL_KAFKA_SCRAM_PASSWORD_FILE", kafka_password_file.display().to_string()),
            ("PARPULSE_LOCAL_KAFKA_HEAP", "384m".to_owned()),
            ("PARPULSE_LOCAL_TLS_DIR", tls.display().to_string()),
        ];
        let clickhouse_env = vec![
            ("PARPULSE_HOME", dir.join("home").display().to_string()),
            ("PARPULSE_LOCAL_CLICKHOUSE_HTTP_PORT", http.to_string()),
            ("PARPULSE_LOCAL_CLICKHOUSE_TCP_PORT", tcp.to_string()),
            ("PARPULSE_LOCAL_CLICKHOUSE_HTTPS_PORT", https.to_string()),
            ("PARPULSE_LOCAL_CLICKHOUSE_PASSWORD_FILE", clickhouse_password_file.display().to_string()),
            ("PARPULSE_LOCAL_TLS_DIR", tls.display().to_string()),
        ];
        let services = SecureServices {
            ca_file: tls.join("ca.pem"),
            dir,
            kafka_env,
            clickhouse_env,
            sasl_ssl: format!("127.0.0.1:{sasl_ssl}"),
            ssl: format!("127.0.0.1:{ssl}"),
            clickhouse_url: format!("https://127.0.0.1:{https}"),
            kafka_password,
            kafka_password_file,
            clickhouse_password,
        };
        services.script("kafka.sh", "start");
        services.script("clickhouse.sh", "start");
        services
    }

    /// Runs deploy/local/SCRIPT ACTION with this test's services' settings; panics with its output on failure.
    fn script(&self, script: &str, action: &str) {
        let env = if script == "kafka.sh" { &self.kafka_env } else { &self.clickhouse_env };
        let output = Command::new("bash")
            .arg(repo().join("deploy/local").join(script))
            .arg(action)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("running a deploy/local script");
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(
            output.status.success(),
            "deploy/local/{script} {action} failed: the secured {} could not start ({}):\n{said}",
            if script == "kafka.sh" { "Kafka broker" } else { "ClickHouse server" },
            self.dir.display()
        );
    }

    /// The ClickHouse store as the test reads it (HTTPS, the CA, the password).
    async fn store(&self, database: &str) -> Store {
        let config = ClickHouseConfig {
            user: Some("default".into()),
            password: Some(self.clickhouse_password.clone()),
            ca_file: Some(self.ca_file.clone()),
            ..ClickHouseConfig::local(&self.clickhouse_url, database)
        };
        Store::connect(&config).await.expect("connecting to ClickHouse over HTTPS with the CA file")
    }

    /// The SASL_SSL connection through the library, as the aggregator makes it.
    fn sasl_ssl_connection(&self) -> KafkaConnection {
        let security = SecuritySettings {
            protocol: SecurityProtocol::SaslSsl,
            username: Some(SCRAM_USER.into()),
            password: Some(Password::new(&self.kafka_password)),
            ca_file: Some(self.ca_file.clone()),
            ..Default::default()
        }
        .resolve()
        .expect("SASL_SSL settings");
        KafkaConnection { brokers: self.sasl_ssl.clone(), security }
    }
}

impl Drop for SecureServices {
    fn drop(&mut self) {
        let stop = |script: &str| {
            let env = if script == "kafka.sh" { &self.kafka_env } else { &self.clickhouse_env };
            let _ = Command::new("bash")
                .arg(repo().join("deploy/local").join(script))
                .arg("stop")
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .status();
        };
        stop("kafka.sh");
        stop("clickhouse.sh");
        // A failing test keeps the processes' outputs and the services' logs for inspection.
        if std::thread::panicking() {
            eprintln!("outputs and service logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// How a process reaches Kafka.
#[derive(Clone, Copy)]
enum Kafka<'a> {
    /// SASL_SSL with the password in PARPULSE_KAFKA_SASL_PASSWORD.
    PasswordInEnv(&'a str),
    /// SASL_SSL with the password in the file PARPULSE_KAFKA_SASL_PASSWORD_FILE names.
    PasswordInFile(&'a Path),
    /// The SSL listener, with the CA file (`true`) or the system's roots only.
    Ssl { with_ca: bool },
}

/// One test's namespace on the private services, and every output its processes wrote.
struct Run<'a> {
    services: &'a SecureServices,
    database: String,
    prefix: String,
    group: String,
    outputs: Vec<(String, String)>,
    step: usize,
}

impl<'a> Run<'a> {
    fn new(services: &'a SecureServices) -> Run<'a> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        Run {
            services,
            database: format!("parpulse_test_security_{id}"),
            prefix: format!("test-security-{id}."),
            group: format!("parpulse-test-security-{id}"),
            outputs: Vec::new(),
            step: 0,
        }
    }

    /// `parpulse ARGS` configured as an operator would, with stdout and stderr to files.
    fn command(&mut self, kafka: Kafka<'_>, args: &[&str]) -> (Command, PathBuf) {
        let s = self.services;
        let mut command = Command::new(parpulse_bin());
        command.args(args);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PARPULSE_")) {
            command.env_remove(key);
        }
        command
            .env("PARPULSE_CLICKHOUSE_URL", &s.clickhouse_url)
            .env("PARPULSE_CLICKHOUSE_CA_FILE", &s.ca_file)
            .env("PARPULSE_CLICKHOUSE_USER", "default")
            .env("PARPULSE_CLICKHOUSE_PASSWORD", &s.clickhouse_password)
            .env("PARPULSE_CLICKHOUSE_DATABASE", &self.database)
            .env("PARPULSE_TOPIC_PREFIX", &self.prefix)
            .env("PARPULSE_CONSUMER_GROUP", &self.group)
            // Everything a process may log, so that a leak would show.
            .env("PARPULSE_LOG", "debug")
            .env("RUST_BACKTRACE", "0");
        match kafka {
            Kafka::PasswordInEnv(password) => {
                command.env("PARPULSE_KAFKA_SASL_PASSWORD", password);
            }
            Kafka::PasswordInFile(path) => {
                command.env("PARPULSE_KAFKA_SASL_PASSWORD_FILE", path);
            }
            Kafka::Ssl { .. } => {}
        }
        match kafka {
            Kafka::PasswordInEnv(_) | Kafka::PasswordInFile(_) => {
                command
                    .env("PARPULSE_KAFKA_BROKERS", &s.sasl_ssl)
                    .env("PARPULSE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
                    .env("PARPULSE_KAFKA_SASL_USERNAME", SCRAM_USER)
                    .env("PARPULSE_KAFKA_CA_FILE", &s.ca_file);
            }
            Kafka::Ssl { with_ca } => {
                command.env("PARPULSE_KAFKA_BROKERS", &s.ssl).env("PARPULSE_KAFKA_SECURITY_PROTOCOL", "ssl");
                if with_ca {
                    command.env("PARPULSE_KAFKA_CA_FILE", &s.ca_file);
                }
            }
        }
        self.step += 1;
        let output = s.dir.join(format!("step-{}-{}.log", self.step, args.join("-").replace('/', "_")));
        let file = std::fs::File::create(&output).expect("creating an output file");
        command.stdout(file.try_clone().expect("output file")).stderr(file).stdin(Stdio::null());
        (command, output)
    }

    /// Runs a process to its end (at most `within`); its exit status and output.
    fn run(&mut self, kafka: Kafka<'_>, args: &[&str], within: Duration) -> (bool, String) {
        let (mut command, output) = self.command(kafka, args);
        let mut child = command.spawn().expect("starting parpulse");
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for parpulse") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("parpulse {} did not end within {within:?}:\n{}", args.join(" "), read(&output));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let said = read(&output);
        self.outputs.push((args.join(" "), said.clone()));
        (status.success(), said)
    }

    /// Runs a process that must succeed.
    fn succeed(&mut self, kafka: Kafka<'_>, args: &[&str]) -> String {
        let (ok, said) = self.run(kafka, args, Duration::from_secs(180));
        assert!(ok, "parpulse {} failed:\n{said}", args.join(" "));
        said
    }

    /// Runs a process that must fail, saying `expected`; what it said.
    fn fail(&mut self, kafka: Kafka<'_>, args: &[&str], expected: &str) -> String {
        let started = Instant::now();
        let (ok, said) = self.run(kafka, args, Duration::from_secs(90));
        assert!(!ok, "parpulse {} succeeded where it must fail:\n{said}", args.join(" "));
        let last = said.lines().rev().find(|l| l.starts_with("Error:")).unwrap_or_default().to_owned();
        assert!(last.contains(expected), "parpulse {}: the error should say {expected:?}:\n{said}", args.join(" "));
        // librdkafka would retry without end: the connection check ends it.
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "parpulse {} took {:?} to fail",
            args.join(" "),
            started.elapsed()
        );
        last
    }

    /// Starts a long-running process; its output goes to a file read by [`Run::stop`].
    fn spawn(&mut self, kafka: Kafka<'_>, args: &[&str]) -> Running {
        let (mut command, output) = self.command(kafka, args);
        Running { child: command.spawn().expect("starting parpulse"), output, what: args.join(" ") }
    }

    /// Stops a long-running process (SIGTERM, as systemd does) and keeps its output.
    fn stop(&mut self, mut running: Running) -> String {
        let _ = Command::new("kill").arg("-TERM").arg(running.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while running.child.try_wait().expect("waiting for parpulse").is_none() {
            if Instant::now() > deadline {
                let _ = running.child.kill();
                let _ = running.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let said = read(&running.output);
        self.outputs.push((running.what.clone(), said.clone()));
        said
    }
}

struct Running {
    child: Child,
    output: PathBuf,
    what: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Posts `ndjson` to the intake at `listen` with the province's token, once it answers.
async fn post_to_intake(listen: &str, ndjson: String) -> (u16, String) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("http://{listen}/readyz")).send().await;
        if matches!(&ready, Ok(r) if r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "the intake at {listen} was not ready within 60 s: {ready:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let response = client
        .post(format!("http://{listen}/v1/events"))
        .bearer_auth(PROVINCE_TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .expect("posting events to the intake");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_and_ssl_kafka_and_https_clickhouse_carry_the_pipeline_and_wrong_secrets_fail_clearly() {
    let services = SecureServices::start();
    let mut run = Run::new(&services);
    let dir = services.dir.clone();
    let right = services.kafka_password.clone();
    let right_file = services.kafka_password_file.clone();
    let wrong = format!("wrong-pw-{}", uuid::Uuid::new_v4().simple());
    let wrong_file = dir.join("wrong-password");
    write_secret(&wrong_file, &wrong);

    // The events: a small simulated province, in three parts for three producers.
    let all = dir.join("province.ndjson");
    run.succeed(
        Kafka::Ssl { with_ca: true },
        &[
            "ingest",
            "simulate",
            "--no-kafka",
            "--seed",
            "11",
            "--days",
            "8",
            "--dossiers-per-unit-day",
            "8",
            "--out",
            all.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&all).expect("reading the simulated events");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 1000, "only {} events simulated", lines.len());
    let third = lines.len() / 3;
    let part = |name: &str, lines: &[&str]| {
        let path = dir.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("writing a part");
        path
    };
    let by_file_sasl = part("a.ndjson", &lines[..third]);
    let by_file_ssl = part("b.ndjson", &lines[third..2 * third]);
    let by_http = lines[2 * third..].join("\n") + "\n";

    // Right settings: topics and tables, three producers, the aggregator.
    run.succeed(Kafka::PasswordInEnv(&right), &["migrate"]);
    run.succeed(Kafka::PasswordInFile(&right_file), &["ingest", "file", by_file_sasl.to_str().unwrap()]);
    run.succeed(Kafka::Ssl { with_ca: true }, &["ingest", "file", by_file_ssl.to_str().unwrap()]);
    let tokens = dir.join("tokens.toml");
    std::fs::write(&tokens, parpulse_tests::test_token_file()).expect("writing the token file");
    let mut intake = run.spawn(
        Kafka::PasswordInEnv(&right),
        &["ingest", "http", "--tokens", tokens.to_str().unwrap(), "--listen", "127.0.0.1:0"],
    );
    let listen = format!("127.0.0.1:{}", listening_port(&mut intake.child, Duration::from_secs(60)).await);
    let (status, body) = post_to_intake(&listen, by_http).await;
    let intake_said = run.stop(intake);
    assert_eq!(status, 200, "the intake over SASL_SSL answered {status}: {body}\n{intake_said}");

    let aggregator = run.spawn(Kafka::PasswordInFile(&right_file), &["aggregate", "--listen", "127.0.0.1:0"]);
    let store = services.store(&run.database).await;
    let connection = services.sasl_ssl_connection();
    let topics = parpulse_core::topics::Topics::with_prefix(&run.prefix);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = parpulse_aggregate::caught_up(&store, &connection, &run.group, &topics.event_topics())
            .await
            .expect("reading the aggregator's progress over SASL_SSL and HTTPS");
        if done {
            break;
        }
        if Instant::now() > deadline {
            let said = run.stop(aggregator);
            panic!("the aggregator did not catch up within 180 s:\n{said}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    run.stop(aggregator);
    assert_eq!(
        parpulse_tests::stored_day_counts(&store).await,
        recount::recount_ndjson(&text),
        "receptions per unit and day"
    );
    parpulse_tests::assert_all_kpis_equal_recount(&store, &text).await;

    // Wrong password, by environment and by file, for each kind of process.
    run.fail(Kafka::PasswordInEnv(&wrong), &["migrate"], "refused the credentials");
    run.fail(
        Kafka::PasswordInFile(&wrong_file),
        &["ingest", "file", by_file_sasl.to_str().unwrap()],
        "refused the credentials",
    );
    run.fail(Kafka::PasswordInFile(&wrong_file), &["aggregate", "--listen", "127.0.0.1:0"], "refused the credentials");
    run.fail(
        Kafka::PasswordInEnv(&wrong),
        &["ingest", "http", "--tokens", tokens.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        "refused the credentials",
    );
    // Without the CA file the brokers' certificate does not verify.
    run.fail(Kafka::Ssl { with_ca: false }, &["migrate"], "TLS with Kafka");
    // ClickHouse: a wrong password and a missing CA file are refused too.
    let (ok, said) = {
        let (mut command, output) = run.command(Kafka::PasswordInEnv(&right), &["migrate"]);
        command.env("PARPULSE_CLICKHOUSE_PASSWORD", &wrong);
        let ok = command.status().expect("running parpulse").success();
        (ok, read(&output))
    };
    run.outputs.push(("migrate (wrong ClickHouse password)".into(), said.clone()));
    assert!(!ok && said.contains("Wrong password for user default"), "a wrong ClickHouse password must fail:\n{said}");
    let (ok, said) = {
        let (mut command, output) = run.command(Kafka::PasswordInEnv(&right), &["migrate"]);
        command.env_remove("PARPULSE_CLICKHOUSE_CA_FILE");
        let ok = command.status().expect("running parpulse").success();
        (ok, read(&output))
    };
    run.outputs.push(("migrate (no ClickHouse CA file)".into(), said.clone()));
    assert!(
        !ok && said.contains("certificate verify failed"),
        "ClickHouse's certificate must not verify without the CA:\n{said}"
    );

    // No secret in anything any process wrote.
    assert!(run.outputs.len() >= 12, "{} outputs", run.outputs.len());
    for (what, said) in &run.outputs {
        for (name, secret) in [
            ("the Kafka password", right.as_str()),
            ("the wrong Kafka password", wrong.as_str()),
            ("the ClickHouse password", services.clickhouse_password.as_str()),
        ] {
            assert!(!said.contains(secret), "parpulse {what} wrote {name}:\n{said}");
        }
    }
    // The private services and their data go with `services` (Drop).
}
