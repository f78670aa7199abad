"""Checks read_tmatch.py against tmatch's own CSV output; run by
scripts/test-python as `python test_read_tmatch.py OUT`, where OUT holds
detections.h5, detections.csv (`tmatch export`), events.xml, events.csv and
events_picks.csv (`tmatch catalog`)."""

import os
import shutil
import sys

import h5py
import numpy as np
import pandas as pd

from read_tmatch import channels_dataframe, days_dataframe, detections_dataframe, read_catalog


def check_detections(out):
    det = detections_dataframe(f"{out}/detections.h5")
    csv = pd.read_csv(f"{out}/detections.csv")
    assert len(det) == len(csv) > 0, (len(det), len(csv))
    assert list(det.template) == list(csv.template), "template ids differ from tmatch export"
    for col in ("detect_time", "origin_time"):
        want = pd.to_datetime(csv[col], utc=True)
        got = det["time" if col == "detect_time" else col]
        assert (got.reset_index(drop=True) == want).all(), f"{col} differs from tmatch export"
    for col in ("cc_sum", "mean_cc", "threshold", "mad"):  # export prints 6 decimals
        assert np.allclose(det[col], csv[col], atol=1e-6), col
    assert (det.n_channels.to_numpy() == csv.n_channels.to_numpy()).all()
    assert str(det.time.dt.tz) == "UTC"

    ch = channels_dataframe(f"{out}/detections.h5")
    with h5py.File(f"{out}/detections.h5") as f:
        assert len(ch) == int(f["detections"]["n_channel_rows"].sum())
    # Each channel row's template is its detection's; channel ids are SEED ids.
    assert (ch.template.to_numpy() == det.template.to_numpy()[ch.detection]).all()
    assert ch.channel.str.fullmatch(r"[^.]*\.[^.]*\.[^.]*\.[^.]*").all()
    return det


def check_uncommitted_rows_ignored(out, det):
    """Rows past the committed days (a day in flight) are ignored; half
    written /days rows end the days; a failed day redone later is left out."""
    path = f"{out}/in-flight.h5"
    shutil.copy(f"{out}/detections.h5", path)
    with h5py.File(path, "r+") as f:
        days = f["days"]
        rows = days[:]
        failed, redone, torn = rows[-1].copy(), rows[-1].copy(), np.zeros(1, days.dtype)[0]
        failed["day"], failed["status"], failed["n_detections"] = b"2024-03-02", b"failed", 0
        redone["day"], redone["status"], redone["n_detections"] = b"2024-03-02", b"no-data", 0
        for t in ("detections", "detection_channels"):  # a day in flight: its rows, no /days row
            d = f[t]
            n = d.shape[0]
            d.resize((n + 3,))
            d[n:] = d[:3]
        days.resize((len(rows) + 3,))
        days[len(rows):] = np.array([failed, redone, torn], dtype=days.dtype)
    assert len(detections_dataframe(path)) == len(det)
    assert len(channels_dataframe(path)) == len(channels_dataframe(f"{out}/detections.h5"))
    d = days_dataframe(path)
    assert list(d.status) == ["done"] * len(rows) + ["no-data"], list(d.status)
    os.remove(path)


def check_catalog(out):
    cat = read_catalog(f"{out}/events.xml")
    events = pd.read_csv(f"{out}/events.csv")
    picks = pd.read_csv(f"{out}/events_picks.csv")
    assert len(cat) == len(events) > 0, (len(cat), len(events))
    ids = [str(e.resource_id) for e in cat]
    assert all(i.startswith("smi:local/") for i in ids), ids[:3]
    assert sorted(i[len("smi:local/"):] for i in ids) == sorted(events.event_id)
    by_id = events.set_index("event_id")
    for e in cat:
        templates = [c.text[len("Template: "):] for c in e.comments if c.text.startswith("Template: ")]
        assert templates == [by_id.template[str(e.resource_id)[len("smi:local/"):]]], templates
        assert e.picks, f"{e.resource_id}: no picks"
        for p in e.picks:
            assert any(c.text.startswith("cc_max=") for c in p.comments), p.resource_id
    assert sum(len(e.picks) for e in cat) == len(picks)
    return cat


def main(out):
    det = check_detections(out)
    check_uncommitted_rows_ignored(out, det)
    cat = check_catalog(out)
    print(f"python example: {len(det)} detections, {len(cat)} events: ok")


if __name__ == "__main__":
    main(sys.argv[1])
