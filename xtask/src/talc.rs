//! `cargo xtask bench talc [--runs N] [--upstream TALC_REPO]`: the kernel
//! heap judged by talc's own benchmark method (random actions with and
//! without reallocation at max sizes 200 to 30000, heap efficiency), next to
//! talc 5.0.4 and the peers talc's harness compares.
//!
//! Where the harness comes from, at run time (nothing of talc's is kept in
//! this repository):
//!
//! - By default: `crates/bench/talc-harness`, our re-implementation of the
//!   method of talc 5.0.4's `benches/` programs (documented in its
//!   `src/main.rs`, file by file). talc's benchmark programs live only in
//!   talc's git repository, not in the published crate, and the package
//!   registry is the only source the project's machines and CI can reach;
//!   cargo fetches talc 5.0.4 and the peers from it at the versions talc's
//!   harness locks.
//! - With `--upstream TALC_REPO` (a git URL or a local clone of talc's
//!   repository): talc's own programs. The repository is cloned into
//!   `target/talc-harness/upstream`, checked out at the 5.0.4 commit,
//!   `crates/bench/talc-harness/add-myos.patch` is applied (one more arena
//!   allocator, "MyOS", added as talc adds its own), and `random_actions`
//!   and `heap_efficiency` are built with nightly (they use a nightly
//!   feature) and run.
//!
//! Both write the same CSV files; the medians over `--runs N` whole runs
//! (default 1) are printed as one markdown table, followed (with more than
//! one run) by each run's own `talc ÷ ours` ratios. Raw CSVs stay in
//! `target/talc-harness/results/run-K/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util;

/// talc's 5.0.4 release commit ("v5.0.4: change Tag to usize ...").
const TALC_COMMIT: &str = "ad7bae44cec09e810d531b558499bef47ca4d17b";
/// Names of the rows the ratios compare.
const TALC: &str = "Talc";
const OURS: &str = "MyOS";

const USAGE: &str = "usage: cargo xtask bench talc [--runs N] [--upstream TALC_REPO]

  --runs N                repeat the whole measurement N times (default 1) and
                          report the median of every figure
  --upstream TALC_REPO    run talc's own benchmark programs (at talc 5.0.4) from
                          this git URL or local clone, with add-myos.patch
                          applied (needs nightly), instead of our
                          re-implementation of their method";

/// Entry point of `cargo xtask bench talc`.
pub fn bench_talc(args: &[String]) -> Result<(), String> {
    let mut runs = 1usize;
    let mut upstream = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or(format!("--runs needs a positive number\n{USAGE}"))?;
            }
            "--upstream" => {
                upstream = Some(
                    it.next()
                        .ok_or(format!("--upstream needs a source\n{USAGE}"))?,
                );
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }

    let harness = match upstream {
        Some(src) => Harness::upstream(src)?,
        None => Harness::ours()?,
    };
    let mut results = Vec::new();
    for k in 1..=runs {
        eprintln!("talc harness: run {k} of {runs} ({})", harness.describe());
        let dir = util::target_dir().join(format!("talc-harness/results/run-{k}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        results.push(harness.run(&dir)?);
    }
    eprintln!(
        "talc harness: {}, median of {runs} run(s); scores are successful \
         actions per 200 ms (mean of 7 trials), higher is better",
        harness.describe()
    );
    print!("{}", table(&results)?);
    Ok(())
}

/// The benchmark programs, built.
enum Harness {
    /// Our re-implementation: one binary, `talc-harness`.
    Ours { bin: PathBuf },
    /// talc's programs: `random_actions` and `heap_efficiency` in `bins`,
    /// writing into `checkout/results/`.
    Upstream { checkout: PathBuf, bins: PathBuf },
}

impl Harness {
    fn ours() -> Result<Self, String> {
        let build = util::target_dir().join("talc-harness/build");
        let manifest = util::root().join("crates/bench/talc-harness/Cargo.toml");
        // Not `--locked`: the peers are pinned exactly in its Cargo.toml and
        // their dependencies by its Cargo.lock; a dependency added to
        // myos-mm only adds an entry.
        util::run(
            Command::new(util::cargo())
                .args(["build", "--release", "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&build),
        )?;
        Ok(Harness::Ours {
            bin: build.join("release/talc-harness"),
        })
    }

    fn upstream(src: &str) -> Result<Self, String> {
        if !util::nightly_has(None) {
            return Err(
                "talc's benchmark programs need nightly: rustup toolchain install nightly".into(),
            );
        }
        let base = util::target_dir().join("talc-harness");
        let checkout = base.join("upstream");
        let git = |args: &[&str]| {
            let mut c = Command::new("git");
            c.arg("-C").arg(&checkout).args(args);
            c
        };
        if !checkout.join(".git").exists() {
            std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
            util::run(
                Command::new("git")
                    .args(["clone", "--quiet", "--no-checkout", src])
                    .arg(&checkout),
            )?;
        }
        let commit = format!("{TALC_COMMIT}^{{commit}}");
        let have = git(&["cat-file", "-e", &commit]).status();
        if !have.is_ok_and(|s| s.success()) {
            util::run(&mut git(&["fetch", "--quiet", src]))?;
        }
        // A clean tree at the pinned commit, then our allocator added.
        util::run(&mut git(&["checkout", "--quiet", "--force", TALC_COMMIT]))?;
        util::run(&mut git(&["clean", "--quiet", "-fdx"]))?;
        let patch = util::root().join("crates/bench/talc-harness/add-myos.patch");
        util::run(git(&["apply"]).arg(&patch))?;
        let toml = checkout.join("benches/Cargo.toml");
        let text = read(&toml)?;
        let core = util::root().join("crates/core");
        let core = core.to_str().ok_or("non-UTF-8 repository path")?;
        let text = text.replace("@MYOS_MM_PATH@", &core.replace('\\', "/"));
        std::fs::write(&toml, text).map_err(|e| format!("{}: {e}", toml.display()))?;

        let build = base.join("upstream-build");
        util::run(
            Command::new("cargo")
                .current_dir(&checkout)
                .args(["+nightly", "build", "--release", "-p", "benches"])
                .args(["--bin", "random_actions", "--bin", "heap_efficiency"])
                .arg("--target-dir")
                .arg(&build),
        )?;
        Ok(Harness::Upstream {
            checkout,
            bins: build.join("release"),
        })
    }

    fn describe(&self) -> String {
        match self {
            Harness::Ours { .. } => {
                "talc 5.0.4's method re-implemented (crates/bench/talc-harness)".into()
            }
            Harness::Upstream { .. } => {
                format!("talc's own programs at {}", &TALC_COMMIT[..12])
            }
        }
    }

    /// One whole run: both random-actions variants and heap efficiency; the
    /// CSVs are copied into `dir`.
    fn run(&self, dir: &Path) -> Result<Run, String> {
        let files = [
            "random-actions.csv",
            "random-actions-no-realloc.csv",
            "heap-efficiency.csv",
        ];
        match self {
            Harness::Ours { bin } => {
                util::run(
                    Command::new(bin)
                        .arg("random-actions")
                        .arg(dir.join(files[0])),
                )?;
                util::run(
                    Command::new(bin)
                        .args(["random-actions", "--no-realloc"])
                        .arg(dir.join(files[1])),
                )?;
                util::run(
                    Command::new(bin)
                        .arg("heap-efficiency")
                        .arg(dir.join(files[2])),
                )?;
            }
            Harness::Upstream { checkout, bins } => {
                // The programs write `$CARGO_MANIFEST_DIR/../results/NAME.csv`.
                let results = checkout.join("results");
                let manifest_dir = checkout.join("benches");
                for f in files {
                    let _ = std::fs::remove_file(results.join(f));
                }
                let ra = bins.join("random_actions");
                util::run(
                    Command::new(&ra)
                        .env("CARGO_MANIFEST_DIR", &manifest_dir)
                        .args(["--name", "random-actions"]),
                )?;
                util::run(
                    Command::new(&ra)
                        .env("CARGO_MANIFEST_DIR", &manifest_dir)
                        .args(["--name", "random-actions-no-realloc", "--no-realloc"]),
                )?;
                util::run(
                    Command::new(bins.join("heap_efficiency"))
                        .env("CARGO_MANIFEST_DIR", &manifest_dir),
                )?;
                for f in files {
                    std::fs::copy(results.join(f), dir.join(f))
                        .map_err(|e| format!("{}: {e}", results.join(f).display()))?;
                }
            }
        }
        Ok(Run {
            realloc: parse_scores(&read(&dir.join(files[0]))?)?,
            no_realloc: parse_scores(&read(&dir.join(files[1]))?)?,
            efficiency: parse_efficiency(&read(&dir.join(files[2]))?)?,
        })
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// One random-actions CSV: the max sizes, and each allocator's scores.
#[derive(Debug, PartialEq)]
struct Scores {
    sizes: Vec<usize>,
    rows: Vec<(String, Vec<f64>)>,
}

/// One whole run.
struct Run {
    realloc: Scores,
    no_realloc: Scores,
    efficiency: Vec<(String, f64)>,
}

/// `,200,1000,...` then `Name,score,score,...` per allocator.
fn parse_scores(csv: &str) -> Result<Scores, String> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let head = lines.next().ok_or("empty random-actions CSV")?;
    let sizes = head
        .split(',')
        .skip(1)
        .map(|s| s.trim().parse().map_err(|_| format!("bad max size `{s}`")))
        .collect::<Result<Vec<usize>, _>>()?;
    let mut rows = Vec::new();
    for line in lines {
        let mut cells = line.split(',');
        let name = cells.next().unwrap_or_default().trim().to_string();
        let values = cells
            .map(|s| s.trim().parse().map_err(|_| format!("bad score `{s}`")))
            .collect::<Result<Vec<f64>, _>>()?;
        if values.len() != sizes.len() {
            return Err(format!(
                "row `{name}`: {} scores for {} sizes",
                values.len(),
                sizes.len()
            ));
        }
        rows.push((name, values));
    }
    Ok(Scores { sizes, rows })
}

/// A row of names, then a row of percentages.
fn parse_efficiency(csv: &str) -> Result<Vec<(String, f64)>, String> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Err("heap-efficiency CSV: expected two rows".into());
    };
    let names = names.split(',').filter(|s| !s.is_empty());
    let values = values.split(',').filter(|s| !s.is_empty());
    names
        .zip(values)
        .map(|(n, v)| {
            let v = v
                .trim()
                .parse()
                .map_err(|_| format!("bad efficiency `{v}`"))?;
            Ok((n.trim().to_string(), v))
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The median over runs of every (allocator, case) score, allocators in
/// the order of the first run.
fn median_scores(runs: &[&Scores]) -> Result<Scores, String> {
    let first = runs.first().ok_or("no runs")?;
    let mut rows = Vec::new();
    for (name, _) in &first.rows {
        let mut cells = Vec::new();
        for i in 0..first.sizes.len() {
            let mut v = Vec::new();
            for r in runs {
                let (_, row) = r
                    .rows
                    .iter()
                    .find(|(n, _)| n == name)
                    .ok_or(format!("`{name}` missing from a run"))?;
                v.push(*row.get(i).ok_or("sizes differ between runs")?);
            }
            cells.push(median(v));
        }
        rows.push((name.clone(), cells));
    }
    Ok(Scores {
        sizes: first.sizes.clone(),
        rows,
    })
}

/// The markdown table: one row per allocator (scores, then heap
/// efficiency), then `talc ÷ ours` per case with their geomean.
fn table(runs: &[Run]) -> Result<String, String> {
    let ra = median_scores(&runs.iter().map(|r| &r.realloc).collect::<Vec<_>>())?;
    let nr = median_scores(&runs.iter().map(|r| &r.no_realloc).collect::<Vec<_>>())?;
    let mut eff: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for (n, v) in &r.efficiency {
            eff.entry(n.as_str()).or_default().push(*v);
        }
    }
    let eff: BTreeMap<&str, f64> = eff.into_iter().map(|(n, v)| (n, median(v))).collect();

    let mut out = String::from("| allocator |");
    for s in &ra.sizes {
        out += &format!(" realloc {s} |");
    }
    for s in &nr.sizes {
        out += &format!(" no realloc {s} |");
    }
    out += " geomean | heap efficiency |\n|---|";
    out += &"---:|".repeat(ra.sizes.len() + nr.sizes.len() + 2);
    out.push('\n');
    for (name, a) in &ra.rows {
        let b = &nr
            .rows
            .iter()
            .find(|(n, _)| n == name)
            .ok_or("rows differ")?
            .1;
        out += &format!("| {name} |");
        for x in a.iter().chain(b) {
            out += &format!(" {x:.0} |");
        }
        match eff.get(name.as_str()) {
            Some(e) => out += &format!(" | {e:.2}% |\n"),
            None => out += " | |\n",
        }
    }
    let (ratios, geomean) = talc_over_ours(&ra, &nr)?;
    out += "| **talc ÷ ours** |";
    for r in &ratios {
        out += &cell(*r);
    }
    out += &format!(" **{geomean:.2}** |");
    match (eff.get(TALC), eff.get(OURS)) {
        (Some(t), Some(o)) => out += &format!(" {:.3} |\n", t / o),
        _ => out += " |\n",
    }
    if runs.len() > 1 {
        // Each run's own ratios: how far one run moves from the medians.
        out += "\n| run |";
        for s in ra
            .sizes
            .iter()
            .map(|s| format!("realloc {s}"))
            .chain(nr.sizes.iter().map(|s| format!("no realloc {s}")))
        {
            out += &format!(" {s} |");
        }
        out += " geomean |\n|---|";
        out += &"---:|".repeat(ra.sizes.len() + nr.sizes.len() + 1);
        out.push('\n');
        for (k, r) in runs.iter().enumerate() {
            let (ratios, geomean) = talc_over_ours(&r.realloc, &r.no_realloc)?;
            out += &format!("| {} |", k + 1);
            for x in &ratios {
                out += &cell(*x);
            }
            out += &format!(" {geomean:.2} |\n");
        }
    }
    Ok(out)
}

/// A ratio's table cell: two decimals, or a dash for a case not run.
fn cell(r: f64) -> String {
    if r.is_nan() {
        " – |".into()
    } else {
        format!(" {r:.2} |")
    }
}

/// talc's score over ours for every case (with, then without
/// reallocation) and their geomean; a case not run (a score of 0, as the
/// harness's `TALC_HARNESS_*` filters leave it) is NaN and left out of the
/// geomean.
fn talc_over_ours(ra: &Scores, nr: &Scores) -> Result<(Vec<f64>, f64), String> {
    let row = |s: &Scores, n: &str| {
        s.rows
            .iter()
            .find(|(m, _)| m == n)
            .map(|(_, v)| v.clone())
            .ok_or(format!("no `{n}` row"))
    };
    let talc = [row(ra, TALC)?, row(nr, TALC)?].concat();
    let ours = [row(ra, OURS)?, row(nr, OURS)?].concat();
    let ratios: Vec<f64> = talc
        .iter()
        .zip(&ours)
        .map(|(&t, &o)| if t > 0.0 && o > 0.0 { t / o } else { f64::NAN })
        .collect();
    let run: Vec<f64> = ratios.iter().copied().filter(|r| !r.is_nan()).collect();
    let geomean = (run.iter().map(|r| r.ln()).sum::<f64>() / run.len() as f64).exp();
    Ok((ratios, geomean))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_talc_csvs() {
        let s = parse_scores(",200,1000\nTalc,10,20\nMyOS,20,10").unwrap();
        assert_eq!(s.sizes, [200, 1000]);
        assert_eq!(s.rows[1], ("MyOS".to_string(), vec![20.0, 10.0]));
        assert!(parse_scores(",200\nTalc,1,2").is_err());
        let e = parse_efficiency("Talc,MyOS\n95.5,97.25").unwrap();
        assert_eq!(e, [("Talc".to_string(), 95.5), ("MyOS".to_string(), 97.25)]);
    }

    #[test]
    fn table_has_medians_and_ratios() {
        let run = |t: f64| Run {
            realloc: parse_scores(&format!(",200\nTalc,{t}\nMyOS,100")).unwrap(),
            no_realloc: parse_scores(&format!(",200\nTalc,{t}\nMyOS,100")).unwrap(),
            efficiency: parse_efficiency("Talc,MyOS\n90,90").unwrap(),
        };
        let t = table(&[run(50.0), run(400.0), run(80.0)]).unwrap();
        assert!(t.contains("| Talc | 80 | 80 |"), "{t}");
        assert!(
            t.contains("| **talc ÷ ours** | 0.80 | 0.80 | **0.80** | 1.000 |"),
            "{t}"
        );
        // Each run's own ratios, in run order.
        assert!(
            t.contains("| run | realloc 200 | no realloc 200 | geomean |"),
            "{t}"
        );
        assert!(t.contains("| 1 | 0.50 | 0.50 | 0.50 |"), "{t}");
        assert!(t.contains("| 2 | 4.00 | 4.00 | 4.00 |"), "{t}");
        // A case not run (filtered out: scores of 0) is a dash, and the
        // geomean is over the cases run.
        let part = |t: f64| Run {
            realloc: parse_scores(&format!(",200,1000\nTalc,{t},0\nMyOS,100,0")).unwrap(),
            no_realloc: parse_scores(&format!(",200,1000\nTalc,{t},0\nMyOS,100,0")).unwrap(),
            efficiency: parse_efficiency("Talc,MyOS\n90,90").unwrap(),
        };
        let t = table(&[part(50.0)]).unwrap();
        assert!(
            t.contains("| **talc ÷ ours** | 0.50 | – | 0.50 | – | **0.50** |"),
            "{t}"
        );
        // One run: no per-run table.
        assert!(!table(&[run(50.0)]).unwrap().contains("| run |"));
    }
}
