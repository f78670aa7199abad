"""Read tmatch's output in Python: detections.h5 with h5py and pandas, the
QuakeML of `tmatch catalog` with ObsPy.

    python read_tmatch.py detections.h5 events.xml

Needs h5py, pandas and ObsPy (`pip install h5py pandas obspy`).

A detections file is appended to one day at a time: a day's rows are
written first, then its row in /days, which commits them. So only the rows
that the committed days count are results; rows after them belong to a day
still being searched (or cut short by a kill) and are ignored here, as
tmatch itself ignores them (src/output/reader.rs).
"""

import sys

import h5py
import numpy as np
import pandas as pd

FORMAT = "tmatch-detections"
FORMAT_VERSION = 3  # the detections file layout this script reads


def _text(v):
    """HDF5 strings come back from h5py as bytes."""
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _parse_day(text):
    """A day as /days spells it (YYYY-MM-DD, or YYYY-DDD), or None when the
    text is no valid date."""
    parts = text.strip().split("-")
    try:
        if len(parts) == 3:
            return pd.Timestamp(year=int(parts[0]), month=int(parts[1]), day=int(parts[2]))
        if len(parts) == 2 and len(parts[1]) == 3 and int(parts[1]) >= 1:
            day = pd.Timestamp(year=int(parts[0]), month=1, day=1) + pd.Timedelta(days=int(parts[1]) - 1)
            return day if day.year == int(parts[0]) else None
    except ValueError:
        pass
    return None


def _open(path):
    """Open a detections file and check that it is one this script reads."""
    f = h5py.File(path, "r")
    if _text(f.attrs.get("format", b"")) != FORMAT:
        f.close()
        raise ValueError(f"{path}: not a tmatch detections file")
    version = int(f.attrs["format_version"])
    if version != FORMAT_VERSION:
        f.close()
        raise ValueError(f"{path}: detections format version {version}, expected {FORMAT_VERSION}")
    return f


def _completed_days(f):
    """The /days rows written whole, in file order: a row that a crash left
    unwritten or half written (no valid day or status, or problems past the
    end of /day_problems) ends the list."""
    problems = f["day_problems"][:].tobytes()
    days = []
    for row in f["days"][:]:
        try:
            day, status = row["day"].decode("ascii"), row["status"].decode("ascii")
        except UnicodeDecodeError:
            break
        start, n = int(row["problems_start"]), int(row["problems_len"])
        if _parse_day(day) is None or status not in ("done", "no-data", "failed") or start + n > len(problems):
            break
        days.append(dict(day=day, status=status, n_detections=int(row["n_detections"]),
                         wall_s=float(row["wall_s"]), device=_text(row["device"]),
                         problems=problems[start:start + n].decode("utf-8", "replace")))
    return days


def _committed(f):
    """The committed detection rows (a numpy record array) and how many
    /detection_channels rows they own."""
    n_det = sum(d["n_detections"] for d in _completed_days(f))
    table = f["detections"]
    if table.shape[0] < n_det:
        raise ValueError(f"{f.filename}: damaged: /days counts more detections than the file holds")
    rows = table[:n_det]
    # A day's channel rows follow its detection rows' ranges: the last
    # committed detection ends the committed channel rows.
    n_ch = int(rows["first_channel_row"][-1]) + int(rows["n_channel_rows"][-1]) if n_det else 0
    if f["detection_channels"].shape[0] < n_ch:
        raise ValueError(f"{f.filename}: damaged: /days counts more channel rows than the file holds")
    return rows, n_ch


def _templates(f):
    """Template ids, origin offsets (ns) and channel id lists, by template index."""
    t = f["templates"][:]
    ids = [_text(v) for v in t["id"]]
    channels = [_text(v).split(",") for v in t["channels"]]
    return ids, t["origin_offset_ns"].astype(np.int64), channels


def days_dataframe(path):
    """One row per completed day: day, status (done, no-data, failed),
    n_detections, wall_s, device, problems. A failed day that a later row
    of the same day replaces (a --resume redid it) is left out."""
    with _open(path) as f:
        days = _completed_days(f)
    last = {_parse_day(d["day"]): i for i, d in enumerate(days)}  # each day's last row
    kept = [d for i, d in enumerate(days) if d["status"] != "failed" or last[_parse_day(d["day"])] == i]
    return pd.DataFrame(kept, columns=["day", "status", "n_detections", "wall_s", "device", "problems"])


def detections_dataframe(path):
    """One row per detection of the completed days, indexed by its row in
    /detections (the `detection` of channels_dataframe): template id, time
    (the start of the template's earliest channel) and origin_time as UTC
    datetimes, cc_sum, mean_cc, threshold, mad, n_channels."""
    with _open(path) as f:
        rows, _ = _committed(f)
        ids, offsets, _ = _templates(f)
    template = rows["template"].astype(np.int64)
    time_ns = rows["time_ns"].astype(np.int64)
    df = pd.DataFrame({
        "template": pd.Series([ids[t] for t in template], dtype="object"),
        "time": pd.to_datetime(time_ns, unit="ns", utc=True),
        "origin_time": pd.to_datetime(time_ns - offsets[template], unit="ns", utc=True),
        "cc_sum": rows["cc_sum"],
        "mean_cc": rows["mean_cc"],
        "threshold": rows["threshold"],
        "mad": rows["mad"],
        "n_channels": rows["n_channels"],
    })
    df.index.name = "detection"
    return df


def channels_dataframe(path):
    """One row per detection and template channel, of the completed days:
    detection (row of detections_dataframe), template, channel (its SEED
    id), cc at the detection, best_cc within --shift-len and its best_lag
    (samples), lag (refined, fractional samples), amplitude (std of the
    window at that lag), peak (largest |value| there) and noise_rms (RMS
    before it; NaN where not whole)."""
    with _open(path) as f:
        rows, n_ch = _committed(f)
        ids, _, channels = _templates(f)
        ch = f["detection_channels"][:n_ch]
    detection = ch["detection"].astype(np.int64)
    template = rows["template"].astype(np.int64)[detection]
    return pd.DataFrame({
        "detection": detection,
        "template": [ids[t] for t in template],
        "channel": [channels[t][c] for t, c in zip(template, ch["channel"])],
        "cc": ch["cc"],
        "best_cc": ch["best_cc"],
        "best_lag": ch["best_lag"],
        "lag": ch["lag"],
        "amplitude": ch["amplitude"],
        "peak": ch["peak"],
        "noise_rms": ch["noise_rms"],
    })


def read_catalog(path):
    """The QuakeML of `tmatch catalog -o events.xml` as an ObsPy Catalog."""
    import obspy  # imported here: the detections readers work without it

    return obspy.read_events(path)


def main(argv):
    if len(argv) != 3:
        sys.exit(f"usage: {argv[0]} detections.h5 events.xml")
    detections, channels = detections_dataframe(argv[1]), channels_dataframe(argv[1])
    days = days_dataframe(argv[1])
    print(f"{argv[1]}: {len(detections)} detections, {len(channels)} channel rows, "
          f"{len(days)} days ({', '.join(f'{n} {s}' for s, n in days.status.value_counts().items())})")
    print(detections.head().to_string())
    print(channels.head().to_string())
    catalog = read_catalog(argv[2])
    print(f"{argv[2]}: {len(catalog)} events, {sum(len(e.picks) for e in catalog)} picks")
    # EQcorrscan's event comments name the template: "Template: <id>".
    templates = [next(c.text[len("Template: "):] for c in e.comments if c.text.startswith("Template: "))
                 for e in catalog]
    print("events per template:")
    print(pd.Series(templates, dtype="object").value_counts().sort_index().to_string())


if __name__ == "__main__":
    main(sys.argv)
