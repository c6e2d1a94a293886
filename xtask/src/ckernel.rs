//! `libmyos.a` for C kernels (crate `crates/libmyos`) and the example C
//! kernel that boots on it (`examples/c-kernel`).
//!
//! - [`clib`] (`cargo xtask clib`): builds the archive, prints its path, its
//!   size and the compile and link lines a C kernel uses;
//! - steps of `cargo xtask test`: the library's host unit tests
//!   ([`host_tests`]), and [`boot_example`], which builds the example kernel
//!   with its Makefile and boots it under QEMU at 128 MiB and 3 GiB,
//!   checking status 33 and the expected lines, and reports the code the
//!   library adds to the kernel ([`sizes`]).
//!
//! The archive is built for `i586-unknown-linux-gnu` (no SSE in its
//! precompiled `core`); [`build_lib`] installs that target with rustup when
//! the toolchain lacks it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::qemu::{self, Boot, Outcome};
use crate::{setup, util};

/// The target the archive is built for.
const TARGET: &str = "i586-unknown-linux-gnu";
/// How long one boot of the example may take.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// RAM sizes the example boots with: ordinary, and beyond the direct map
/// (frames above 768 MiB go through the kmap window).
const BOOT_MEMORY: [&str; 2] = ["128M", "3G"];
/// Lines the example kernel must print (besides no `FAIL`).
const EXPECTED: [&str; 8] = [
    "PASS myos_init(NULL) is MYOS_BOOT_ENULL",
    "PASS myos_init:",
    "PASS a second myos_init is MYOS_BOOT_EALREADY",
    "PASS examples/c/basic_page_allocation.c",
    "PASS examples/c/heap_memory_usage.c",
    "PASS examples/c/memory_mapping.c",
    "PASS include/myos/jamesm.h",
    "c-kernel: all checks passed",
];
/// Flags the C side is compiled with (what the example's Makefile uses).
const C_FLAGS: [&str; 12] = [
    "-m32",
    "-ffreestanding",
    "-nostdinc",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-mgeneral-regs-only",
    "-fno-asynchronous-unwind-tables",
    "-ffunction-sections",
    "-fdata-sections",
    "-O2",
    "-std=gnu11",
];

fn lib_dir() -> PathBuf {
    util::root().join("crates/libmyos")
}

fn cargo_target_dir() -> PathBuf {
    lib_dir().join("target")
}

/// Builds `libmyos.a` and returns its path: the crate's staticlib (release:
/// opt-level "s", fat LTO, one codegen unit, panic=abort) plus `kprintf.o`
/// (the C half of `<myos/console.h>`), without debug information or the
/// embedded LLVM bitcode, as
/// `crates/libmyos/target/libmyos.a`.
pub fn build_lib() -> Result<PathBuf, String> {
    setup::ensure(&[setup::LIB_TARGET, setup::MAKE])?;
    let dir = lib_dir();
    let target_dir = cargo_target_dir();
    util::run(
        Command::new(util::cargo())
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .args(["build", "--release"]),
    )?;
    let built = target_dir.join(TARGET).join("release/libmyos.a");
    if !built.is_file() {
        return Err(format!("the build produced no {}", built.display()));
    }
    let root = util::root();
    let kprintf = target_dir.join("kprintf.o");
    util::run(
        Command::new("gcc")
            .args(C_FLAGS)
            .arg(format!("-I{}", root.join("include").display()))
            .arg("-c")
            .arg(root.join("crates/capi/c/kprintf.c"))
            .arg("-o")
            .arg(&kprintf),
    )?;
    let lib = target_dir.join("libmyos.a");
    std::fs::copy(&built, &lib)
        .map_err(|e| format!("cannot copy {} to {}: {e}", built.display(), lib.display()))?;
    // No debug information, and none of the LLVM bitcode the precompiled
    // `compiler_builtins` objects embed (`.llvmbc`): a C linker never reads
    // it, and binutils' LTO plugin would complain about it on every read.
    util::run(
        Command::new("strip")
            .args(["--strip-debug", "-R", ".llvmbc", "-R", ".llvmcmd"])
            .arg(&lib),
    )?;
    util::run(Command::new("ar").arg("rs").arg(&lib).arg(&kprintf))?;
    Ok(lib)
}

/// `cargo xtask clib`: builds the archive and prints its path, size and how
/// to use it.
pub fn clib() -> Result<(), String> {
    let lib = build_lib()?;
    let root = util::root();
    println!("{}", lib.display());
    println!("size: {} bytes", file_size(&lib)?);
    println!(
        "compile: gcc {} -I{inc} -I{inc}/myos/libc -c YOUR.c",
        C_FLAGS.join(" "),
        inc = root.join("include").display()
    );
    println!(
        "link:    ld -m elf_i386 -T YOUR.ld --gc-sections -nostdlib YOUR_OBJECTS {}",
        lib.display()
    );
    println!(
        "example: make -C {} LIBMYOS={}",
        root.join("examples/c-kernel").display(),
        lib.display()
    );
    Ok(())
}

fn file_size(p: &Path) -> Result<u64, String> {
    std::fs::metadata(p)
        .map(|m| m.len())
        .map_err(|e| format!("cannot stat {}: {e}", p.display()))
}

/// The library's unit tests (boot validation, every `MYOS_BOOT_E*` code,
/// the once-only initialisation over the simulator), on the host.
pub fn host_tests() -> Result<(), String> {
    util::run(
        Command::new(util::cargo())
            .current_dir(lib_dir())
            .env("CARGO_TARGET_DIR", cargo_target_dir())
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .args(["test", "--target"])
            .arg(setup::host_triple().ok_or("rustc -vV printed no host triple")?),
    )
}

/// Builds the example kernel with its Makefile (`target` is `all` or a
/// file) into `out`.
fn make(lib: &Path, out: &Path, target: &str) -> Result<(), String> {
    util::run(
        Command::new("make")
            .arg("-C")
            .arg(util::root().join("examples/c-kernel"))
            .arg(format!("LIBMYOS={}", lib.display()))
            .arg(format!("OUT={}", out.display()))
            .arg(target),
    )
}

/// The size of the `.text` section of an ELF file (from `size -A`).
fn text_size(elf: &Path) -> Result<u64, String> {
    let out = Command::new("size")
        .arg("-A")
        .arg(elf)
        .output()
        .map_err(|e| format!("cannot run size: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(".text"))
                .then(|| w.next().and_then(|n| n.parse().ok()))
                .flatten()
        })
        .ok_or_else(|| format!("no .text in {}", elf.display()))
}

/// What the library costs a kernel: (archive bytes, the example kernel's
/// `.text` with the library, without it). "Without" links the kernel's
/// own objects alone, calls left unresolved (measuring only).
pub fn sizes(lib: &Path, out: &Path) -> Result<(u64, u64, u64), String> {
    make(lib, out, &out.join("kernel-nolib.elf").to_string_lossy())?;
    Ok((
        file_size(lib)?,
        text_size(&out.join("kernel.elf"))?,
        text_size(&out.join("kernel-nolib.elf"))?,
    ))
}

/// Builds the library and the example kernel, boots it under QEMU at every
/// size of [`BOOT_MEMORY`], and checks status 33 (success) and the expected
/// lines; prints the sizes.
pub fn boot_example() -> Result<(), String> {
    setup::ensure(&[setup::QEMU])?;
    let lib = build_lib()?;
    let out = cargo_target_dir().join("c-kernel");
    make(&lib, &out, "all")?;
    let kernel = out.join("kernel.elf");
    for memory in BOOT_MEMORY {
        let run = qemu::boot(&Boot {
            kernel: &kernel,
            memory,
            cmdline: "",
            timeout: BOOT_TIMEOUT,
            echo: false,
            module: None,
            smp: 1,
            cpu: qemu::DEFAULT_CPU,
        })?;
        let missing: Vec<&str> = EXPECTED
            .iter()
            .copied()
            .filter(|l| !run.output.contains(l))
            .collect();
        let failed: Vec<&str> = run.output.lines().filter(|l| l.contains("FAIL")).collect();
        if run.outcome != Outcome::Success || !missing.is_empty() || !failed.is_empty() {
            return Err(format!(
                "example C kernel at {memory}: {}; missing lines: {missing:?}; failures: {failed:?}\n{}",
                run.outcome, run.output
            ));
        }
        println!(
            "example C kernel at {memory}: ok in {:.1} s",
            run.elapsed.as_secs_f64()
        );
    }
    let (archive, with, without) = sizes(&lib, &out)?;
    println!(
        "libmyos.a: {archive} bytes; example kernel .text: {with} bytes with the library, {without} without (+{})",
        with.saturating_sub(without)
    );
    Ok(())
}
