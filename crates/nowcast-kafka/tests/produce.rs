//! Producing to a source topic (`nowcast generate --kafka`).

mod common;

use std::path::Path;
use std::time::Duration;

use nowcast_kafka::TopicProducer;
use nowcast_spec::parse_spec;

fn spec(bootstrap: &str, producer: &str) -> nowcast_spec::PipelineSpec {
    let p = common::unique("produce");
    let text = format!(
        r#"
[pipeline]
name = "t"
[[sources]]
name = "tx"
topic = "{p}.tx"
key_field = "user"
time_field = "ts"
[[features]]
name = "n_1h"
source = "tx"
aggregation = "count"
window = "1h"
[model]
name = "m"
type = "logistic"
weights = [1.0]
inputs = ["n_1h"]
[kafka]
bootstrap = "{bootstrap}"
[kafka.producer]
{producer}
"#
    );
    parse_spec(&text, "produce-test.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn records_the_broker_never_took_fail_the_flush_instead_of_passing_for_delivered() {
    // Regression: delivery reports were ignored, so `generate --kafka` ended successfully
    // while records had timed out in the producer. No broker listens on port 1: every record
    // times out.
    let s = spec("127.0.0.1:1", r#""message.timeout.ms" = 500"#);
    let k = s.kafka.as_ref().unwrap();
    let producer = TopicProducer::new(k, "127.0.0.1:1", &s.sources[0].topic, 1).unwrap();
    for i in 0..20 {
        producer
            .send(format!("u-{i}").as_bytes(), br#"{"user":"u","ts":1}"#)
            .unwrap();
    }
    let err = producer
        .flush(Duration::from_secs(30))
        .unwrap_err()
        .to_string();
    assert!(err.contains("20 records were not delivered"), "{err}");
}
