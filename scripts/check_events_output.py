#!/usr/bin/env python3
"""Check tmatch's catalogue files with the readers of ObsPy and EQcorrscan.

    ~/.venvs/eqc/bin/python scripts/check_events_output.py \
        [--quakeml catalog.xml] [--detections detections.txt]

QuakeML: validated against ObsPy's QuakeML 1.2 schema and read back with
`obspy.read_events` (ids, comments, origin, magnitude, picks printed for
the first event). Detections: read with EQcorrscan's `read_detections`.
Exits 1 when a file does not validate or read.
"""
import argparse
import sys

p = argparse.ArgumentParser()
p.add_argument("--quakeml")
p.add_argument("--detections")
a = p.parse_args()
ok = True
if a.quakeml:
    from obspy import read_events
    from obspy.io.quakeml.core import _validate
    valid = _validate(a.quakeml)
    ok &= bool(valid)
    cat = read_events(a.quakeml)
    print(f"{a.quakeml}: schema valid {valid}, {len(cat)} events")
    if len(cat):
        e = cat[0]
        o, m = e.preferred_origin(), e.preferred_magnitude()
        print(" ", e.resource_id, [c.text for c in e.comments])
        print("  origin", o.time, o.latitude, o.longitude, o.depth)
        if m:
            print("  magnitude", m.mag, m.magnitude_type, m.method_id,
                  m.station_count, m.mag_errors.uncertainty)
        for pk in e.picks:
            print("  pick", pk.waveform_id.get_seed_string(), pk.phase_hint,
                  pk.time, [c.text for c in pk.comments])
if a.detections:
    from eqcorrscan.core.match_filter.detection import read_detections
    dets = read_detections(a.detections)
    print(f"{a.detections}: {len(dets)} detections")
    for d in dets[:3]:
        print(" ", d._print_str())
sys.exit(0 if ok else 1)
