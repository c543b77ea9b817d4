//! The processor's apply script against a real Redis: a chunk holds exactly the lines of the
//! messages that were new, in their order, whether its staged lines are renamed into place (all
//! new) or copied out part by part (a redelivery among them), and nothing staged is left behind.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use logjet_core::{Level, keys};
use logjet_processor::aggregate::{Aggregator, MessageEvents, PlanSettings, plan_batch};
use logjet_processor::decode::EventRecord;
use logjet_tests::servers::RedisServer;

fn message(ts_ms: i64, first: usize) -> Vec<EventRecord> {
    let service: Arc<str> = Arc::from("api");
    (first..first + 100)
        .map(|i| EventRecord {
            ts_nanos: ts_ms * 1_000_000,
            service: service.clone(),
            level: Level::Info,
            line: Bytes::from(format!(
                "{{\"ts_ms\":{ts_ms},\"message\":\"request {i} took {} ms\"}}",
                i % 97
            )),
            template_id: 7,
        })
        .collect()
}

fn settings() -> PlanSettings {
    PlanSettings {
        stream_id: "LOGS-1".into(),
        retention: Duration::from_secs(86_400),
        recent_retention: Duration::from_secs(3600),
    }
}

fn ndjson(events: &[&[EventRecord]]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events.iter().flat_map(|m| m.iter()) {
        out.extend_from_slice(&e.line);
        out.push(b'\n');
    }
    out
}

#[tokio::test]
async fn a_chunk_of_several_parts_holds_only_the_new_messages_lines_in_order() {
    let redis = RedisServer::start().await;
    let conn = logjet_core::store::connect_lazy(&redis.url(), Duration::from_secs(5)).unwrap();
    let aggregator = Aggregator::new(conn.clone());
    let settings = settings();
    let now = Utc::now();
    let ts = now.timestamp_millis();
    let msgs: Vec<Vec<EventRecord>> = (0..4).map(|m| message(ts, m * 100)).collect();
    let batch = |seqs: &[usize]| -> Vec<MessageEvents<'_>> {
        seqs.iter()
            .map(|&i| MessageEvents {
                seq: i as u64 + 1,
                events: &msgs[i],
            })
            .collect()
    };
    // Message 2 was applied before (a redelivery after a crash between apply and ack): chunk 1.
    let before = aggregator
        .apply_batch(&plan_batch(&batch(&[2]), &settings, now))
        .await
        .unwrap();
    assert_eq!(before.fresh_messages, 1);
    // All four of one service and second: one chunk group of four parts, three of them new.
    let applied = aggregator
        .apply_batch(&plan_batch(&batch(&[0, 1, 2, 3]), &settings, now))
        .await
        .unwrap();
    assert_eq!((applied.fresh_messages, applied.already_applied), (3, 1));
    let mut c = conn.clone();
    let chunk: Vec<u8> = redis::cmd("GET")
        .arg(keys::chunk_key(2))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(chunk).unwrap(),
        String::from_utf8(ndjson(&[&msgs[0], &msgs[1], &msgs[3]])).unwrap()
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(keys::chunk_key(2))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "{ttl}");
    // A single part is written as it is.
    let alone: Vec<u8> = redis::cmd("GET")
        .arg(keys::chunk_key(1))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(alone, ndjson(&[&msgs[2]]));
    // The whole batch once more (every message a redelivery): nothing new, and no staged value
    // is left behind by any of the three applies.
    let again = aggregator
        .apply_batch(&plan_batch(&batch(&[0, 1, 2, 3]), &settings, now))
        .await
        .unwrap();
    assert_eq!((again.fresh_messages, again.already_applied), (0, 4));
    let staged: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", keys::stage_key_prefix()))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(staged.is_empty(), "{staged:?}");
    let chunks: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", keys::chunk_key_prefix()))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(chunks.len(), 2, "{chunks:?}");
}

#[tokio::test]
async fn a_script_whose_staged_values_are_missing_writes_nothing() {
    let redis = RedisServer::start().await;
    let conn = logjet_core::store::connect_lazy(&redis.url(), Duration::from_secs(5)).unwrap();
    let settings = settings();
    let now = Utc::now();
    let events = message(now.timestamp_millis(), 0);
    let planned = plan_batch(
        &[MessageEvents {
            seq: 1,
            events: &events,
        }],
        &settings,
        now,
    );
    // The script alone, as after a lost (or evicted) staging write.
    let mut c = conn.clone();
    let result: redis::RedisResult<Vec<u8>> = redis::Script::new(keys::APPLY_SCRIPT)
        .key(keys::services_key())
        .arg(&planned.plan_json)
        .arg(format!("{}nothing-staged:", keys::stage_key_prefix()))
        .invoke_async(&mut c)
        .await;
    let err = result.unwrap_err();
    assert!(
        err.to_string().contains("staged chunk data missing"),
        "{err}"
    );
    let keys_now: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys_now.is_empty(), "{keys_now:?}");
    // So the retry applies the message in full.
    let applied = Aggregator::new(conn).apply_batch(&planned).await.unwrap();
    assert_eq!(applied.fresh_messages, 1);
}
