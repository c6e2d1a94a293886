//! The reference kernel under QEMU: build it, boot it, judge the run.
//!
//! `cargo xtask run [--memory SIZE] [--release|--debug]` boots the demo and
//! streams its report; `cargo xtask gdb` boots it stopped, waiting for gdb;
//! [`kernel_tests`] is the in-QEMU half of `cargo xtask test`.
//!
//! The kernel reports through QEMU's `isa-debug-exit` device (port 0xf4):
//! writing `code` makes QEMU exit with `(code << 1) | 1`. The kernel writes
//! 0x10 for success (status 33) and 0x11 for failure (status 35); any other
//! status (0 is a triple fault under `-no-reboot`) is a crash.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util;

/// The QEMU binary for i386.
const QEMU: &str = "qemu-system-i386";
/// The Debian package that provides it.
const QEMU_PACKAGE: &str = "qemu-system-x86";
/// `isa-debug-exit` code the kernel writes on success.
const KERNEL_SUCCESS: i32 = 0x10;
/// `isa-debug-exit` code the kernel writes on failure.
const KERNEL_FAILURE: i32 = 0x11;
/// How long one test boot may take before it is killed.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the demo may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Time limit of the boot that checks the timeout itself.
const HANG_TIMEOUT: Duration = Duration::from_secs(5);
/// RAM sizes the test suite boots with: small, ordinary, and beyond the direct map.
const TEST_MEMORY: [&str; 3] = ["32M", "128M", "3G"];

/// How a QEMU run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel wrote the success code.
    Success,
    /// The kernel wrote the failure code (a failed test, an oops, a panic).
    Failure,
    /// QEMU exited with a status the kernel never writes (e.g. 0 after a
    /// triple fault with `-no-reboot`), or was killed by a signal.
    Crashed(Option<i32>),
    /// The run exceeded its time limit and was killed.
    TimedOut(Duration),
}

impl Outcome {
    /// Translates QEMU's exit status.
    fn from_status(code: Option<i32>) -> Self {
        match code {
            Some(c) if c == (KERNEL_SUCCESS << 1) | 1 => Outcome::Success,
            Some(c) if c == (KERNEL_FAILURE << 1) | 1 => Outcome::Failure,
            other => Outcome::Crashed(other),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Success => f.write_str("success"),
            Outcome::Failure => f.write_str("failure reported by the kernel"),
            Outcome::Crashed(Some(c)) => {
                write!(f, "crash: QEMU exited with status {c} without the kernel reporting (triple fault?)")
            }
            Outcome::Crashed(None) => f.write_str("crash: QEMU was killed by a signal"),
            Outcome::TimedOut(d) => {
                write!(f, "TIMEOUT: no result after {} s, QEMU killed", d.as_secs())
            }
        }
    }
}

/// A finished QEMU run: how it ended, what the serial console printed, how long.
pub struct Run {
    /// How it ended.
    pub outcome: Outcome,
    /// Everything the kernel printed.
    pub output: String,
    /// Wall-clock time from QEMU start to exit.
    pub elapsed: Duration,
}

/// Options of one boot.
pub struct Boot<'a> {
    /// The kernel ELF.
    pub kernel: &'a Path,
    /// QEMU `-m` value (`32M`, `3G` …).
    pub memory: &'a str,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// Kill QEMU after this long.
    pub timeout: Duration,
    /// Copy the console to our stdout as it arrives.
    pub echo: bool,
    /// A file passed as a multiboot module (`-initrd`).
    pub module: Option<&'a Path>,
}

/// The repository root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds the kernel (release profile, with symbols) and returns its path.
pub fn build_kernel() -> Result<PathBuf, String> {
    build_kernel_with(None)
}

/// Builds the kernel, linking the C object `c_obj` (which defines `c_main`)
/// into it when given.
pub fn build_kernel_with(c_obj: Option<&Path>) -> Result<PathBuf, String> {
    let kernel_dir = repo_root().join("kernel");
    let target_dir = kernel_dir.join("target");
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

/// True when `program` is found on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// True when running as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes sure `qemu-system-i386` is installed: installs it with apt-get when
/// running as root, else says exactly what to run.
pub fn ensure_qemu() -> Result<(), String> {
    if on_path(QEMU) {
        return Ok(());
    }
    let how = format!("apt-get update && apt-get install -y {QEMU_PACKAGE}");
    if !is_root() || !on_path("apt-get") {
        return Err(format!(
            "{QEMU} is not installed; install it with:\n    sudo sh -c '{how}'"
        ));
    }
    eprintln!("xtask: {QEMU} is missing; installing {QEMU_PACKAGE} with apt-get");
    util::run(
        Command::new("apt-get")
            .args(["update", "-qq"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    util::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", QEMU_PACKAGE])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    if on_path(QEMU) {
        Ok(())
    } else {
        Err(format!(
            "{QEMU} still missing after installing {QEMU_PACKAGE}; run: {how}"
        ))
    }
}

/// The QEMU command line shared by every boot.
fn qemu_command(kernel: &Path, memory: &str, cmdline: &str) -> Command {
    let mut cmd = Command::new(QEMU);
    cmd.arg("-kernel")
        .arg(kernel)
        .args(["-m", memory])
        .args(["-append", cmdline])
        .args(["-serial", "stdio", "-display", "none", "-monitor", "none"])
        .args([
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]);
    cmd
}

/// Boots the kernel once and collects its console output.
pub fn boot(b: &Boot<'_>) -> Result<Run, String> {
    let mut cmd = qemu_command(b.kernel, b.memory, b.cmdline);
    if let Some(module) = b.module {
        cmd.arg("-initrd").arg(module);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let (tx, rx) = mpsc::channel::<String>();
    let echo = b.echo;
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut lines = BufReader::new(stdout);
        let mut line = Vec::new();
        while let Ok(n) = lines.read_until(b'\n', &mut line) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&line).replace('\r', "");
            if echo {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
            all.push_str(&text);
            line.clear();
        }
        let _ = tx.send(all);
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let outcome = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Outcome::from_status(status.code()),
            Ok(None) if start.elapsed() > b.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break Outcome::TimedOut(b.timeout);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {QEMU}: {e}")),
        }
    };
    let elapsed = start.elapsed();
    let output = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    let _ = reader.join();
    let qemu_err = err_reader.join().unwrap_or_default();
    if !qemu_err.trim().is_empty() && !matches!(outcome, Outcome::Success) {
        eprintln!("qemu stderr: {}", qemu_err.trim());
    }
    Ok(Run {
        outcome,
        output,
        elapsed,
    })
}

/// Value of `--name VALUE` in `args`, if given.
fn flag_value<'a>(args: &'a [String], name: &str) -> Result<Option<&'a str>, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .map(|s| Some(s.as_str()))
            .ok_or(format!("{name} needs a value")),
        None => Ok(None),
    }
}

/// Checks a `-m` size such as `128M`, `3G` or `512`.
fn check_memory(size: &str) -> Result<(), String> {
    let digits = size.trim_end_matches(['M', 'G', 'm', 'g']);
    if !digits.is_empty()
        && digits.len() + 1 >= size.len()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(format!(
            "bad --memory value {size:?} (use e.g. 32M, 128M, 3G)"
        ))
    }
}

/// `cargo xtask run [--memory SIZE] [--append ARGS] [--c FILE.c]`: boots
/// the demo, or with `--c` the C program `FILE.c` linked into the kernel.
pub fn run(args: &[String]) -> Result<(), String> {
    let memory = flag_value(args, "--memory")?.unwrap_or("128M");
    check_memory(memory)?;
    if let Some(file) = flag_value(args, "--c")? {
        return exit_with_c_status(c_program(Path::new(file), memory, true)?);
    }
    let extra = flag_value(args, "--append")?.unwrap_or("");
    ensure_qemu()?;
    let kernel = build_kernel()?;
    let cmdline = format!("mode=demo {extra}");
    eprintln!("xtask: booting {} with {memory} of RAM", kernel.display());
    let run = boot(&Boot {
        kernel: &kernel,
        memory,
        cmdline: cmdline.trim(),
        timeout: RUN_TIMEOUT,
        echo: true,
        module: None,
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
/// links it into the kernel, boots it in `mode=c` and returns `c_main`'s
/// value.
pub fn c_program(file: &Path, memory: &str, echo: bool) -> Result<i32, String> {
    ensure_qemu()?;
    let obj = crate::capi::kernel_object(file)?;
    let kernel = build_kernel_with(Some(&obj))?;
    eprintln!(
        "xtask: booting {} with {} linked in",
        kernel.display(),
        file.display()
    );
    let run = boot(&Boot {
        kernel: &kernel,
        memory,
        cmdline: "mode=c",
        timeout: RUN_TIMEOUT,
        echo,
        module: None,
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

/// `cargo xtask gdb [--memory SIZE]`: boots the demo stopped at the first
/// instruction, with a gdb server on localhost:1234.
pub fn gdb(args: &[String]) -> Result<(), String> {
    let memory = flag_value(args, "--memory")?.unwrap_or("128M");
    check_memory(memory)?;
    ensure_qemu()?;
    let kernel = build_kernel()?;
    println!("QEMU is waiting for gdb on localhost:1234. In another terminal run:\n");
    println!(
        "    gdb -ex 'set architecture i386' -ex 'file {}' -ex 'target remote localhost:1234' -ex 'break myos_kernel::kernel_main' -ex continue\n",
        kernel.display()
    );
    let mut cmd = qemu_command(&kernel, memory, "mode=demo");
    cmd.args(["-s", "-S"]);
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    println!("QEMU exited: {}", Outcome::from_status(status.code()));
    Ok(())
}

/// The spec's examples as C files (`examples/c/*.c`), which the suite runs
/// in the kernel.
fn c_examples() -> Vec<PathBuf> {
    let dir = repo_root().join("examples/c");
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
}

/// The in-QEMU half of `cargo xtask test`: the kernel's test suite at each
/// RAM size, the demo, and the deliberate-crash boots.
pub fn kernel_tests() -> Result<(), String> {
    ensure_qemu()?;
    let kernel = build_kernel()?;
    let mut cases: Vec<Case> = TEST_MEMORY
        .iter()
        .map(|&memory| Case {
            name: format!("kernel test suite, {memory}"),
            memory,
            cmdline: "mode=test",
            timeout: TEST_TIMEOUT,
            expect: Outcome::Success,
            must_print: &["test result: ok"],
            with_module: false,
        })
        .collect();
    for memory in ["32M", "3G"] {
        cases.push(Case {
            name: format!("demo, {memory}: every step behaves, memory back to baseline"),
            memory,
            cmdline: "mode=demo",
            timeout: TEST_TIMEOUT,
            expect: Outcome::Success,
            must_print: &[
                "DEMO OK",
                "steps: 10 run, 10 as expected",
                "free frames:",
                "heap in use:",
            ],
            with_module: false,
        });
    }
    cases.push(Case {
        name: "demo, 5G: RAM above 4 GiB left alone (no PAE)".into(),
        memory: "5G",
        cmdline: "mode=demo",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Success,
        must_print: &["out of reach without PAE", "DEMO OK"],
        with_module: false,
    });
    cases.push(Case {
        name: "kernel test suite, 64M, with a boot module reserved".into(),
        memory: "64M",
        cmdline: "mode=test",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Success,
        must_print: &["test result: ok", "boot module"],
        with_module: true,
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
    });
    cases.push(Case {
        name: "double fault on a kernel stack overflow".into(),
        memory: "32M",
        cmdline: "test=stack-overflow",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Failure,
        must_print: &["KERNEL OOPS: #DF double fault", "kernel stack overflow"],
        with_module: false,
    });
    cases.push(Case {
        name: "double fault on a process kernel-stack overflow (guard page)".into(),
        memory: "32M",
        cmdline: "test=kstack-overflow",
        timeout: TEST_TIMEOUT,
        expect: Outcome::Failure,
        must_print: &["KERNEL OOPS: #DF double fault", "kernel stack overflow"],
        with_module: false,
    });
    cases.push(Case {
        name: "a hung kernel is killed and reported as a timeout".into(),
        memory: "32M",
        cmdline: "test=hang",
        timeout: HANG_TIMEOUT,
        expect: Outcome::TimedOut(HANG_TIMEOUT),
        must_print: &["halting without reporting"],
        with_module: false,
    });
    let module = repo_root().join("kernel/link.ld");
    let mut failed = Vec::new();
    for case in &cases {
        eprintln!(
            "xtask: qemu [{}] -m {} -append {:?}",
            case.name, case.memory, case.cmdline
        );
        let run = boot(&Boot {
            kernel: &kernel,
            memory: case.memory,
            cmdline: case.cmdline,
            timeout: case.timeout,
            echo: false,
            module: case.with_module.then_some(module.as_path()),
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
    let examples = c_examples();
    for file in &examples {
        eprintln!("xtask: qemu [C example {} through --c]", file.display());
        match c_program(file, "32M", false) {
            Ok(0) => eprintln!("xtask: PASS [C example {}]", file.display()),
            Ok(v) => {
                eprintln!(
                    "xtask: FAIL [C example {}]: c_main returned {v}",
                    file.display()
                );
                failed.push(file.display().to_string());
            }
            Err(e) => {
                eprintln!("xtask: FAIL [C example {}]: {e}", file.display());
                failed.push(file.display().to_string());
            }
        }
    }
    if failed.is_empty() {
        eprintln!(
            "xtask: all {} QEMU boots behaved",
            cases.len() + examples.len()
        );
        Ok(())
    } else {
        Err(format!("QEMU boots failed: {}", failed.join(", ")))
    }
}

/// Kernel addresses (`0xc…`) named on the oops lines of `output`: the EIP
/// and the backtrace.
fn oops_addresses(output: &str) -> Vec<String> {
    let mut addrs = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        if !(line.starts_with("eip") || line.starts_with("backtrace:")) {
            continue;
        }
        for word in line.split_whitespace() {
            let hex = word.trim_start_matches("0x");
            let kernel_text = word.starts_with("0xc") && hex.len() == 8;
            if kernel_text
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
                && !addrs.iter().any(|a| a == word)
            {
                addrs.push(word.to_string());
            }
        }
    }
    addrs
}

/// Prints function and source line for the addresses of an oops, with
/// `addr2line` when it is installed (binutils); silent otherwise.
pub fn symbolize(kernel: &Path, output: &str) {
    let addrs = oops_addresses(output);
    if addrs.is_empty() || !on_path("addr2line") {
        return;
    }
    let Ok(out) = Command::new("addr2line")
        .args(["-a", "-f", "-i", "-C", "-s", "-e"])
        .arg(kernel)
        .args(&addrs)
        .output()
    else {
        return;
    };
    // `-a` prints each address before its (function, place) pairs; `-i`
    // adds one pair per inlining level, innermost first.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().peekable();
    eprintln!("    oops addresses:");
    while let Some(addr) = lines.next() {
        let mut frames = Vec::new();
        while let Some(line) = lines.peek() {
            if line.starts_with("0x") {
                break;
            }
            let function = lines.next().unwrap_or("?");
            let place = lines.next().unwrap_or("?");
            frames.push(format!("{function} ({place})"));
        }
        eprintln!("      {addr}  {}", frames.join(" <- inlined in "));
    }
}
