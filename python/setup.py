"""pip install ./python: the alphapulse package with the engine's shared library.

Run `make` first: the build copies build/libalphapulse.so of this checkout
(or $ALPHAPULSE_LIB) into the package. Pure Python over ctypes: nothing is
compiled here. No pyproject.toml on purpose: pip then builds with the
setuptools already installed (Debian's python3-setuptools) instead of
downloading one into an isolated environment, so it works offline.
"""
import os
import re
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def version():
    with open(os.path.join(ROOT, "include", "alphapulse", "common.h")) as f:
        return re.search(r'#define AP_VERSION "([^"]+)"', f.read()).group(1)


def shared_library():
    lib = os.environ.get("ALPHAPULSE_LIB") or os.path.join(ROOT, "build", "libalphapulse.so")
    if not os.path.isfile(lib):
        raise SystemExit("alphapulse: %s is missing: run `make` in %s first (or set "
                         "ALPHAPULSE_LIB)" % (lib, ROOT))
    return lib


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "alphapulse", "libalphapulse.so")
        shutil.copyfile(shared_library(), dest)
        os.chmod(dest, 0o755)


class BinaryDistribution(Distribution):
    def has_ext_modules(self):   # the wheel holds a native library: platform-specific
        return True


setup(
    name="alphapulse",
    version=version(),
    description="alphapulse inference engine in-process: features, forests, model repositories",
    packages=["alphapulse"],
    package_dir={"alphapulse": "alphapulse"},
    python_requires=">=3.9",
    install_requires=["numpy"],
    extras_require={"pandas": ["pandas"]},
    cmdclass={"build_py": BuildWithLibrary},
    distclass=BinaryDistribution,
    zip_safe=False,
)
