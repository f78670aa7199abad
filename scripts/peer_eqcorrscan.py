"""Time EQcorrscan's matched filter on the same work tmatch does, for
scripts/bench-peers. Templates are cut as exact windows of the continuous
data around the catalog's picks (P on vertical channels, S on horizontal
ones, or the phase asked for), like ../shared/peers/common.py does.

usage: peer_eqcorrscan.py ARCHIVE_GLOB PICKS_CSV PHASE PRE LENGTH MAD TRIG_INT OUT_CSV [GROUP]
Prints the seconds spent in match_filter (data already in memory)."""
import csv
import glob
import sys
import time

import numpy as np
from obspy import Stream, UTCDateTime, read
from eqcorrscan.core.match_filter import match_filter

files, picks_csv, phase, pre, length, mad, trig_int, out = sys.argv[1:9]
group = int(sys.argv[9]) if len(sys.argv) > 9 else 1000
pre, length, mad, trig_int = float(pre), float(length), float(mad), float(trig_int)

st = Stream()
for f in sorted(glob.glob(files)):
    st += read(f)
st.merge()
st.sort(keys=["network", "station", "location", "channel"])

picks = {}
with open(picks_csv) as fh:
    for r in csv.DictReader(fh):
        if phase != "all" and r["phase"] != phase:
            continue
        key = (r["network"], r["station"], r.get("location", ""), r["channel"])
        picks.setdefault(r["event_id"], {})[key] = UTCDateTime(r["time"])

names, templates = [], []
for ev in sorted(picks):
    t = Stream()
    for tr in st:
        s = tr.stats
        key = (s.network, s.station, s.location, s.channel)
        if key not in picks[ev]:
            continue
        i0 = int(round((picks[ev][key] - pre - s.starttime) * s.sampling_rate))
        n = int(round(length * s.sampling_rate))
        new = tr.copy()
        new.data = tr.data[i0:i0 + n].astype(np.float32).copy()
        new.stats.starttime = s.starttime + i0 * s.delta
        t += new
    names.append(ev)
    templates.append(t)

elapsed, dets = 0.0, []
for g in range(0, len(names), group):
    tic = time.perf_counter()
    dets += match_filter(names[g:g + group], templates[g:g + group], st.copy(),
                         threshold=mad, threshold_type="MAD", trig_int=trig_int,
                         xcorr_func="fftw", concurrency="concurrent", cores=2)
    elapsed += time.perf_counter() - tic

with open(out, "w") as fh:
    w = csv.writer(fh)
    w.writerow(["template", "detect_time", "cc_sum"])
    for d in sorted(dets, key=lambda d: (d.detect_time, d.template_name)):
        w.writerow([d.template_name, str(d.detect_time), "%.6f" % d.detect_val])
print("%.3f" % elapsed)
