"""A model repository (docs/MODEL_REPOSITORY.md): every model with its
pipeline and ensembles, as `alphapulse serve` and `check-repo` load it."""
import ctypes
import os

import numpy as np

from ._features import FEATURE_NAMES
from ._forest import as_rows
from ._lib import (AP_FEATURE_COUNT, REPORT_FN, ApError, Error, Handle, ModelInfo, Owner,
                   RegistryOptions, c_void_p, check, lib, text)


class Repository(Owner):
    """Open a repository folder and load every model in it (ensembles after
    their members). Models that fail to load are listed in .failures with
    the reason; the others serve. Thread-safe: predictions may run on many
    threads at once (the GIL is released while the engine runs).

        repo = alphapulse.Repository("examples/models")
        repo.models                   # ['bear', 'bull', ..., 'meta', 'reversal']
        repo.predict("reversal", features_frame)

    mixed_precision=True makes a manifest's precision "auto" mean reduced,
    as the server's mixed_precision_enabled does; .info(name) says what each
    model runs (precision, precision_note, node and model bytes).
    """

    def __init__(self, path, mixed_precision=False):
        p = c_void_p()
        err = ApError()
        opt = RegistryOptions()
        lib.ap_registry_options_default(ctypes.byref(opt))
        opt.mixed_precision = 1 if mixed_precision else 0
        check(lib.ap_registry_open(os.fsencode(path), ctypes.byref(opt), ctypes.byref(p),
                                   ctypes.byref(err)), err)
        self._h = Handle(p.value, lib.ap_registry_free, "Repository")
        self.path = os.fspath(path)
        self.failures = {}
        loaded = []

        def report(ctx, name, model, e):
            if model:
                loaded.append(name.decode())
            else:
                self.failures[name.decode()] = e.contents.msg.decode("utf-8", "replace")

        cb = REPORT_FN(report)   # kept alive for the call
        err = ApError()
        rc = lib.ap_registry_load_all(p.value, cb, None, ctypes.byref(err))
        if rc < 0:
            self._h.close()
            check(rc, err)
        self.models = sorted(loaded)

    def _acquire(self, name):
        reg = self._h.enter()
        m = c_void_p()
        err = ApError()
        rc = lib.ap_registry_acquire(reg, name.encode(), ctypes.byref(m), ctypes.byref(err))
        if rc:
            self._h.leave()
            check(rc, err)
        return m.value

    def _release(self, m):
        lib.ap_model_release(m)
        self._h.leave()

    def info(self, name):
        """What the served version of `name` is: a dict of the fields of
        ap_model_info (kind, target, format, version, num_inputs, ...) plus
        input_names and, for feature models, features_used."""
        m = self._acquire(name)
        try:
            mi = ModelInfo()
            lib.ap_model_describe(m, ctypes.byref(mi))
            d = {}
            for f, _ in ModelInfo._fields_:
                v = getattr(mi, f)
                d[f] = text(v) if isinstance(v, bytes) else v
            d["input_names"] = [text(lib.ap_model_input_name(m, i)) for i in range(mi.num_inputs)]
            used = (ctypes.c_ubyte * AP_FEATURE_COUNT)()
            lib.ap_model_features_used(m, used)
            d["features_used"] = [FEATURE_NAMES[i] for i in range(AP_FEATURE_COUNT) if used[i]]
            return d
        finally:
            self._release(m)

    def predict(self, model, X, raw=False):
        """Predict rows with `model` through its whole pipeline (and, for an
        ensemble, its members), as `check-repo --model` does.

        X: alphapulse-v1 features, a DataFrame (columns by name: at least
        the features the model reads; the others may be absent) or an array
        of (n, 101) in spec order. With raw=True: the model's own inputs
        (its features in manifest order, a raw model's tensor, an ensemble's
        member predictions), by name when the model names them.

        Returns a DataFrame indexed like X: prediction, confidence, and
        output_0.. (the predictor's outputs; for ensembles the members')."""
        import pandas as pd
        m = self._acquire(model)
        try:
            mi = ModelInfo()
            lib.ap_model_describe(m, ctypes.byref(mi))
            if raw:
                names = [text(lib.ap_model_input_name(m, i)) for i in range(mi.num_inputs)]
                names = names if names and all(names) else None
                rows, index = as_rows(X, mi.num_inputs, names, "X")
            else:
                rows, index = self._full_rows(m, X)
            n = rows.shape[0]
            pred = np.empty(n)
            conf = np.empty(n)
            outs = np.empty((n, mi.num_outputs))
            err = ApError()
            fn = lib.ap_model_predict_raw if raw else lib.ap_model_predict
            if n:
                check(fn(m, rows.ctypes.data, n, pred.ctypes.data, conf.ctypes.data,
                         outs.ctypes.data, ctypes.byref(err)), err)
        finally:
            self._release(m)
        df = pd.DataFrame({"prediction": pred, "confidence": conf}, index=index)
        for j in range(outs.shape[1]):
            df["output_%d" % j] = outs[:, j]
        return df

    @staticmethod
    def _full_rows(m, X):
        try:
            import pandas as pd
        except ImportError:
            pd = None
        if pd is None or not isinstance(X, pd.DataFrame):
            return as_rows(X, AP_FEATURE_COUNT, None, "X")
        used = (ctypes.c_ubyte * AP_FEATURE_COUNT)()
        lib.ap_model_features_used(m, used)
        need = [FEATURE_NAMES[i] for i in range(AP_FEATURE_COUNT) if used[i]]
        cols = {str(c): c for c in X.columns}
        missing = [f for f in need if f not in cols]
        if missing:
            raise Error("X: missing feature column(s) %s (the model reads %s)" % (
                ", ".join(missing), ", ".join(need)), "EINVAL")
        rows = np.full((len(X), AP_FEATURE_COUNT), np.nan)
        for i, f in enumerate(FEATURE_NAMES):
            if f in cols:
                try:
                    rows[:, i] = X[cols[f]].to_numpy(dtype=np.float64)
                except (TypeError, ValueError) as e:
                    raise Error("X: column %s is not numeric (%s)" % (f, e), "EINVAL") from None
        return rows, X.index
