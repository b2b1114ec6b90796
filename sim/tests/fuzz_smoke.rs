//! Runs the fuzz bodies on pseudo-random and mutated inputs, so CI exercises them on stable
//! without cargo-fuzz (the coverage-guided campaigns are in `fuzz/`, see the README).

use credlock_sim::fuzz;
use credlock_sim::rng::Rng;

fn inputs(seed: u64, n: usize, seed_corpus: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut r = Rng::new(seed);
    let mut out = Vec::new();
    for i in 0..n {
        let mut v = if !seed_corpus.is_empty() && i % 2 == 0 {
            seed_corpus[i % seed_corpus.len()].clone()
        } else {
            let mut v = vec![0u8; r.below(300) as usize];
            r.fill(&mut v);
            v
        };
        // Mutate: flip, truncate, or extend.
        for _ in 0..r.below(4) {
            match r.below(3) {
                0 if !v.is_empty() => {
                    let i = r.below(v.len() as u64) as usize;
                    v[i] ^= 1 << r.below(8);
                }
                1 if !v.is_empty() => v.truncate(r.below(v.len() as u64) as usize),
                _ => v.push(r.below(256) as u8),
            }
        }
        out.push(v);
    }
    out
}

#[test]
fn decoder_never_panics_and_round_trips() {
    // Seed with real store files.
    let mut p = fuzz::MemPlatform::new();
    let mut corpus = Vec::new();
    for i in 0..4 {
        credlock_core::Store::new(&mut p, Default::default())
            .unwrap()
            .put(
                &format!("t{i}"),
                r#"{"access_token":"a","refresh_token":"r"}"#,
            )
            .unwrap();
        corpus.push(p.store.clone().unwrap());
    }
    for input in inputs(1, 800, &corpus) {
        fuzz::decode(&input);
    }
}

#[test]
fn op_sequences_match_the_model() {
    for input in inputs(2, 500, &[]) {
        fuzz::ops(&input);
    }
}
