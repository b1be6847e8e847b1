//! The broker's id of a topic (KIP-516). A topic deleted and created again under the same
//! name gets a new id, so a local snapshot that records the feature store's id is never
//! restored into the changelog of another incarnation of the topic, whose offsets may well
//! overlap the snapshot's. rust-rdkafka has no call for it; this one describes the topic
//! through librdkafka's admin API on an existing client's handle.

use std::ffi::{c_char, c_int, CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

/// The id of `topic` (base64, as Kafka's tools print it), asked of the cluster `client` is
/// connected to, within `timeout`.
pub fn topic_id<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<String, String> {
    let name = CString::new(topic).map_err(|_| format!("topic name {topic:?} has a NUL byte"))?;
    let timeout_ms = timeout.as_millis().min(i32::MAX as u128 - 1000) as c_int;
    let rk = client.native_ptr();
    // SAFETY: every handle created here is destroyed before returning; the strings read from
    // the result event are copied before the event is destroyed; `names` outlives the call
    // that copies it into the collection.
    unsafe {
        let mut names = [name.as_ptr()];
        let topics = rd::rd_kafka_TopicCollection_of_topic_names(names.as_mut_ptr(), 1);
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        );
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_DescribeTopics(rk, topics, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms + 1000);
        let result = read_id(event, topic);
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_TopicCollection_destroy(topics);
        result
    }
}

/// The topic id in a DescribeTopics result event (null: no answer in time).
unsafe fn read_id(event: *mut rd::rd_kafka_event_t, topic: &str) -> Result<String, String> {
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    if event.is_null() {
        return Err(format!("no answer describing topic `{topic}`"));
    }
    if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(format!(
            "describing topic `{topic}`: {}",
            text(rd::rd_kafka_event_error_string(event))
        ));
    }
    let result = rd::rd_kafka_event_DescribeTopics_result(event);
    if result.is_null() {
        return Err(format!(
            "describing topic `{topic}`: not a DescribeTopics result"
        ));
    }
    let mut count = 0usize;
    let described = rd::rd_kafka_DescribeTopics_result_topics(result, &mut count);
    if described.is_null() || count == 0 {
        return Err(format!(
            "describing topic `{topic}`: no topic in the answer"
        ));
    }
    let description = *described;
    let error = rd::rd_kafka_TopicDescription_error(description);
    if !error.is_null()
        && rd::rd_kafka_error_code(error) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    {
        return Err(format!(
            "describing topic `{topic}`: {}",
            text(rd::rd_kafka_error_string(error))
        ));
    }
    let id = rd::rd_kafka_TopicDescription_topic_id(description);
    if id.is_null() {
        return Err(format!("the broker gave no id for topic `{topic}`"));
    }
    usable(text(rd::rd_kafka_Uuid_base64str(id)), topic)
}

/// The all-zero id (base64) a broker without topic ids (Metadata before v10) reports for
/// every topic: it would match every incarnation, so it counts as no id.
const ZERO_ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

fn usable(id: String, topic: &str) -> Result<String, String> {
    if id.is_empty() || id == ZERO_ID {
        Err(format!("the broker gives no id for topic `{topic}`"))
    } else {
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_all_zero_id_of_brokers_without_topic_ids_counts_as_none() {
        assert!(usable(ZERO_ID.into(), "t").is_err());
        assert!(usable(String::new(), "t").is_err());
        assert_eq!(
            usable("hJ4m2X0ZQjW1wV6b8C9d1A".into(), "t").as_deref(),
            Ok("hJ4m2X0ZQjW1wV6b8C9d1A")
        );
    }
}
