//! A small valid spec, and the problems a variant of it has.

use std::path::Path;

use nowcast_spec::parse_spec;

/// One source, a count and a `last_n` feature, a logistic model with a request field.
pub const GOOD: &str = r#"
[pipeline]
name = "t"
[[sources]]
name = "tx"
key_field = "user"
time_field = "ts"
fields = { user = "string", ts = "any", amount = "number", merchant = "string" }
[[features]]
name = "n_1h"
source = "tx"
aggregation = "count"
window = "1h"
[[features]]
name = "last3"
source = "tx"
aggregation = "last_n"
field = "amount"
n = 3
window = "5m"
[model]
name = "m"
type = "logistic"
weights = [0.5, 1.0, 2.0]
request_fields = ["amount"]
inputs = ["amount", "n_1h", "last3[0]"]
"#;

/// Every problem in `text`, as displayed; empty when it is valid.
pub fn problems(text: &str) -> Vec<String> {
    match parse_spec(text, "test.toml", Path::new(".")) {
        Ok(_) => vec![],
        Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
    }
}
