//! The broker side of `nowcast topics`: reading the topics' state, creating them and setting
//! their configs, each call with a deadline.

use super::*;

/// Wakes the blocked thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread until it finishes or `deadline` passes (`None`). rdkafka's admin
/// futures are completed by its own polling thread, so no runtime is needed.
pub(super) fn block_on<F: Future>(fut: F, deadline: Instant) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// An admin connection to the brokers, with the deadline of every call.
pub struct Admin {
    client: AdminClient<DefaultClientContext>,
    bootstrap: String,
    spec_file: String,
    timeout: Duration,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("bootstrap", &self.bootstrap)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Admin {
    /// An admin client for `bootstrap` with the spec's client properties (no I/O yet).
    pub fn connect(
        spec: &KafkaSpec,
        bootstrap: &str,
        spec_file: &str,
    ) -> Result<Admin, KafkaError> {
        let client = crate::client::admin(spec, bootstrap)
            .create()
            .map_err(|e| {
                KafkaError::client(format!("creating an admin client for {bootstrap}"), e)
            })?;
        Ok(Admin {
            client,
            bootstrap: bootstrap.to_string(),
            spec_file: spec_file.to_string(),
            timeout: TIMEOUT,
        })
    }

    /// Sets the deadline of every broker call (default [`TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Admin {
        self.timeout = timeout;
        self
    }

    fn unreachable(&self, what: &str) -> KafkaError {
        KafkaError::Unreachable(format!(
            "no answer from Kafka at {} within {} s while {what} (fix: start the broker, or \
             correct `kafka.bootstrap` in {}, --bootstrap or NOWCAST_KAFKA)",
            self.bootstrap,
            self.timeout.as_secs_f64(),
            self.spec_file
        ))
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout))
    }

    /// Runs one admin future with the deadline (plus slack for librdkafka's own timeout).
    fn wait<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, RdError>>,
    ) -> Result<T, KafkaError> {
        match block_on(fut, Instant::now() + self.timeout + Duration::from_secs(2)) {
            None => Err(self.unreachable(what)),
            Some(Err(e)) if is_unreachable(&e) => Err(self.unreachable(what)),
            Some(Err(e)) => Err(KafkaError::client(what, e)),
            Some(Ok(v)) => Ok(v),
        }
    }

    /// The named topics that exist, with partitions, replication factor and configs.
    pub fn describe(&self, topics: &[&str]) -> Result<BTreeMap<String, TopicState>, KafkaError> {
        // All topics: asking for one by name may auto-create it on some brokers.
        let md = self
            .client
            .inner()
            .fetch_metadata(None, self.timeout)
            .map_err(|e| {
                if is_unreachable(&e) {
                    self.unreachable("fetching metadata")
                } else {
                    KafkaError::client(format!("fetching metadata from {}", self.bootstrap), e)
                }
            })?;
        let mut out = BTreeMap::new();
        for t in md.topics() {
            if !topics.contains(&t.name()) || t.error().is_some() {
                continue;
            }
            let rf = t.partitions().first().map_or(0, |p| p.replicas().len());
            out.insert(
                t.name().to_string(),
                TopicState {
                    partitions: t.partitions().len() as u32,
                    replication_factor: rf as u16,
                    configs: BTreeMap::new(),
                    overrides: BTreeMap::new(),
                },
            );
        }
        if out.is_empty() {
            return Ok(out);
        }
        let specs: Vec<ResourceSpecifier<'_>> =
            out.keys().map(|t| ResourceSpecifier::Topic(t)).collect();
        let results = self.wait(
            "describing topic configs",
            self.client.describe_configs(&specs, &self.options()),
        )?;
        let mut configs = Vec::new();
        for (spec, r) in specs.iter().zip(results) {
            let ResourceSpecifier::Topic(name) = spec else {
                continue;
            };
            let r = r.map_err(|code| {
                KafkaError::client(
                    format!("describing configs of `{name}`"),
                    RdError::AdminOp(code),
                )
            })?;
            configs.push((name.to_string(), r));
        }
        for (name, r) in configs {
            let state = out.get_mut(&name).expect("described topics exist");
            for e in r.entries {
                let Some(v) = e.value else { continue };
                if e.source == ConfigSource::DynamicTopic {
                    state.overrides.insert(e.name.clone(), v.clone());
                }
                state.configs.insert(e.name, v);
            }
        }
        Ok(out)
    }
}

fn is_unreachable(e: &RdError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::Resolve
        )
    )
}

/// Describes the declared topics on the broker and compares them with the spec.
pub fn plan(admin: &Admin, plan: &TopicPlan) -> Result<Vec<Change>, KafkaError> {
    let names: Vec<&str> = plan.topics.iter().map(|t| t.name.as_str()).collect();
    let actual = admin.describe(&names)?;
    Ok(diff(plan, &actual))
}

/// Carries out the creations and alterations of `changes` (from [`plan`]), then re-describes
/// until the broker agrees with the spec. Refuses, changing nothing, if `changes` has errors.
pub fn apply(admin: &Admin, topics: &TopicPlan, changes: &[Change]) -> Result<(), KafkaError> {
    let errors: Vec<String> = changes
        .iter()
        .filter(|c| c.is_error())
        .map(|c| c.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(KafkaError::Topics(format!(
            "{}: nothing changed, the plan has errors:\n{}",
            topics.spec_file,
            errors.join("\n")
        )));
    }
    // Creations.
    let creates: Vec<&TopicDecl> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Create(t) => Some(t),
            _ => None,
        })
        .collect();
    if !creates.is_empty() {
        let new: Vec<NewTopic<'_>> = creates
            .iter()
            .map(|t| {
                let mut n = NewTopic::new(
                    &t.name,
                    t.partitions as i32,
                    TopicReplication::Fixed(i32::from(t.replication_factor)),
                );
                for (k, v) in &t.configs {
                    n = n.set(k, v);
                }
                n
            })
            .collect();
        let results = admin.wait(
            "creating topics",
            admin.client.create_topics(&new, &admin.options()),
        )?;
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err())
            .map(|(t, code)| format!("`{t}`: {code}"))
            .collect();
        if !failed.is_empty() {
            return Err(KafkaError::Topics(format!(
                "creating topics of {} failed: {} (fix: check the broker's limits, e.g. a \
                 replication factor above the number of brokers, and `kafka.*` in {})",
                topics.spec_file,
                failed.join("; "),
                topics.spec_file
            )));
        }
    }
    // Alterations: AlterConfigs replaces a topic's whole override set, so carry the current
    // overrides over and set the declared values on top.
    let mut alters: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for c in changes {
        if let Change::Alter { topic, key, to, .. } = c {
            alters.entry(topic).or_default().insert(key, to);
        }
    }
    if !alters.is_empty() {
        let names: Vec<&str> = alters.keys().copied().collect();
        let current = admin.describe(&names)?;
        let mut merged: Vec<(&str, BTreeMap<&str, &str>)> = Vec::new();
        for (topic, set) in &alters {
            let mut all: BTreeMap<&str, &str> = current
                .get(*topic)
                .map(|s| {
                    s.overrides
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            all.extend(set.iter().map(|(k, v)| (*k, *v)));
            merged.push((topic, all));
        }
        let requests: Vec<AlterConfig<'_>> = merged
            .iter()
            .map(|(topic, all)| {
                all.iter().fold(
                    AlterConfig::new(ResourceSpecifier::Topic(topic)),
                    |a, (k, v)| a.set(k, v),
                )
            })
            .collect();
        let results = admin.wait(
            "altering topic configs",
            admin.client.alter_configs(&requests, &admin.options()),
        )?;
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err())
            .map(|(t, code)| format!("{t:?}: {code}"))
            .collect();
        if !failed.is_empty() {
            return Err(KafkaError::Topics(format!(
                "altering topic configs of {} failed: {} (fix: check that the client may \
                 alter configs, and the values of `kafka.*` in {})",
                topics.spec_file,
                failed.join("; "),
                topics.spec_file
            )));
        }
    }
    confirm(admin, topics)
}

/// Re-describes until nothing is left to create or alter (metadata propagates
/// asynchronously), within the admin deadline.
fn confirm(admin: &Admin, topics: &TopicPlan) -> Result<(), KafkaError> {
    let deadline = Instant::now() + admin.timeout;
    loop {
        let left: Vec<String> = plan(admin, topics)?
            .into_iter()
            .filter(|c| c.is_action() || c.is_error())
            .map(|c| c.to_string())
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(KafkaError::Topics(format!(
                "after apply, the broker at {} still differs from {}:\n{} (fix: run `nowcast \
                 topics plan` again; another client may be changing these topics)",
                admin.bootstrap,
                topics.spec_file,
                left.join("\n")
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
