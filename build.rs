//! Records the commit the binary is built from (`rollbridge --version`).
//! `ROLLBRIDGE_COMMIT` in the environment wins (release scripts, builds
//! outside a git checkout); else `git rev-parse`; else "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=ROLLBRIDGE_COMMIT");
    let commit = std::env::var("ROLLBRIDGE_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            // Rebuild when HEAD moves: HEAD itself and the branch it names.
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                println!("cargo:rerun-if-changed={dir}/HEAD");
            }
            if let (Some(common), Some(head_ref)) = (
                git(&["rev-parse", "--git-common-dir"]),
                git(&["symbolic-ref", "-q", "HEAD"]),
            ) {
                println!("cargo:rerun-if-changed={common}/{head_ref}");
                println!("cargo:rerun-if-changed={common}/packed-refs");
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ROLLBRIDGE_COMMIT={commit}");
}
