//! The report: the tables printed and written into the heap section of
//! `BENCHMARKS.md`, and the chart `docs/bench-heap.svg`.

use std::fmt::Write as _;
use std::time::Instant;

use crate::notes::NOTES;
use crate::params::{EFF_ROUNDS, TIMED_REPEATS};
use crate::replay::{geomean, Row};
use crate::traces::Trace;

/// Prints the tables and goals of the run that started at `t0`, then
/// writes the chart and the `BENCHMARKS.md` section.
#[allow(clippy::too_many_arguments)]
pub(crate) fn print_and_write(
    traces: &[Trace],
    names: &[&str],
    rows: &[Row],
    floor: &[f64],
    floor_lat: &[(u64, u64)],
    runs: usize,
    locked: bool,
    t0: Instant,
) {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| allocator | {} | geomean ns/op | efficiency % |",
        names.join(" | ")
    );
    let _ = writeln!(md, "|---|{}---:|---:|", "---:|".repeat(names.len()));
    for r in rows {
        let cells: Vec<String> = r.ns.iter().map(|v| format!("{v:.1}")).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} |",
            r.name,
            cells.join(" | "),
            geomean(&r.ns),
            r.eff
        );
    }
    let mut lat = String::new();
    let _ = writeln!(
        lat,
        "| allocator | {} |",
        names
            .iter()
            .map(|n| format!("{n} p50 / p99.9"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(lat, "|---|{}", "---:|".repeat(names.len()));
    let floor_cells: Vec<String> = floor_lat
        .iter()
        .map(|(a, b)| format!("{a} / {b}"))
        .collect();
    let _ = writeln!(lat, "| (harness floor) | {} |", floor_cells.join(" | "));
    for r in rows {
        let cells: Vec<String> = r
            .p50
            .iter()
            .zip(&r.p999)
            .map(|(a, b)| format!("{a} / {b}"))
            .collect();
        let _ = writeln!(lat, "| {} | {} |", r.name, cells.join(" | "));
    }
    let ours = &rows[0];
    let mut ratios = String::new();
    for r in &rows[1..] {
        let per: Vec<String> = ours
            .ns
            .iter()
            .zip(&r.ns)
            .map(|(a, b)| format!("{:.2}", a / b))
            .collect();
        let _ = writeln!(
            ratios,
            "| {} | {} | {:.2} | {} | {:+.1} |",
            r.name,
            per.join(" | "),
            geomean(&ours.ns) / geomean(&r.ns),
            ours.p999
                .iter()
                .zip(&r.p999)
                .filter(|(a, b)| a <= b)
                .count(),
            ours.eff - r.eff
        );
    }
    let talc = &rows[1];
    let yes = |b: bool| if b { "met" } else { "**missed**" };
    let g_talc = geomean(&ours.ns) / geomean(&talc.ns);
    let slower: Vec<String> = rows[1..]
        .iter()
        .filter(|r| geomean(&r.ns) <= geomean(&ours.ns))
        .map(|r| {
            format!(
                "{} ({:.1} vs our {:.1})",
                r.name,
                geomean(&r.ns),
                geomean(&ours.ns)
            )
        })
        .collect();
    let p999_ok = ours
        .p999
        .iter()
        .zip(&talc.p999)
        .filter(|(a, b)| a <= b)
        .count();
    let goals = format!(
        "- geomean ns/op ≤ 0.7× talc: {} (ours/talc = {g_talc:.2})\n\
- faster than every peer (geomean): {}{}\n\
- p99.9 ≤ talc's: {} ({p999_ok} of {} workloads)\n\
- efficiency ≥ talc's: {} ({:.1}% vs {:.1}%)\n",
        yes(g_talc <= 0.7),
        yes(slower.is_empty()),
        if slower.is_empty() {
            String::new()
        } else {
            format!(": not faster than {}", slower.join(", "))
        },
        yes(p999_ok == names.len()),
        names.len(),
        yes(ours.eff >= talc.eff),
        ours.eff,
        talc.eff,
    );
    let ratio_head = format!(
        "| peer | {} | geomean ratio | workloads with p99.9 ≤ peer (of {}) | efficiency Δ (points) |\n|---|{}---:|---:|---:|\n",
        names.iter().map(|n| format!("{n} ours/peer")).collect::<Vec<_>>().join(" | "),
        names.len(),
        "---:|".repeat(names.len())
    );
    println!(
        "ns/op above the harness floor (floor: {})",
        floor
            .iter()
            .zip(traces)
            .map(|(f, t)| format!("{:.1}", f / t.ops.len() as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{md}");
    println!("per-operation cycles (rdtsc, including ~the floor)\n{lat}");
    println!("ours / peer\n{ratio_head}{ratios}");
    println!("goals\n{goals}");
    let elapsed = t0.elapsed().as_secs_f64();
    eprintln!("done in {elapsed:.1} s");
    if locked {
        println!("(--locked: every allocator and the floor behind a spin lock, called through `&dyn GlobalAlloc`; files not written)");
        return;
    }

    // ----- files -----
    let root = myos_bench::repo_root();
    let svg_path = root.join("docs/bench-heap.svg");
    let _ = std::fs::create_dir_all(root.join("docs"));
    if let Err(e) = std::fs::write(&svg_path, svg(rows, names)) {
        eprintln!("cannot write {}: {e}", svg_path.display());
    }
    let floor_ns: Vec<String> = floor
        .iter()
        .zip(traces)
        .map(|(f, t)| format!("{:.1}", f / t.ops.len() as f64))
        .collect();
    let section = format!(
        "{BEGIN}\n## Kernel heap — `cargo xtask bench heap`\n\n\
Source: `crates/bench/src/bin/bench-heap/`. Machine: {machine}; release build; {runs_text} \
({elapsed:.0} s). Every allocator replays the same pre-generated traces on its own page-aligned \
arena of the same size (32 MiB; `growth` starts at 64 KiB and grows to 16 MiB; `efficiency` uses \
4 MiB), each directly (no lock), ours with its integrity checks on. ns/op is the best of \
{TIMED_REPEATS} runs of a trace minus the harness-only floor ({floor_ns} ns/op). Workloads: \
talc's random-actions protocol with reallocation (`ra-<max size>`), a kernel mix (70% 16–256 B, \
25% ≤ 4 KiB, 5% ≤ 64 KiB, 2% page-aligned, ~2000 live), `growth` (allocate to 3/4 of 16 MiB \
from a 64 KiB heap, then free all; ours grows by its amortised step, the peers are extended by the \
harness on failure by the same step) and talc's \
heap-efficiency protocol (live bytes / arena at the first failure, mean of {EFF_ROUNDS} rounds).\n\n\
### ns/op (lower is better)\n\n{md}\n\
![ns/op per workload per allocator](docs/bench-heap.svg)\n\n\
### Per-operation latency, cycles (p50 / p99.9)\n\n{lat}\n\
### Ours relative to each peer\n\n{ratio_head}{ratios}\n### Targets\n\n{goals}\n\
### Notes (hand-written, in `bench-heap/notes.rs`)\n\n{NOTES}\n{END}\n",
        BEGIN = "<!-- heap:begin -->",
        END = "<!-- heap:end -->",
        machine = myos_bench::machine(),
        runs_text = if runs == 1 {
            "one run".to_owned()
        } else {
            format!("every figure the median of {runs} runs (`--runs {runs}`)")
        },
        floor_ns = floor_ns.join(" / "),
    );
    myos_bench::write_benchmarks_section("heap", &section);
}

fn svg(rows: &[Row], workloads: &[&str]) -> String {
    let colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b"];
    let (w, h, left, top, bottom) = (900.0, 420.0, 70.0, 40.0, 70.0);
    let plot_h = h - top - bottom;
    let max = rows
        .iter()
        .flat_map(|r| r.ns.iter())
        .fold(1.0f64, |a, &b| a.max(b));
    let (lo, hi) = (0.0f64, max.log10().ceil().max(1.0));
    let y = |v: f64| top + plot_h * (1.0 - (v.max(1.0).log10() - lo) / (hi - lo));
    let group = (w - left - 20.0) / workloads.len() as f64;
    let bar = group * 0.8 / rows.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="15">Heap: ns/op above the harness floor (log scale, lower is better)</text>"#,
        w / 2.0
    );
    for e in 0..=(hi as i32) {
        let v = 10f64.powi(e);
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v}</text>"##,
            w - 20.0,
            left - 6.0,
            yy + 4.0
        );
    }
    for (wi, wl) in workloads.iter().enumerate() {
        let gx = left + group * wi as f64 + group * 0.1;
        for (ri, r) in rows.iter().enumerate() {
            let v = r.ns[wi];
            let (x, yy) = (gx + bar * ri as f64, y(v));
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{yy:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {v:.1} ns/op</title></rect>"#,
                bar * 0.95,
                top + plot_h - yy,
                colors[ri % colors.len()],
                r.name
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{wl}</text>"#,
            gx + group * 0.4,
            top + plot_h + 18.0
        );
    }
    for (ri, r) in rows.iter().enumerate() {
        let x = left + 10.0 + 165.0 * ri as f64;
        let yy = h - 22.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{yy}">{}</text>"#,
            yy - 10.0,
            colors[ri % colors.len()],
            x + 16.0,
            r.name
        );
    }
    s.push_str("</svg>\n");
    s
}
