//! ksqlDB conformance: runs the QTT and RQTT corpora in ../shared/ksql-qtt through
//! `sluice test`'s runner and guards the checked-in lists of passing cases
//! (tests/qtt/passing.txt for QTT, tests/qtt/rqtt-passing.txt for RQTT).
//!
//! - A listed case that fails, fails this test.
//! - A case that newly passes is reported, so it can be added.
//! - `SLUICE_QTT_UPDATE=1 cargo test --test qtt` rewrites the lists and
//!   docs/conformance.md from the current results.
//!
//! Skipped, with a message, when ../shared/ksql-qtt is absent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

/// The two corpora run one after the other: in parallel they would compete for the two
/// cores and push queries' quiet timeouts, and both rewrite docs/conformance.md.
static SERIAL: Mutex<()> = Mutex::new(());

/// Read at run time, not baked in with env!: the target dir is shared between checkouts.
fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

struct Corpus {
    /// "QTT" or "RQTT", for messages and the docs section.
    label: &'static str,
    folder: &'static str,
    list: &'static str,
}

const QTT: Corpus = Corpus {
    label: "QTT",
    folder: "query-validation-tests",
    list: "tests/qtt/passing.txt",
};

const RQTT: Corpus = Corpus {
    label: "RQTT",
    folder: "rest-query-validation-tests",
    list: "tests/qtt/rqtt-passing.txt",
};

#[test]
fn qtt_corpus_pass_list_holds() {
    guard(&QTT);
}

#[test]
fn rqtt_corpus_pass_list_holds() {
    guard(&RQTT);
}

fn guard(corpus: &Corpus) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let label = corpus.label;
    let dir = root().join("../shared/ksql-qtt").join(corpus.folder);
    if !dir.is_dir() {
        eprintln!(
            "skipping {label} conformance: {} not found (the corpus lives in ../shared beside the clone)",
            dir.display()
        );
        return;
    }
    let opts = sluice_testrunner::Options {
        paths: vec![dir],
        ..Default::default()
    };
    let mut sink = Vec::new();
    let summary = sluice_testrunner::run(&opts, &mut sink).expect("run the corpus");
    let passing: BTreeSet<String> = summary
        .outcomes
        .iter()
        .filter(|o| o.status == sluice_testrunner::Status::Passed)
        .map(|o| o.id.clone())
        .collect();
    let list_path = root().join(corpus.list);

    if std::env::var("SLUICE_QTT_UPDATE").is_ok_and(|v| v == "1") {
        let mut text = format!(
            "# {label} cases that pass; guarded by tests/qtt.rs. Regenerate with SLUICE_QTT_UPDATE=1.\n"
        );
        for id in &passing {
            text.push_str(id);
            text.push('\n');
        }
        std::fs::write(&list_path, text).expect("write pass list");
        write_conformance(corpus, &summary);
        return;
    }

    // A missing or empty list would guard nothing and pass vacuously: that is a failure.
    let list_text = std::fs::read_to_string(&list_path).unwrap_or_else(|e| {
        panic!(
            "{label} pass list {} cannot be read ({e}); regenerate it with SLUICE_QTT_UPDATE=1",
            list_path.display()
        )
    });
    let listed: BTreeSet<String> = list_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert!(
        !listed.is_empty(),
        "{label} pass list {} lists no case; regenerate it with SLUICE_QTT_UPDATE=1",
        list_path.display()
    );
    let newly: Vec<&String> = passing.difference(&listed).collect();
    if !newly.is_empty() {
        eprintln!(
            "{} {label} case(s) now pass and can be added to {} (SLUICE_QTT_UPDATE=1):",
            newly.len(),
            corpus.list
        );
        for id in &newly {
            eprintln!("  {id}");
        }
    }
    let details: BTreeMap<&str, &sluice_testrunner::CaseOutcome> = summary
        .outcomes
        .iter()
        .map(|o| (o.id.as_str(), o))
        .collect();
    let mut regressions = String::new();
    for id in listed.difference(&passing) {
        let why = match details.get(id.as_str()).map(|o| &o.status) {
            Some(sluice_testrunner::Status::Failed(d)) => d.clone(),
            Some(sluice_testrunner::Status::Skipped(d)) => format!("skipped: {d}"),
            _ => "case no longer exists in the corpus".to_string(),
        };
        let _ = writeln!(
            regressions,
            "REGRESSION {id}\n    {}\n",
            why.replace('\n', "\n    ")
        );
    }
    eprintln!(
        "{label} corpus: {} passed, {} failed, {} skipped; {} listed",
        summary.passed,
        summary.failed,
        summary.skipped,
        listed.len()
    );
    assert!(
        regressions.is_empty(),
        "listed {label} cases fail:\n{regressions}"
    );
}

const DOC_TITLE: &str = "# ksqlDB conformance\n";

fn section_markers(corpus: &Corpus) -> (String, String) {
    (
        format!("<!-- {} begin -->\n", corpus.label),
        format!("<!-- {} end -->\n", corpus.label),
    )
}

/// Rewrites this corpus's section of docs/conformance.md, keeping the other corpus's
/// section as it is (each test writes only what it ran).
fn write_conformance(corpus: &Corpus, summary: &sluice_testrunner::Summary) {
    let mut per_file: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in &summary.outcomes {
        let e = per_file.entry(o.file.as_str()).or_default();
        e.1 += 1;
        if o.status == sluice_testrunner::Status::Passed {
            e.0 += 1;
        }
    }
    let total = summary.outcomes.len();
    let (begin, end) = section_markers(corpus);
    let mut section = format!(
        "{begin}## {label}\n\n{label} cases from ../shared/ksql-qtt/{folder} run by `sluice test`, per file \
         (generated by `SLUICE_QTT_UPDATE=1 cargo test --test qtt`).\n\n**{} of {total} cases pass.**\n\n| file | passed | cases |\n|---|---:|---:|\n",
        summary.passed,
        label = corpus.label,
        folder = corpus.folder,
    );
    for (file, (p, n)) in per_file {
        let _ = writeln!(section, "| {file} | {p} | {n} |");
    }
    section.push_str(&end);

    let path = root().join("docs/conformance.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let sections: Vec<String> = [&QTT, &RQTT]
        .iter()
        .map(|c| {
            if c.label == corpus.label {
                return section.clone();
            }
            let (b, e) = section_markers(c);
            match (existing.find(&b), existing.find(&e)) {
                (Some(s), Some(t)) if s < t => existing[s..t + e.len()].to_string(),
                _ => String::new(),
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    let text = format!("{DOC_TITLE}\n{}", sections.join("\n"));
    std::fs::write(path, text).expect("write docs/conformance.md");
    if corpus.label == QTT.label {
        write_readme_areas(summary);
    }
}

/// The README's per-area summary of QTT results: areas group the corpus files by topic
/// (a reporting convenience only; nothing in the engine depends on it).
fn area_of(file: &str) -> &'static str {
    let f = file.trim_end_matches(".json");
    let has = |words: &[&str]| words.iter().any(|w| f.contains(w));
    if has(&["join"]) {
        "joins"
    } else if has(&[
        "window",
        "hopping",
        "tumbling",
        "session",
        "emit-final",
        "suppress",
    ]) {
        "windows"
    } else if has(&[
        "udaf",
        "count",
        "sum",
        "collect",
        "topk",
        "histogram",
        "attr",
        "average",
        "latest",
        "earliest",
        "stddev",
        "correlation",
        "min-max",
        "max-group",
        "group-by",
    ]) {
        "aggregation"
    } else if has(&[
        "json",
        "delimited",
        "kafka",
        "format",
        "serde",
        "none",
        "key-schemas",
        "elements",
        "bytes",
        "decimal",
        "identifiers",
        "literals",
    ]) {
        "types and formats"
    } else if has(&[
        "partition",
        "project-filter",
        "select",
        "insert",
        "source",
        "sink",
        "drop",
        "headers",
        "timestamp",
        "rowtime",
        "offset",
        "create-type",
        "asserts",
        "explode",
        "cube",
        "table-functions",
    ]) {
        "queries and DDL"
    } else {
        "functions and expressions"
    }
}

fn write_readme_areas(summary: &sluice_testrunner::Summary) {
    let mut areas: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in &summary.outcomes {
        let e = areas.entry(area_of(&o.file)).or_default();
        e.1 += 1;
        if o.status == sluice_testrunner::Status::Passed {
            e.0 += 1;
        }
    }
    let mut table =
        String::from("<!-- qtt-areas:start -->\n| area | passed | cases |\n|---|---:|---:|\n");
    for (area, (p, n)) in &areas {
        let _ = writeln!(table, "| {area} | {p} | {n} |");
    }
    table.push_str("<!-- qtt-areas:end -->");
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap_or_default();
    if let (Some(a), Some(b)) = (
        readme.find("<!-- qtt-areas:start -->"),
        readme.find("<!-- qtt-areas:end -->"),
    ) {
        let updated = format!(
            "{}{}{}",
            &readme[..a],
            table,
            &readme[b + "<!-- qtt-areas:end -->".len()..]
        );
        std::fs::write(path, updated).expect("write README.md");
    }
}
