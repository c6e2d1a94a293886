//! `cargo xtask bench heap`: the kernel heap (`myos_mm::heap::Heap`, integrity
//! checks on) against talc 5, rlsf 0.2, buddy_system_allocator 0.13 and
//! linked_list_allocator 0.10, in one run.
//!
//! Every allocator gets its own page-aligned arena of the same size and
//! replays the same pre-generated traces (no RNG in the timed loops). A
//! harness-only baseline (an "allocator" that hands out fake pointers) gives
//! the floor that is subtracted from ns/op. Per-operation latencies (p50,
//! p99.9) are measured in a separate pass with `rdtsc` around each operation.
//!
//! Workloads:
//! - `ra-200`, `ra-1000`, `ra-3000`, `ra-10000`, `ra-30000`: talc's
//!   random-actions protocol at its five max sizes (1/7
//!   realloc to `1..3*max`, 3/7 free when at least 300 are live, else alloc
//!   of `generate_size(max)` with `generate_align()`);
//! - `kernel`: 70% 16–256 B, 25% 257 B–4 KiB, 5% 4–64 KiB, 2% of
//!   allocations page-aligned, balanced around 2000 live blocks;
//! - `growth`: the heap starts at 64 KiB and must grow (through its backend
//!   for ours, `extend`/`add_to_heap`/`append` for the peers) up to 16 MiB,
//!   then everything is freed;
//! - `efficiency`: talc's heap-efficiency protocol: live bytes / arena at the
//!   first failed allocation or reallocation, averaged over rounds.
//!
//! Writes the heap section of `BENCHMARKS.md` and `docs/bench-heap.svg`.
//! `--runs N` repeats the whole measurement N times and reports the median
//! of every figure (for a busy machine); the default is one run.
//! `--efficiency` prints only the heap efficiency of ours and talc.
//! `--locked` measures every allocator (and the floor) as talc's harness
//! uses it, behind a spin lock and called through `&dyn GlobalAlloc`
//! ([`contenders::Locked`]), and only prints the tables (the files keep the
//! direct calls' figures).
//!
//! | module | what it owns |
//! |---|---|
//! | `params.rs` | page and arena sizes, efficiency rounds, timed repeats |
//! | `contenders.rs` | the [`Contender`] trait: ours, the peers, the harness floor |
//! | `traces.rs` | the workloads, generated before any timing |
//! | `replay.rs` | replaying a trace: timed, per-operation latencies, efficiency |
//! | `report.rs` | the printed tables, the `BENCHMARKS.md` section, the chart |
//! | `notes.rs` | the hand-written notes of that section |

mod contenders;
mod notes;
mod params;
mod replay;
mod report;
mod traces;

use std::time::Instant;

use contenders::{Buddy, Contender, Floor, LinkedList, Locked, Ours, Rlsf, Talc};
use params::{ARENA, EFF_ROUNDS};
use replay::{efficiency, latencies, measure, median, replay_once, timed, Arena, Row};
use traces::{efficiency_round, growth, kernel_mix, random_actions, Trace};

fn main() {
    let t0 = Instant::now();
    eprintln!("generating traces...");
    let traces = vec![
        random_actions("ra-200", 200, 200_000, 1),
        random_actions("ra-1000", 1000, 200_000, 2),
        random_actions("ra-3000", 3000, 200_000, 6),
        random_actions("ra-10000", 10_000, 100_000, 7),
        random_actions("ra-30000", 30_000, 100_000, 3),
        kernel_mix(200_000, 4),
        growth(5),
    ];
    let eff: Vec<Trace> = (0..EFF_ROUNDS as u64)
        .map(|i| efficiency_round(100 + i))
        .collect();
    let names: Vec<&str> = traces.iter().map(|t| t.name).collect();
    let arena = Arena::new(ARENA);
    if let Some(i) = std::env::args().position(|a| a == "--replay") {
        // `--replay TRACE ALLOCATOR [--time]`: one replay, for instruction
        // counts; with `--time`, then the best of 3 timed replays (ns/op,
        // harness floor included).
        let args: Vec<String> = std::env::args().skip(i + 1).collect();
        let (Some(t), Some(a)) = (args.first(), args.get(1)) else {
            panic!("usage: --replay TRACE floor|ours|talc|rlsf|buddy|list [--time]");
        };
        let t = traces.iter().find(|x| x.name == t.as_str()).expect("trace");
        let time = args.iter().any(|a| a == "--time");
        fn run<C: Contender>(arena: &Arena, t: &Trace, time: bool) {
            replay_once::<C>(arena, t);
            if time {
                println!(
                    "{} {}: {:.1} ns/op",
                    t.name,
                    C::NAME,
                    timed::<C>(arena, t) / t.ops.len() as f64
                );
            }
        }
        match a.as_str() {
            "floor" => run::<Floor>(&arena, t, time),
            "ours" => run::<Ours>(&arena, t, time),
            "talc" => run::<Talc>(&arena, t, time),
            "rlsf" => run::<Rlsf>(&arena, t, time),
            "buddy" => run::<Buddy>(&arena, t, time),
            "list" => run::<LinkedList>(&arena, t, time),
            _ => panic!("unknown allocator {a}"),
        }
        eprintln!("{} ops", t.ops.len());
        return;
    }
    if std::env::args().any(|a| a == "--efficiency") {
        // `--efficiency`: only the heap-efficiency figure of ours and talc
        // (deterministic: no timing).
        println!("myos-mm {:.2}%", efficiency::<Ours>(&arena, &eff));
        println!("talc 5 {:.2}%", efficiency::<Talc>(&arena, &eff));
        return;
    }
    let runs = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let locked = std::env::args().any(|a| a == "--locked");

    let mut all_floor = Vec::new();
    let mut all_floor_lat = Vec::new();
    let mut all_rows = Vec::new();
    for run in 1..=runs {
        eprintln!("run {run} of {runs}: measuring the harness floor...");
        let (floor, floor_lat, rows) = if locked {
            measure_all::<
                Locked<Floor>,
                Locked<Ours>,
                Locked<Talc>,
                Locked<Rlsf>,
                Locked<Buddy>,
                Locked<LinkedList>,
            >(&arena, &traces, &eff)
        } else {
            measure_all::<Floor, Ours, Talc, Rlsf, Buddy, LinkedList>(&arena, &traces, &eff)
        };
        all_rows.push(rows);
        all_floor.push(floor);
        all_floor_lat.push(floor_lat);
    }
    // The median of every figure over the runs.
    let floor: Vec<f64> = (0..traces.len())
        .map(|i| median(all_floor.iter().map(|f| f[i]).collect()))
        .collect();
    let floor_lat: Vec<(u64, u64)> = (0..traces.len())
        .map(|i| {
            (
                median(all_floor_lat.iter().map(|f| f[i].0).collect()),
                median(all_floor_lat.iter().map(|f| f[i].1).collect()),
            )
        })
        .collect();
    let rows: Vec<Row> = (0..all_rows[0].len())
        .map(|a| {
            let of = |f: &dyn Fn(&Row) -> f64| median(all_rows.iter().map(|r| f(&r[a])).collect());
            let of_u =
                |f: &dyn Fn(&Row) -> u64| median(all_rows.iter().map(|r| f(&r[a])).collect());
            Row {
                name: all_rows[0][a].name,
                ns: (0..traces.len()).map(|i| of(&|r| r.ns[i])).collect(),
                p50: (0..traces.len()).map(|i| of_u(&|r| r.p50[i])).collect(),
                p999: (0..traces.len()).map(|i| of_u(&|r| r.p999[i])).collect(),
                eff: of(&|r| r.eff),
            }
        })
        .collect();
    report::print_and_write(&traces, &names, &rows, &floor, &floor_lat, runs, locked, t0);
}

/// The floor, its latencies and every allocator's row, for one run.
#[allow(clippy::type_complexity)]
fn measure_all<F, A, B, C, D, E>(
    arena: &Arena,
    traces: &[Trace],
    eff: &[Trace],
) -> (Vec<f64>, Vec<(u64, u64)>, Vec<Row>)
where
    F: Contender,
    A: Contender,
    B: Contender,
    C: Contender,
    D: Contender,
    E: Contender,
{
    let floor: Vec<f64> = traces.iter().map(|t| timed::<F>(arena, t)).collect();
    let floor_lat: Vec<(u64, u64)> = traces.iter().map(|t| latencies::<F>(arena, t)).collect();
    eprintln!("measuring...");
    let rows = vec![
        measure::<A>(arena, traces, eff, &floor),
        measure::<B>(arena, traces, eff, &floor),
        measure::<C>(arena, traces, eff, &floor),
        measure::<D>(arena, traces, eff, &floor),
        measure::<E>(arena, traces, eff, &floor),
    ];
    (floor, floor_lat, rows)
}
