//! `cargo xtask` — builds, tests, runs and benchmarks the MyOS memory manager.
//!
//! Every command first checks what it needs from the machine (the i686
//! target, QEMU, the C tools, nightly with Miri and cargo-fuzz) and
//! installs what is missing (`setup.rs`). `cargo xtask --help` and
//! `cargo xtask COMMAND --help` list the commands and their flags.
//!
//! Module map: `setup` (what the machine needs, probed and installed),
//! `fresh` (the fresh-machine check), `qemu` (one boot and its outcome),
//! `kernel` (building and booting the reference kernel), `suite` (the
//! in-QEMU test suite), `capi` (the C API's host library, C tests and
//! kernel objects), `ckernel` (`libmyos.a` and the example C kernel),
//! `miri`, `fuzz`, `util` (paths, running commands).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand, ValueEnum};

mod capi;
mod ckernel;
mod fresh;
mod fuzz;
mod kernel;
mod miri;
mod qemu;
mod setup;
mod suite;
mod talc;
mod util;

/// Builds, tests, runs and benchmarks the MyOS memory manager.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build the i386 kernel and boot the demo under QEMU.
    Run {
        /// QEMU RAM size (e.g. 32M, 128M, 3G).
        #[arg(long, default_value = "128M", value_parser = qemu::check_memory)]
        memory: String,
        /// Words added to the kernel command line.
        #[arg(long, default_value = "")]
        append: String,
        /// Number of CPUs QEMU gives the machine (`-smp N`, 1 to 32).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=32))]
        smp: u8,
        /// Link this C file (defining `int c_main(void)`) into the kernel,
        /// run it, and exit with its value.
        #[arg(long, value_name = "FILE.c")]
        c: Option<PathBuf>,
        /// QEMU CPU model: `max` has SMEP and SMAP, `qemu32` neither.
        #[arg(long, default_value = qemu::DEFAULT_CPU, value_parser = qemu::check_cpu)]
        cpu: String,
        /// PAE paging (boot option `paging=pae`): NX, RAM above 4 GiB
        /// (e.g. with `--memory 6G`). With `--c`, the C program gets the
        /// C API's PAE extension (`page64_t`, `get_page64`).
        #[arg(long)]
        pae: bool,
    },
    /// Host tests, C API tests, fuzz smoke run, Miri (heap), the
    /// fresh-machine check, then the kernel's in-QEMU suite, the C API
    /// tests in the kernel and the example C kernel.
    Test {
        /// Only the in-QEMU suite.
        #[arg(long, conflicts_with_all = ["miri", "c"])]
        qemu_only: bool,
        /// Run the whole Miri set (about an hour) instead of the heap's.
        #[arg(long)]
        miri: bool,
        /// Run one C file in the kernel as a test (0 = pass) instead.
        #[arg(long, value_name = "FILE.c")]
        c: Option<PathBuf>,
    },
    /// Boot the demo stopped at the first instruction, waiting for gdb.
    Gdb {
        /// QEMU RAM size (e.g. 32M, 128M, 3G).
        #[arg(long, default_value = "128M", value_parser = qemu::check_memory)]
        memory: String,
        /// QEMU CPU model: `max` has SMEP and SMAP, `qemu32` neither.
        #[arg(long, default_value = qemu::DEFAULT_CPU, value_parser = qemu::check_cpu)]
        cpu: String,
    },
    /// Run a benchmark binary (release), side by side with its peers.
    Bench {
        /// Which benchmark.
        which: Bench,
        /// Arguments for the benchmark binary (e.g. `--runs 9`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The C API: host library, C tests, kernel objects.
    Capi {
        #[command(subcommand)]
        what: Capi,
    },
    /// Build `libmyos.a`, the memory manager for C kernels (i586, no SSE);
    /// print its path, size and the compile and link lines.
    Clib,
    /// The core's unit tests and simulated-machine tests under Miri (nightly).
    Miri,
    /// The cargo-fuzz targets (see docs/reliability.md).
    Fuzz {
        /// Every target briefly (what `cargo xtask test` runs).
        #[arg(long, conflicts_with_all = ["replay", "target"])]
        smoke: bool,
        /// The committed inputs through the targets on stable, without libFuzzer.
        #[arg(long, conflicts_with = "target")]
        replay: bool,
        /// One target, for a longer run.
        #[arg(value_enum, required_unless_present_any = ["smoke", "replay"])]
        target: Option<FuzzTarget>,
        /// Seconds of the run (one target: default 600; smoke: per target).
        #[arg(value_name = "SECONDS")]
        secs: Option<u64>,
        /// Seconds of the run, as a flag.
        #[arg(long = "seconds", conflicts_with = "secs")]
        seconds: Option<u64>,
        /// Build with AddressSanitizer (one target only).
        #[arg(long, conflicts_with_all = ["smoke", "replay"])]
        asan: bool,
    },
    /// Check for (and install) everything the commands need.
    Setup {
        /// Only report; install nothing (exit 1 when something required is missing).
        #[arg(long)]
        check: bool,
    },
    /// `cargo xtask run` in a throw-away toolchain without the i686 target.
    FreshCheck,
}

/// The benchmark binaries of `myos-bench`.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Bench {
    /// Frame allocator vs bitmap-allocator.
    Frames,
    /// Kernel heap vs talc, rlsf and others.
    Heap,
    /// Address spaces: region lookup, mmap/munmap, faults.
    Vm,
    /// The kernel heap in talc's benchmark method (random actions, heap
    /// efficiency) beside talc, rlsf and dlmalloc.
    Talc,
    /// Several CPUs: shootdowns per call, per-CPU frame caches, faults.
    Smp,
    /// Paging modes: the frame and fault benchmarks in classic and PAE
    /// mode side by side, and what PAE costs in memory.
    Pae,
}

/// `cargo xtask capi …`.
#[derive(Subcommand, Debug)]
enum Capi {
    /// Build the host static library; print its path and the link line.
    Lib,
    /// Every `tests/c/*.c` against the host library.
    Test,
    /// Every `tests/c/*.c` in the reference kernel.
    KernelTest,
    /// Compile FILE.c freestanding for i686 into one object; print its path.
    KernelObj {
        /// The C file.
        file: PathBuf,
    },
}

/// The cargo-fuzz targets.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum FuzzTarget {
    /// The kernel heap against its model.
    Heap,
    /// Address spaces against their model.
    Vm,
    /// Page tables against the simulator's MMU.
    Paging,
    /// Address spaces on four simulated CPUs, against their model and the
    /// TLB-coherence checker.
    #[value(name = "vm_smp")]
    VmSmp,
}

impl FuzzTarget {
    fn name(self) -> &'static str {
        match self {
            FuzzTarget::Heap => "heap",
            FuzzTarget::Vm => "vm",
            FuzzTarget::Paging => "paging",
            FuzzTarget::VmSmp => "vm_smp",
        }
    }
}

fn main() -> ExitCode {
    // Under `cargo xtask`, the first argument is the binary's own name.
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::Run {
            memory,
            append,
            smp,
            c,
            cpu,
            pae,
        } => kernel::run(&memory, &append, smp, c.as_deref(), &cpu, pae),
        Cmd::Test { c: Some(file), .. } => kernel::test_c(&file),
        Cmd::Test {
            qemu_only, miri, ..
        } => test(qemu_only, miri),
        Cmd::Gdb { memory, cpu } => kernel::gdb(&memory, &cpu),
        Cmd::Bench { which, args } => bench(which, &args),
        Cmd::Capi { what } => match what {
            Capi::Lib => capi::print_lib(),
            Capi::Test => capi::host_tests(),
            Capi::KernelTest => suite::c_api_tests(),
            Capi::KernelObj { file } => {
                println!("{}", capi::kernel_object(&file)?.display());
                Ok(())
            }
        },
        Cmd::Clib => ckernel::clib(),
        Cmd::Miri => miri::all(),
        Cmd::Fuzz {
            smoke,
            replay,
            target,
            secs,
            seconds,
            asan,
        } => {
            let secs = secs.or(seconds);
            match target {
                Some(t) => fuzz::long_run(t.name(), secs, asan),
                None if replay => fuzz::replay(),
                None => {
                    debug_assert!(smoke);
                    fuzz::smoke(secs.unwrap_or(fuzz::SMOKE_SECONDS))
                }
            }
        }
        Cmd::Setup { check } => setup::setup(check),
        Cmd::FreshCheck => fresh::check(),
    }
}

/// `cargo xtask test`: host tests of the whole workspace, the crates'
/// examples, the loom model checks, the publish dry run of `myos-mm`,
/// `myos-abi` and `myos-sim`, the C API's tests, `libmyos`'s unit tests, the fuzz smoke run, the heap's unit
/// tests under Miri (the whole Miri set with `miri`), the fresh-machine
/// check, then the kernel's in-QEMU suite and the example C kernel on
/// `libmyos.a` (`qemu_only` runs only those two).
fn test(qemu_only: bool, all_miri: bool) -> Result<(), String> {
    setup::ensure(&setup::FOR_TEST)?;
    if !qemu_only {
        util::run(Command::new(util::cargo()).args(["test", "--workspace", "--release"]))?;
        examples()?;
        loom()?;
        bug_patches_apply()?;
        publish_dry_run()?;
        capi::host_tests()?;
        ckernel::host_tests()?;
        fuzz::smoke(fuzz::SMOKE_SECONDS)?;
        if all_miri {
            miri::all()?;
        } else {
            miri::heap()?;
        }
        fresh::check()?;
    }
    suite::kernel_tests()?;
    suite::c_api_tests()?;
    ckernel::boot_example()
}

/// The crates' examples (what a kernel author copies), each run to its end:
/// they check what they show and exit non-zero when it doesn't hold.
const EXAMPLES: [(&str, &str); 3] = [
    ("myos-mm", "global_heap"),
    ("myos-mm", "frames_paging"),
    ("myos-sim", "vm_space"),
];

/// Runs every example of [`EXAMPLES`] (release, like the tests).
fn examples() -> Result<(), String> {
    for (krate, example) in EXAMPLES {
        util::run(Command::new(util::cargo()).args([
            "run",
            "--release",
            "-q",
            "-p",
            krate,
            "--example",
            example,
        ]))?;
    }
    eprintln!(
        "xtask: {} examples ran and checked what they show",
        EXAMPLES.len()
    );
    Ok(())
}

/// The loom model checks of the lock-free pieces (the simulator's
/// shootdown mailboxes and acknowledgements: every interleaving of two and
/// three CPUs shooting at each other completes; a wait that does not
/// service its own mailbox is reported as a deadlock; the core's atomic
/// frame reference counts and its order "shoot down, then free"). Built
/// with `--cfg loom` in a target directory of their own.
fn loom() -> Result<(), String> {
    for (package, test) in [("myos-sim", "loom_shootdown"), ("myos-mm", "loom_refcount")] {
        util::run(
            Command::new(util::cargo())
                .args(["test", "--release", "-p", package, "--test", test])
                .env("RUSTFLAGS", "--cfg loom")
                .env("CARGO_TARGET_DIR", util::target_dir().join("loom")),
        )?;
    }
    Ok(())
}

/// The simulator's reintroduced-bug patches (`crates/sim/bugs/`, each a
/// known SMP bug put back into the core; docs/smp.md says which test
/// catches each) still apply to the tree, so the check they document can
/// be repeated. `git apply --check` changes nothing.
fn bug_patches_apply() -> Result<(), String> {
    let dir = util::root().join("crates/sim/bugs");
    let mut patches: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    patches.sort();
    if patches.is_empty() {
        return Err(format!("no patches in {}", dir.display()));
    }
    for patch in &patches {
        util::run(
            Command::new("git")
                .current_dir(util::root())
                .args(["apply", "--check"])
                .arg(patch),
        )?;
    }
    eprintln!(
        "xtask: the {} reintroduced-bug patches still apply",
        patches.len()
    );
    Ok(())
}

/// The crates published to crates.io, in dependency order.
const PUBLISHED: [&str; 3] = ["myos-mm", "myos-abi", "myos-sim"];

/// `cargo publish --dry-run` of the published crates (packaging and a
/// build of the packaged sources), so their metadata and packaged files
/// stay complete. `--allow-dirty` lets it run on a working tree with
/// changes; CI runs it on a clean clone.
///
/// Cargo treats a registry crate of a given version as immutable, and the
/// dry run verifies each crate against the others through a local overlay
/// registry: the packaged sources of an earlier run (extracted under
/// `$CARGO_HOME/registry/src/-<hash>/`, built in the target directory)
/// would be reused although ours changed. So both go first: a fresh target
/// directory, and the extracted copies of our own crates.
fn publish_dry_run() -> Result<(), String> {
    let dir = util::target_dir().join("publish");
    let remove = |p: &std::path::Path| {
        std::fs::remove_dir_all(p).map_err(|e| format!("cannot remove {}: {e}", p.display()))
    };
    if dir.exists() {
        remove(&dir)?;
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")));
    if let Some(src) = cargo_home.map(|h| h.join("registry/src")) {
        for overlay in std::fs::read_dir(&src).into_iter().flatten().flatten() {
            // Overlay registries have names starting with '-'; crates.io's
            // own directory is left alone.
            if !overlay.file_name().to_string_lossy().starts_with('-') {
                continue;
            }
            for krate in std::fs::read_dir(overlay.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = krate.file_name().to_string_lossy().into_owned();
                if PUBLISHED.iter().any(|p| name.starts_with(&format!("{p}-"))) {
                    remove(&krate.path())?;
                }
            }
        }
    }
    let mut cmd = Command::new(util::cargo());
    cmd.args(["publish", "--dry-run", "--allow-dirty"]);
    for krate in PUBLISHED {
        cmd.args(["-p", krate]);
    }
    util::run(cmd.env("CARGO_TARGET_DIR", &dir))
}

/// One benchmark binary of `myos-bench`, in release mode.
fn bench(which: Bench, args: &[String]) -> Result<(), String> {
    let name = match which {
        Bench::Frames => "bench-frames",
        Bench::Heap => "bench-heap",
        Bench::Vm => "bench-vm",
        Bench::Smp => "bench-smp",
        Bench::Pae => "bench-pae",
        Bench::Talc => return talc::bench_talc(args),
    };
    util::run(
        Command::new(util::cargo())
            .args(["run", "--release", "-p", "myos-bench", "--bin", name, "--"])
            .args(args),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn unknown_flags_and_bad_values_are_rejected() {
        assert!(parse(&["run", "--bogus-flag"]).is_err());
        assert!(parse(&["run", "--memroy", "3G"]).is_err());
        assert!(parse(&["run", "--memory", "three"]).is_err());
        assert!(parse(&["run", "--memory"]).is_err());
        assert!(parse(&["run", "--smp", "0"]).is_err());
        assert!(parse(&["run", "--smp", "33"]).is_err());
        assert!(parse(&["run", "--cpu", "max; rm"]).is_err());
        assert!(parse(&["run", "--pae=yes"]).is_err());
        assert!(parse(&["test", "--qemu-only", "--miri"]).is_err());
        assert!(parse(&["bench", "nothing"]).is_err());
        assert!(parse(&["fuzz"]).is_err());
        assert!(parse(&["fuzz", "heap", "ten"]).is_err());
        assert!(parse(&["fuzz", "--smoke", "--replay"]).is_err());
        assert!(parse(&["fuzz", "--smoke", "--asan"]).is_err());
        assert!(parse(&["capi", "kernel-obj"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn known_commands_parse_to_what_they_say() {
        assert!(matches!(
            parse(&["run", "--memory", "3G"]),
            Ok(Cmd::Run { memory, c: None, .. }) if memory == "3G"
        ));
        assert!(matches!(
            parse(&["run"]),
            Ok(Cmd::Run { memory, smp: 1, .. }) if memory == "128M"
        ));
        assert!(matches!(
            parse(&["run", "--smp", "4"]),
            Ok(Cmd::Run {
                smp: 4,
                pae: false,
                ..
            })
        ));
        assert!(matches!(
            parse(&["run", "--pae", "--memory", "6G"]),
            Ok(Cmd::Run { pae: true, memory, .. }) if memory == "6G"
        ));
        assert!(matches!(
            parse(&["run", "--cpu", "qemu32,+smep,+smap"]),
            Ok(Cmd::Run { cpu, .. }) if cpu == "qemu32,+smep,+smap"
        ));
        assert!(matches!(
            parse(&["test", "--qemu-only"]),
            Ok(Cmd::Test {
                qemu_only: true,
                miri: false,
                c: None
            })
        ));
        assert!(matches!(
            parse(&["bench", "heap", "--runs", "9"]),
            Ok(Cmd::Bench { which: Bench::Heap, args }) if args == ["--runs", "9"]
        ));
        assert!(matches!(
            parse(&["bench", "pae", "--count"]),
            Ok(Cmd::Bench { which: Bench::Pae, args }) if args == ["--count"]
        ));
        assert!(matches!(
            parse(&["fuzz", "vm", "600", "--asan"]),
            Ok(Cmd::Fuzz {
                target: Some(FuzzTarget::Vm),
                secs: Some(600),
                asan: true,
                ..
            })
        ));
        assert!(matches!(
            parse(&["fuzz", "--smoke", "--seconds", "60"]),
            Ok(Cmd::Fuzz {
                smoke: true,
                seconds: Some(60),
                ..
            })
        ));
        assert!(matches!(
            parse(&["fuzz", "--replay"]),
            Ok(Cmd::Fuzz { replay: true, .. })
        ));
        assert!(matches!(
            parse(&["setup", "--check"]),
            Ok(Cmd::Setup { check: true })
        ));
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
