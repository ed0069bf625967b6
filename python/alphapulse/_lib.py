"""The shared library and its C declarations (ctypes).

Found, in this order: $ALPHAPULSE_LIB; libalphapulse.so inside this package
(pip install copies it there); build/libalphapulse.so of the checkout this
package sits in (PYTHONPATH=python after `make`); the system's library path.

ctypes.CDLL releases the GIL for the duration of every call, so predictions
and feature computation run while other Python threads go on.
"""
import ctypes
import ctypes.util
import os
import threading

_HERE = os.path.dirname(os.path.abspath(__file__))
_NAME = "libalphapulse.so"
AP_FEATURE_COUNT = 101


class Error(Exception):
    """An error from the alphapulse engine: the library's message (what and
    where), with its status name in .status (e.g. "EINVAL")."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def _candidates():
    env = os.environ.get("ALPHAPULSE_LIB")
    if env:
        return [env], True
    paths = [os.path.join(_HERE, _NAME),
             os.path.join(os.path.dirname(os.path.dirname(_HERE)), "build", _NAME)]
    found = ctypes.util.find_library("alphapulse")
    if found:
        paths.append(found)
    return paths, False


def _load():
    paths, explicit = _candidates()
    tried = []
    for p in paths:
        if not explicit and os.sep in p and not os.path.exists(p):
            tried.append("%s (absent)" % p)
            continue
        try:
            return ctypes.CDLL(p)
        except OSError as e:
            tried.append("%s (%s)" % (p, e))
    raise ImportError("alphapulse: cannot load %s; tried: %s. Build it with `make` in the "
                      "checkout, or set ALPHAPULSE_LIB to its path" % (_NAME, "; ".join(tried)))


lib = _load()

c_double_p = ctypes.c_void_p      # numpy buffers are passed by address
c_int, c_uint, c_size_t, c_char_p, c_void_p = (ctypes.c_int, ctypes.c_uint, ctypes.c_size_t,
                                               ctypes.c_char_p, ctypes.c_void_p)


class ApError(ctypes.Structure):
    _fields_ = [("code", c_int), ("msg", ctypes.c_char * 512)]


class Bar(ctypes.Structure):
    _fields_ = [("t", ctypes.c_int64), ("open", ctypes.c_double), ("high", ctypes.c_double),
                ("low", ctypes.c_double), ("close", ctypes.c_double),
                ("volume", ctypes.c_double)]


class ModelInfo(ctypes.Structure):
    """Mirror of ap_model_info (include/alphapulse/registry.h)."""
    _fields_ = [("name", c_char_p), ("kind", c_int), ("kind_name", c_char_p),
                ("target", c_char_p), ("format", c_char_p), ("file", c_char_p),
                ("version", ctypes.c_uint32), ("num_inputs", c_int), ("num_outputs", c_int),
                ("num_trees", c_int), ("pipeline_steps", c_int), ("pipeline", c_char_p),
                ("confidence", c_char_p), ("output_index", c_int), ("max_batch_size", c_int),
                ("max_queue_delay_us", ctypes.c_uint32), ("min_bars", ctypes.c_uint32),
                ("precision", c_char_p), ("precision_requested", c_char_p),
                ("precision_note", c_char_p), ("node_bytes", c_int),
                ("model_bytes_full", c_size_t), ("model_bytes_reduced", c_size_t),
                ("precision_deviation", ctypes.c_double), ("device", c_char_p),
                ("device_requested", c_char_p), ("gpu_min_batch_rows", c_size_t)]


class OnnxOptions(ctypes.Structure):
    """Mirror of ap_onnx_options (include/alphapulse/onnx.h)."""
    _fields_ = [("backend", c_int), ("ort_library", c_char_p), ("ort_threads", c_int)]


class RegistryOptions(ctypes.Structure):
    """Mirror of ap_registry_options (include/alphapulse/registry.h)."""
    _fields_ = [("onnx", OnnxOptions), ("mixed_precision", c_int),
                ("gpu_min_batch_rows", c_size_t)]


# ap_precision (include/alphapulse/common.h)
PRECISION_AUTO, PRECISION_FULL, PRECISION_REDUCED = 0, 1, 2
PRECISION_NAMES = {PRECISION_AUTO: "auto", PRECISION_FULL: "full", PRECISION_REDUCED: "reduced"}


REPORT_FN = ctypes.CFUNCTYPE(None, c_void_p, c_char_p, c_void_p, ctypes.POINTER(ApError))

_P = ctypes.POINTER
_DECLS = {
    # name: (restype, argtypes)
    "ap_version": (c_char_p, []),
    "ap_status_name": (c_char_p, [c_int]),
    "ap_feature_count": (c_int, []),
    "ap_feature_name": (c_char_p, [c_int]),
    "ap_parse_timestamp": (c_int, [c_char_p, _P(ctypes.c_int64), _P(ApError)]),
    "ap_features_compute": (c_int, [c_void_p, c_size_t, c_double_p, _P(ApError)]),
    "ap_features_new": (c_int, [_P(c_void_p), _P(ApError)]),
    "ap_features_free": (None, [c_void_p]),
    "ap_features_push": (c_int, [c_void_p, _P(Bar), c_double_p, _P(ApError)]),
    "ap_features_bars": (ctypes.c_uint64, [c_void_p]),
    "ap_forest_load": (c_int, [c_char_p, c_int, _P(c_void_p), _P(ApError)]),
    "ap_forest_free": (None, [c_void_p]),
    "ap_forest_num_features": (c_int, [c_void_p]),
    "ap_forest_num_outputs": (c_int, [c_void_p, c_uint]),
    "ap_forest_num_trees": (c_int, [c_void_p]),
    "ap_forest_feature_name": (c_char_p, [c_void_p, c_int]),
    "ap_forest_source": (c_char_p, [c_void_p]),
    "ap_forest_objective": (c_char_p, [c_void_p]),
    "ap_forest_predict": (None, [c_void_p, c_double_p, c_size_t, c_double_p, c_uint]),
    "ap_forest_set_precision": (c_int, [c_void_p, c_int, _P(ApError)]),
    "ap_forest_precision": (c_int, [c_void_p]),
    "ap_forest_model_bytes": (c_size_t, [c_void_p, c_int]),
    "ap_forest_node_bytes": (c_int, [c_void_p, c_int]),
    "ap_registry_options_default": (None, [_P(RegistryOptions)]),
    "ap_registry_open": (c_int, [c_char_p, _P(RegistryOptions), _P(c_void_p), _P(ApError)]),
    "ap_registry_free": (None, [c_void_p]),
    "ap_registry_load_all": (c_int, [c_void_p, REPORT_FN, c_void_p, _P(ApError)]),
    "ap_registry_load": (c_int, [c_void_p, c_char_p, ctypes.c_uint32, _P(ApError)]),
    "ap_registry_acquire": (c_int, [c_void_p, c_char_p, _P(c_void_p), _P(ApError)]),
    "ap_model_release": (None, [c_void_p]),
    "ap_model_describe": (None, [c_void_p, _P(ModelInfo)]),
    "ap_model_input_name": (c_char_p, [c_void_p, c_int]),
    "ap_model_features_used": (c_int, [c_void_p, c_void_p]),
    "ap_model_predict": (c_int, [c_void_p, c_double_p, c_size_t, c_double_p, c_double_p,
                                 c_double_p, _P(ApError)]),
    "ap_model_predict_raw": (c_int, [c_void_p, c_double_p, c_size_t, c_double_p, c_double_p,
                                     c_double_p, _P(ApError)]),
}
for _name, (_res, _args) in _DECLS.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def check(rc, err):
    """Raise Error with the library's message when rc is a failure."""
    if rc != 0:
        status = lib.ap_status_name(rc)
        raise Error(err.msg.decode("utf-8", "replace"),
                    status.decode() if status else str(rc))


def text(b):
    return None if b is None else b.decode("utf-8", "replace")


class Handle:
    """One owned C object, safe to close while other threads use it: close()
    marks it closed and the object is freed by whoever lets go of it last,
    so a closed object raises Error instead of touching freed memory."""

    __slots__ = ("_ptr", "_free", "_what", "_lock", "_users", "_closed")

    def __init__(self, ptr, free, what):
        self._ptr, self._free, self._what = ptr, free, what
        self._lock = threading.Lock()
        self._users = 0
        self._closed = False

    def enter(self):
        with self._lock:
            if self._closed:
                raise Error("%s is closed" % self._what, "EINVAL")
            self._users += 1
            return self._ptr

    def leave(self):
        with self._lock:
            self._users -= 1
            last = self._closed and self._users == 0
        if last:
            self._release()

    def close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
            last = self._users == 0
        if last:
            self._release()

    @property
    def closed(self):
        return self._closed

    def _release(self):
        ptr, self._ptr = self._ptr, None
        if ptr:
            self._free(ptr)


class Owner:
    """Base of the package's classes that own one Handle in self._h: close(),
    .closed, a `with` block, and freeing when collected."""

    def close(self):
        """Free the engine object now (also done when this object is
        collected). Calls in flight on other threads finish first; later
        calls raise Error."""
        self._h.close()

    @property
    def closed(self):
        return self._h.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        h = getattr(self, "_h", None)
        if h is not None:
            h.close()
