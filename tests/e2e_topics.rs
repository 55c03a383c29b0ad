//! Topics as deployments need them: `migrate` creates them with the configured
//! partitions, replication, retention and `min.insync.replicas`, event topics stamped
//! with the broker's time; an existing topic that differs is reported, never altered.

use std::time::Duration;

use parpulse_kafka::{ensure_topics, Retention, TopicSettings};
use parpulse_tests::TestEnv;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

async fn config_of(env: &TestEnv, topic: &str, name: &str) -> Option<String> {
    let admin: AdminClient<DefaultClientContext> = env.connection().client_config().create().expect("admin client");
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe configs");
    let resource = described.into_iter().next().expect("one topic").expect("topic described");
    resource.get(name).and_then(|entry| entry.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_as_configured_and_differences_are_reported_not_altered() {
    let env = TestEnv::new("topics");
    let settings = TopicSettings {
        partitions: 3,
        replication: 1,
        min_insync_replicas: Some(1),
        retention: "400d".parse().expect("a retention"),
    };
    let differences = ensure_topics(&env.connection(), &env.topics, &settings).await.expect("topics created");
    assert!(differences.is_empty(), "new topics are as configured: {differences:?}");
    let dossier = &env.topics.dossier;
    assert_eq!(config_of(&env, dossier, "retention.ms").await.as_deref(), Some("34560000000"));
    assert_eq!(config_of(&env, dossier, "min.insync.replicas").await.as_deref(), Some("1"));
    assert_eq!(config_of(&env, dossier, "message.timestamp.type").await.as_deref(), Some("LogAppendTime"));
    assert_eq!(config_of(&env, &env.topics.deadletter, "retention.ms").await.as_deref(), Some("34560000000"));
    let consumer: rdkafka::consumer::BaseConsumer = env.connection().client_config().create().expect("consumer");
    let metadata = rdkafka::consumer::Consumer::fetch_metadata(&consumer, Some(dossier), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 3);

    // The same topics, now configured to keep events forever on 4 partitions: reported, left alone.
    let forever = TopicSettings { partitions: 4, retention: Retention::Forever, ..settings };
    let differences = ensure_topics(&env.connection(), &env.topics, &forever).await.expect("idempotent");
    let retention =
        differences.iter().filter(|d| d.contains("retention.ms=34560000000, parpulse would set -1")).count();
    assert_eq!(retention, 4, "every topic's retention difference is reported: {differences:?}");
    assert_eq!(
        differences.iter().filter(|d| d.contains("3 partitions, parpulse would create 4")).count(),
        3,
        "the event topics' partition counts: {differences:?}"
    );
    assert_eq!(config_of(&env, dossier, "retention.ms").await.as_deref(), Some("34560000000"), "never altered");
    env.cleanup().await;
}
