//! Micro-benchmarks of the aggregator's and the ingestors' hot paths, in process:
//! Avro decode (parpulse's serde_avro_fast codec, and apache-avro on the same
//! records for comparison), validation, and the day-bucket/dossier update.
//! Run: `cargo bench -p parpulse-bench --bench hot_paths` (make bench runs it).

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use parpulse_aggregate::PartitionState;
use parpulse_core::avro::{split_header, AvroCodec};
use parpulse_core::validate::{validate_event, ValidationPolicy};
use parpulse_core::{AgencyRegistry, DossierEvent, Event};
use parpulse_ingest::{Simulator, SimulatorConfig};

const RECORDS: usize = 10_000;

fn sample() -> (Vec<Event>, Vec<Vec<u8>>) {
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(5, 5, 100), &AgencyRegistry::demo())
        .filter(|e| matches!(e, Event::Dossier(_)))
        .take(RECORDS)
        .collect();
    let codec = AvroCodec::new();
    let records = events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            codec.encode_event(e, &mut out).unwrap();
            out
        })
        .collect();
    (events, records)
}

fn decode(c: &mut Criterion) {
    let (_, records) = sample();
    let codec = AvroCodec::new();
    let schema = apache_avro::Schema::parse_str(include_str!("../../../schemas/avro/dossier_event.v1.avsc")).unwrap();
    let mut group = c.benchmark_group("avro_decode");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("parpulse (serde_avro_fast), owned strings", |b| {
        b.iter(|| {
            for record in &records {
                black_box(codec.decode_event(record).unwrap());
            }
        })
    });
    group.bench_function("parpulse (serde_avro_fast), borrowed strings (the aggregator's)", |b| {
        b.iter(|| {
            for record in &records {
                black_box(codec.decode_event_ref(record).unwrap());
            }
        })
    });
    group.bench_function("apache-avro, to the same struct", |b| {
        b.iter(|| {
            for record in &records {
                let (_, mut datum) = split_header(record).unwrap();
                let value = apache_avro::from_avro_datum(&schema, &mut datum, None).unwrap();
                black_box(apache_avro::from_value::<DossierEvent>(&value).unwrap());
            }
        })
    });
    group.finish();
}

fn validation(c: &mut Criterion) {
    let (events, _) = sample();
    let registry = AgencyRegistry::demo();
    let policy = ValidationPolicy::default();
    let now = parpulse_core::time::now_micros();
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("gate rules", |b| {
        b.iter(|| {
            for event in &events {
                black_box(validate_event(event, &registry, &policy, now).is_ok());
            }
        })
    });
    group.finish();
}

fn bucket_update(c: &mut Criterion) {
    let (events, records) = sample();
    let codec = AvroCodec::new();
    let mut group = c.benchmark_group("aggregate");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("PartitionState::apply_event", |b| {
        b.iter_batched(
            || PartitionState::load(0, 0, &[], &[]),
            |mut state| {
                for (offset, event) in events.iter().enumerate() {
                    black_box(state.apply_event(offset as i64, event));
                }
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("decode_event_ref + apply_event (the aggregator's work per message)", |b| {
        b.iter_batched(
            || PartitionState::load(0, 0, &[], &[]),
            |mut state| {
                for (offset, record) in records.iter().enumerate() {
                    let event = codec.decode_event_ref(record).unwrap();
                    black_box(state.apply_event(offset as i64, &event));
                }
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, decode, validation, bucket_update);
criterion_main!(benches);
