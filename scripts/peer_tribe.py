"""EQcorrscan 0.5.2 reference outputs for "coming from EQcorrscan": template
sets made by `Tribe.construct`, written by `Tribe.write`, and the detections
`Tribe.detect` makes with them, on the real Hi-net data
(../shared/data/hinet-2012-09-02, 2000 s of 21 channels at 100 Hz).

What it runs, for each setting in SETTINGS (band, sampling rate, windows):
  1. Tribe().construct(method="from_meta_file", st=<the continuous data>,
     meta_file=catalog/templates_quakeml.xml, ...): EQcorrscan processes the
     data (detrend, resample, band-pass) and cuts one window per pick
     according to `swin` ('S': S picks on horizontals, 'P': P picks on the
     picked channel, 'all': every pick of the channel, so P and S give two
     traces of one seed id).
  2. tribe.write(<REFDIR>/<setting>/tribe.tgz) - OUTSIDE the repository (the
     files hold waveform cuts of the shared data), plus params.json beside it.
  3. tribe.detect(stream=<the continuous data>, threshold=8, 'MAD',
     trig_int=6, parallel_process=False) -> <setting>_detections.csv.
     The tribe is then read back from tribe.tgz (Tribe().read) and detect is
     run again; the script asserts the same detections (the import path).
  4. <setting>_templates.csv: every template trace with its seed id, start,
     npts, the pick it was cut around and the sample index of its start in
     the processed data; the script checks the start rule (first sample at or
     after pick - prepick) and that the trace equals the processed samples.
  Also writes run_info.json (versions, timings, counts).

How to run (EQcorrscan venv, see ../shared/peers/README.md):
    ~/.venvs/eqc/bin/python scripts/peer_tribe.py [OUT_DIR]
OUT_DIR defaults to tests/reference/hinet-tribe; SEIS_DATA overrides the
data folder (default ../shared/data/hinet-2012-09-02 beside the repo) and
TRIBE_DIR the folder for the tribe files (default
../shared/reference/hinet-tribe); TRIBES_ONLY=1 only makes the tribes (the
tests call it so, into target/peer-tribes, when they are missing). tests/reference/hinet-tribe/README.md
describes the files and what EQcorrscan does.
"""
import csv
import json
import math
import os
import sys
import tempfile
import time
import warnings

import numpy as np
from obspy import UTCDateTime, read, read_events

import eqcorrscan
import obspy
import scipy
from eqcorrscan.core.match_filter import Tribe
from eqcorrscan.utils.pre_processing import multi_process

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATA = os.path.abspath(os.environ.get("SEIS_DATA", os.path.join(
    REPO, "..", "shared", "data", "hinet-2012-09-02")))
TRIBES = os.path.abspath(os.environ.get("TRIBE_DIR", os.path.join(
    os.path.dirname(DATA), "..", "reference", "hinet-tribe")))
OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    REPO, "tests", "reference", "hinet-tribe"))
# The tribe files hold waveforms: never in the repository's tracked files
# (target/, which git ignores, is where the tests keep them).
assert not TRIBES.startswith(os.path.abspath(REPO) + os.sep) or \
    TRIBES.startswith(os.path.join(os.path.abspath(REPO), "target") + os.sep), \
    "tribe files hold waveforms: keep them out of the repository"
# TRIBES_ONLY=1: construct and write the tribes only (what the tests need
# when the tribe files are missing: seconds instead of a minute).
TRIBES_ONLY = os.environ.get("TRIBES_ONLY") == "1"
MAD, TRIG_INT = 8.0, 6.0

COMMON = dict(filt_order=4, length=4.0, prepick=0.5)
SETTINGS = {
    # name: construct arguments (besides COMMON)
    "A": dict(lowcut=3.0, highcut=12.0, samp_rate=40.0, swin="S",
              process_len=2000),
    "B": dict(lowcut=3.0, highcut=12.0, samp_rate=50.0, swin="P",
              process_len=2000),
    "C": dict(lowcut=2.0, highcut=8.0, samp_rate=25.0, swin="all",
              process_len=2000),
    # A as first asked (process_len 86400 on 2000 s of data): the templates
    # are processed from all 200001 samples, the detection from 200000.
    "D": dict(lowcut=3.0, highcut=12.0, samp_rate=40.0, swin="S",
              process_len=86400),
}

os.makedirs(OUT, exist_ok=True)
os.makedirs(TRIBES, exist_ok=True)
T0 = time.perf_counter()
info = {"eqcorrscan": eqcorrscan.__version__, "obspy": obspy.__version__,
        "numpy": np.__version__, "scipy": scipy.__version__,
        "python": sys.version.split()[0],
        "data": os.path.relpath(DATA, REPO),
        "tribes": os.path.relpath(TRIBES, REPO),
        "detect": dict(threshold=MAD, threshold_type="MAD",
                       trig_int=TRIG_INT, parallel_process=False,
                       xcorr_func="fftw", concurrency="concurrent", cores=1),
        "settings": {}}


def ts(t):
    return str(UTCDateTime(t))  # ISO, microseconds, 'Z'


def write_csv(name, header, rows):
    with open(os.path.join(OUT, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    print(f"{name}: {len(rows)} rows")
    return len(rows)


def load_stream():
    st = read(os.path.join(DATA, "continuous", "*.mseed"))
    st.merge()
    st.sort(keys=["network", "station", "location", "channel"])
    return st


def det_rows(party):
    rows = []
    for fam in party:
        for d in fam:
            rows.append((d.template_name, ts(d.detect_time),
                         "%.6f" % d.detect_val, d.no_chans,
                         "%.6f" % d.threshold,
                         ";".join(f"{s}.{c}" for s, c in d.chans)))
    rows.sort(key=lambda r: (r[1], r[0]))
    return rows


def detect(tribe, cont):
    return tribe.detect(
        stream=cont.copy(), threshold=MAD, threshold_type="MAD",
        trig_int=TRIG_INT, plot=False, parallel_process=False,
        xcorr_func="fftw", concurrency="concurrent", cores=1,
        process_cores=1)


def eligible_picks(ev, tr_stats, swin):
    """The picks _template_gen may cut this channel around (all_horiz and
    all_vert False, delayed True)."""
    sta, cha = tr_stats.station, tr_stats.channel
    on = [p for p in ev.picks if p.waveform_id.station_code == sta]
    if swin == "S":
        if cha[-1] == "Z":
            return []
        return [p for p in on if p.phase_hint and p.phase_hint[0].upper()
                == "S" and p.waveform_id.channel_code == cha]
    if swin == "P":
        return [p for p in on if p.phase_hint and p.phase_hint[0].upper()
                == "P" and p.waveform_id.channel_code == cha]
    return [p for p in on if p.waveform_id.channel_code == cha]  # 'all'


cont = load_stream()
catalog = read_events(os.path.join(DATA, "catalog", "templates_quakeml.xml"))
workdir = tempfile.mkdtemp(prefix="peer_tribe_")
os.chdir(workdir)  # Tribe.detect writes .parties/ into the working folder

for name, kw in SETTINGS.items():
    rec = {"construct": dict(method="from_meta_file", **kw, **COMMON)}
    print(f"== setting {name}: {rec['construct']}")
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tribe = Tribe().construct(
            method="from_meta_file", st=cont.copy(), meta_file=catalog.copy(),
            **kw, **COMMON)
    rec["construct_s"] = round(time.perf_counter() - tic, 3)
    tribe.sort()  # by name (the earliest trace start)

    # -- the processing construct applied, redone to check the cuts
    proc = cont.copy()
    for tr in proc:
        tr.data = tr.data[0:int(kw["process_len"] * tr.stats.sampling_rate)]
    proc = multi_process(proc, lowcut=kw["lowcut"], highcut=kw["highcut"],
                         filt_order=COMMON["filt_order"],
                         samp_rate=kw["samp_rate"])
    sr = kw["samp_rate"]
    trows = []
    for t in tribe:
        ev_id = t.event.resource_id.id.split("/")[-1]
        seen = {}
        for tr in sorted(t.st, key=lambda x: (x.id, x.stats.starttime)):
            k = seen.get(tr.id, 0)
            seen[tr.id] = k + 1
            ptr = proc.select(id=tr.id)[0]
            # which pick gives this start under the rule
            # first sample at or after pick - prepick
            match = []
            for p in eligible_picks(t.event, tr.stats, kw["swin"]):
                x = (p.time - COMMON["prepick"] - ptr.stats.starttime) * sr
                i0 = int(math.ceil(round(x, 7)))
                if ptr.stats.starttime + i0 / sr == tr.stats.starttime:
                    match.append((p, i0, x))
            assert len(match) == 1, (t.name, tr.id, match)
            p, i0, x = match[0]
            assert tr.stats.npts == int(round(COMMON["length"] * sr))
            assert np.array_equal(tr.data, ptr.data[i0:i0 + tr.stats.npts]), \
                (name, t.name, tr.id)
            trows.append((t.name, ev_id, tr.id, k, ts(tr.stats.starttime),
                          tr.stats.npts, "%g" % sr, p.phase_hint,
                          ts(p.time), "%g" % COMMON["prepick"], i0,
                          "%.7f" % (i0 - x)))
    ntr = [len(t.st) for t in tribe]
    rec["templates"] = len(tribe)
    rec["traces"] = sum(ntr)
    rec["traces_per_template"] = {t.name: len(t.st) for t in tribe}
    rec["process_length_recorded"] = sorted({t.process_length
                                             for t in tribe})
    rec["template_event"] = {
        t.name: t.event.resource_id.id.split("/")[-1] for t in tribe}
    print(f"{len(tribe)} templates, {sum(ntr)} traces "
          f"({min(ntr)}..{max(ntr)} per template)")
    rec["rows_templates_csv"] = write_csv(
        f"{name}_templates.csv",
        ["template", "event_id", "seed_id", "index_in_seed_id", "starttime",
         "npts", "sampling_rate", "phase", "pick_time", "prepick",
         "start_sample", "start_minus_pick_prepick_samples"], trows)

    # -- write the tribe (outside the repository)
    sdir = os.path.join(TRIBES, name)
    os.makedirs(sdir, exist_ok=True)
    path = os.path.join(sdir, "tribe.tgz")
    if os.path.exists(path):
        os.remove(path)  # Tribe.write appends to an existing archive
    tic = time.perf_counter()
    tribe.write(path)
    rec["write_s"] = round(time.perf_counter() - tic, 3)
    rec["tribe_tgz_bytes"] = os.path.getsize(path)
    with open(os.path.join(sdir, "params.json"), "w") as f:
        json.dump({"construct": rec["construct"], "detect": info["detect"],
                   "process_length_recorded":
                       rec["process_length_recorded"],
                   "templates": rec["traces_per_template"],
                   "template_event": rec["template_event"]}, f, indent=1)

    if TRIBES_ONLY:
        continue

    # -- detect with the constructed tribe
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        party = detect(tribe, cont)
    rec["detect_s"] = round(time.perf_counter() - tic, 3)
    rows = det_rows(party)
    rec["detections"] = write_csv(
        f"{name}_detections.csv",
        ["template", "detect_time", "detect_val", "no_chans", "threshold",
         "chans"], rows)
    self_dets = [r for r in rows if abs(
        UTCDateTime(r[1]) - min(tr.stats.starttime for tr in
                                tribe.select(r[0]).st)) < 1e-6]
    rec["self_detections"] = len(self_dets)
    rec["self_detect_val_minus_no_chans_max"] = float(max(
        abs(float(r[2]) - r[3]) for r in self_dets)) if self_dets else None

    # -- the import path: read tribe.tgz back and detect again
    tic = time.perf_counter()
    back = Tribe().read(path)
    rec["read_s"] = round(time.perf_counter() - tic, 3)
    assert sorted(t.name for t in back) == sorted(t.name for t in tribe)
    for t in back:
        o = tribe.select(t.name)
        assert t.event is not None and \
            t.event.resource_id == o.event.resource_id
        assert (t.lowcut, t.highcut, t.samp_rate, t.filt_order,
                t.process_length, t.prepick) == (
            o.lowcut, o.highcut, o.samp_rate, o.filt_order,
            o.process_length, o.prepick), t.name
        assert len(t.st) == len(o.st)
        for a, b in zip(sorted(t.st, key=lambda x: (x.id,
                                                    x.stats.starttime)),
                        sorted(o.st, key=lambda x: (x.id,
                                                    x.stats.starttime))):
            assert a.id == b.id and a.stats.starttime == b.stats.starttime
            assert np.array_equal(a.data, b.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        party2 = detect(back, cont)
    assert det_rows(party2) == rows, f"{name}: read-back tribe differs"
    rec["readback_detections_equal"] = True
    info["settings"][name] = rec
    print(json.dumps({k: v for k, v in rec.items()
                      if k not in ("traces_per_template", "template_event")}))

if TRIBES_ONLY:
    sys.exit(0)
info["total_s"] = round(time.perf_counter() - T0, 3)
with open(os.path.join(OUT, "run_info.json"), "w") as f:
    json.dump(info, f, indent=1)
print("total", info["total_s"], "s")
