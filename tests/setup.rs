//! The set-up script's libclang detection (scripts/ensure-deps), run against fixed folder
//! layouts. A fresh Debian image ships libclang-cpp.so.N (the C++ interface) but not
//! libclang: a loose `libclang*.so*` check took one for the other, skipped installing
//! libclang-dev, and the README's first command then failed twenty minutes into the build,
//! in bindgen. These tests keep the check honest.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-deps")
}

/// Runs `ensure-deps --check` with the libclang search path replaced by `dirs`.
fn check(dirs: &[&Path]) -> (bool, String) {
    let joined = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let out = Command::new("bash")
        .arg(script())
        .arg("--check")
        .env("SLUICE_LIBCLANG_DIRS", joined)
        .output()
        .expect("run scripts/ensure-deps");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A real libclang on this machine (the build needs one, so the machine running the tests
/// has it), found by the same names bindgen loads.
fn real_libclang() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("llvm-"))
        })
        .map(|p| p.join("lib"))
        .collect();
    dirs.push(PathBuf::from("/usr/lib/x86_64-linux-gnu"));
    dirs.push(PathBuf::from("/usr/lib/aarch64-linux-gnu"));
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if (name.starts_with("libclang.so") || name.starts_with("libclang-"))
                && !name.starts_with("libclang-cpp")
                && name.contains(".so")
            {
                return Some(entry.path());
            }
        }
    }
    None
}

#[test]
fn a_libclang_cpp_only_layout_is_missing_libclang() {
    let dir = tempfile::tempdir().unwrap();
    // The name is all that can mislead; its content is never loaded as libclang.
    std::fs::write(dir.path().join("libclang-cpp.so.14"), b"not libclang").unwrap();
    std::fs::write(dir.path().join("libclang-cpp.so"), b"not libclang").unwrap();
    let (ok, stderr) = check(&[dir.path()]);
    assert!(!ok, "a libclang-cpp-only folder passed the check");
    assert!(stderr.contains("libclang-dev"), "{stderr}");
}

#[test]
fn a_file_named_like_libclang_that_is_not_a_library_is_missing_libclang() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("libclang.so.1"), b"not a shared library").unwrap();
    let (ok, _) = check(&[dir.path()]);
    assert!(!ok, "a non-library named libclang.so.1 passed the check");
}

#[test]
fn an_empty_layout_is_missing_libclang() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _) = check(&[dir.path()]);
    assert!(!ok);
}

#[test]
fn a_real_libclang_passes_whatever_its_versioned_name() {
    let Some(lib) = real_libclang() else {
        panic!("no libclang on this machine, yet the build needed one");
    };
    // Debian's libclang-dev gives libclang-14.so.14.0.6 and friends; other layouts have only
    // libclang.so.1. Both are what bindgen loads.
    for name in ["libclang.so.1", "libclang-14.so.14"] {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&lib, dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join("libclang-cpp.so.14"), b"decoy").unwrap();
        let (ok, stderr) = check(&[dir.path()]);
        assert!(ok, "{name} -> {}: {stderr}", lib.display());
    }
}
