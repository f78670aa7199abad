"""Compile kernels/*.cu with NVRTC (ahead of time, no GPU needed).

    kernels.py build   write kernels/ptx/NAME.ptx for compute_70 (embedded in the binary)
    kernels.py check   compile every kernel for compute_70 and compute_90, fail on any
                       error or warning, check that kernels/ptx/ is up to date, and
                       assemble with ptxas for sm_70 and sm_90 (registers, spills)

A source with a line "// arch: compute_XX" is built and checked for that
architecture alone (wgmma_probe.cu: compute_90a, whose wgmma no other target has).

NVRTC and ptxas come from the pinned NVIDIA wheels that scripts/build-kernels
installs; their paths are given by the NVRTC and PTXAS environment variables.
"""

import ctypes
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
PTX_DIR = KERNELS / "ptx"
# The embedded PTX: compute_70 runs on V100 and, compiled by the driver at
# load time, on every later GPU.
EMBEDDED = "compute_70"
CHECKED = ["compute_70", "compute_90"]
# NVRTC's defaults, spelled out: IEEE division and square root, no flush of
# denormals, so the device's arithmetic matches the host's.
OPTIONS = ["-std=c++17", "--ftz=false", "--prec-div=true", "--prec-sqrt=true"]


def nvrtc():
    lib = ctypes.CDLL(os.environ["NVRTC"])
    for name in ["nvrtcGetErrorString"]:
        getattr(lib, name).restype = ctypes.c_char_p
    return lib


def compile_ptx(lib, path, arch):
    """PTX text and the compiler's log (warnings) for one source file."""
    src = path.read_bytes()
    prog = ctypes.c_void_p()
    # The shared headers (kernels/*.cuh), given to NVRTC by name.
    hdrs = headers()
    contents = (ctypes.c_char_p * len(hdrs))(*[h.read_bytes() for h in hdrs])
    names = (ctypes.c_char_p * len(hdrs))(*[h.name.encode() for h in hdrs])
    check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), src, path.name.encode(),
                                      len(hdrs), contents, names))
    opts = [o.encode() for o in OPTIONS + [f"--gpu-architecture={arch}"]]
    argv = (ctypes.c_char_p * len(opts))(*opts)
    status = lib.nvrtcCompileProgram(prog, len(opts), argv)
    size = ctypes.c_size_t()
    check(lib, lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)))
    log = ctypes.create_string_buffer(size.value)
    check(lib, lib.nvrtcGetProgramLog(prog, log))
    log = log.value.decode().strip()
    if status != 0:
        sys.exit(f"{path.name} ({arch}): {lib.nvrtcGetErrorString(status).decode()}\n{log}")
    check(lib, lib.nvrtcGetPTXSize(prog, ctypes.byref(size)))
    ptx = ctypes.create_string_buffer(size.value)
    check(lib, lib.nvrtcGetPTX(prog, ptx))
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value.decode(), log


def check(lib, status):
    if status != 0:
        sys.exit(f"NVRTC: {lib.nvrtcGetErrorString(status).decode()}")


def sources():
    return sorted(KERNELS.glob("*.cu"))


def arches(cu):
    """(the architecture its PTX is built for, those it is checked for)."""
    m = re.search(r"^// arch: (compute_\w+)$", cu.read_text(), re.M)
    return (m.group(1), [m.group(1)]) if m else (EMBEDDED, CHECKED)


def headers():
    return sorted(KERNELS.glob("*.cuh"))


def build():
    lib = nvrtc()
    PTX_DIR.mkdir(exist_ok=True)
    for cu in sources():
        ptx, log = compile_ptx(lib, cu, arches(cu)[0])
        if log:
            sys.exit(f"{cu.name}: warnings:\n{log}")
        out = PTX_DIR / (cu.stem + ".ptx")
        out.write_text(ptx)
        print(f"{out.relative_to(ROOT)}: {ptx_version(ptx)}")


def ptx_version(ptx):
    version = re.search(r"^\.version (\S+)", ptx, re.M).group(1)
    target = re.search(r"^\.target (\S+)", ptx, re.M).group(1)
    return f"PTX ISA {version}, target {target}"


def check_all():
    lib = nvrtc()
    failed = False
    for cu in sources():
        embedded, checked = arches(cu)
        for arch in checked:
            ptx, log = compile_ptx(lib, cu, arch)
            if log:
                print(f"FAIL {cu.name} {arch}: warnings:\n{log}")
                failed = True
                continue
            sm = arch.replace("compute_", "sm_")
            with tempfile.TemporaryDirectory() as d:
                p = pathlib.Path(d) / "k.ptx"
                p.write_text(ptx)
                r = subprocess.run(
                    [os.environ["PTXAS"], f"-arch={sm}", "-v", "--warning-as-error",
                     "-o", str(pathlib.Path(d) / "k.cubin"), str(p)],
                    capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {cu.name} {sm}: ptxas:\n{r.stderr}")
                failed = True
                continue
            print(f"ok   {cu.name} {arch} ({ptx_version(ptx)})")
            for line in resources(r.stderr):
                print(f"       {line}")
            if arch == embedded:
                committed = PTX_DIR / (cu.stem + ".ptx")
                if not committed.exists() or committed.read_text() != ptx:
                    print(f"FAIL {committed.relative_to(ROOT)} is not what {cu.name} compiles "
                          "to: run scripts/build-kernels and commit the result")
                    failed = True
    stale = {p.stem for p in PTX_DIR.glob("*.ptx")} - {c.stem for c in sources()}
    for s in sorted(stale):
        print(f"FAIL kernels/ptx/{s}.ptx has no source")
        failed = True
    if failed:
        sys.exit(1)


def resources(ptxas_log):
    """ptxas -v lines, one per kernel: registers, spills, shared memory."""
    out, name = [], None
    for line in ptxas_log.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            name = m.group(1)
        m = re.search(r"(\d+ bytes stack frame, \d+ bytes spill stores, \d+ bytes spill loads)", line)
        if m and name:
            spill = m.group(1)
        m = re.search(r"Used (\d+ registers.*)", line)
        if m and name:
            out.append(f"{name}: {m.group(1)}; {spill}")
            name = None
    return out


if __name__ == "__main__":
    {"build": build, "check": check_all}[sys.argv[1]]()
