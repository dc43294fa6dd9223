//! Which benchmarks a run of `scripts/bench NAME…` asks for.

/// Whether the benchmark named by one of `names` should run: every one when the command line names
/// none (`scripts/bench` with no arguments), else those a given word is part of (`up` → `upload`).
pub fn wanted(names: &[&str]) -> bool {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    only.is_empty()
        || only
            .iter()
            .any(|word| names.iter().any(|name| name.contains(word.as_str())))
}
