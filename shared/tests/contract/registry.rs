//! The registry-store contract, run on every adapter (redb here, DynamoDB Local in `contract_aws`).
//! Services carry a random suffix, so runs against a shared table do not see each other.

use std::collections::BTreeMap;

use flowscope_core::ports::registry::{InstanceRecord, InstanceSource, PutKind, RegistryStore};

use super::{now_unix_s, unique};

fn record(service: &str, instance: &str, source: InstanceSource, now: i64) -> InstanceRecord {
    InstanceRecord {
        service: service.to_string(),
        instance: instance.to_string(),
        source,
        version: Some("1.0.0".into()),
        host: Some("host-a".into()),
        metadata: BTreeMap::from([("zone".to_string(), "eu-1".to_string())]),
        health_url: Some("http://127.0.0.1:9/healthz".into()),
        metrics_url: None,
        first_seen: now,
        last_seen: now,
        lease_ttl_s: (source == InstanceSource::Registered).then_some(30),
        expires_at: now + 30,
    }
}

async fn mine(store: &dyn RegistryStore, service: &str) -> Vec<InstanceRecord> {
    let mut out: Vec<InstanceRecord> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter(|r| r.service == service)
        .collect();
    out.sort_by(|a, b| (&a.instance, a.source).cmp(&(&b.instance, b.source)));
    out
}

/// `store` must keep records per (service, instance, source), renew leases, and remove lapsed ones.
pub async fn registry_store_contract(store: &dyn RegistryStore) {
    let service = unique("svc");
    let now = now_unix_s();
    let registered = record(&service, "i-1", InstanceSource::Registered, now);

    // A new record is created and read back whole.
    assert_eq!(store.put(&registered).await.expect("put"), PutKind::Created);
    assert_eq!(mine(store, &service).await, vec![registered.clone()]);

    // Writing it again is an update that keeps `first_seen`.
    let mut again = record(&service, "i-1", InstanceSource::Registered, now + 5);
    again.version = Some("1.1.0".into());
    assert_eq!(store.put(&again).await.expect("put"), PutKind::Updated);
    let stored = mine(store, &service).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].first_seen, now, "first_seen is kept");
    assert_eq!(stored[0].last_seen, now + 5);
    assert_eq!(stored[0].version.as_deref(), Some("1.1.0"));

    // The same instance from another source is another record.
    let otlp = record(&service, "i-1", InstanceSource::Otlp, now);
    assert_eq!(store.put(&otlp).await.expect("put"), PutKind::Created);
    assert_eq!(mine(store, &service).await.len(), 2);

    // A heartbeat moves the lease end to now + ttl.
    let renewed = store
        .renew(&service, "i-1", InstanceSource::Registered, now + 20)
        .await
        .expect("renew")
        .expect("a live lease is renewed");
    assert_eq!(renewed.expires_at, now + 50);
    assert_eq!(renewed.last_seen, now + 20);
    let stored = mine(store, &service).await;
    let lease = stored
        .iter()
        .find(|r| r.source == InstanceSource::Registered)
        .expect("registered record");
    assert_eq!(lease.expires_at, now + 50);

    // Records without a lease, unknown records and lapsed leases are not renewed.
    assert!(store
        .renew(&service, "i-1", InstanceSource::Otlp, now + 20)
        .await
        .expect("renew")
        .is_none());
    assert!(store
        .renew(&service, "nope", InstanceSource::Registered, now)
        .await
        .expect("renew")
        .is_none());
    assert!(store
        .renew(&service, "i-1", InstanceSource::Registered, now + 50)
        .await
        .expect("renew")
        .is_none());

    // Expiry removes exactly the lapsed records (the lease at now + 50, not the OTLP one at +30
    // when asked at +40; both at +60), and returns them.
    let short = record(&service, "i-2", InstanceSource::Registered, now);
    store.put(&short).await.expect("put");
    let removed: Vec<InstanceRecord> = store
        .remove_expired(now + 40)
        .await
        .expect("expire")
        .into_iter()
        .filter(|r| r.service == service)
        .collect();
    let mut removed_keys: Vec<(String, InstanceSource)> = removed
        .iter()
        .map(|r| (r.instance.clone(), r.source))
        .collect();
    removed_keys.sort();
    assert_eq!(
        removed_keys,
        vec![
            ("i-1".to_string(), InstanceSource::Otlp),
            ("i-2".to_string(), InstanceSource::Registered)
        ]
    );
    let left = mine(store, &service).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].source, InstanceSource::Registered);
    assert_eq!(left[0].instance, "i-1");

    // A lapsed record written again is a new one: its first_seen is not kept.
    let late = record(&service, "i-1", InstanceSource::Registered, now + 100);
    assert_eq!(store.put(&late).await.expect("put"), PutKind::Created);
    assert_eq!(mine(store, &service).await[0].first_seen, now + 100);

    // Removal returns the record; removing it again finds nothing.
    let gone = store
        .remove(&service, "i-1", InstanceSource::Registered)
        .await
        .expect("remove")
        .expect("it was there");
    assert_eq!(gone.instance, "i-1");
    assert!(store
        .remove(&service, "i-1", InstanceSource::Registered)
        .await
        .expect("remove")
        .is_none());
    assert!(mine(store, &service).await.is_empty());
}
