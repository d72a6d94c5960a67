//! "Did you mean" suggestions for unknown commands, options and config keys.

/// The closest candidate to `input`, if it is close enough to be a likely
/// typo: a small edit distance, or the same word in another case.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        let cand_lower = cand.to_ascii_lowercase();
        let d = if cand_lower == lower {
            0
        } else {
            distance(&lower, &cand_lower)
        };
        let limit = (cand.len().max(input.len()) / 3).clamp(1, 3);
        let close = d <= limit
            || (cand_lower.len() >= 4 && lower.starts_with(&cand_lower))
            || (lower.len() >= 4 && cand_lower.starts_with(&lower));
        if close && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance over bytes (inputs are ASCII identifiers), counting a
/// swap of two neighbouring letters (`prot` for `port`) as one edit.
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            let mut best = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && ca == b[j - 1] && a[i - 1] == cb {
                best = best.min(before[j - 1] + 1);
            }
            cur[j + 1] = best;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swapped_letters_are_one_edit() {
        assert_eq!(distance("prot", "port"), 1);
        assert_eq!(did_you_mean("prot", ["port", "revision"]), Some("port"));
    }

    #[test]
    fn doubled_letter_typo_is_found() {
        assert_eq!(
            did_you_mean("gracefullStopMs", ["gracefulStopMs", "restartDelayMs"]),
            Some("gracefulStopMs")
        );
    }

    #[test]
    fn longer_variant_of_a_key_is_found() {
        assert_eq!(
            did_you_mean("healthcheck", ["health", "port"]),
            Some("health")
        );
    }

    #[test]
    fn case_difference_is_found() {
        assert_eq!(did_you_mean("statepath", ["statePath"]), Some("statePath"));
    }

    #[test]
    fn unrelated_word_has_no_suggestion() {
        assert_eq!(did_you_mean("banana", ["deploy", "status", "stop"]), None);
    }

    #[test]
    fn command_typo_is_found() {
        assert_eq!(
            did_you_mean("deplyo", ["deploy", "daemon", "doctor"]),
            Some("deploy")
        );
    }
}
