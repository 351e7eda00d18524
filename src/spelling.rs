//! "Did you mean": the known word nearest to a misspelt one, by edit distance.
//!
//! Words are compared without case, `_` and `-` (`PullHour`, `pull-hour` and `pull_hour`
//! are one word), by the optimal string alignment distance: an insertion, a deletion, a
//! substitution or a swap of two neighbours costs 1. A word is near when at most 1 edit
//! (known words of up to 5 letters), 2 (up to 10) or 3 (longer) away.

/// The known word nearest to `word`, if one is near (the first of equally near ones).
pub fn nearest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let typed = squash(word);
    if typed.is_empty() {
        return None;
    }
    known
        .iter()
        .filter_map(|k| {
            let candidate = squash(k);
            let d = distance(&typed, &candidate);
            (d <= allowed(candidate.len())).then_some((d, *k))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// How many edits a known word of `len` letters may be away and still be meant.
fn allowed(len: usize) -> usize {
    match len {
        0..=5 => 1,
        6..=10 => 2,
        _ => 3,
    }
}

fn squash(word: &str) -> Vec<char> {
    word.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a
/// substring): three rows of the usual table.
fn distance(a: &[char], b: &[char]) -> usize {
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut last, row);
    }
    last[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> usize {
        distance(&squash(a), &squash(b))
    }

    #[test]
    fn edits_and_swaps_cost_one_each() {
        assert_eq!(d("target", "target"), 0);
        assert_eq!(d("taget", "target"), 1);
        assert_eq!(d("endpont", "endpoint"), 1);
        assert_eq!(d("tagret", "target"), 1, "a swap of neighbours is one edit");
        assert_eq!(d("grup_by", "group_by"), 1);
        assert_eq!(d("PullHour", "pull_hour"), 0);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("kitten", "sitting"), 3);
    }

    #[test]
    fn the_nearest_known_word_if_it_is_near() {
        let keys = [
            "target",
            "endpoint",
            "pull_hour",
            "group_by",
            "max_catchup_days",
        ];
        assert_eq!(nearest("taget", &keys), Some("target"));
        assert_eq!(nearest("endpont", &keys), Some("endpoint"));
        assert_eq!(nearest("grup_by", &keys), Some("group_by"));
        assert_eq!(nearest("pullhour", &keys), Some("pull_hour"));
        assert_eq!(nearest("max_catchup_dys", &keys), Some("max_catchup_days"));
        assert_eq!(nearest("x", &keys), None);
        assert_eq!(nearest("insecure", &keys), None);
        assert_eq!(nearest("_", &keys), None);
        let commands = ["run", "once", "check", "revise", "status"];
        assert_eq!(nearest("oncee", &commands), Some("once"));
        assert_eq!(nearest("chekc", &commands), Some("check"));
        assert_eq!(nearest("stauts", &commands), Some("status"));
        assert_eq!(nearest("pull", &commands), None);
    }
}
