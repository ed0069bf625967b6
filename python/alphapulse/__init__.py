"""alphapulse in-process: the same engine as `alphapulse serve`, for Python.

    import alphapulse
    f = alphapulse.features(bars)              # 101 alphapulse-v1 columns (pandas)
    forest = alphapulse.Forest.load("model.json")
    p = forest.predict(f[forest.feature_names])
    repo = alphapulse.Repository("examples/models")
    repo.predict("reversal", f)

Training on alphapulse.features() gives models the numbers the server will
compute for them: one code path for training and serving. See docs/PYTHON.md.
"""
from ._lib import Error, lib as _engine
from ._features import BAR_COLUMNS, FEATURE_NAMES, FeatureStream, features, timestamps_us
from ._forest import Forest
from ._repository import Repository

__version__ = _engine.ap_version().decode()

__all__ = ["Error", "FEATURE_NAMES", "BAR_COLUMNS", "FeatureStream", "Forest", "Repository",
           "features", "timestamps_us", "__version__"]
