"""Tree ensembles (XGBoost JSON/UBJSON, LightGBM text) on the alphapulse engine."""
import ctypes
import os

import numpy as np

from ._lib import (PRECISION_FULL, PRECISION_NAMES, PRECISION_REDUCED, ApError, Error, Handle,
                   Owner, c_void_p, check, lib, text)

AP_PREDICT_RAW = 1
AP_PREDICT_FULL = 2
_FORMATS = {"auto": 0, "xgboost_json": 1, "xgboost_ubj": 2, "lightgbm": 3}
PRECISIONS = {"full": PRECISION_FULL, "reduced": PRECISION_REDUCED}


def check_precision(precision):
    """The ap_precision of "full" / "reduced"; anything else is an Error."""
    if isinstance(precision, str) and precision in PRECISIONS:
        return PRECISIONS[precision]
    raise Error("precision=%r: expected one of %s" % (precision, ", ".join(PRECISIONS)),
                "EINVAL")


def as_rows(X, width, names, what):
    """X (DataFrame, ndarray, sequence) -> (C-contiguous float64 (n, width), index).

    A DataFrame's columns are matched by name when `names` is given (extra
    columns are left out); otherwise by position, and the width must match.
    A 1-D input is one row. Float64 C-contiguous arrays are used in place."""
    index = None
    if type(X) is not np.ndarray:
        try:
            import pandas as pd
        except ImportError:
            pd = None
        if pd is not None and isinstance(X, pd.DataFrame):
            index = X.index
            if names is not None:
                cols = [str(c) for c in X.columns]
                have = set(cols)
                missing = [n for n in names if n not in have]
                if missing:
                    raise Error("%s: missing column(s) %s (the model reads %d: %s)" % (
                        what, ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""),
                        len(names), ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")),
                        "EINVAL")
                if len(set(cols)) != len(cols):
                    dup = sorted({c for c in cols if cols.count(c) > 1} & set(names))
                    if dup:
                        raise Error("%s: column(s) %s appear more than once" % (
                            what, ", ".join(dup)), "EINVAL")
                X = X.loc[:, [X.columns[cols.index(n)] for n in names]]
            try:
                X = X.to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise Error("%s: not numeric (%s)" % (what, e), "EINVAL") from None
        else:
            try:
                X = np.asarray(X, dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise Error("%s: not numeric (%s)" % (what, e), "EINVAL") from None
    if X.dtype != np.float64:
        if X.dtype.kind not in "biuf":
            raise Error("%s: dtype %s is not numeric" % (what, X.dtype), "EINVAL")
        X = X.astype(np.float64)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if X.ndim != 2:
        raise Error("%s: expected a 2-D array (rows x %d), got shape %s" % (what, width, X.shape),
                    "EINVAL")
    if X.shape[1] != width:
        raise Error("%s: %d columns, the model takes %d" % (what, X.shape[1], width), "EINVAL")
    if not X.flags.c_contiguous:
        X = np.ascontiguousarray(X)
    return X, index


class Forest(Owner):
    """A loaded tree ensemble. Immutable and thread-safe: any number of
    threads may predict at once (the GIL is released while the engine runs).

        f = alphapulse.Forest.load("model.json")
        p = f.predict(X)        # what xgboost's / lightgbm's predict returns
        r = alphapulse.Forest.load("model.json", precision="reduced")
        r.predict(X)            # the quantized engine: the same values

    Precision is chosen at load (the engine is not changed once shared):
    .precision is "full" or "reduced", .model_bytes the bytes of the compiled
    engine per precision ({"full": n, "reduced": n or 0}), .node_bytes the
    bytes of one tree node in the engine in use.
    """

    def __init__(self, handle):
        self._h = handle
        p = handle.enter()
        try:
            self.num_features = lib.ap_forest_num_features(p)
            self.num_outputs = lib.ap_forest_num_outputs(p, 0)
            self.num_outputs_raw = lib.ap_forest_num_outputs(p, AP_PREDICT_RAW)
            self.num_trees = lib.ap_forest_num_trees(p)
            self.source = text(lib.ap_forest_source(p))
            self.objective = text(lib.ap_forest_objective(p))
            names = [text(lib.ap_forest_feature_name(p, i)) for i in range(self.num_features)]
            self.precision = PRECISION_NAMES.get(lib.ap_forest_precision(p), "full")
            self.model_bytes = {k: lib.ap_forest_model_bytes(p, v) for k, v in PRECISIONS.items()}
            self.node_bytes = lib.ap_forest_node_bytes(p, PRECISIONS[self.precision])
        finally:
            handle.leave()
        self.feature_names = names if names and all(n is not None for n in names) else None

    @classmethod
    def load(cls, path, format="auto", precision="full"):
        """Load an XGBoost JSON / UBJSON or LightGBM text model. format: auto
        (by content), xgboost_json, xgboost_ubj, lightgbm. precision: "full"
        (the training library's arithmetic) or "reduced" (the quantized
        engine next to the full one: the same predictions, exact by
        construction); a model that cannot be reduced exactly raises Error
        with the engine's reason."""
        if format not in _FORMATS:
            raise Error("format=%r: expected one of %s" % (format, ", ".join(_FORMATS)), "EINVAL")
        prec = check_precision(precision)
        p = c_void_p()
        err = ApError()
        check(lib.ap_forest_load(os.fsencode(path), _FORMATS[format], ctypes.byref(p),
                                 ctypes.byref(err)), err)
        if prec == PRECISION_REDUCED:  # before anyone else holds it
            rc = lib.ap_forest_set_precision(p, prec, ctypes.byref(err))
            if rc:
                lib.ap_forest_free(p)
                check(rc, err)
        return cls(Handle(p.value, lib.ap_forest_free, "Forest"))

    def predict(self, X, raw=False, precision=None):
        """Predict the rows of X: a numpy array (n, num_features) or a pandas
        DataFrame (columns matched by name when the model names its
        features). NaN is a missing value. Returns shape (n,) for one output,
        (n, k) for k outputs: the transformed prediction (probabilities), or
        with raw=True the margins. precision: None (the forest's, as
        loaded), "full" (the full engine, also in a reduced forest) or
        "reduced" (only in a forest loaded with precision="reduced")."""
        flags = AP_PREDICT_RAW if raw else 0
        if precision is not None:
            prec = check_precision(precision)
            if prec == PRECISION_FULL:
                flags |= AP_PREDICT_FULL
            elif self.precision != "reduced":
                raise Error("precision='reduced': this Forest was loaded at full precision; "
                            "load it with Forest.load(path, precision='reduced')", "EINVAL")
        X, _ = as_rows(X, self.num_features, self.feature_names, "X")
        k = self.num_outputs_raw if raw else self.num_outputs
        n = X.shape[0]
        out = np.empty((n, k), dtype=np.float64)
        ptr = self._h.enter()
        try:
            if n:
                lib.ap_forest_predict(ptr, X.ctypes.data, n, out.ctypes.data, flags)
        finally:
            self._h.leave()
        return out.reshape(n) if k == 1 else out

    def __repr__(self):
        return "<alphapulse.Forest %s %s: %d trees, %d features, %d outputs, %s precision>" % (
            self.source, self.objective, self.num_trees, self.num_features, self.num_outputs,
            self.precision)
