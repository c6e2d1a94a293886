//! Links the kernel with its own script and builds the user programs.
//!
//! Every `user/*.c` is compiled freestanding for i386 with
//! `gcc -m32 -ffreestanding -fno-pic`, linked statically at
//! [`USER_TEXT`], and embedded in the kernel image (see `src/programs.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where user programs are linked (inside user space, above the mmap floor).
const USER_TEXT: &str = "0x08000000";

fn main() {
    let dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rustc-link-arg=-T{}", dir.join("link.ld").display());
    println!("cargo:rustc-link-arg=--no-pie");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");

    // `cargo xtask run --c FILE.c` compiles FILE.c into one relocatable
    // object (with the C runtime) and names it here: it is linked into the
    // kernel, which calls its `int c_main(void)` in `mode=c`.
    println!("cargo:rerun-if-env-changed=MYOS_KERNEL_C_OBJ");
    println!("cargo::rustc-check-cfg=cfg(myos_c_main)");
    if let Some(obj) = std::env::var_os("MYOS_KERNEL_C_OBJ").filter(|o| !o.is_empty()) {
        let obj = PathBuf::from(obj);
        println!("cargo:rerun-if-changed={}", obj.display());
        println!("cargo:rustc-link-arg={}", obj.display());
        println!("cargo:rustc-cfg=myos_c_main");
    }

    let user = dir.join("../user");
    println!("cargo:rerun-if-changed={}", user.display());
    println!(
        "cargo:rerun-if-changed={}",
        user.join("lib/myos.h").display()
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&user)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    sources.retain(|p| p.extension().is_some_and(|e| e == "c"));
    sources.sort();

    let mut table = String::from("/// The user programs built into the image: (name, ELF file).\npub static PROGRAMS: &[(&str, &[u8])] = &[\n");
    for src in &sources {
        println!("cargo:rerun-if-changed={}", src.display());
        let name = src
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("program")
            .to_string();
        let elf = out.join(format!("{name}.elf"));
        compile(src, &elf);
        let _ = writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            elf.display().to_string()
        );
    }
    table.push_str("];\n");
    std::fs::write(out.join("programs.rs"), table).expect("write programs.rs");
}

/// Compiles and links one freestanding user program.
fn compile(src: &Path, elf: &Path) {
    let status = Command::new("gcc")
        .args([
            "-m32",
            "-march=i686",
            "-msse2",
            "-mfpmath=sse",
            "-ffreestanding",
            "-fno-pic",
            "-fno-pie",
            "-no-pie",
            "-nostdlib",
            "-static",
            "-O2",
            "-fno-omit-frame-pointer",
            "-fno-asynchronous-unwind-tables",
            "-fno-stack-protector",
            "-fno-builtin",
            "-Wall",
            "-Werror",
            "-Wl,--build-id=none",
            "-Wl,-z,noexecstack",
            "-Wl,-e,_start",
        ])
        .arg(format!("-Wl,-Ttext={USER_TEXT}"))
        .arg(src)
        .arg("-o")
        .arg(elf)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("gcc failed ({s}) on {}", src.display()),
        Err(e) => panic!(
            "cannot run gcc to build the user programs ({e}); install it with: apt-get install -y gcc"
        ),
    }
}
