//! A compiled `AvroReader` for a 12-field card-transaction schema (and the same writer
//! resolved through a reader schema with an alias and defaults) reading arbitrary bytes.
//! Invariants: no panic; on Ok every slot holds a value its `Use` admits and no required
//! slot is absent; a refusal is `corrupt_payload` or `type_mismatch`; reading is
//! deterministic; what the plain reader accepts, the resolved one accepts with the same
//! values (and the reader defaults).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use nowcast_core::RejectReason;
use nowcast_fuzz::{
    avro_needs, avro_reader_needs, check_refusal, check_slots, AVRO_CARD, AVRO_CARD_READER,
};
use nowcast_schema::avro::{parse, AvroReader};
use nowcast_schema::{Needs, Val};

struct Fixture {
    plain: AvroReader,
    plain_needs: Needs,
    resolved: AvroReader,
    resolved_needs: Needs,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let writer = parse(AVRO_CARD).expect("writer schema parses");
    let reader = parse(AVRO_CARD_READER).expect("reader schema parses");
    let plain_needs = avro_needs();
    let resolved_needs = avro_reader_needs();
    Fixture {
        plain: AvroReader::compile(&writer, None, &plain_needs).expect("compiles"),
        resolved: AvroReader::compile(&writer, Some(&reader), &resolved_needs)
            .expect("compiles with the reader schema"),
        plain_needs,
        resolved_needs,
    }
});

const ALLOWED: &[RejectReason] = &[RejectReason::CorruptPayload, RejectReason::TypeMismatch];

fn run<'a>(what: &str, r: &'a AvroReader, needs: &Needs, data: &'a [u8]) -> Option<Vec<Val<'a>>> {
    let mut vals = vec![Val::Absent; needs.0.len()];
    let res = r.read(data, &mut vals);
    match &res {
        Ok(()) => check_slots(what, needs, &vals, false),
        Err(e) => check_refusal(what, e, ALLOWED),
    }
    let mut again = vec![Val::Absent; needs.0.len()];
    let res2 = r.read(data, &mut again);
    assert_eq!(res.is_ok(), res2.is_ok(), "{what}: not deterministic");
    if res.is_ok() {
        // NaN-safe comparison of the two reads.
        assert_eq!(
            format!("{vals:?}"),
            format!("{again:?}"),
            "{what}: not deterministic"
        );
    }
    res.ok().map(|()| vals)
}

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    let plain = run("plain", &f.plain, &f.plain_needs, data);
    let resolved = run("resolved", &f.resolved, &f.resolved_needs, data);
    // Fields a reader skips are not validated (a skipped boolean byte of 2, say), so the two
    // readers may disagree on acceptance; but the resolved reader reads a subset of the
    // fields the plain one reads, so whatever the plain reader accepts it accepts too, with
    // the same values for the fields both read.
    if let Some(p) = plain {
        let r = resolved.expect("the plain reader accepted a record the resolved one refused");
        for (pn, rn) in [
            ("card_id", "pan_token"),
            ("event_time", "event_time"),
            ("amount", "amount"),
            ("channel", "channel"),
            ("fee", "fee"),
        ] {
            let pv = &p[f.plain_needs.slot(pn).expect("plain slot")];
            let rv = &r[f.resolved_needs.slot(rn).expect("resolved slot")];
            assert_eq!(
                format!("{pv:?}"),
                format!("{rv:?}"),
                "{pn} read differently"
            );
        }
        let risk = &r[f.resolved_needs.slot("risk_score").expect("slot")];
        assert_eq!(*risk, Val::Num(0.5), "risk_score takes the reader default");
        let region = &r[f.resolved_needs.slot("region").expect("slot")];
        assert_eq!(
            *region,
            Val::Str("eu-west".into()),
            "region takes the reader default"
        );
    }
});
