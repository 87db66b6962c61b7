"""Builds connpack's one C extension, the weight generator (connpack/_rngc.c); everything else is in pyproject.toml.

-ffp-contract=off: no fused multiply-add, so the float64 programs round exactly as connpack/rng.py says.
If the compiler is missing the build still succeeds and connpack uses the numpy reference (same bytes, slower).
"""
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler: the pure-numpy generator is used
            print(f"connpack: C weight generator not built ({e}); using the numpy reference")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            print(f"connpack: C weight generator not built ({e}); using the numpy reference")


setup(
    ext_modules=[Extension("connpack._rngc", ["connpack/_rngc.c"],
                           extra_compile_args=["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno", "-std=c99"])],
    cmdclass={"build_ext": OptionalBuildExt},
)
