//! "Did you mean" hints: a known alias first (`std` → `stddev`, `float` → `number`), then a
//! candidate the word is a prefix of (or that is a prefix of it), then the nearest by edit
//! distance.

/// Names users write for a known value, and that value.
const ALIASES: &[(&str, &str)] = &[
    ("std", "stddev"),
    ("stdev", "stddev"),
    ("std_dev", "stddev"),
    ("avg", "mean"),
    ("average", "mean"),
    ("median", "quantile"),
    ("percentile", "quantile"),
    ("distinct", "distinct_count"),
    ("count_distinct", "distinct_count"),
    ("nunique", "distinct_count"),
    ("unique", "distinct_count"),
    ("float", "number"),
    ("double", "number"),
    ("int", "number"),
    ("integer", "number"),
    ("long", "number"),
    ("str", "string"),
    ("text", "string"),
    ("boolean", "bool"),
];

/// Edit distance.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The candidate `word` most likely means, if any is close enough.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let all: Vec<&str> = candidates.into_iter().collect();
    let lower = word.to_ascii_lowercase();
    if let Some(c) = ALIASES
        .iter()
        .filter(|(alias, _)| *alias == lower)
        .find_map(|(_, known)| all.iter().find(|c| *c == known))
    {
        return Some(c);
    }
    let prefix = all
        .iter()
        .filter(|c| {
            (word.len() >= 3 && c.starts_with(word)) || (c.len() >= 3 && word.starts_with(*c))
        })
        .min_by_key(|c| distance(word, c));
    if let Some(c) = prefix {
        return Some(c);
    }
    all.iter()
        .map(|c| (distance(word, c), *c))
        .min()
        .filter(|(d, _)| *d <= 2.max(word.len() / 3))
        .map(|(_, c)| c)
}

/// "did you mean `x`?", else the candidates to choose from.
pub(crate) fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = candidates.into_iter().collect();
    match closest(word, all.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None if all.is_empty() => "none are declared".to_string(),
        None => format!(
            "use one of: {}",
            all.iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
