//! A member's record handling: decode, apply, score and produce (processing), re-keying,
//! and dead letters / late events.

use super::*;

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

impl MemberState {
    /// A dead letter or late event: the original record with its timestamp, the reason and
    /// where it came from in headers; a late event also carries `nowcast.event_time` and
    /// `nowcast.watermark` (`late`: those two, epoch ms).
    pub(super) fn reject(
        &mut self,
        m: &BorrowedMessage<'_>,
        late: Option<(i64, i64)>,
        reason: &str,
        detail: &str,
    ) -> Result<(), KafkaError> {
        self.ensure_txn()?;
        let k = &self.shared.kafka;
        let (topic, n) = if late.is_some() {
            (&k.late_topic, self.shared.out_partitions[2])
        } else {
            (&k.dead_letters_topic, self.shared.out_partitions[1])
        };
        let (partition, offset) = (m.partition().to_string(), m.offset().to_string());
        let mut headers = OwnedHeaders::new()
            .insert(header("nowcast.reason", reason))
            .insert(header("nowcast.detail", detail))
            .insert(header("nowcast.source.topic", m.topic()))
            .insert(header("nowcast.source.partition", &partition))
            .insert(header("nowcast.source.offset", &offset));
        if let Some((event_time, watermark)) = late {
            headers = headers
                .insert(header("nowcast.event_time", &event_time.to_string()))
                .insert(header("nowcast.watermark", &watermark.to_string()));
        }
        self.send_at(
            topic,
            m.partition() % n,
            m.key(),
            m.payload(),
            Some(headers),
            m.timestamp().to_millis(),
        )
    }

    pub(super) fn process(&mut self, batch: &[BorrowedMessage<'_>]) -> Result<(), KafkaError> {
        if self.stage == Stage::Repartition {
            return self.repartition(batch);
        }
        let shared = self.shared.clone();
        let now = nowcast_pipeline::now_ms();
        let src = &shared.spec.sources[0];
        let (mut applied, mut late, mut read) = (0u64, 0u64, 0u64);
        let mut rejected = [0u64; RejectReason::ALL.len()];
        self.rows.clear();
        self.metas.clear();
        self.texts.clear();
        for m in batch {
            let p = m.partition();
            let Some(part) = self.parts.get(&p) else {
                continue; // revoked while the batch was read
            };
            if part.next_offset.is_some_and(|n| m.offset() < n) {
                continue;
            }
            read += 1;
            let value = m.payload().unwrap_or(&[]);
            let outcome = shared.decoder.decode(value, now, &mut self.decoded);
            if let Err(e) = &outcome {
                if shared.decoder.stops_on(e) {
                    return Err(registry_stop(m, e));
                }
            }
            let outcome = outcome.map_err(|e| (e.reason, e.detail)).and_then(|()| {
                let home = partition_for_key(self.decoded.key.as_bytes(), shared.partitions as u32);
                if home as i32 == p {
                    Ok(())
                } else {
                    Err((
                        RejectReason::WrongPartition,
                        format!(
                            "entity `{}` belongs to partition {home}, the record is on {p}: key the topic by `{}`",
                            self.decoded.key, src.key_field
                        ),
                    ))
                }
            });
            if let Err((reason, detail)) = outcome {
                rejected[reason_index(reason)] += 1;
                self.reject(m, None, reason.as_str(), &detail)?;
            } else {
                let d = &self.decoded;
                let result = self.parts[&p].engine.write().apply(
                    &d.key,
                    0,
                    d.time,
                    &d.inputs,
                    Some(&mut self.features),
                );
                match result {
                    Err(Late { watermark, newest }) => {
                        late += 1;
                        let detail = format!(
                            "event time {} is before the watermark {watermark} (newest {newest}, allowed lateness {} ms)",
                            d.time, src.allowed_lateness
                        );
                        self.reject(m, Some((d.time, watermark)), "late", &detail)?;
                    }
                    Ok(()) => {
                        applied += 1;
                        // The event id and the entity go into the batch's text buffer
                        // (no allocation per event).
                        let start = self.texts.len();
                        match &d.id {
                            Some(id) => self.texts.push_str(id),
                            None => {
                                use std::fmt::Write;
                                let _ = write!(self.texts, "{}-{}-{}", src.name, p, m.offset());
                            }
                        }
                        let mid = self.texts.len();
                        self.texts.push_str(&d.key);
                        shared.plan.row(&self.features, &d.request, &mut self.rows);
                        self.metas.push(Meta {
                            start,
                            mid,
                            end: self.texts.len(),
                            event_time: d.time,
                            ingest_time: m.timestamp().to_millis().unwrap_or(now),
                        });
                        let part = self.parts.get_mut(&p).expect("checked");
                        part.stream_time = part.stream_time.max(d.time);
                    }
                }
            }
            let part = self.parts.get_mut(&p).expect("checked");
            part.next_offset = Some(m.offset() + 1);
            let before = part.processed;
            part.processed += 1;
            if before / EVICT_EVERY != part.processed / EVICT_EVERY {
                let t = part.stream_time;
                part.engine.write().evict_idle(t);
            }
        }
        let features_at = nowcast_pipeline::now_ms();
        let model = shared.model.current();
        self.scores.clear();
        if !self.metas.is_empty() {
            model
                .score_batch(&self.rows, self.metas.len(), &mut self.scores)
                .map_err(|e| KafkaError::Model(e.to_string()))?;
            self.ensure_txn()?;
        }
        let emit = nowcast_pipeline::now_ms();
        let n_inputs = shared.plan.len();
        let topic = &shared.kafka.predictions_topic;
        let n_pred = shared.out_partitions[0] as u32;
        let e2p = metrics::histogram!("nowcast_event_to_prediction_seconds");
        let e2f = metrics::histogram!("nowcast_event_to_features_seconds");
        // From the record's timestamp: the broker's append time on a topic with
        // `message.timestamp.type = LogAppendTime`, else the producer's create time.
        let i2p = metrics::histogram!("nowcast_ingest_to_prediction_seconds");
        let metas = std::mem::take(&mut self.metas);
        let mut line = std::mem::take(&mut self.line);
        for (i, meta) in metas.iter().enumerate() {
            line.clear();
            let values = &self.rows[i * n_inputs..(i + 1) * n_inputs];
            let (event_id, entity) = (
                &self.texts[meta.start..meta.mid],
                &self.texts[meta.mid..meta.end],
            );
            match shared.predictions_avro {
                Some(id) => nowcast_schema::prediction::PredictionRecord {
                    event_id,
                    entity,
                    score: self.scores[i],
                    model: model.name(),
                    model_version: model.version(),
                    values,
                    event_time: meta.event_time,
                    emit_time: emit,
                }
                .write(id, &mut line),
                None => PredictionLine {
                    event_id,
                    entity,
                    score: self.scores[i],
                    model: model.name(),
                    model_version: model.version(),
                    keys: &shared.plan.json_keys,
                    values,
                    event_time: meta.event_time,
                    emit_time: emit,
                }
                .write(&mut line),
            }
            let part = partition_for_key(entity.as_bytes(), n_pred) as i32;
            self.send(topic, part, Some(entity.as_bytes()), Some(&line), None)?;
            e2f.record((features_at - meta.event_time) as f64 / 1e3);
            e2p.record((emit - meta.event_time) as f64 / 1e3);
            i2p.record((emit - meta.ingest_time) as f64 / 1e3);
            self.lat.record(
                (emit - meta.event_time) * 1000,
                (emit - meta.ingest_time) * 1000,
            );
        }
        self.line = line;
        self.metas = metas;
        let st = &shared.stats;
        if applied > 0 {
            let newest = self
                .parts
                .values()
                .map(|p| p.stream_time)
                .max()
                .unwrap_or(i64::MIN);
            st.newest_event[0].fetch_max(newest, Ordering::Relaxed);
            self.lat.record_freshness(emit, newest);
        }
        st.events_in.fetch_add(read, Ordering::Relaxed);
        st.applied.fetch_add(applied, Ordering::Relaxed);
        st.late.fetch_add(late, Ordering::Relaxed);
        st.predictions.fetch_add(applied, Ordering::Relaxed);
        let label = src.name.clone();
        metrics::counter!("nowcast_events_in_total", "source" => label.clone()).increment(read);
        metrics::counter!("nowcast_events_applied_total", "source" => label.clone())
            .increment(applied);
        metrics::counter!("nowcast_events_late_total", "source" => label.clone()).increment(late);
        metrics::counter!("nowcast_predictions_total", "model" => model.name().to_string())
            .increment(applied);
        for (i, count) in rejected.iter().enumerate() {
            if *count > 0 {
                st.rejected[i].fetch_add(*count, Ordering::Relaxed);
                metrics::counter!("nowcast_events_rejected_total", "source" => label.clone(), "reason" => RejectReason::ALL[i].as_str())
                    .increment(*count);
            }
        }
        if let Some(limit) = shared.fault_abort_after {
            if shared.processed.fetch_add(read, Ordering::Relaxed) + read >= limit {
                eprintln!(
                    "nowcast: fault injection: aborting after {limit} records (NOWCAST_FAULT_ABORT_AFTER)"
                );
                std::process::abort();
            }
        }
        Ok(())
    }

    /// Re-keys a batch of the source into the repartition topic: each decodable record goes,
    /// unchanged and with its timestamp, to the partition its entity hashes to; the others are
    /// dead-lettered here with their reason.
    pub(super) fn repartition(&mut self, batch: &[BorrowedMessage<'_>]) -> Result<(), KafkaError> {
        let shared = self.shared.clone();
        let now = nowcast_pipeline::now_ms();
        let mut rejected = [0u64; RejectReason::ALL.len()];
        let mut moved = 0u64;
        for m in batch {
            let p = m.partition();
            let Some(part) = self.parts.get(&p) else {
                continue;
            };
            if part.next_offset.is_some_and(|n| m.offset() < n) {
                continue;
            }
            let value = m.payload().unwrap_or(&[]);
            match shared.decoder.decode(value, now, &mut self.decoded) {
                Err(e) if shared.decoder.stops_on(&e) => return Err(registry_stop(m, &e)),
                Err(e) => {
                    rejected[reason_index(e.reason)] += 1;
                    self.reject(m, None, e.reason.as_str(), &e.detail)?;
                }
                Ok(()) => {
                    self.ensure_txn()?;
                    let key = self.decoded.key.as_bytes();
                    let to = partition_for_key(key, shared.partitions as u32) as i32;
                    let ts = m.timestamp().to_millis();
                    self.send_at(&shared.input_topic, to, Some(key), Some(value), None, ts)?;
                    moved += 1;
                }
            }
            let part = self.parts.get_mut(&p).expect("checked");
            part.next_offset = Some(m.offset() + 1);
        }
        metrics::counter!("nowcast_kafka_repartitioned_total").increment(moved);
        let label = shared.spec.sources[0].name.clone();
        for (i, count) in rejected.iter().enumerate() {
            if *count > 0 {
                shared.stats.rejected[i].fetch_add(*count, Ordering::Relaxed);
                metrics::counter!("nowcast_events_rejected_total", "source" => label.clone(), "reason" => RejectReason::ALL[i].as_str())
                    .increment(*count);
            }
        }
        Ok(())
    }
}

/// The error that stops a member on a registry outage (policy `stop`).
fn registry_stop(m: &BorrowedMessage<'_>, e: &nowcast_pipeline::decode::DecodeError) -> KafkaError {
    KafkaError::Registry(format!(
        "{} partition {} offset {}: {}",
        m.topic(),
        m.partition(),
        m.offset(),
        e.detail
    ))
}
