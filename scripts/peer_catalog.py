"""EQcorrscan 0.5.2 reference outputs for the catalogue steps of `tmatch catalog`:
declustering, lag_calc picks and relative magnitudes, on the real Hi-net day
(../shared/data/hinet-2012-09-02) with the hinet-s4 configuration of
tests/integration/hinet.rs.

What it runs
  1. Detection exactly as ../shared/peers/run_eqcorrscan.py: S-wave templates
     cut as exact windows of the continuous data (S-1.0 s .. S+3.0 s, 400
     samples, all 21 channels, no filtering), match_filter with MAD 12,
     trig_int 6 s, fftw. The 429 detections are wrapped in a Party of
     Families whose Templates carry prepick=1.0 and the QuakeML event
     (origin, magnitude, S picks only). Checks that there are 429 detections
     and that they equal ../shared/reference/hinet-s4/detections.csv.
  2. Party.decluster for trig_int 1, 3, 10 s x metric avg_cor, cor_sum
     (timing 'detect'), timing='origin' with 10 s / avg_cor and
     hypocentral_separation 1 km with 10 s / avg_cor -> decluster_*.csv,
     and the template distances EQcorrscan uses -> template_distances_km.csv
  3. Party.lag_calc (pre_processed=True, shift_len 0.2, min_cc 0.4) on the
     party declustered with trig_int 3 s / avg_cor, interpolate False and
     True -> lagcalc_picks_interp{0,1}.csv
  4. mag_calc.relative_magnitude(template event -> detected event) on the
     interpolate=False picks, use_s_picks=True, for two window sets and with
     correct_mag_bias True and False -> relmag_channels.csv (every channel
     passing min_snr, with its amplitude ratio, SNRs and CC), relmag_events.csv
  Also writes run_info.json (versions, timings, counts).

How to run (EQcorrscan venv, see ../shared/peers/README.md):
    ~/.venvs/eqc/bin/python scripts/peer_catalog.py [OUT_DIR]
OUT_DIR defaults to tests/reference/hinet-catalog; SEIS_DATA overrides the
data folder (default ../shared/data/hinet-2012-09-02 beside the repo).
tests/reference/hinet-catalog/README.md describes every file and what each
EQcorrscan step does.
"""
import csv
import json
import os
import sys
import time

import numpy as np
from obspy import Stream, UTCDateTime, read, read_events

import eqcorrscan
import obspy
from eqcorrscan.core.match_filter import Family, Party, Template, match_filter
from eqcorrscan.utils.mag_calc import relative_amplitude, relative_magnitude

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATA = os.environ.get("SEIS_DATA", os.path.join(
    REPO, "..", "shared", "data", "hinet-2012-09-02"))
REF = os.path.join(os.path.dirname(DATA), "..", "reference", "hinet-s4",
                   "detections.csv")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    REPO, "tests", "reference", "hinet-catalog")
PRE, NSAMP, MAD, TRIG_INT = 1.0, 400, 12.0, 6.0
os.makedirs(OUT, exist_ok=True)
T0 = time.perf_counter()
info = {"eqcorrscan": eqcorrscan.__version__, "obspy": obspy.__version__,
        "numpy": np.__version__, "timings_s": {}, "counts": {}}


def tname(evid):
    """EQcorrscan template names must match ^[-a-z_0-9]+$: no dots."""
    return evid.replace(".", "_")


def evid(name):
    return name.replace("_", ".")


def ts(t):
    return str(UTCDateTime(t))  # ISO, microseconds, 'Z'


def write_csv(name, header, rows):
    with open(os.path.join(OUT, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    info["counts"][name] = len(rows)
    print(f"{name}: {len(rows)} rows")


# ---- 1. templates, detection, Party ---------------------------------------
cont = read(os.path.join(DATA, "continuous", "*.mseed"))
cont.merge()
cont.sort(keys=["station", "channel"])
events = {e.resource_id.id.split("/")[-1]: e for e in
          read_events(os.path.join(DATA, "catalog", "templates_quakeml.xml"))}
picks = {}
with open(os.path.join(DATA, "catalog", "picks.csv")) as f:
    for r in csv.DictReader(f):
        if r["phase"] == "S":
            picks.setdefault(r["event_id"], {})[
                (r["station"], r["channel"])] = UTCDateTime(r["time"])
templates = []
for ev_id in sorted(picks):
    st = Stream()
    for tr in cont:
        key = (tr.stats.station, tr.stats.channel)
        if key not in picks[ev_id]:
            continue
        i0 = int(round((picks[ev_id][key] - PRE - tr.stats.starttime)
                       * tr.stats.sampling_rate))
        new = tr.copy()
        new.data = tr.data[i0:i0 + NSAMP].astype(np.float32).copy()
        new.stats.starttime = tr.stats.starttime + i0 * tr.stats.delta
        st += new
    ev = events[ev_id].copy()
    # Only the picks the template was cut around (S): with the P picks too,
    # EQcorrscan labels the Z channels 'P' (earliest pick per channel) and
    # estimates the detection origin from the P pick (see README).
    ev.picks = [p for p in ev.picks if p.phase_hint == "S"]
    templates.append(Template(
        name=tname(ev_id), st=st, lowcut=None, highcut=None, samp_rate=100.0,
        filt_order=None, process_length=None, prepick=PRE, event=ev))

tic = time.perf_counter()
dets = match_filter([t.name for t in templates], [t.st for t in templates],
                    cont.copy(), threshold=MAD, threshold_type="MAD",
                    trig_int=TRIG_INT, xcorr_func="fftw",
                    concurrency="concurrent", cores=2)
info["timings_s"]["match_filter"] = time.perf_counter() - tic
assert len(dets) == 429, len(dets)
with open(REF) as f:
    ref = sorted((r["template"], r["detect_time"]) for r in csv.DictReader(f))
assert sorted((evid(d.template_name), ts(d.detect_time)) for d in dets) == ref
party = Party([Family(template=t, detections=[
    d for d in dets if d.template_name == t.name]) for t in templates])
for fam in party:
    for d in fam:
        # The detection's event: picks = detect_time + channel offset +
        # prepick, origin = template origin shifted the same way.
        d._calculate_event(template=fam.template)
info["counts"]["detections"] = len(dets)


def origin_time(d):
    return (d.event.preferred_origin() or d.event.origins[0]).time


# ---- 2. decluster ------------------------------------------------------------
DEC = [(ti, m, "detect", None) for ti in (1.0, 3.0, 10.0)
       for m in ("avg_cor", "cor_sum")]
DEC += [(10.0, "avg_cor", "origin", None), (10.0, "avg_cor", "detect", 1.0)]
tic = time.perf_counter()
for trig_int, metric, timing, hyp in DEC:
    dp = party.copy().decluster(trig_int=trig_int, timing=timing,
                                metric=metric, hypocentral_separation=hyp)
    rows = sorted(((evid(d.template_name), ts(d.detect_time),
                    "%.6f" % d.detect_val, d.no_chans, ts(origin_time(d)))
                   for f in dp for d in f), key=lambda r: (r[1], r[0]))
    name = f"decluster_{timing}_{metric}_t{trig_int:g}"
    name += f"_hyp{hyp:g}km.csv" if hyp else ".csv"
    write_csv(name, ["template", "detect_time", "detect_val", "no_chans",
                     "origin_time"], rows)
info["timings_s"]["decluster_all"] = time.perf_counter() - tic

# template-template hypocentral distances as EQcorrscan computes them
from eqcorrscan.utils.clustering import dist_mat_km  # noqa: E402
from obspy import Catalog  # noqa: E402
dm = dist_mat_km(Catalog([t.event for t in templates]))
write_csv("template_distances_km.csv", ["template_a", "template_b", "km"],
          [(evid(a.name), evid(b.name), "%.4f" % dm[i, j])
           for i, a in enumerate(templates) for j, b in enumerate(templates)
           if i < j])

# ---- 3. lag_calc -------------------------------------------------------------
lc_party = party.copy().decluster(trig_int=3.0, metric="avg_cor")
info["counts"]["lagcalc_input_detections"] = sum(len(f) for f in lc_party)
lag_events = {}
for interp in (False, True):
    p = lc_party.copy()
    tic = time.perf_counter()
    cat = p.lag_calc(cont.copy(), pre_processed=True, shift_len=0.2,
                     min_cc=0.4, interpolate=interp, cores=1)
    info["timings_s"][f"lag_calc_interp{int(interp)}"] = \
        time.perf_counter() - tic
    info["counts"][f"lagcalc_events_interp{int(interp)}"] = len(cat)
    rows = []
    for fam in p:
        for d in fam:
            if not any(e.resource_id.id == d.id for e in cat):
                continue  # dropped by lag_calc
            ev = [e for e in cat if e.resource_id.id == d.id][0]
            lag_events.setdefault(interp, []).append((fam, d, ev))
            # the detection's predicted pick per channel (before lag_calc)
            pred = {}
            d2 = d.copy()
            d2._calculate_event(template=fam.template)
            for pk in d2.event.picks:
                pred[pk.waveform_id.get_seed_string()] = pk.time
            # the windows lag_calc cut (its own extract_stream): lag of CC
            # index 0 relative to the predicted pick
            cut = d2.extract_stream(stream=cont, length=4.0 + 2 * 0.2,
                                    prepick=PRE + 0.2)
            lag0 = {tr.id: tr.stats.starttime + PRE - pred[tr.id]
                    for tr in cut}
            for pk in sorted(ev.picks, key=lambda x: (
                    x.waveform_id.station_code, x.waveform_id.channel_code)):
                cc = float(pk.comments[0].text.split("=")[1])
                sid = pk.waveform_id.get_seed_string()
                rows.append((evid(fam.template.name), ts(d.detect_time),
                             pk.waveform_id.station_code,
                             pk.waveform_id.channel_code, pk.phase_hint,
                             ts(pk.time), "%.6f" % (pk.time - pred[sid]),
                             "%.6f" % cc, "%.2f" % lag0[sid]))
    rows.sort(key=lambda r: (r[1], r[0], r[2], r[3]))
    write_csv(f"lagcalc_picks_interp{int(interp)}.csv",
              ["template", "detect_time", "station", "channel", "phase",
               "pick_time", "lag_s", "cc", "lag_min_s"], rows)

# ---- 4. relative magnitudes -------------------------------------------------
WINDOWS = {"default": ((-20.0, -1.0), (-0.5, 20.0)),
           "template": ((-11.0, -1.0), (-1.0, 3.0))}
ch_rows, ev_rows = [], []
tic = time.perf_counter()
for fam, d, ev in lag_events[False]:
    tev = fam.template.event
    mag0 = tev.magnitudes[0].mag
    for wname, (nw, sw) in WINDOWS.items():
        # amplitude ratios and SNRs of the channels that pass min_snr
        amps, snr1, snr2 = relative_amplitude(
            cont, cont, tev, ev, noise_window=nw, signal_window=sw,
            min_snr=5.0, use_s_picks=True)
        res = {}
        for bias in (True, False):
            res[bias], ccs = relative_magnitude(
                cont, cont, tev, ev, noise_window=nw, signal_window=sw,
                min_snr=5.0, min_cc=0.7, use_s_picks=True, shift=0.2,
                return_correlations=True, correct_mag_bias=bias)
        for sid in sorted(amps):
            ok = sid in res[True]
            ch_rows.append((evid(fam.template.name), ts(d.detect_time), wname,
                            sid.split(".")[1], sid.split(".")[3],
                            "%.6f" % amps[sid], "%.6f" % snr1[sid],
                            "%.6f" % snr2[sid], "%.6f" % ccs[sid],
                            "%.6f" % res[True][sid] if ok else "",
                            "%.6f" % res[False][sid] if ok else ""))
        vals = np.array([res[True][s] for s in res[True]])
        plain = np.array([res[False][s] for s in res[False]])
        ev_rows.append((evid(fam.template.name), ts(d.detect_time), wname,
                        "%.2f" % mag0, len(vals),
                        "%.6f" % vals.mean() if len(vals) else "",
                        "%.6f" % np.median(vals) if len(vals) else "",
                        "%.6f" % plain.mean() if len(plain) else "",
                        "%.6f" % (mag0 + vals.mean()) if len(vals) else ""))
info["timings_s"]["relative_magnitude"] = time.perf_counter() - tic
ch_rows.sort(key=lambda r: (r[1], r[0], r[2], r[3], r[4]))
ev_rows.sort(key=lambda r: (r[1], r[0], r[2]))
write_csv("relmag_channels.csv",
          ["template", "detect_time", "windows", "station", "channel",
           "amp_ratio", "snr_template", "snr_detection", "cc",
           "dmag_corrected", "dmag_plain"], ch_rows)
write_csv("relmag_events.csv",
          ["template", "detect_time", "windows", "template_mag", "n_channels",
           "dmag_mean", "dmag_median", "dmag_plain_mean", "mag"], ev_rows)
info["timings_s"]["total"] = time.perf_counter() - T0
with open(os.path.join(OUT, "run_info.json"), "w") as f:
    json.dump(info, f, indent=1)
print(json.dumps(info, indent=1))
