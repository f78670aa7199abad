//! Memory: how much this process may still use — the room left under its
//! cgroup's limit (a Slurm job's, a container's) or, where that is larger
//! or absent, the machine's available memory — and how much it has used
//! at its peak. Linux only; elsewhere both are unknown.

use std::path::Path;

/// Bytes this process may still use, or `None` where that cannot be read.
pub fn available() -> Option<u64> {
    let machine = read("/proc/meminfo").and_then(|s| meminfo_available(&s));
    let cgroup =
        read("/proc/self/cgroup").and_then(|s| cgroup_room(&s, Path::new("/sys/fs/cgroup")));
    match (machine, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Peak resident memory of this process in MiB, for sizing batch jobs'
/// memory requests.
pub fn peak_mib() -> Option<u64> {
    let status = read("/proc/self/status")?;
    Some(kib_field(&status, "VmHWM:")? / 1024)
}

/// Let the memory the process frees serve its next allocations rather
/// than come back as fresh pages. A day's channels pass through buffers of
/// tens of megabytes (the merged records, the filter's copies, the
/// normalization); glibc by default gives each such buffer a mapping of
/// its own, or a per-thread heap it unmaps once empty, and every fresh page
/// costs a page fault when first written — on the generated day 1.72 M
/// faults, most of the run's system time (benches/RESULTS.md). One arena
/// that does not map large blocks apart reuses the freed ones in place.
/// Its top is still trimmed as usual: keeping every freed page as well
/// (no trimming) saved a little more but let fragmentation raise the peak
/// with every day of a long run (37 MiB after 3 days, 50 after 30, in
/// `memory_does_not_grow_with_the_number_of_days`). Call before any thread
/// starts; glibc only (elsewhere there is nothing to set).
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's parameters; called
    // before other threads exist, it races with no allocation.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A `Name:   123 kB` line of /proc/meminfo or /proc/self/status, in KiB.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn meminfo_available(meminfo: &str) -> Option<u64> {
    Some(kib_field(meminfo, "MemAvailable:")? * 1024)
}

/// Limit less usage of the memory cgroup named in `proc_cgroup` (the text
/// of /proc/self/cgroup) under `root`: cgroup v2 (`0::/path`, memory.max and
/// memory.current) or v1 (`N:…memory…:/path`, memory.limit_in_bytes and
/// memory.usage_in_bytes), at that path or, as a container sees its own
/// cgroup, at the hierarchy's root. `None` without a limit.
fn cgroup_room(proc_cgroup: &str, root: &Path) -> Option<u64> {
    let number =
        |dir: &Path, file: &str| -> Option<u64> { read(dir.join(file))?.trim().parse().ok() };
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let (base, limit, usage) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max", "memory.current")
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                root.join("memory"),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        } else {
            return None;
        };
        [base.join(path.trim_start_matches('/')), base]
            .iter()
            .find_map(|dir| {
                // "max" (v2) does not parse: no limit. v1 writes a huge number.
                let limit = number(dir, limit).filter(|&l| l < 1 << 60)?;
                Some(limit.saturating_sub(number(dir, usage).unwrap_or(0)))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_status_fields() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2000000 kB\n";
        assert_eq!(meminfo_available(meminfo), Some(2_048_000_000));
        assert_eq!(meminfo_available("MemTotal: 5 kB\n"), None);
        assert_eq!(kib_field("VmHWM:\t  4096 kB\n", "VmHWM:"), Some(4096));
    }

    #[test]
    fn cgroup_limits_v2_and_v1() {
        let root = tempfile::tempdir().unwrap();
        let v2 = root.path().join("job");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("memory.max"), "4294967296\n").unwrap();
        std::fs::write(v2.join("memory.current"), "294967296\n").unwrap();
        assert_eq!(cgroup_room("0::/job\n", root.path()), Some(4_000_000_000));
        std::fs::write(v2.join("memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_room("0::/job\n", root.path()), None);

        let v1 = root.path().join("memory/slurm/job_7");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("memory.limit_in_bytes"), "2000\n").unwrap();
        std::fs::write(v1.join("memory.usage_in_bytes"), "500\n").unwrap();
        let text = "5:cpuset:/slurm/job_7\n4:memory:/slurm/job_7\n";
        assert_eq!(cgroup_room(text, root.path()), Some(1500));
        std::fs::write(v1.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(cgroup_room(text, root.path()), None);
        assert_eq!(cgroup_room("garbage\n", root.path()), None);
        // A container's view: the named path is absent, its own cgroup is
        // the hierarchy's root.
        std::fs::write(root.path().join("memory.max"), "1000\n").unwrap();
        assert_eq!(cgroup_room("0::/elsewhere\n", root.path()), Some(1000));
    }
}
