"""XGBoost model layouts for the tests: a UBJSON codec that reproduces
XGBoost's own bytes, and the edit that turns a 1.7 DART model into XGBoost
3.x's layout. Used by test_xgboost_parity.py and
tests/data/xgboost/make_dart_fixtures.py (not a test itself)."""
import copy
import struct


# ---- UBJSON as XGBoost writes it (src/common/json.cc UBJWriter) ----
# Decoding keeps what re-encoding needs to reproduce XGBoost's bytes: typed
# arrays stay packed (Packed), numbers keep their marker (Num), arrays
# remember whether they were counted. Plain Python values (added by an edit)
# encode as XGBoost would write them.

class Num:
    def __init__(self, marker, raw):
        self.marker, self.raw = marker, raw


class Packed:
    def __init__(self, marker, count, raw):
        self.marker, self.count, self.raw = marker, count, raw


class Arr(list):
    counted = True


_NUM = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q", b"d": ">f", b"D": ">d"}


def ubj_decode(buf):
    pos = 0

    def take(n):
        nonlocal pos
        out = buf[pos:pos + n]
        assert len(out) == n, "truncated UBJSON"
        pos += n
        return out

    def count():
        m = take(1)
        return struct.unpack(_NUM[m], take(struct.calcsize(_NUM[m])))[0]

    def value(m):
        nonlocal pos
        if m in _NUM:
            return Num(m, take(struct.calcsize(_NUM[m])))
        if m == b"S":
            return take(count()).decode()
        if m in (b"T", b"F"):
            return m == b"T"
        if m == b"Z":
            return None
        if m == b"[":
            if buf[pos:pos + 1] == b"$":
                take(1)
                em = take(1)
                assert take(1) == b"#"
                n = count()
                return Packed(em, n, take(n * struct.calcsize(_NUM[em])))
            out = Arr()
            if buf[pos:pos + 1] == b"#":
                take(1)
                for _ in range(count()):
                    out.append(value(take(1)))
            else:
                out.counted = False
                while (m2 := take(1)) != b"]":
                    out.append(value(m2))
            return out
        if m == b"{":
            out = {}
            assert buf[pos:pos + 1] not in (b"$", b"#"), "XGBoost objects are not counted"
            while (m2 := take(1)) != b"}":
                pos -= 1
                k = take(count()).decode()
                out[k] = value(take(1))
            return out
        raise ValueError("UBJSON marker %r" % m)

    v = value(take(1))
    assert pos == len(buf), "trailing bytes"
    return v


def ubj_encode(v):
    def key(k):
        b = k.encode()
        return b"L" + struct.pack(">q", len(b)) + b

    if isinstance(v, Num):
        return v.marker + v.raw
    if isinstance(v, Packed):
        return b"[$" + v.marker + b"#L" + struct.pack(">q", v.count) + v.raw
    if isinstance(v, bool):
        return b"T" if v else b"F"
    if v is None:
        return b"Z"
    if isinstance(v, int):
        return b"L" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">f", v)
    if isinstance(v, str):
        return b"S" + key(v)
    if isinstance(v, list):
        body = b"".join(ubj_encode(x) for x in v)
        if getattr(v, "counted", True):
            return b"[#L" + struct.pack(">q", len(v)) + body
        return b"[" + body + b"]"
    if isinstance(v, dict):
        return b"{" + b"".join(key(k) + ubj_encode(x) for k, x in v.items()) + b"}"
    raise TypeError(type(v))


def to_3x_dart(m, both=False):
    """A 1.7 DART model (JSON dict or decoded UBJSON) in XGBoost 3.x's layout:
    gradient_booster {"name": "gbtree", "model": {..., "weight_drop": w}},
    plus what 3.x writes beside it (iteration_indptr, an empty cats container,
    version 3.0.0, base_score as a list). both=True keeps the 1.7 layout and
    puts the weights in the model as well (XGBoost 3.x reads both)."""
    m = copy.deepcopy(m)
    lr = m["learner"]
    gb = lr["gradient_booster"]
    assert gb["name"] == "dart"
    model = gb["gbtree"]["model"]
    model["weight_drop"] = copy.deepcopy(gb["weight_drop"])
    if both:
        return m
    ntrees = len(model["trees"])
    nclass = max(1, int(str(lr["learner_model_param"]["num_class"])))
    model["iteration_indptr"] = list(range(0, ntrees + 1, nclass))
    model["cats"] = {"enc": [], "feature_segments": [], "sorted_idx": []}
    lr["gradient_booster"] = {"name": "gbtree", "model": model}
    bs = lr["learner_model_param"]["base_score"]
    lr["learner_model_param"]["base_score"] = "[" + bs + "]"
    m["version"] = [3, 0, 0]
    return m
