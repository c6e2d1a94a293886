//! The C API (`include/myos/memory.h`, crate `myos-capi`): the host static
//! library, the C tests, and C objects for the kernel.
//!
//! - `cargo xtask capi lib`: builds `libmyos_capi.a` for the host and prints
//!   its path and the link line;
//! - `cargo xtask capi test`: builds it, compiles every `tests/c/*.c` with
//!   `cc -DMYOS_HOSTED`, links and runs each, and prints the total as
//!   `N passed, M failed` (part of `cargo xtask test`);
//! - (`cargo xtask capi kernel-test`, which runs every `tests/c/*.c` in
//!   the reference kernel, is in `suite.rs`; also part of `cargo xtask
//!   test`);
//! - `cargo xtask capi kernel-obj FILE.c`: compiles `FILE.c` freestanding
//!   for i686 with the C runtime (`kprintf`) into one relocatable object and
//!   prints its path ([`kernel_object`], for the kernel's `--c`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{setup, util};

/// Libraries a Rust `staticlib` needs from the host's C library.
const HOST_LIBS: [&str; 5] = ["-lpthread", "-ldl", "-lm", "-lrt", "-lgcc_s"];

/// Where xtask puts C build products.
fn c_out_dir(what: &str) -> Result<PathBuf, String> {
    let dir = util::target_dir().join("capi").join(what);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// `cargo xtask capi lib`: builds the host library, prints its path and
/// the link line.
pub fn print_lib() -> Result<(), String> {
    let lib = host_lib()?;
    println!("{}", lib.display());
    println!(
        "link: cc -DMYOS_HOSTED -I{}/include YOUR.c {}/crates/capi/c/kprintf.c {} {}",
        util::root().display(),
        util::root().display(),
        lib.display(),
        HOST_LIBS.join(" ")
    );
    Ok(())
}

/// Builds the host static library (`myos-capi` with feature `hosted`,
/// release) and returns its path.
pub fn host_lib() -> Result<PathBuf, String> {
    util::run(Command::new(util::cargo()).current_dir(util::root()).args([
        "rustc",
        "-p",
        "myos-capi",
        "--lib",
        "--release",
        "--features",
        "hosted",
        "--crate-type",
        "staticlib",
    ]))?;
    let lib = util::target_dir().join("release").join("libmyos_capi.a");
    if lib.is_file() {
        Ok(lib)
    } else {
        Err(format!("the build produced no {}", lib.display()))
    }
}

/// The C tests, `tests/c/*.c` (sorted).
pub fn test_sources() -> Result<Vec<PathBuf>, String> {
    let dir = util::root().join("tests").join("c");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    files.sort();
    Ok(files)
}

/// Compiles and links one host C test against `lib`.
fn build_host_test(src: &Path, lib: &Path, out: &Path) -> Result<(), String> {
    let root = util::root();
    util::run(
        Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args([
                "-std=c11",
                "-O1",
                "-g",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-DMYOS_HOSTED",
            ])
            .arg(format!("-I{}", root.join("include").display()))
            .arg(format!("-I{}", root.join("tests/c").display()))
            .arg(format!("-I{}", root.display()))
            .arg(src)
            .arg(root.join("crates/capi/c/kprintf.c"))
            .arg(lib)
            .args(HOST_LIBS)
            .arg("-o")
            .arg(out),
    )
}

/// The `N passed, M failed` line of a test's output.
fn summary(output: &str) -> Option<(u32, u32)> {
    let line = output.lines().rev().find(|l| l.contains(" passed, "))?;
    let mut words = line.split_whitespace();
    let passed = words.next()?.parse().ok()?;
    let _ = words.next();
    let failed = words.next()?.parse().ok()?;
    Some((passed, failed))
}

/// Builds the host library, then compiles, links and runs every C test.
pub fn host_tests() -> Result<(), String> {
    setup::ensure(&setup::C_TOOLS)?;
    let lib = host_lib()?;
    let out_dir = c_out_dir("tests")?;
    let (mut passed, mut failed) = (0, 0);
    let mut broken = Vec::new();
    for src in test_sources()? {
        let name = src
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let exe = out_dir.join(&name);
        build_host_test(&src, &lib, &exe)?;
        eprintln!("$ {}", exe.display());
        let out = Command::new(&exe)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        match summary(&stdout) {
            Some((p, f)) => {
                passed += p;
                failed += f;
                if f > 0 || !out.status.success() {
                    broken.push(format!("{name} ({f} failed, {})", out.status));
                }
            }
            None => {
                failed += 1;
                broken.push(format!("{name} (no summary line, {})", out.status));
            }
        }
    }
    println!("C API tests: {passed} passed, {failed} failed");
    if broken.is_empty() {
        Ok(())
    } else {
        Err(format!("C API tests failed: {}", broken.join(", ")))
    }
}

/// Compiles `file` (which defines `int c_main(void)`) freestanding for i686
/// together with the C runtime of the API (`kprintf`), into one relocatable
/// ELF32 object the kernel links; returns its path. Flags:
/// `gcc -m32 -ffreestanding -fno-pic -fno-stack-protector -nostdlib
/// -mgeneral-regs-only -fno-asynchronous-unwind-tables -Iinclude/myos/libc
/// -Iinclude -c`, then `ld -m elf_i386 -r`.
pub fn kernel_object(file: &Path) -> Result<PathBuf, String> {
    let root = util::root();
    let file = if file.is_absolute() {
        file.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join(file)
    };
    if !file.is_file() {
        return Err(format!("no such C file: {}", file.display()));
    }
    let out_dir = c_out_dir("kernel")?;
    let stem = file
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let compile = |src: &Path, obj: &Path| {
        util::run(
            Command::new("gcc")
                .args([
                    "-m32",
                    "-ffreestanding",
                    "-fno-pic",
                    "-fno-stack-protector",
                    "-nostdlib",
                    "-mgeneral-regs-only",
                    "-fno-asynchronous-unwind-tables",
                    "-fno-unwind-tables",
                    "-O2",
                    "-std=c11",
                    "-Wall",
                ])
                .arg(format!("-I{}", root.join("include/myos/libc").display()))
                .arg(format!("-I{}", root.join("include").display()))
                .arg("-c")
                .arg(src)
                .arg("-o")
                .arg(obj),
        )
    };
    let user_obj = out_dir.join(format!("{stem}.user.o"));
    let rt_obj = out_dir.join(format!("{stem}.kprintf.o"));
    compile(&file, &user_obj)?;
    compile(&root.join("crates/capi/c/kprintf.c"), &rt_obj)?;
    let obj = out_dir.join(format!("{stem}.o"));
    util::run(
        Command::new("ld")
            .args(["-m", "elf_i386", "-r"])
            .arg(&user_obj)
            .arg(&rt_obj)
            .arg("-o")
            .arg(&obj),
    )?;
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summary_line_is_parsed() {
        assert_eq!(summary("PASS x\n3 passed, 1 failed\n"), Some((3, 1)));
        assert_eq!(summary("nothing"), None);
    }
}
