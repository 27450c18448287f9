//! The calls an instance makes to Redis in the background: asking for a probe slot, sending an
//! outcome, refreshing its view of the open circuits. No request waits on them.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
    time::Duration,
};

use super::{
    Shared, clamped,
    local::{MAX_VIEWS, Remote, UNKNOWN, split},
    millis, now,
};
use crate::{
    breaker::{CallOutcome, Permit},
    redis::backend::{Attempt, bounded},
};

impl Shared {
    pub(super) fn ask_probe(self: &Arc<Self>, key: &str) {
        let shared = Arc::clone(self);
        let key = key.to_owned();
        let attempt = self.health.current();
        self.runtime.spawn(async move {
            let (conn_gen, mut conn) = shared.redis.connection();
            let call_shared = Arc::clone(&shared);
            let call_key = key.clone();
            let call = Box::pin(async move {
                call_shared
                    .probe
                    .key(call_shared.circuit_key(&call_key))
                    .key(&call_shared.tripped_key)
                    .arg(&call_key)
                    .arg(call_shared.config.max_probes())
                    .arg(millis(clamped(call_shared.config.cool_down_period())).max(1000))
                    .arg(call_shared.ttl_ms)
                    .invoke_async::<(i64, i64, i64, i64, i64)>(&mut conn)
                    .await
            });
            let answer = bounded(call, shared.background_timeout()).await;
            shared.with_view(&key, |view| view.asking = false);
            match answer {
                Ok((state, generation, until, from, granted)) => {
                    shared.health.succeeded(attempt, &shared.redis.address);
                    shared.apply(&key, state, generation, until, from);
                    if let Ok(slot @ 1..) = u32::try_from(granted) {
                        shared.with_view(&key, |view| {
                            if view.generation == u64::try_from(generation).unwrap_or(0) {
                                view.slots.push(slot);
                            }
                        });
                    }
                }
                Err(error) => shared.failed(conn_gen, attempt, &error),
            }
        });
    }

    pub(super) fn send_outcome(self: &Arc<Self>, key: &str, permit: Permit, outcome: CallOutcome) {
        let shared = Arc::clone(self);
        let key = key.to_owned();
        let code = match outcome {
            CallOutcome::Success => 0,
            CallOutcome::Failure => 1,
            _ => 2,
        };
        let attempt = self.health.current();
        let (circuit_generation, slot) = split(permit);
        // Unknown: sent as `-1 - age` (ms since the permit was issued), for the script to
        // tell whether it was issued in the current closed period.
        let circuit_generation = if circuit_generation & UNKNOWN != 0 {
            let issued = self.origin + Duration::from_millis(circuit_generation & !UNKNOWN);
            -1 - i64::try_from(millis(now().saturating_duration_since(issued))).unwrap_or(0)
        } else {
            i64::try_from(circuit_generation).unwrap_or(i64::MAX)
        };
        self.runtime.spawn(async move {
            let (conn_gen, mut conn) = shared.redis.connection();
            let call_shared = Arc::clone(&shared);
            let call_key = key.clone();
            let call = Box::pin(async move {
                let config = &call_shared.config;
                let (rate, min_calls, window) = config.failure_rate_threshold();
                call_shared
                    .record
                    .key(call_shared.circuit_key(&call_key))
                    .key(&call_shared.tripped_key)
                    .arg(&call_key)
                    .arg(u8::from(permit.is_probe()))
                    .arg(circuit_generation)
                    .arg(code)
                    .arg(config.consecutive_failures_threshold())
                    .arg(format!("{rate:.6}"))
                    .arg(min_calls)
                    .arg(millis(clamped(window)).max(10))
                    .arg(millis(clamped(config.cool_down_period())))
                    .arg(call_shared.ttl_ms)
                    .arg(slot)
                    .arg(MAX_VIEWS)
                    .invoke_async::<(i64, i64, i64, i64)>(&mut conn)
                    .await
            });
            match bounded(call, shared.background_timeout()).await {
                Ok((state, generation, until, from)) => {
                    shared.health.succeeded(attempt, &shared.redis.address);
                    shared.apply(&key, state, generation, until, from);
                }
                Err(error) => shared.failed(conn_gen, attempt, &error),
            }
        });
    }

    /// One refresh: the circuits that are not closed, as the server sees them.
    async fn refresh_once(&self, attempt: Attempt) {
        let started = now();
        let (conn_gen, mut conn) = self.redis.connection();
        let script = self.refresh_script.clone();
        let tripped_key = self.tripped_key.clone();
        let alive_key = self.alive_key.clone();
        let prefix = self.prefix.clone();
        let call = Box::pin(async move {
            script
                .key(tripped_key)
                .key(alive_key)
                .arg(prefix)
                .invoke_async::<Vec<String>>(&mut conn)
                .await
        });
        let answer = match bounded(call, self.background_timeout()).await {
            Ok(answer) => answer,
            Err(error) => return self.failed(conn_gen, attempt, &error),
        };
        self.health.succeeded(attempt, &self.redis.address);
        let Some((server_now, entries)) = answer.split_first() else {
            return;
        };
        let server_now: i64 = server_now.parse().unwrap_or(0);
        let mut tripped = HashMap::new();
        for pair in entries.chunks_exact(2) {
            let mut fields = pair[1].split(':').map(|f| f.parse::<i64>().unwrap_or(0));
            let (state, generation, until) = (
                fields.next().unwrap_or(0),
                fields.next().unwrap_or(0),
                fields.next().unwrap_or(0),
            );
            tripped.insert(pair[0].as_str(), (state, generation, until - server_now));
        }
        let at = now();
        let mut views = self.views();
        for (key, view) in &mut views.map {
            if view.updated.is_some_and(|u| u > started) {
                continue; // a script's answer is newer
            }
            if !tripped.contains_key(key.as_str()) {
                view.state = Remote::Closed;
                view.slots.clear();
            }
        }
        for (key, (state, generation, until_ms)) in tripped {
            // A circuit this instance has no view of gets one when there is room, without
            // evicting one in use (and first in line to be evicted itself): a flood of
            // circuits opened elsewhere does not push out the ones this instance calls.
            if !views.map.contains_key(key) && views.map.len() >= MAX_VIEWS {
                continue;
            }
            let view = views.map.entry(key.to_owned()).or_default();
            if view.updated.is_some_and(|u| u > started) {
                continue;
            }
            let generation = u64::try_from(generation).unwrap_or(0);
            if generation < view.generation {
                continue;
            }
            if generation != view.generation {
                view.slots.clear();
            }
            view.generation = generation;
            view.known = true;
            view.state = if state == 1 {
                Remote::Open {
                    until: at + Duration::from_millis(u64::try_from(until_ms).unwrap_or(0)),
                }
            } else {
                Remote::HalfOpen
            };
        }
    }
}

pub(super) async fn refresh_loop(shared: Weak<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // While degraded, a refresh every `retry_every` is the retry probe, the one call
        // that may switch back.
        if let Some(attempt) = shared.health.should_try(shared.redis.retry_every) {
            shared.refresh_once(attempt).await;
        }
    }
}
