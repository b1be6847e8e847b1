//! Commits: the changelog of changed entities, outputs and offsets, in one transaction
//! (exactly-once) or as acknowledged epochs (at-least-once).

use super::*;

impl MemberState {
    /// Commits the changed entities' state, the outputs and the offsets (see the module docs).
    pub(super) fn commit(
        &mut self,
        consumer: &BaseConsumer<MemberCtx>,
        sync: bool,
    ) -> Result<(), KafkaError> {
        let started = Instant::now();
        // The interval counts from the end of this commit: processing always gets a full
        // interval between commits, however long a commit takes.
        let mut result = self.commit_now(consumer, started);
        if result.is_ok() && sync {
            result = self
                .wait_delivered()
                .and_then(|()| self.commit_acked(consumer, true));
        }
        self.last_commit = Instant::now();
        if result.is_ok() && self.stage == Stage::Process {
            self.shared
                .last_commit_ms
                .store(nowcast_pipeline::now_ms(), Ordering::Relaxed);
        }
        if started.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "nowcast: {}: a commit took {:.1} s ({})",
                self.name,
                started.elapsed().as_secs_f64(),
                match &result {
                    Ok(()) => "done".to_string(),
                    Err(e) => format!("failed: {e}"),
                }
            );
        }
        result
    }

    /// At-least-once: stores the offsets of every epoch acknowledged so far; the consumer
    /// commits stored offsets every commit interval (see [`client::consumer`]). With `sync`
    /// (after [`wait_delivered`](Self::wait_delivered): revocation, stop) they are committed
    /// now, synchronously.
    pub(super) fn commit_acked(
        &mut self,
        consumer: &BaseConsumer<MemberCtx>,
        sync: bool,
    ) -> Result<(), KafkaError> {
        let ctx = self.producer.context();
        if ctx.failures.swap(0, Ordering::Relaxed) > 0 {
            let last = ctx.last.lock().take().unwrap_or_default();
            return Err(KafkaError::Unreachable(format!(
                "records were not delivered ({last}); offsets not committed"
            )));
        }
        while let Some((epoch, _)) = self.awaiting.front() {
            if ctx.outstanding[epoch % EPOCHS].load(Ordering::Acquire) > 0 {
                break;
            }
            let (_, tpl) = self.awaiting.pop_front().expect("front exists");
            consumer
                .store_offsets(&tpl)
                .map_err(|e| KafkaError::client("storing offsets", e))?;
        }
        if sync && self.awaiting.is_empty() {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Err(RdError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) | Ok(()) => {}
                Err(e) => return Err(KafkaError::client("committing offsets", e)),
            }
        }
        Ok(())
    }

    pub(super) fn commit_now(
        &mut self,
        consumer: &BaseConsumer<MemberCtx>,
        started: Instant,
    ) -> Result<(), KafkaError> {
        let shared = self.shared.clone();
        let k = &shared.kafka;
        if self
            .parts
            .values()
            .any(|p| p.engine.read().pending_changes() > 0)
        {
            self.ensure_txn()?;
        }
        let mut first_err = None;
        let mut changes = 0usize;
        for (&p, part) in &self.parts {
            let mut engine = part.engine.write();
            let drained = engine.drain_changes(|key, value| {
                if first_err.is_none() {
                    if let Err(e) =
                        self.send(&k.features_topic, p, Some(key.as_bytes()), value, None)
                    {
                        first_err = Some(e);
                    }
                }
            });
            changes += drained.map_err(|e| KafkaError::State(e.to_string()))?;
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let mut tpl = TopicPartitionList::new();
        let topic = &self.topic;
        for (&p, part) in &self.parts {
            if let Some(next) = part.next_offset {
                if part.committed != Some(next) {
                    tpl.add_partition_offset(topic, p, Offset::Offset(next))
                        .map_err(|e| KafkaError::client("offsets", e))?;
                }
            }
        }
        if tpl.count() == 0 && !self.pending {
            return Ok(());
        }
        match k.delivery {
            Delivery::ExactlyOnce => {
                self.ensure_txn()?;
                if tpl.count() > 0 {
                    let meta = consumer.group_metadata().ok_or_else(|| {
                        KafkaError::Unreachable("no consumer group metadata yet".into())
                    })?;
                    // Against a deadline of ours: this call can block for good after a
                    // broker restart (see `deadline`).
                    let stall = shared.fault_stall_offsets.load(Ordering::Acquire)
                        && shared.fault_stall_offsets.swap(false, Ordering::AcqRel);
                    let limit = if stall {
                        eprintln!(
                            "nowcast: fault injection: adding offsets to the transaction stalls (NOWCAST_FAULT_STALL_OFFSETS)"
                        );
                        Duration::from_secs(3)
                    } else {
                        CALL_TIMEOUT + Duration::from_secs(5)
                    };
                    deadline::within(
                        &self.producer,
                        limit,
                        "adding offsets to the transaction",
                        &deadline::STUCK,
                        deadline::max_stuck(k.threads),
                        move |producer| {
                            if stall {
                                // Returns, on its abandoned producer, long after the member
                                // was rebuilt: that producer has been fenced by then.
                                std::thread::sleep(Duration::from_secs(20));
                            }
                            producer.send_offsets_to_transaction(&tpl, &meta, CALL_TIMEOUT)
                        },
                    )?
                    .map_err(|e| KafkaError::client("adding offsets to the transaction", e))?;
                }
                // `commit_transaction` first flushes through `Producer::flush`, which on a
                // threaded producer polls the event queue in up-to-100 ms waits while the
                // producer's own thread takes the delivery reports: each commit stalled the
                // member for tens of ms. Waiting here (200 µs checks) leaves it nothing to
                // flush.
                self.wait_delivered()?;
                self.producer
                    .commit_transaction(CALL_TIMEOUT)
                    .map_err(|e| KafkaError::client("committing the transaction", e))?;
            }
            Delivery::AtLeastOnce => {
                // Close this epoch; its offsets go out once it is acknowledged.
                if self.awaiting.len() >= EPOCHS - 1 {
                    self.wait_delivered()?;
                }
                if tpl.count() > 0 {
                    self.awaiting.push_back((self.epoch, tpl));
                }
                self.epoch = self.epoch.wrapping_add(1);
                self.commit_acked(consumer, false)?;
            }
        }
        self.pending = false;
        for part in self.parts.values_mut() {
            part.committed = part.next_offset;
        }
        shared.commits.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.snapshot_due(false) {
            self.snapshot_failed(&e);
        }
        metrics::counter!("nowcast_kafka_commits_total").increment(1);
        metrics::histogram!("nowcast_kafka_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("nowcast_feature_store_records_total").increment(changes as u64);
        Ok(())
    }
}
