//! What the commands need from the machine: checked before anything is
//! built, and installed when missing.
//!
//! Nothing here relies on rustup's automatic installation
//! (`RUSTUP_AUTO_INSTALL` may be `0`, and xtask runs the toolchain's cargo by
//! path, so the `targets` line of `rust-toolchain.toml` is never honoured):
//! each [`Need`] is probed directly (the toolchain's sysroot, `rustup
//! component list`, `PATH`) and, when missing, installed with rustup, cargo
//! or apt-get, saying so first. When that is impossible (no rustup, not
//! root) the command stops with one line naming the exact command to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util;

/// One thing a command needs from the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A Rust target's precompiled `core`/`std` for the pinned toolchain.
    Target(&'static str),
    /// The nightly toolchain with these components.
    Nightly(&'static [&'static str]),
    /// A cargo subcommand for nightly, installed with `cargo install --locked`.
    NightlyCargoTool {
        /// The subcommand (`cargo +nightly <subcommand>`).
        subcommand: &'static str,
        /// The crate that provides it.
        krate: &'static str,
    },
    /// A program from a Debian package.
    Program {
        /// The executable looked up on `PATH`.
        program: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
}

/// The reference kernel's target.
pub const KERNEL_TARGET: Need = Need::Target("i686-unknown-linux-gnu");
/// The target of `libmyos.a`, the library for C kernels: its precompiled
/// `core` uses no SSE.
pub const LIB_TARGET: Need = Need::Target("i586-unknown-linux-gnu");
/// `make`, which builds the example C kernel.
pub const MAKE: Need = Need::Program {
    program: "make",
    package: "make",
};
/// The emulator that boots the kernel.
pub const QEMU: Need = Need::Program {
    program: "qemu-system-i386",
    package: "qemu-system-x86",
};
/// The C compiler and linker for the C API's tests and kernel objects.
pub const C_TOOLS: [Need; 2] = [
    Need::Program {
        program: "gcc",
        package: "gcc",
    },
    Need::Program {
        program: "ld",
        package: "binutils",
    },
];
/// Nightly with Miri (Miri builds its own `std`, so it needs `rust-src`).
pub const NIGHTLY_MIRI: Need = Need::Nightly(&["miri", "rust-src"]);
/// Nightly alone, for libFuzzer.
pub const NIGHTLY: Need = Need::Nightly(&[]);
/// `cargo fuzz`.
pub const CARGO_FUZZ: Need = Need::NightlyCargoTool {
    subcommand: "fuzz",
    krate: "cargo-fuzz",
};

/// Everything `cargo xtask test` needs: what `run` needs, and the C
/// library's target and `make`; nightly, Miri and cargo-fuzz are installed
/// too when they can be (their stages fall back, loudly, when they can't).
pub const FOR_TEST: [Need; 6] = [
    KERNEL_TARGET,
    QEMU,
    C_TOOLS[0],
    C_TOOLS[1],
    LIB_TARGET,
    MAKE,
];
/// The optional needs of `cargo xtask test`.
pub const FOR_TEST_OPTIONAL: [Need; 3] = [NIGHTLY, NIGHTLY_MIRI, CARGO_FUZZ];

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::Target(t) => write!(f, "the Rust target {t}"),
            Need::Nightly([]) => f.write_str("the nightly toolchain"),
            Need::Nightly(c) => write!(f, "the nightly toolchain with {}", c.join(" and ")),
            Need::NightlyCargoTool { krate, .. } => write!(f, "{krate}"),
            Need::Program { program, .. } => write!(f, "{program}"),
        }
    }
}

impl Need {
    /// Whether the machine has it now.
    pub fn is_met(&self) -> bool {
        match *self {
            Need::Target(t) => sysroot().is_some_and(|s| target_installed(&s, t)),
            Need::Nightly(components) => {
                let host = host_triple().unwrap_or_default();
                nightly_components()
                    .is_some_and(|have| components.iter().all(|c| has_component(&have, c, &host)))
            }
            Need::NightlyCargoTool { subcommand, .. } => util::nightly_has(Some(subcommand)),
            Need::Program { program, .. } => on_path(program),
        }
    }

    /// The command that installs it, as the user would type it.
    pub fn install_command(&self) -> String {
        match self {
            Need::Program { package, .. } => {
                let sudo = if is_root() { "" } else { "sudo " };
                format!("{sudo}apt-get update && {sudo}apt-get install -y {package}")
            }
            other => other
                .installer()
                .map(|(prog, args)| format!("{prog} {}", args.join(" ")))
                .unwrap_or_else(|| format!("install {other}")),
        }
    }

    /// The program and arguments that install it from here, if this
    /// process can (rustup on `PATH`; apt-get as root).
    fn installer(&self) -> Option<(&'static str, Vec<String>)> {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match *self {
            Need::Target(t) => {
                let toolchain = active_toolchain()?;
                Some((
                    "rustup",
                    owned(&["target", "add", t, "--toolchain", &toolchain]),
                ))
            }
            Need::Nightly(components) => {
                let mut args = if nightly_components().is_some() {
                    owned(&["component", "add", "--toolchain", "nightly"])
                } else {
                    owned(&[
                        "toolchain",
                        "install",
                        "nightly",
                        "--profile",
                        "minimal",
                        "--no-self-update",
                    ])
                };
                for c in components {
                    if args[0] == "toolchain" {
                        args.push("--component".into());
                    }
                    args.push(c.to_string());
                }
                Some(("rustup", args))
            }
            Need::NightlyCargoTool { krate, .. } => {
                Some(("cargo", owned(&["install", "--locked", krate])))
            }
            Need::Program { package, .. } => (is_root() && on_path("apt-get"))
                .then(|| ("apt-get", owned(&["install", "-y", "-qq", package]))),
        }
    }

    /// Installs it if missing, saying what it installs; an error naming
    /// the exact command to run when it can't.
    pub fn ensure(&self) -> Result<(), String> {
        if self.is_met() {
            return Ok(());
        }
        let manual = self.install_command();
        let tools_missing = match self {
            Need::Target(_) | Need::Nightly(_) => !on_path("rustup"),
            _ => false,
        };
        let Some((prog, args)) = self.installer().filter(|_| !tools_missing) else {
            return Err(format!("{self} is missing; install it with: {manual}"));
        };
        eprintln!(
            "xtask: {self} is missing; installing it: {prog} {}",
            args.join(" ")
        );
        if let Need::Program { .. } = self {
            util::run(
                Command::new("apt-get")
                    .args(["update", "-qq"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )
            .map_err(|e| format!("{e}\nxtask: {self} is missing; install it with: {manual}"))?;
        }
        let mut cmd = Command::new(prog);
        cmd.args(&args).env("DEBIAN_FRONTEND", "noninteractive");
        util::run(&mut cmd)
            .map_err(|e| format!("{e}\nxtask: {self} is missing; install it with: {manual}"))?;
        if self.is_met() {
            Ok(())
        } else {
            Err(format!(
                "{self} is still missing after `{prog} {}`; install it with: {manual}",
                args.join(" ")
            ))
        }
    }
}

/// Ensures every need in turn (the first failure stops).
pub fn ensure(needs: &[Need]) -> Result<(), String> {
    needs.iter().try_for_each(Need::ensure)
}

/// Ensures the optional needs, printing a loud note (and going on) for
/// each that can't be met.
pub fn ensure_optional(needs: &[Need]) {
    for need in needs {
        if let Err(e) = need.ensure() {
            eprintln!("xtask: note: {e}");
        }
    }
}

/// `cargo xtask setup [--check]`: probes (and unless `check_only`,
/// installs) everything `run` and `test` need; prints one line each.
pub fn setup(check_only: bool) -> Result<(), String> {
    let mut missing = Vec::new();
    for (need, required) in FOR_TEST
        .iter()
        .map(|n| (n, true))
        .chain(FOR_TEST_OPTIONAL.iter().map(|n| (n, false)))
    {
        let result = if check_only {
            if need.is_met() {
                Ok(())
            } else {
                Err(format!(
                    "missing; install it with: {}",
                    need.install_command()
                ))
            }
        } else {
            need.ensure()
        };
        let kind = if required { "required" } else { "optional" };
        match result {
            Ok(()) => println!("ok       {need} ({kind})"),
            Err(e) => {
                println!("MISSING  {need} ({kind}): {e}");
                if required {
                    missing.push(need.to_string());
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing: {}", missing.join(", ")))
    }
}

/// The `rustc` of the toolchain that runs xtask: the one beside the cargo
/// that started it (`$CARGO`), else `rustc` on `PATH`.
fn rustc() -> PathBuf {
    let cargo = PathBuf::from(util::cargo());
    if cargo.is_absolute() {
        let rustc = cargo.with_file_name("rustc");
        if rustc.is_file() {
            return rustc;
        }
    }
    PathBuf::from("rustc")
}

/// The toolchain's sysroot (`rustc --print sysroot`).
pub fn sysroot() -> Option<PathBuf> {
    let out = Command::new(rustc())
        .args(["--print", "sysroot"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
}

/// Whether `sysroot` holds the precompiled `core` of `target`.
pub fn target_installed(sysroot: &Path, target: &str) -> bool {
    let lib = sysroot.join("lib/rustlib").join(target).join("lib");
    std::fs::read_dir(lib).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libcore-") && name.ends_with(".rlib")
        })
    })
}

/// The rustup name of the toolchain that runs xtask: `RUSTUP_TOOLCHAIN`
/// (rustup sets it for the programs it starts), else the sysroot's
/// directory name (`stable-x86_64-unknown-linux-gnu`).
fn active_toolchain() -> Option<String> {
    std::env::var("RUSTUP_TOOLCHAIN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| Some(sysroot()?.file_name()?.to_string_lossy().into_owned()))
}

/// The installed components of nightly (`rustup component list
/// --installed`), or `None` when nightly is not installed.
fn nightly_components() -> Option<Vec<String>> {
    let out = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .collect()
    })
}

/// Whether `installed` (rustup's component lines: `NAME-HOST`, or `NAME`
/// for host-independent ones such as `rust-src`) lists `component`.
pub fn has_component(installed: &[String], component: &str, host: &str) -> bool {
    let with_host = format!("{component}-{host}");
    installed.iter().any(|l| *l == component || *l == with_host)
}

/// The host's target triple (`rustc -vV`).
pub fn host_triple() -> Option<String> {
    let out = Command::new(rustc()).arg("-vV").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
}

/// True when `program` is found on `PATH`.
pub fn on_path(program: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake sysroot with the given files under `lib/rustlib/`.
    fn fake_sysroot(name: &str, files: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-sysroot-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for f in files {
            let path = dir.join("lib/rustlib").join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        dir
    }

    #[test]
    fn a_target_counts_as_installed_only_with_its_core() {
        let t = "i686-unknown-linux-gnu";
        let with = fake_sysroot("with", &[&format!("{t}/lib/libcore-0123abcd.rlib")]);
        assert!(target_installed(&with, t));
        assert!(!target_installed(&with, "i586-unknown-linux-gnu"));
        // An empty directory (a half-removed target) is not an installed target.
        let empty = fake_sysroot("empty", &[&format!("{t}/lib/libstd-0123abcd.rlib")]);
        assert!(!target_installed(&empty, t));
        let none = fake_sysroot("none", &[]);
        assert!(!target_installed(&none, t));
        for d in [with, empty, none] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn the_running_toolchain_has_its_host_target() {
        let sysroot = sysroot().expect("rustc --print sysroot works");
        assert!(target_installed(&sysroot, "x86_64-unknown-linux-gnu"));
    }

    #[test]
    fn components_are_matched_by_name_not_prefix() {
        let installed: Vec<String> = [
            "cargo-x86_64-unknown-linux-gnu",
            "miri-x86_64-unknown-linux-gnu",
            "rust-src",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let host = "x86_64-unknown-linux-gnu";
        assert!(has_component(&installed, "miri", host));
        assert!(has_component(&installed, "rust-src", host));
        assert!(has_component(&installed, "cargo", host));
        assert!(!has_component(&installed, "rust", host));
        assert!(!has_component(&installed, "clippy", host));
    }

    #[test]
    fn a_missing_program_names_its_package_in_the_command() {
        let need = Need::Program {
            program: "no-such-program-xtask",
            package: "no-such-package",
        };
        assert!(!need.is_met());
        assert!(need.install_command().contains("no-such-package"));
    }

    #[test]
    fn install_commands_name_the_toolchain_and_target() {
        let cmd = Need::Target("i586-unknown-linux-gnu").install_command();
        assert!(
            cmd.starts_with("rustup target add i586-unknown-linux-gnu --toolchain "),
            "{cmd}"
        );
        let cmd = CARGO_FUZZ.install_command();
        assert_eq!(cmd, "cargo install --locked cargo-fuzz");
    }
}
