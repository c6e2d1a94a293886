//! The reference kernel: build it, boot its demo (`cargo xtask run`), boot
//! it for gdb, and run a C program linked into it (`--c FILE.c`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::qemu::{boot, qemu_command, symbolize, Boot, Outcome, DEFAULT_CPU, QEMU};
use crate::{capi, setup, util};

/// How long the demo may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Builds the kernel (release profile, with symbols) and returns its path.
pub fn build_kernel() -> Result<PathBuf, String> {
    build_kernel_with(None)
}

/// Builds the kernel, linking the C object `c_obj` (which defines `c_main`)
/// into it when given.
pub fn build_kernel_with(c_obj: Option<&Path>) -> Result<PathBuf, String> {
    setup::ensure(&[setup::KERNEL_TARGET])?;
    let kernel_dir = util::root().join("kernel");
    // `MYOS_KERNEL_TARGET_DIR` moves it (the fresh-machine check builds
    // with another toolchain and must not churn the usual one).
    let target_dir = std::env::var_os("MYOS_KERNEL_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| kernel_dir.join("target"));
    util::run(
        Command::new(util::cargo())
            .current_dir(&kernel_dir)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env(
                "MYOS_KERNEL_C_OBJ",
                c_obj.map(Path::as_os_str).unwrap_or_default(),
            )
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .args(["build", "--release"]),
    )?;
    let elf = target_dir.join("i686-unknown-linux-gnu/release/myos-kernel");
    if elf.is_file() {
        Ok(elf)
    } else {
        Err(format!("kernel build produced no {}", elf.display()))
    }
}

/// `cargo xtask run`: boots the demo with `memory` of RAM, `smp` CPUs, CPU
/// model `cpu`, PAE paging when `pae` (`paging=pae`) and `append` added to
/// the kernel command line, or with `c` the C program `FILE.c` linked into
/// the kernel.
pub fn run(
    memory: &str,
    append: &str,
    smp: u8,
    c: Option<&Path>,
    cpu: &str,
    pae: bool,
) -> Result<(), String> {
    if let Some(file) = c {
        let cmdline = if pae { "mode=c paging=pae" } else { "mode=c" };
        return exit_with_c_status(c_program_on(file, memory, true, cpu, cmdline)?);
    }
    setup::ensure(&[setup::QEMU])?;
    let kernel = build_kernel()?;
    let paging = if pae { "paging=pae " } else { "" };
    let cmdline = format!("mode=demo {paging}{append}");
    eprintln!(
        "xtask: booting {} with {memory} of RAM, {smp} CPU(s), -cpu {cpu}{}",
        kernel.display(),
        if pae { ", PAE paging" } else { "" }
    );
    let run = boot(&Boot {
        kernel: &kernel,
        memory,
        cmdline: cmdline.trim(),
        timeout: RUN_TIMEOUT,
        echo: true,
        module: None,
        smp,
        cpu,
    })?;
    eprintln!(
        "xtask: QEMU finished in {:.2} s: {}",
        run.elapsed.as_secs_f64(),
        run.outcome
    );
    if run.output.contains("KERNEL OOPS") || run.output.contains("KERNEL PANIC") {
        symbolize(&kernel, &run.output);
    }
    match run.outcome {
        Outcome::Success => Ok(()),
        other => Err(format!("demo did not succeed: {other}")),
    }
}

/// Compiles `file` (defining `int c_main(void)`) with the C API's runtime,
/// links it into the kernel, boots it in `mode=c` (CPU model
/// [`DEFAULT_CPU`]) and returns `c_main`'s value.
pub fn c_program(file: &Path, memory: &str, echo: bool) -> Result<i32, String> {
    c_program_on(file, memory, echo, DEFAULT_CPU, "mode=c")
}

/// [`c_program`] on CPU model `cpu` with kernel command line `cmdline`
/// (`mode=c`, and `paging=pae` for the PAE kernel).
pub fn c_program_on(
    file: &Path,
    memory: &str,
    echo: bool,
    cpu: &str,
    cmdline: &str,
) -> Result<i32, String> {
    setup::ensure(&[setup::QEMU])?;
    setup::ensure(&setup::C_TOOLS)?;
    let obj = capi::kernel_object(file)?;
    let kernel = build_kernel_with(Some(&obj))?;
    eprintln!(
        "xtask: booting {} with {} linked in",
        kernel.display(),
        file.display()
    );
    let run = boot(&Boot {
        kernel: &kernel,
        memory,
        cmdline,
        timeout: RUN_TIMEOUT,
        echo,
        module: None,
        smp: 1,
        cpu,
    })?;

    if run.output.contains("KERNEL OOPS") || run.output.contains("KERNEL PANIC") {
        symbolize(&kernel, &run.output);
    }
    let ret = run.output.lines().find_map(|l| {
        l.trim()
            .strip_prefix("c_main returned ")?
            .trim()
            .parse::<i32>()
            .ok()
    });
    if !echo && ret != Some(0) {
        eprintln!(
            "---- console ----\n{}\n-----------------",
            run.output.trim_end()
        );
    }
    match (ret, &run.outcome) {
        (Some(value), Outcome::Success | Outcome::Failure) => Ok(value),
        _ => Err(format!(
            "{} did not finish in the kernel: {}",
            file.display(),
            run.outcome
        )),
    }
}

/// Ends xtask with `c_main`'s value as the exit status (0 = pass).
fn exit_with_c_status(value: i32) -> Result<(), String> {
    eprintln!("xtask: c_main returned {value}");
    if value == 0 {
        Ok(())
    } else {
        std::process::exit(value.clamp(1, 255))
    }
}

/// `cargo xtask test --c FILE.c`: the kernel half of running a C file (the
/// host half is the C API's).
pub fn test_c(file: &Path) -> Result<(), String> {
    exit_with_c_status(c_program(file, "128M", false)?)
}

/// `cargo xtask gdb [--memory SIZE] [--cpu MODEL]`: boots the demo stopped
/// at the first instruction, with a gdb server on localhost:1234.
pub fn gdb(memory: &str, cpu: &str) -> Result<(), String> {
    setup::ensure(&[setup::QEMU])?;
    let kernel = build_kernel()?;
    println!("QEMU is waiting for gdb on localhost:1234. In another terminal run:\n");
    println!(
        "    gdb -ex 'set architecture i386' -ex 'file {}' -ex 'target remote localhost:1234' -ex 'break myos_kernel::kernel_main' -ex continue\n",
        kernel.display()
    );
    let mut cmd = qemu_command(&kernel, memory, "mode=demo", cpu);
    cmd.args(["-s", "-S"]);
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    println!("QEMU exited: {}", Outcome::from_status(status.code()));
    Ok(())
}
