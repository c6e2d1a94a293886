//! The in-QEMU half of `cargo xtask test`: the kernel's own test suite at
//! several RAM sizes, the demo, the deliberate-crash boots, and C programs
//! (the spec's examples and the C API tests) linked into the kernel.
//!
//! Boots run on `-cpu max` (SMEP and SMAP on) unless a case says otherwise;
//! the test suite at 32 MiB and the demo at 32 MiB also run on `qemu32`,
//! which has neither, so the kernel's path without them stays tested.
//! Every boot runs classic paging except the PAE cases (`paging=pae`,
//! [`pae_cases`]), which add to them.

use std::path::PathBuf;
use std::time::Duration;

use crate::kernel::{build_kernel, c_program, c_program_on};
use crate::qemu::{boot, symbolize, Boot, Outcome, DEFAULT_CPU, PLAIN_CPU};
use crate::{capi, setup, util};

/// How long one test boot may take before it is killed.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// Time limit of the ring-3 stress boot: thousands of threads, forks and
/// shootdowns on four vCPUs that QEMU's TCG may run on fewer host cores.
const STRESS_TIMEOUT: Duration = Duration::from_secs(420);
/// Time limit of the boot that checks the timeout itself.
const HANG_TIMEOUT: Duration = Duration::from_secs(5);
/// RAM sizes the test suite boots with: small, ordinary, and beyond the direct map.
const TEST_MEMORY: [&str; 3] = ["32M", "128M", "3G"];

/// The spec's examples as C files (`examples/c/*.c`), which the suite runs
/// in the kernel.
fn c_examples() -> Vec<PathBuf> {
    let dir = util::root().join("examples/c");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "c"));
    files.sort();
    files
}

/// One expectation of the in-QEMU suite.
struct Case {
    /// Shown in the summary.
    name: String,
    memory: &'static str,
    cmdline: &'static str,
    /// Time limit of the boot.
    timeout: Duration,
    /// The outcome the case needs.
    expect: Outcome,
    /// Text the console must contain.
    must_print: &'static [&'static str],
    /// Boot with a multiboot module (a small file of the repository).
    with_module: bool,
    /// CPUs (`-smp`).
    smp: u8,
    /// QEMU `-cpu` model.
    cpu: &'static str,
}

/// What the kernel prints at boot on [`DEFAULT_CPU`] (`max`).
const PROTECTIONS_ON: &str = "cpu: SMEP on, SMAP on";
/// What it prints on [`PLAIN_CPU`] (`qemu32`).
const PROTECTIONS_OFF: &str = "cpu: SMEP off (not supported), SMAP off (not supported)";
/// Time limit of the SMEP/SMAP oops boots: an oops comes within seconds; a
/// fault handler retrying the access forever must not cost the full limit.
const PROTECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The in-QEMU half of `cargo xtask test`: the kernel's test suite at each
/// RAM size, the demo, and the deliberate-crash boots.
pub fn kernel_tests() -> Result<(), String> {
    setup::ensure(&[setup::QEMU])?;
    let kernel = build_kernel()?;
    let mut cases: Vec<Case> = TEST_MEMORY
        .iter()
        .map(|&memory| Case {
            name: format!("kernel test suite, {memory}, SMEP/SMAP on"),
            memory,
            cmdline: "mode=test",
            timeout: TEST_TIMEOUT,
            expect: Outcome::Success,
            must_print: &["test result: ok", PROTECTIONS_ON],
            with_module: false,
            smp: 1,
            cpu: DEFAULT_CPU,
        })
        .collect();
    cases.push(Case {
        name: "kernel test suite, 32M, qemu32 (no SMEP/SMAP)".into(),
        memory: "32M",
        cmdline: "mode=test",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Success,
        must_print: &[
            "test result: ok",
            PROTECTIONS_OFF,
            "SMEP off: I/D bit clear",
        ],
        with_module: false,
        cpu: PLAIN_CPU,
        smp: 1,
    });
    const DEMO_LINES: [&str; 4] = [
        "DEMO OK",
        "steps: 11 run, 11 as expected",
        "free frames:",
        "heap in use:",
    ];
    static DEMO_OFF: [&str; 5] = [
        DEMO_LINES[0],
        DEMO_LINES[1],
        DEMO_LINES[2],
        DEMO_LINES[3],
        PROTECTIONS_OFF,
    ];
    static DEMO_ON: [&str; 5] = [
        DEMO_LINES[0],
        DEMO_LINES[1],
        DEMO_LINES[2],
        DEMO_LINES[3],
        PROTECTIONS_ON,
    ];
    for (memory, cpu, must_print) in [("32M", PLAIN_CPU, &DEMO_OFF), ("3G", DEFAULT_CPU, &DEMO_ON)]
    {
        cases.push(Case {
            name: format!(
                "demo, {memory}, -cpu {cpu}: every step behaves, memory back to baseline"
            ),
            memory,
            cmdline: "mode=demo",
            timeout: TEST_TIMEOUT,
            expect: Outcome::Success,
            must_print,
            with_module: false,
            smp: 1,
            cpu,
        });
    }
    cases.push(Case {
        name: "demo, 5G: RAM above 4 GiB left alone (no PAE)".into(),
        memory: "5G",
        cmdline: "mode=demo",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Success,
        must_print: &["out of reach without PAE", "DEMO OK", PROTECTIONS_ON],
        with_module: false,
        smp: 1,
        cpu: DEFAULT_CPU,
    });
    cases.push(Case {
        name: "kernel test suite, 64M, with a boot module reserved".into(),
        memory: "64M",
        cmdline: "mode=test",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Success,
        must_print: &["test result: ok", "boot module"],
        with_module: true,
        smp: 1,
        cpu: DEFAULT_CPU,
    });
    cases.push(Case {
        name: "oops on a kernel-mode page fault".into(),
        memory: "32M",
        cmdline: "test=oops",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Failure,
        must_print: &[
            "KERNEL OOPS",
            "#PF page fault",
            "address 0x",
            "supervisor write, page not present",
            "eip",
        ],
        with_module: false,
        smp: 1,
        cpu: DEFAULT_CPU,
    });
    cases.push(Case {
        name: "double fault on a kernel stack overflow".into(),
        memory: "32M",
        cmdline: "test=stack-overflow",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Failure,
        must_print: &["KERNEL OOPS: #DF double fault", "kernel stack overflow"],
        with_module: false,
        smp: 1,
        cpu: DEFAULT_CPU,
    });
    cases.push(Case {
        name: "double fault on a process kernel-stack overflow (guard page)".into(),
        memory: "32M",
        cmdline: "test=kstack-overflow",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Failure,
        must_print: &["KERNEL OOPS: #DF double fault", "kernel stack overflow"],
        with_module: false,
        smp: 1,
        cpu: DEFAULT_CPU,
    });
    cases.push(Case {
        name: "oops, not a hang, on a ring-0 fetch from a user page (SMEP)".into(),
        memory: "32M",
        cmdline: "test=smep",
        timeout: PROTECTION_TIMEOUT,
        expect: Outcome::Failure,
        must_print: &[
            PROTECTIONS_ON,
            "KERNEL OOPS",
            "supervisor instruction fetch, protection violation",
            "cause   supervisor fetch from user page (SMEP)",
        ],
        with_module: false,
        cpu: DEFAULT_CPU,
        smp: 1,
    });
    cases.push(Case {
        name: "oops, not a hang, on a ring-0 read of a user page (SMAP, AC clear)".into(),
        memory: "32M",
        cmdline: "test=smap",
        timeout: PROTECTION_TIMEOUT,
        expect: Outcome::Failure,
        must_print: &[
            PROTECTIONS_ON,
            "inside a user-access window",
            "KERNEL OOPS",
            "supervisor read, protection violation",
            "cause   supervisor access to user page with SMAP on (AC clear)",
        ],
        with_module: false,
        cpu: DEFAULT_CPU,
        smp: 1,
    });
    cases.push(Case {
        name: "a hung kernel is killed and reported as a timeout".into(),
        memory: "32M",
        cmdline: "test=hang",
        timeout: HANG_TIMEOUT,
        expect: Outcome::TimedOut(HANG_TIMEOUT),
        must_print: &["halting without reporting"],
        with_module: false,
        smp: 1,
        cpu: DEFAULT_CPU,
    });
    cases.push(Case {
        name: "kernel test suite, 128M, 4 CPUs (shootdowns, remote TLB)".into(),
        memory: "128M",
        cmdline: "mode=test",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Success,
        must_print: &[
            "smp: 4 CPUs online",
            "test smp::shootdown_rounds ... ok",
            "test smp::crossed_shootdowns ... ok",
            "test smp::remote_tlb_dropped ... ok",
            "test user::threads ... ok",
            "test result: ok",
        ],
        with_module: false,
        smp: 4,
        cpu: DEFAULT_CPU,
    });
    cases.push(Case {
        name: "demo, 128M, 4 CPUs".into(),
        memory: "128M",
        cmdline: "mode=demo",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Success,
        must_print: &[
            "smp: 4 CPUs online",
            "after one it read the new frame: yes",
            "threads: 4 threads joined",
            "DEMO OK",
        ],
        with_module: false,
        smp: 4,
        cpu: DEFAULT_CPU,
    });
    cases.push(Case {
        name: "ring-3 stress tests, 128M, 4 CPUs (threads against munmap, mprotect, fork)".into(),
        memory: "128M",
        cmdline: "mode=test tests=stress",
        timeout: STRESS_TIMEOUT,
        expect: Outcome::Success,
        must_print: &STRESS_OK,
        with_module: false,
        smp: 4,
        cpu: DEFAULT_CPU,
    });
    cases.push(Case {
        name: "the stress tests catch a kernel that drops its shootdowns (shootdown=off)".into(),
        memory: "128M",
        cmdline: "mode=test tests=stress shootdown=off only=_vs_",
        timeout: STRESS_TIMEOUT,
        expect: Outcome::Failure,
        must_print: &[
            "smp: 4 CPUs online",
            "STALE TLB: a read after munmap succeeded",
            "test stress::munmap_vs_reader ... FAILED",
            "STALE TLB: a write after mprotect succeeded",
            "test stress::mprotect_vs_writer ... FAILED",
            // The COW test's own verdict is not required: a CPU writing
            // through a stale user entry into a freed frame may have
            // corrupted a kernel stack by then, and the kernel stops.
            "the child saw a sibling's write after fork",
        ],
        with_module: false,
        smp: 4,
        cpu: DEFAULT_CPU,
    });
    cases.extend(pae_cases());
    cases.push(Case {
        name: "oops on 4 CPUs: the others are stopped, the report printed".into(),
        memory: "32M",
        cmdline: "test=oops",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Failure,
        must_print: &["smp: 4 CPUs online", "KERNEL OOPS", "#PF page fault"],
        with_module: false,
        smp: 4,
        cpu: DEFAULT_CPU,
    });
    let module = util::root().join("kernel/link.ld");
    let mut failed = Vec::new();
    for case in &cases {
        eprintln!(
            "xtask: qemu [{}] -cpu {} -m {} -smp {} -append {:?}",
            case.name, case.cpu, case.memory, case.smp, case.cmdline
        );
        let run = boot(&Boot {
            kernel: &kernel,
            memory: case.memory,
            cmdline: case.cmdline,
            timeout: case.timeout,
            echo: false,
            module: case.with_module.then_some(module.as_path()),
            smp: case.smp,
            cpu: case.cpu,
        })?;
        let missing: Vec<&str> = case
            .must_print
            .iter()
            .copied()
            .filter(|t| !run.output.contains(t))
            .collect();
        for line in run
            .output
            .lines()
            .filter(|l| l.starts_with("test ") || l.contains("OOPS") || l.contains("PANIC"))
        {
            eprintln!("    {line}");
        }
        if run.output.contains("KERNEL OOPS") || run.output.contains("KERNEL PANIC") {
            symbolize(&kernel, &run.output);
        }
        if run.outcome == case.expect && missing.is_empty() {
            eprintln!(
                "xtask: PASS [{}] in {:.2} s",
                case.name,
                run.elapsed.as_secs_f64()
            );
        } else {
            eprintln!(
                "xtask: FAIL [{}]: {} (expected {}), missing output {missing:?}",
                case.name, run.outcome, case.expect
            );
            eprintln!(
                "---- console ----\n{}\n-----------------",
                run.output.trim_end()
            );
            failed.push(case.name.clone());
        }
    }
    let mut c_runs: Vec<(PathBuf, &str, &str)> = c_examples()
        .into_iter()
        .map(|file| (file, "32M", "mode=c"))
        .collect();
    // The C API's PAE extension (page64_t) in the PAE kernel, with RAM
    // above 4 GiB.
    c_runs.push((
        util::root().join("tests/c/pae.c"),
        "6G",
        "mode=c paging=pae",
    ));
    for (file, memory, cmdline) in &c_runs {
        eprintln!(
            "xtask: qemu [C program {} through --c, {memory}, {cmdline}]",
            file.display()
        );
        match c_program_on(file, memory, false, DEFAULT_CPU, cmdline) {
            Ok(0) => eprintln!("xtask: PASS [C program {}]", file.display()),
            Ok(v) => {
                eprintln!(
                    "xtask: FAIL [C program {}]: c_main returned {v}",
                    file.display()
                );
                failed.push(file.display().to_string());
            }
            Err(e) => {
                eprintln!("xtask: FAIL [C program {}]: {e}", file.display());
                failed.push(file.display().to_string());
            }
        }
    }
    if failed.is_empty() {
        eprintln!(
            "xtask: all {} QEMU boots behaved",
            cases.len() + c_runs.len()
        );
        Ok(())
    } else {
        Err(format!("QEMU boots failed: {}", failed.join(", ")))
    }
}

/// What the kernel prints when it runs PAE paging.
const PAE_ON: &str = "paging: PAE, NX on";

/// What a passing run of the ring-3 stress tests prints (on 4 CPUs).
const STRESS_OK: [&str; 9] = [
    "smp: 4 CPUs online",
    "test stress::registers_survive_calls ... ok",
    "test stress::munmap_vs_reader ... ok",
    "test stress::mprotect_vs_writer ... ok",
    "test stress::cow_fork_vs_sibling_writers ... ok",
    "test stress::first_touch_one_frame ... ok",
    "test stress::memory_call_storm_with_forks ... ok",
    "back to baseline",
    "test result: ok",
];
/// The same under PAE paging, after the line that says PAE is on.
const PAE_STRESS_OK: [&str; 10] = {
    let mut all = [PAE_ON; 10];
    let mut i = 0;
    while i < STRESS_OK.len() {
        all[i + 1] = STRESS_OK[i];
        i += 1;
    }
    all
};
/// What the NX test program prints when its jump into a writable page is refused.
const NX_KILLED: &str = "nx: a jump into a PROT_READ|PROT_WRITE page: killed by SIGSEGV (NX)";

/// The PAE boots (`paging=pae`) beside the classic ones: the test suite
/// at 128 MiB and at 6 GiB (frames and user pages above 4 GiB), the demo
/// at 6 GiB, the SMP tests and the ring-3 stress tests on 4 CPUs, the
/// fallback on a CPU without NX, an oops and a double fault, and the C
/// API's refusal.
fn pae_cases() -> Vec<Case> {
    let case = |name: &str, memory, cmdline, must_print, smp, cpu| Case {
        name: name.into(),
        memory,
        cmdline,
        timeout: TEST_TIMEOUT,
        expect: Outcome::Success,
        must_print,
        with_module: false,
        smp,
        cpu,
    };
    let mut cases = vec![
        case(
            "kernel test suite, 128M, PAE paging (NX)",
            "128M",
            "mode=test paging=pae",
            &[
                PAE_ON,
                PROTECTIONS_ON,
                NX_KILLED,
                "test user::no_execute ... ok",
                "64 user pages: 0 above 4 GiB (expected none)",
                "test result: ok",
            ],
            1,
            DEFAULT_CPU,
        ),
        case(
            "kernel test suite, 6G, PAE paging: frames and user pages above 4 GiB",
            "6G",
            "mode=test paging=pae",
            &[
                PAE_ON,
                "786432 usable frames above 4 GiB (3 GiB) managed through PAE",
                "above the direct map, 786432 above 4 GiB",
                "64 user pages: 64 above 4 GiB (expected all)",
                "test user::no_execute ... ok",
                "test result: ok",
            ],
            1,
            DEFAULT_CPU,
        ),
        case(
            "demo, 6G, PAE paging: RAM above 4 GiB in use, NX kills the jump",
            "6G",
            "mode=demo paging=pae",
            &[
                PAE_ON,
                "KiB above 4 GiB)",
                NX_KILLED,
                "0 frames still held (all returned)",
                "steps: 12 run, 12 as expected",
                "DEMO OK",
            ],
            1,
            DEFAULT_CPU,
        ),
        case(
            "kernel test suite, 128M, 4 CPUs, PAE paging (APs through the PAE trampoline)",
            "128M",
            "mode=test paging=pae",
            &[
                PAE_ON,
                "smp: 4 CPUs online",
                "test smp::shootdown_rounds ... ok",
                "test smp::remote_tlb_dropped ... ok",
                "test user::threads ... ok",
                "test result: ok",
            ],
            4,
            DEFAULT_CPU,
        ),
        case(
            "paging=pae on a CPU without NX (qemu32): classic paging, said so",
            "32M",
            "mode=test paging=pae only=frames::",
            &[
                "paging=pae: this CPU has no NX; falling back to classic paging",
                "paging: classic",
                "test result: ok",
            ],
            1,
            PLAIN_CPU,
        ),
    ];
    cases.push(Case {
        timeout: STRESS_TIMEOUT,
        ..case(
            "ring-3 stress tests, 128M, 4 CPUs, PAE paging",
            "128M",
            "mode=test tests=stress paging=pae",
            &PAE_STRESS_OK,
            4,
            DEFAULT_CPU,
        )
    });
    cases.push(Case {
        expect: Outcome::Failure,
        ..case(
            "oops in PAE paging: the report and a backtrace through the PAE walk",
            "32M",
            "test=oops paging=pae",
            &[PAE_ON, "KERNEL OOPS", "#PF page fault", "backtrace: 0xc"],
            1,
            DEFAULT_CPU,
        )
    });
    cases.push(Case {
        expect: Outcome::Failure,
        ..case(
            "double fault in PAE paging (the double-fault task loads the PDPT)",
            "32M",
            "test=kstack-overflow paging=pae",
            &[
                PAE_ON,
                "KERNEL OOPS: #DF double fault",
                "kernel stack overflow",
            ],
            1,
            DEFAULT_CPU,
        )
    });
    cases
}

/// Runs every C test in the reference kernel (`c_main` is the test's entry
/// point there; see `tests/c/check.h`).
pub fn c_api_tests() -> Result<(), String> {
    let mut broken = Vec::new();
    let sources = capi::test_sources()?;
    for src in &sources {
        match c_program(src, "128M", false) {
            Ok(0) => {}
            Ok(v) => broken.push(format!("{} (c_main returned {v})", src.display())),
            Err(e) => broken.push(format!("{} ({e})", src.display())),
        }
    }
    println!(
        "C API tests in the kernel: {} of {} files passed",
        sources.len() - broken.len(),
        sources.len()
    );
    if broken.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "C API tests failed in the kernel: {}",
            broken.join(", ")
        ))
    }
}
