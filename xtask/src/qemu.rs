//! QEMU: boot the reference kernel once and judge how the run ended.
//!
//! The kernel reports through QEMU's `isa-debug-exit` device (port 0xf4):
//! writing `code` makes QEMU exit with `(code << 1) | 1`. The kernel writes
//! 0x10 for success (status 33) and 0x11 for failure (status 35); any other
//! status (0 is a triple fault under `-no-reboot`) is a crash.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::setup;

/// The QEMU binary for i386.
pub const QEMU: &str = "qemu-system-i386";
/// The CPU model of a boot unless it asks for another: QEMU's `max` has
/// SMEP and SMAP (the kernel turns on what CPUID reports; it leaves `max`'s
/// NX and PAE off), so the protections are on in the demo and most tests.
pub const DEFAULT_CPU: &str = "max";
/// QEMU's i386 default model: no SMEP, no SMAP. Some test boots use it so
/// the kernel's path without them stays tested.
pub const PLAIN_CPU: &str = "qemu32";
/// `isa-debug-exit` code the kernel writes on success.
const KERNEL_SUCCESS: i32 = 0x10;
/// `isa-debug-exit` code the kernel writes on failure.
const KERNEL_FAILURE: i32 = 0x11;

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
    pub fn from_status(code: Option<i32>) -> Self {
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
    /// CPUs (`-smp N`; 1 leaves QEMU's default).
    pub smp: u8,
    /// QEMU `-cpu` model ([`DEFAULT_CPU`], [`PLAIN_CPU`] …).
    pub cpu: &'a str,
}

/// The QEMU command line shared by every boot, with CPU model `cpu`.
pub fn qemu_command(kernel: &Path, memory: &str, cmdline: &str, cpu: &str) -> Command {
    let mut cmd = Command::new(QEMU);
    cmd.arg("-kernel")
        .arg(kernel)
        .args(["-cpu", cpu])
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
    let mut cmd = qemu_command(b.kernel, b.memory, b.cmdline, b.cpu);
    if let Some(module) = b.module {
        cmd.arg("-initrd").arg(module);
    }
    if b.smp > 1 {
        cmd.args(["-smp", &b.smp.to_string()]);
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

/// Checks a `-cpu` model such as `max`, `qemu32` or `qemu32,+smep,+smap`.
pub fn check_cpu(model: &str) -> Result<String, String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"+-_,.=".contains(&b);
    if !model.is_empty() && model.bytes().all(ok) {
        Ok(model.to_string())
    } else {
        Err(format!(
            "bad --cpu value {model:?} (use e.g. max, qemu32, qemu32,+smep,+smap)"
        ))
    }
}

/// Checks a `-m` size such as `128M`, `3G` or `512`.
pub fn check_memory(size: &str) -> Result<String, String> {
    let digits = size.trim_end_matches(['M', 'G', 'm', 'g']);
    if !digits.is_empty()
        && digits.len() + 1 >= size.len()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        Ok(size.to_string())
    } else {
        Err(format!(
            "bad --memory value {size:?} (use e.g. 32M, 128M, 3G)"
        ))
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
    if addrs.is_empty() || !setup::on_path("addr2line") {
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
