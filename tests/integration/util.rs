//! Helpers shared by the integration tests.

use std::ffi::OsStr;
use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Band-limited random data: white noise smoothed by a short moving sum.
pub fn noise(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let white: Vec<f32> = (0..n + 4).map(|_| rng.gen_range(-1.0..1.0)).collect();
    (0..n)
        .map(|i| white[i..i + 4].iter().sum::<f32>() + 100.0)
        .collect()
}

/// The shared folder (real data and references): `TMATCH_SHARED` where
/// set (the GPU check kit carries its own copy), else beside the
/// repository, if present.
pub fn shared() -> Option<PathBuf> {
    let p = std::env::var_os("TMATCH_SHARED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from,
    );
    p.join("reference").is_dir().then_some(p)
}

/// Announce a skipped test where `cargo test` shows it.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

/// Skip a test that needs a GPU or its data, except on a machine where the
/// GPU tests must run (`TMATCH_REQUIRE_GPU=1`, set by the GPU check kit):
/// there a skip is a failure.
pub fn skip_gpu_test(test: &str, why: &str) {
    if std::env::var("TMATCH_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("{test}: {why}, and TMATCH_REQUIRE_GPU=1");
    }
    skip(test, why);
}

/// The tmatch binary: `TMATCH_BIN` where set (the test binary runs away
/// from its build, as in the GPU check kit), else the one cargo built.
pub fn tmatch_bin() -> PathBuf {
    std::env::var_os("TMATCH_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_tmatch").into(), PathBuf::from)
}

pub fn tmatch<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(tmatch_bin())
        .args(args)
        .output()
        .expect("run tmatch")
}

/// Run tmatch and require success; returns stderr.
pub fn tmatch_ok<S: AsRef<OsStr> + Debug>(args: &[S]) -> String {
    let out = tmatch(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "tmatch {args:?} failed:\n{err}");
    err
}

/// Run tmatch and require an error (exit 1); returns stderr.
pub fn tmatch_fails<S: AsRef<OsStr> + Debug>(args: &[S]) -> String {
    let out = tmatch(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "tmatch {args:?}:\n{err}");
    err
}

/// The generated sample archive, made once per test run in a temporary
/// folder (the generator is what made data-samples/).
pub fn samples() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        tmatch::synth::generate(&tmatch::synth::Spec::samples(), d.path()).unwrap();
        d
    })
    .path()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Copy a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Templates from the sample catalog and archive, in `dir`; returns the
/// file's path.
pub fn build_templates(dir: &Path, extra: &[&str]) -> String {
    let t = dir.join("t.h5");
    let d = samples();
    let (picks, events, archive) = (d.join("picks.csv"), d.join("events.csv"), d.join("archive"));
    let mut args = vec![
        "templates",
        "build",
        "--picks",
        s(&picks),
        "--events",
        s(&events),
        "--archive",
        s(&archive),
        "-o",
        s(&t),
        "--lowcut",
        "2",
        "--highcut",
        "8",
    ];
    args.extend_from_slice(extra);
    tmatch_ok(&args);
    s(&t).to_string()
}

/// A `tmatch detect` command line: templates, archive, days and output,
/// then whatever else the test adds.
#[derive(Clone)]
pub struct Detect {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Detect {
    pub fn new(templates: &str, archive: &str, days: &str, out: &str) -> Detect {
        let args = [
            "detect",
            "--templates",
            templates,
            "--archive",
            archive,
            "--days",
            days,
            "-o",
            out,
        ];
        Detect {
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
        }
    }

    /// Set an environment variable for the run.
    pub fn env(mut self, key: &str, value: &str) -> Detect {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Detect {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// The whole argument list, for tests that start the process themselves.
    pub fn into_args(self) -> Vec<String> {
        self.args
    }

    pub fn run(&self) -> Output {
        Command::new(tmatch_bin())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run tmatch")
    }

    /// Run and require success; returns stderr.
    pub fn run_ok(&self) -> String {
        let out = self.run();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "tmatch {:?} failed:\n{err}",
            self.args
        );
        err
    }

    /// Run and require an error (exit 1); returns stderr.
    pub fn run_fails(&self) -> String {
        let out = self.run();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "tmatch {:?}:\n{err}", self.args);
        err
    }
}
