"""alphapulse-v1 features from Python: a whole series, or a stream of bars."""
import ctypes
import datetime
import re
import threading

import numpy as np

from ._lib import AP_FEATURE_COUNT, ApError, Bar, Error, Handle, Owner, c_void_p, check, lib

FEATURE_NAMES = tuple(lib.ap_feature_name(i).decode() for i in range(lib.ap_feature_count()))
assert len(FEATURE_NAMES) == AP_FEATURE_COUNT

BAR_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
# the C struct ap_bar: int64 t + 5 doubles, 48 bytes, no padding
_BAR_DTYPE = np.dtype([("t", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
                       ("close", "<f8"), ("volume", "<f8")])
assert _BAR_DTYPE.itemsize == ctypes.sizeof(Bar)

# epoch microsecond bounds that int64 arithmetic below cannot overflow
_MS_LIMIT = 9_000_000_000_000_000 // 1000
_SECONDS_BELOW = 100_000_000_000  # 1e11: seconds below, milliseconds from (as the CLI reads)


def _parse_text(s, where):
    t = ctypes.c_int64()
    err = ApError()
    rc = lib.ap_parse_timestamp(s.encode(), ctypes.byref(t), ctypes.byref(err))
    if rc:
        raise Error("%s: %s" % (where, err.msg.decode("utf-8", "replace")), "EFORMAT")
    return t.value


def _int_us(v, where):
    v = int(v)
    if abs(v) < _SECONDS_BELOW:
        return v * 1_000_000
    if abs(v) > _MS_LIMIT:
        raise Error("%s: timestamp %d is out of range" % (where, v), "ERANGE")
    return v * 1000


def _one_us(v, where):
    """One timestamp of any accepted kind -> epoch microseconds UTC."""
    if isinstance(v, (str, bytes)):
        return _parse_text(v.decode() if isinstance(v, bytes) else v, where)
    if isinstance(v, np.datetime64):
        if np.isnat(v):
            raise Error("%s: timestamp is NaT" % where, "EINVAL")
        return int(v.astype("datetime64[us]").astype(np.int64))
    if isinstance(v, datetime.datetime):   # pandas.Timestamp too; naive means UTC
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        d = v - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    if isinstance(v, (bool, np.bool_)):
        raise Error("%s: timestamp %r is not a time" % (where, v), "EINVAL")
    if isinstance(v, (int, np.integer)):
        return _int_us(v, where)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v != v or v in (float("inf"), float("-inf")):
            raise Error("%s: timestamp %r is not a time" % (where, v), "EINVAL")
        if v.is_integer():
            return _int_us(int(v), where)
        return _parse_text(repr(v), where)   # the digits a CSV would hold
    raise Error("%s: timestamp of type %s is not a time" % (where, type(v).__name__), "EINVAL")


def timestamps_us(values, labels=None):
    """Timestamps as epoch microseconds UTC, read as `alphapulse features`
    reads them: epoch seconds below 1e11, epoch milliseconds from 1e11,
    ISO-8601 text, or datetimes (naive ones are UTC)."""
    try:
        import pandas as pd
    except ImportError:   # numpy-only use
        pd = None
    if pd is not None and isinstance(values, (pd.Series, pd.Index)):
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.tz_convert("UTC").tz_localize(None) if isinstance(values, pd.Index) \
                else values.dt.tz_convert("UTC").dt.tz_localize(None)
        values = np.asarray(values)
    a = np.asarray(values)
    if a.ndim != 1:
        raise Error("timestamps: expected one column, got shape %s" % (a.shape,), "EINVAL")

    def where(i):
        lab = "" if labels is None else " (index %s)" % (labels[i],)
        return "bar %d%s: timestamp" % (i, lab)

    if a.dtype.kind == "M":
        nat = np.isnat(a)
        if nat.any():
            raise Error("%s is NaT" % where(int(np.argmax(nat))), "EINVAL")
        return a.astype("datetime64[us]").astype(np.int64)
    if a.dtype.kind in "iu":
        a = a.astype(np.int64)
        big = np.abs(a) > _MS_LIMIT
        if big.any():
            i = int(np.argmax(big))
            raise Error("%s %d is out of range" % (where(i), a[i]), "ERANGE")
        return np.where(np.abs(a) < _SECONDS_BELOW, a * 1_000_000, a * 1000)
    return np.array([_one_us(v, where(i)) for i, v in enumerate(a.tolist()
                     if a.dtype.kind == "f" else a)], dtype=np.int64)


def _columns(bars):
    """bars -> (dict of the six columns, index or None)."""
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None and isinstance(bars, pd.DataFrame):
        cols = {c: bars[c] for c in BAR_COLUMNS if c in bars.columns}
        if "timestamp" not in cols and isinstance(bars.index, pd.DatetimeIndex):
            cols["timestamp"] = bars.index
        index = bars.index
    elif isinstance(bars, np.ndarray) and bars.dtype.names:
        cols = {c: bars[c] for c in BAR_COLUMNS if c in bars.dtype.names}
        index = None
    elif isinstance(bars, np.ndarray) or isinstance(bars, (list, tuple)):
        a = np.asarray(bars)
        if a.ndim != 2 or a.shape[1] != 6:
            raise Error("bars: a plain array must be (n, 6): timestamp, open, high, low, close, "
                        "volume; got shape %s" % (a.shape,), "EINVAL")
        cols = {c: a[:, i] for i, c in enumerate(BAR_COLUMNS)}
        index = None
    elif hasattr(bars, "keys"):
        cols = {c: bars[c] for c in BAR_COLUMNS if c in bars}
        index = None
    else:
        raise Error("bars: expected a DataFrame, a mapping of columns or an (n, 6) array, got %s"
                    % type(bars).__name__, "EINVAL")
    missing = [c for c in BAR_COLUMNS if c not in cols]
    if missing:
        raise Error("bars: missing column(s) %s (need %s)" % (", ".join(missing),
                    ", ".join(BAR_COLUMNS)), "EINVAL")
    n = {c: len(v) for c, v in cols.items()}
    if len(set(n.values())) != 1:
        raise Error("bars: columns differ in length: %s" % n, "EINVAL")
    return cols, index


def _bar_array(bars):
    cols, index = _columns(bars)
    n = len(cols["open"])
    labels = None if index is None else index
    arr = np.empty(n, dtype=_BAR_DTYPE)
    arr["t"] = timestamps_us(cols["timestamp"], labels)
    for c in BAR_COLUMNS[1:]:
        try:
            arr[c] = np.asarray(cols[c], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise Error("bars: column %s is not numeric (%s)" % (c, e), "EINVAL") from None
    return arr, index


def features(bars):
    """The 101 alphapulse-v1 features of every bar of one series.

    bars: a pandas DataFrame with columns timestamp, open, high, low, close,
    volume (or no timestamp column and a DatetimeIndex), a mapping of those
    columns, a numpy structured array, or an (n, 6) array in that order.
    Timestamps: epoch seconds (below 1e11), epoch milliseconds, ISO-8601
    text, or datetimes (naive = UTC), strictly increasing; a repeated
    timestamp replaces the bar before it, as a still-forming bar would.

    Returns a DataFrame of the 101 feature columns (spec order), one row per
    input bar, indexed like the input; values are bitwise those of
    `alphapulse features` (NaN where a feature is not yet defined).
    Raises Error naming the bar (and its index label) at fault.
    """
    import pandas as pd
    arr, index = _bar_array(bars)
    out = np.empty((len(arr), AP_FEATURE_COUNT), dtype=np.float64)
    err = ApError()
    rc = lib.ap_features_compute(arr.ctypes.data, len(arr), out.ctypes.data, ctypes.byref(err))
    if rc:
        msg = err.msg.decode("utf-8", "replace")
        m = re.match(r"bar (\d+): ", msg)
        if m and index is not None:
            msg = "bar %s (index %s): %s" % (m.group(1), index[int(m.group(1))], msg[m.end():])
        raise Error(msg, lib.ap_status_name(rc).decode())
    return pd.DataFrame(out, index=index, columns=list(FEATURE_NAMES), copy=False)


class FeatureStream(Owner):
    """The incremental engine of one series: push bars as they come, read the
    latest 101-vector at any time. Same numbers as features() on the bars
    pushed so far. One writer at a time (a lock serialises push and latest)."""

    def __init__(self):
        p = c_void_p()
        err = ApError()
        check(lib.ap_features_new(ctypes.byref(p), ctypes.byref(err)), err)
        self._h = Handle(p.value, lib.ap_features_free, "FeatureStream")
        self._last = None
        self._last_t = None
        self._lock = threading.Lock()   # ap_features has one writer

    def push(self, bar):
        """Push one bar: a mapping (dict, pandas Series) with timestamp, open,
        high, low, close, volume, or a 6-sequence in that order. Returns its
        feature vector (numpy, 101 values). A bad bar raises Error and
        changes nothing."""
        if hasattr(bar, "keys"):
            missing = [c for c in BAR_COLUMNS if c not in bar]
            if missing:
                raise Error("bar: missing field(s) %s" % ", ".join(missing), "EINVAL")
            vals = [bar[c] for c in BAR_COLUMNS]
        else:
            vals = list(bar)
            if len(vals) != 6:
                raise Error("bar: expected 6 values (timestamp, open, high, low, close, volume), "
                            "got %d" % len(vals), "EINVAL")
        t = _one_us(vals[0], "bar: timestamp")
        try:
            b = Bar(t, *(float(v) for v in vals[1:]))
        except (TypeError, ValueError) as e:
            raise Error("bar: a price or the volume is not a number (%s)" % e, "EINVAL") from None
        out = np.empty(AP_FEATURE_COUNT, dtype=np.float64)
        err = ApError()
        ptr = self._h.enter()
        try:
            with self._lock:
                check(lib.ap_features_push(ptr, ctypes.byref(b), out.ctypes.data,
                                           ctypes.byref(err)), err)
                self._last, self._last_t = out, t
        finally:
            self._h.leave()
        return out.copy()

    def latest(self):
        """The latest bar's features as a pandas Series indexed by feature name
        (its name: the bar time, UTC), or None before the first bar."""
        import pandas as pd
        self._h.enter()
        self._h.leave()
        with self._lock:
            last, t = self._last, self._last_t
        if last is None:
            return None
        return pd.Series(last.copy(), index=list(FEATURE_NAMES),
                         name=pd.Timestamp(t, unit="us", tz="UTC"))

    @property
    def bars(self):
        """Distinct bars pushed so far."""
        ptr = self._h.enter()
        try:
            return int(lib.ap_features_bars(ptr))
        finally:
            self._h.leave()
